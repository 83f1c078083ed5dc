"""A hub that is not root: it runs as a service account and submits through sudo."""

from __future__ import annotations

import os
import pwd
import subprocess
import time

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_a_service_account_hub_runs_sessions_through_sudo(service_hub: Hub) -> None:
    owner = pwd.getpwuid(os.stat(f"/proc/{service_hub.process.pid}").st_uid).pw_name
    assert owner == SERVICE, "the hub must not run as root here"
    api = service_hub.api()
    api.post("/users/alice")
    resp = api.post(
        "/users/alice/server",
        json={"user_options": {"site": "testcluster", "resource": "cpu", "hours": 0.5}},
    )
    assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + 120
    while not (api.get("/users/alice").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline, "alice's session was not ready within 120 s"
        time.sleep(0.5)
    jobs = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-o", "%i %T"], capture_output=True, text=True, check=True
    ).stdout
    assert "RUNNING" in jobs, "the job runs as alice, submitted through sudo"
    assert "'sudo', '-n', '-E', '-u', 'alice', 'sbatch'" in service_hub.log_text()
    token = api.post("/users/alice/tokens", json={"note": "test"}).json()["token"]
    status = httpx.get(
        service_hub.url + "user/alice/api/status", headers={"Authorization": f"token {token}"}
    )
    assert status.status_code == 200
    assert api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 30
    while subprocess.run(
        ["squeue", "-h", "-u", "alice", "-t", "PENDING,RUNNING"], capture_output=True, text=True
    ).stdout:
        assert time.monotonic() < deadline, "scancel through sudo did not end the job"
        time.sleep(0.5)
