"""Budgets from Slurm's accounting (slurmdbd) on a site with `accounting: slurm`: the
project's account made by `naic slurm accounts`, a batch job charged to it outside the hub,
and the hub showing and enforcing the same figure Slurm's accounting holds.

The reference figure is the job records in slurmdbd, read here with `sacct` and summed by the
test itself (GPUs × elapsed seconds). `sshare`'s GrpTRESRaw would be the other view, but on
this Slurm (22.05) it stays at gres/gpu=0 for these jobs (only the billing-weighted RawUsage
grows, at the decay thread's ticks), so it cannot be the reference here."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_process import NAIC, Hub, stop_hub
from tests.integration.helpers import squeue, start_testcluster_hub, user_token

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

ACCOUNT = "nnacct1k"
BUDGET_H = 1.0  # 60 GPU-minutes


def accounted(cat: dict) -> None:
    cat["sites"]["testcluster"]["accounting"] = "slurm"
    cat["projects"] = {
        ACCOUNT: {"title": "Accounting test", "gpu_hours": BUDGET_H, "budget_period": "never",
                  "members": ["alice", "bob"]},
    }  # fmt: skip


def sacctmgr(*args: str) -> str:
    return subprocess.run(
        ["sacctmgr", "--noheader", "--parsable2", *args], capture_output=True, text=True, check=True
    ).stdout


def sacct_gpu_minutes() -> float:
    """The account's GPU-minutes in slurmdbd's job records: every job, summed here."""
    out = subprocess.run(
        ["sacct", "--allusers", "--allocations", "--noheader", "--parsable2",
         f"--accounts={ACCOUNT}", "--starttime=2000-01-01", "--format=ElapsedRaw,AllocTRES"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    total = 0.0
    for line in out.splitlines():
        elapsed, tres = line.split("|")[:2]
        found = re.search(r"gres/gpu=(\d+)", tres)
        if found and elapsed.strip():
            total += int(found.group(1)) * int(elapsed) / 60
    return total


@pytest.fixture(scope="module")
def acct_hub(slurm_cluster) -> Iterator[Hub]:
    hub_dir = Path(tempfile.mkdtemp(prefix="naic-slurm-accounting-", dir="/var/tmp"))
    hub_dir.chmod(0o755)
    hub = start_testcluster_hub(hub_dir, accounted)
    try:
        yield hub
    finally:
        stop_hub(hub)
        shutil.rmtree(hub_dir, ignore_errors=True)
        subprocess.run(["scancel", f"--account={ACCOUNT}"], check=False)
        subprocess.run(["sacctmgr", "-i", "delete", "user", "where", f"account={ACCOUNT}"],
                       capture_output=True, check=False)  # fmt: skip
        subprocess.run(["sacctmgr", "-i", "delete", "account", ACCOUNT],
                       capture_output=True, check=False)  # fmt: skip


def test_naic_makes_the_projects_account_and_slurm_counts_a_job_outside_the_hub(
    acct_hub: Hub,
) -> None:
    catalogue = str(acct_hub.data_dir.parent / "catalogue.yaml")
    assert yaml.safe_load(Path(catalogue).read_text())["sites"]["testcluster"]["accounting"]

    check = subprocess.run([NAIC, "slurm", "accounts", "--catalogue", catalogue],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"testcluster: account {ACCOUNT} is missing; to fix: sacctmgr -i add account" in (
        check.stdout
    )
    applied = subprocess.run([NAIC, "slurm", "accounts", "--catalogue", catalogue, "--apply"],
                             capture_output=True, text=True)  # fmt: skip
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = subprocess.run([NAIC, "slurm", "accounts", "--catalogue", catalogue],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stdout
    assert "every project's account, users and GPU budget are in Slurm" in again.stdout
    assocs = sacctmgr("show", "associations", f"account={ACCOUNT}", "format=User,GrpTRESMins")
    assert "|gres/gpu=60" in assocs and "alice|" in assocs and "bob|" in assocs, assocs

    # bob's batch job, charged to the project by hand: 4 GPUs for about a minute.
    job = subprocess.run(
        ["sbatch", "--parsable", "--uid=bob", "--gid=bob", f"--account={ACCOUNT}",
         "--partition=accel", "--gres=gpu:a100:4", "--time=5", "--output=/dev/null",
         "--wrap=sleep 75"],
        capture_output=True, text=True, check=True, cwd="/tmp",
    ).stdout.strip().split(";")[0]  # fmt: skip
    deadline = time.monotonic() + 240
    while squeue(f"--jobs={job}", "--format=%T").strip():
        assert time.monotonic() < deadline, "bob's job did not end"
        time.sleep(2)
    minutes = sacct_gpu_minutes()
    assert minutes >= 4 * 1.0, f"slurmdbd holds {minutes} GPU-minutes for bob's job"

    token = user_token(acct_hub, "alice")
    api = httpx.Client(base_url=acct_hub.url + "hub/api",
                       headers={"Authorization": f"token {token}"}, timeout=60)  # fmt: skip
    usage = api.get("/naic/users/alice/usage").json()
    project = next(p for p in usage["projects"] if p["name"] == ACCOUNT)
    assert abs(project["used"] * 60 - minutes) <= 1.0, (project, minutes)
    assert project["mine"] == 0  # bob's job, not alice's
    assert abs(project["left"] - (BUDGET_H - project["used"])) < 1e-3

    # The hub enforces that figure: an hour on one GPU no longer fits.
    refused = api.post(
        "/users/alice/server",
        json={"user_options": {"site": "testcluster", "resource": "a100", "gpus": 1,
                               "hours": 1, "project": ACCOUNT}},
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    message = refused.json()["message"]
    used = f"{project['used']:.1f}".removesuffix(".0")
    assert message.startswith(f"Project {ACCOUNT} has used {used} of its 1 GPU-hours"), message
    assert "this session would need 1 more" in message
    assert squeue("--user=alice", "--format=%i") == ""
