"""Slurm associations for the projects a test catalogue names.

The test cluster holds jobs to associations (AccountingStorageEnforce), as a site does:
every project's account must exist with the test users in it. slurm-up makes the accounts
most catalogues use; a catalogue naming others gets them here, without limits, when its hub
starts, as a site's user register would have them. Sites with `accounting: slurm` are left
alone: `naic slurm accounts` makes theirs, and the tests of that check it starts empty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.slurm_cluster import TEST_USERS


def _sacctmgr(*args: str) -> str:
    return subprocess.run(
        ["sacctmgr", "--immediate", "--noheader", "--parsable2", *args],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def project_accounts(cat: dict) -> set[str]:
    """The Slurm accounts of a catalogue's projects, if it has a hub-accounted Slurm site."""
    sites = (cat.get("sites") or {}).values()
    if not any(s.get("backend") == "slurm" and s.get("accounting") != "slurm" for s in sites):
        return set()
    projects = (cat.get("projects") or {}).items()
    return {(p or {}).get("slurm_account") or name for name, p in projects}


def ensure_associations(catalogue: Path) -> None:
    """Add what is missing of (account, every test user); no-op without a Slurm cluster."""
    accounts = project_accounts(yaml.safe_load(catalogue.read_text()) or {})
    if not accounts or shutil.which("sacctmgr") is None:
        return
    have = set(_sacctmgr("show", "associations", "format=Account,User").splitlines())
    for account in sorted(accounts):
        if f"{account}|" not in have:
            _sacctmgr("add", "account", account)
        users = [u for u in ("root", *TEST_USERS) if f"{account}|{u}" not in have]
        if users:
            _sacctmgr("add", "user", ",".join(users), f"account={account}")
