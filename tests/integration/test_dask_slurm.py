"""Dask on the real test Slurm: a "session" process of alice scales out and cleans up.

The session is a Python process running as alice with `NAIC_SESSION` set as the hub sets
it; its Dask workers are real Slurm jobs of alice named `naic-dask-<session job id>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from naic.spawners.slurm import cancel_dask_workers
from tests.integration.helpers import uid_gid

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

USER = "alice"
WILDCARDS = ("0.0.0.0", "*", "[::]")  # noqa: S104 (what must not appear)
LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"}

SESSION_SCRIPT = """
import json, sys, time, urllib.request
import dask.bag as db
from distributed import Client
from naic.extensions.dask import dashboard_url, slurm_cluster

cluster = slurm_cluster()
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=120)
# dask.bag rather than dask.array: the hub's venv has no numpy
total = int(db.range(1_000_000, npartitions=10).sum().compute())
# Each nanny forked its worker (naic's default): the worker has the nanny's command line,
# where a spawned one would run multiprocessing's spawn_main.
cmdline = lambda: open("/proc/self/cmdline", "rb").read().decode().split(chr(0))  # noqa: E731
forked = list(client.run(lambda: "distributed.cli.dask_worker" in cmdline()).values())
client.restart()  # the nannies fork new workers
client.wait_for_workers(2, timeout=120)
again = int(db.range(1_000, npartitions=4).sum().compute())
port = cluster.scheduler_info["services"]["dashboard"]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as answer:
    status = answer.status
report = {
    "total": total,
    "forked": forked,
    "after_restart": again,
    "dashboard_status": status,
    "dashboard_url": dashboard_url(cluster),
    "dashboard_link": cluster.dashboard_link,
    "scheduler": cluster.scheduler_address,
    "workers": sorted(w["host"] for w in client.scheduler_info()["workers"].values()),
    "worker_addresses": sorted(client.scheduler_info()["workers"]),
}
print(json.dumps(report), flush=True)
if sys.argv[1] == "die":
    time.sleep(600)  # the test kills this process: a session that never closes its cluster
client.close()
cluster.close()
"""


def _session_env(job_id: str) -> dict[str, str]:
    ends_at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    session = {
        "site": "testcluster",
        "partition": "normal",
        "slurm_account": None,
        "environment": "python",
        "activate": {"venv": sys.prefix, "modules": []},
        "project": None,
        "cpus": 1,
        "memory_gb": 2,
        "ends_at": ends_at,
    }
    return {
        "PATH": os.environ["PATH"],
        "HOME": f"/home/{USER}",
        "USER": USER,
        "NAIC_SESSION": json.dumps(session),
        # Not a real job: squeue has no end for it, so NAIC_SESSION's `ends_at` counts.
        "SLURM_JOB_ID": job_id,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{USER}/",
    }


def _start_session(
    job_id: str, mode: str, workdir: str, script: str = SESSION_SCRIPT
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, mode],
        env=_session_env(job_id),
        cwd=workdir,  # the session's working folder (worker logs go to ~/.naic/dask-logs)
        user=USER,
        group=USER,
        extra_groups=[],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _jobs(name: str) -> dict[str, str]:
    out = subprocess.run(
        [
            "squeue",
            "--noheader",
            "--states=all",
            f"--user={USER}",
            f"--name={name}",
            "--format=%i %T",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _wait_none_live(name: str, timeout_s: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = _jobs(name)
        if not LIVE & set(jobs.values()) or time.monotonic() > deadline:
            return jobs
        time.sleep(1)


def _listening_as(user: str) -> list[str]:
    """Local addresses of the TCP sockets `user`'s processes listen on."""
    out = subprocess.run(
        ["ss", "--listening", "--tcp", "--numeric", "--no-header", "--extended"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    uid = f"uid:{uid_gid(user)[0]}"
    return [line.split()[3] for line in out.splitlines() if uid in line.split()]


def _check_report(report: dict, cluster) -> None:
    assert report["total"] == 499999500000
    assert report["forked"] == [True, True]
    assert report["after_restart"] == 499500
    assert report["dashboard_status"] == 200
    port = report["dashboard_link"].split("/proxy/")[1].split("/")[0]
    assert report["dashboard_link"] == f"/user/{USER}/proxy/{port}/status"
    assert report["dashboard_url"] == report["dashboard_link"]
    # Scheduler and workers listen on the node's name only, never on every interface, and
    # speak TLS only (test_dask_security plays the other user).
    assert report["scheduler"].startswith((f"tls://{cluster.node}:", "tls://127."))
    assert all(w.startswith("tls://") for w in report["worker_addresses"])
    assert len(report["workers"]) == 2


def test_session_scales_out_computes_and_leaves_no_workers(slurm_cluster, workdir):
    job_id = f"it{uuid.uuid4().hex[:8]}"
    name = f"naic-dask-{job_id}"
    proc = _start_session(job_id, "close", workdir)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    _check_report(json.loads(out.strip().splitlines()[-1]), slurm_cluster)

    jobs = _wait_none_live(name)
    assert len(jobs) == 2, jobs  # two worker jobs ran under the session's name
    assert not LIVE & set(jobs.values()), jobs
    # Worker logs in one hidden folder of the home, not as slurm-N.out in the working folder.
    logs = list(Path(f"/home/{USER}/.naic/dask-logs").glob(f"{name}-*.out"))
    assert len(logs) == 2, logs
    assert not list(Path(workdir).glob("slurm-*.out"))
    # The cluster's certificate folder went with its process.
    assert not list(Path(f"/home/{USER}/.naic/dask").glob(f"{job_id}-*"))


def test_workers_of_a_killed_session_are_cancelled_by_the_hub(slurm_cluster, workdir):
    job_id = f"it{uuid.uuid4().hex[:8]}"
    name = f"naic-dask-{job_id}"
    proc = _start_session(job_id, "die", workdir)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:] if proc.poll() is not None else "no report"
        _check_report(json.loads(line), slurm_cluster)
        listening = _listening_as(USER)
        # scheduler + dashboard, and per worker job a nanny, a worker and its HTTP server
        assert len(listening) >= 8, listening
        wildcard = [a for a in listening if a.rsplit(":", 1)[0] in WILDCARDS]
        assert not wildcard, listening
        proc.send_signal(signal.SIGKILL)  # the session dies without closing its cluster
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    running = _jobs(name)
    assert sorted(running.values()) == ["RUNNING", "RUNNING"], running  # orphans, for now

    async def run_as_hub(argv: list[str]) -> str:  # the spawner as root: plain scancel
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 30)
        code, out, err = proc.returncode, out_b.decode(), err_b.decode()
        if code:
            raise RuntimeError(err)
        return out

    asyncio.run(cancel_dask_workers(job_id, USER, run_as_hub))
    jobs = _wait_none_live(name, timeout_s=30)
    assert len(jobs) == 2 and not LIVE & set(jobs.values()), jobs
    # Nothing to cancel any more is not an error.
    asyncio.run(cancel_dask_workers(job_id, USER, run_as_hub))
    # A killed process leaves its certificate folder (0700, for a scheduler that is gone).
    for folder in Path(f"/home/{USER}/.naic/dask").glob(f"{job_id}-*"):
        shutil.rmtree(folder)
