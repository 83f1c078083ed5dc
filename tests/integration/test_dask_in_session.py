"""Dask from inside a real Slurm session: the dashboard through the hub's proxy at
/user/<name>/proxy/8787/status, and no worker job outliving the session it belongs to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import squeue, user_token, wait_ready
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: A long-lived Dask cluster started from the session, as a researcher's script would: it
#: outlives the kernel that launched it, so only the session's end can clean it up.
START_CLUSTER = """
import os, subprocess, sys
code = (
    "import time\\n"
    "from naic.extensions.dask import slurm_cluster\\n"
    "c = slurm_cluster()\\n"
    "c.scale(1)\\n"
    "print(c.dashboard_link, flush=True)\\n"
    "time.sleep(3600)\\n"
)
log = open(os.path.expanduser("~/.naic/dask-session-test.log"), "w")
p = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                     start_new_session=True)
print(os.environ["SLURM_JOB_ID"], p.pid)
"""


def test_the_dashboard_is_proxied_and_workers_end_with_the_session(slurm_hub: Hub) -> None:
    token = user_token(slurm_hub, "alice")
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    options = {"site": "testcluster", "resource": "cpu", "hours": 0.5, "project": "demo"}
    assert api.post("/users/alice/server", json={"user_options": options}).is_success
    wait_ready(api, "alice")
    job_id, pid = asyncio.run(run_cell(slurm_hub.url + "user/alice/", token, START_CLUSTER)).split()
    try:
        _dashboard_and_cleanup(slurm_hub, api, token, job_id)
    finally:
        # The test cluster tracks job processes by parent (proctrack/linuxproc), so a process
        # that left its session escapes the job's end; with proctrack/cgroup, as on production
        # clusters, Slurm kills it. Either way this test leaves nothing running.
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
        # What a killed cluster process leaves: its certificate folder (0700, key 0600).
        for folder in Path("/home/alice/.naic/dask").glob(f"{job_id}-*"):
            shutil.rmtree(folder, ignore_errors=True)


def _dashboard_and_cleanup(slurm_hub: Hub, api: httpx.Client, token: str, job_id: str) -> None:
    workers = f"--name=naic-dask-{job_id}"

    deadline = time.monotonic() + 90
    while "RUNNING" not in squeue("--user=alice", workers, "--format=%T"):
        assert time.monotonic() < deadline, "the Dask worker job did not start"
        time.sleep(1)

    # The dashboard, through the hub's proxy and jupyter-server-proxy, with alice's token.
    dashboard = httpx.get(
        slurm_hub.url + "user/alice/proxy/8787/status",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        follow_redirects=True,
    )
    assert dashboard.status_code == 200, dashboard.text[:500]
    assert "dask" in dashboard.text.lower()
    # The worker job joined the scheduler (over TLS, with the cluster's certificate files).
    deadline = time.monotonic() + 90
    while True:
        counts = httpx.get(
            slurm_hub.url + "user/alice/proxy/8787/json/counts.json",
            headers={"Authorization": f"token {token}"},
            timeout=30,
            follow_redirects=True,
        )
        if counts.is_success and counts.json()["workers"] == 1:
            break
        assert time.monotonic() < deadline, f"no Dask worker joined: {counts.text[:300]}"
        time.sleep(1)
    # bob's token does not reach alice's dashboard.
    bob = user_token(slurm_hub, "bob")
    other = httpx.get(
        slurm_hub.url + "user/alice/proxy/8787/status",
        headers={"Authorization": f"token {bob}"},
        timeout=30,
    )
    assert other.status_code in (403, 404) or "/hub/login" in other.headers.get("location", "")

    # Stopping the session through the hub ends its workers too.
    assert api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while squeue("--user=alice", workers, "--states=PENDING,RUNNING", "--format=%i"):
        assert time.monotonic() < deadline, "a Dask worker job outlived its session"
        time.sleep(1)
