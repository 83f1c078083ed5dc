"""Budgets from Slurm's accounting (slurmdbd) on a site with `accounting: slurm`: the
project's account made by `naic slurm accounts`, a batch job charged to it outside the hub,
and the hub showing and enforcing the figure `sshare` reports, while Slurm enforces the same
limit for batch jobs.

The hub reads slurmdbd's job records (`sacct`, GPUs × elapsed seconds); `sshare`'s
GrpTRESRaw is Slurm's running total of the same usage in whole GPU-minutes, updated at the
priority thread's ticks (every minute here), so the two agree within a GPU-minute."""

from __future__ import annotations

import re
import secrets
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

# New each run: slurmdbd keeps the job records of a deleted account, which sacct (and so the
# hub) would still count under a re-created one of the same name, while sshare starts at 0.
ACCOUNT = f"nnacct{secrets.token_hex(3)}k"
BUDGET_H = 1.0  # 60 GPU-minutes


def accounted(cat: dict) -> None:
    cat["sites"]["testcluster"]["accounting"] = "slurm"
    cat["projects"] = {
        ACCOUNT: {"title": "Accounting test", "gpu_hours": BUDGET_H, "budget_period": "never",
                  "members": ["alice", "bob"]},
    }  # fmt: skip
    cat.pop("datasets", None)  # they name project demo, which this catalogue no longer has


def sacctmgr(*args: str) -> str:
    return subprocess.run(
        ["sacctmgr", "--noheader", "--parsable2", *args], capture_output=True, text=True, check=True
    ).stdout


def sshare_gpu_minutes() -> int:
    """The account's GPU-minutes as `sshare` reports them (GrpTRESRaw, gres/gpu)."""
    out = subprocess.run(
        ["sshare", "--noheader", "--parsable2", f"--accounts={ACCOUNT}",
         "--format=Account,User,GrpTRESRaw"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        account, user, tres = line.split("|")[:3]
        if account.strip() == ACCOUNT and not user:
            return int(re.search(r"gres/gpu=(\d+)", tres).group(1))
    raise AssertionError(f"sshare has no line for account {ACCOUNT}:\n{out}")


def bobs_job(gpus: int, minutes: int, seconds: int) -> str:
    """A batch job charged to the project by hand, as bob: outside the hub."""
    return subprocess.run(
        ["sbatch", "--parsable", "--uid=bob", "--gid=bob", f"--account={ACCOUNT}",
         "--partition=accel", f"--gres=gpu:a100:{gpus}", f"--time={minutes}",
         "--output=/dev/null", f"--wrap=sleep {seconds}"],
        capture_output=True, text=True, check=True, cwd="/tmp",
    ).stdout.strip().split(";")[0]  # fmt: skip


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

    # bob's batch job, charged to the project by hand: 4 GPUs for 75 s, 5 GPU-minutes.
    job = bobs_job(gpus=4, minutes=5, seconds=75)
    deadline = time.monotonic() + 240
    while squeue(f"--jobs={job}", "--format=%T").strip():
        assert time.monotonic() < deadline, "bob's job did not end"
        time.sleep(2)
    # sshare adds the job's last seconds at the next tick of Slurm's priority thread.
    deadline = time.monotonic() + 90
    while (minutes := sshare_gpu_minutes()) < 4:
        assert time.monotonic() < deadline, f"sshare shows {minutes} GPU-minutes for bob's job"
        time.sleep(3)

    token = user_token(acct_hub, "alice")
    api = httpx.Client(base_url=acct_hub.url + "hub/api",
                       headers={"Authorization": f"token {token}"}, timeout=60)  # fmt: skip
    usage = api.get("/naic/users/alice/usage").json()
    project = next(p for p in usage["projects"] if p["name"] == ACCOUNT)
    assert abs(project["used"] * 60 - minutes) <= 1.0, (project, f"sshare: {minutes}")
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

    # Slurm enforces the same limit for batch jobs: 55 GPU-minutes are left, so bob's
    # 4 GPUs for an hour stay pending, while 1 GPU for 10 minutes runs.
    too_big, fits = bobs_job(gpus=4, minutes=60, seconds=5), bobs_job(gpus=1, minutes=10, seconds=5)
    deadline = time.monotonic() + 60
    while squeue(f"--jobs={fits}", "--format=%T").strip():
        assert time.monotonic() < deadline, squeue(f"--jobs={fits}", "--format=%T %r")
        time.sleep(2)
    assert squeue(f"--jobs={too_big}", "--format=%T %r").split() == [
        "PENDING", "AssocGrpGRESMinutes"
    ]  # fmt: skip
    subprocess.run(["scancel", too_big], check=True)
