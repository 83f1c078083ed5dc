"""A hub that is not root: it runs as a service account and submits through sudo."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_process import Hub, start_hub, stop_hub

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
SERVICE = "naic-svc-test"
SUDOERS = Path("/etc/sudoers.d/naic-svc-test")
# The rule an operator writes: sbatch and scancel as the cluster's users, keeping the
# session's JUPYTERHUB_* variables (SETENV), nothing else.
RULE = f"{SERVICE} ALL=(alice,bob) NOPASSWD:SETENV: /usr/bin/sbatch, /usr/bin/scancel\n"


@pytest.fixture
def service_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    if shutil.which("sudo") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "sudo"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    created = False
    try:
        pwd.getpwnam(SERVICE)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", SERVICE], check=True
        )
        created = True
    SUDOERS.write_text(RULE)
    SUDOERS.chmod(0o440)
    subprocess.run(["visudo", "-cf", str(SUDOERS)], check=True, capture_output=True)
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    data = hub_dir / "data"
    data.mkdir()
    shutil.chown(data, SERVICE, SERVICE)
    shutil.chown(hub_dir, SERVICE, SERVICE)
    hub = start_hub(data, "--catalogue", str(hub_dir / "catalogue.yaml"), run_as=SERVICE)
    try:
        yield hub
    finally:
        stop_hub(hub)
        SUDOERS.unlink(missing_ok=True)
        if created:
            subprocess.run(["userdel", SERVICE], check=False)


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
