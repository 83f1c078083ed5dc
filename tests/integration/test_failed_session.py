"""A session whose job ends before its server answers explains itself: the spawn request,
the progress events and the home page say why (from the job log's last lines) and where
the log is, and the home page opens the log."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import squeue, start_testcluster_hub

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

MISSING = "/opt/naic/envs/not-installed"
SENTENCE = f"the environment {MISSING} is missing on this node; tell the hub operators"


def broken_environment(cat: dict) -> None:
    cat["environments"]["broken"] = {"title": "Not installed on the nodes", "venv": MISSING}


@pytest.fixture(scope="module")
def broken_hub(slurm_cluster) -> Iterator[Hub]:
    hub_dir = Path(tempfile.mkdtemp(prefix="naic-failed-session-", dir="/var/tmp"))
    hub_dir.chmod(0o755)
    hub = start_testcluster_hub(hub_dir, broken_environment)
    try:
        yield hub
    finally:
        stop_hub(hub)
        shutil.rmtree(hub_dir, ignore_errors=True)
        subprocess.run(["scancel", "--user=bob"], check=False)


def test_a_session_whose_environment_is_missing_says_so_everywhere(broken_hub: Hub) -> None:
    web, _ = log_in(broken_hub, "bob", broken_hub.password)
    xsrf = web.cookies.get("_xsrf")
    options = {"site": "testcluster", "resource": "cpu", "environment": "broken", "hours": 0.5}
    began = time.monotonic()
    spawned = web.post(
        "/hub/api/users/bob/server", json={"user_options": options}, headers={"X-XSRFToken": xsrf}
    )
    # It fails within the hub's slow-spawn wait, so the request itself answers why.
    if spawned.status_code == 202:  # a loaded machine: the progress events say it instead
        events = web.get("/hub/api/users/bob/server/progress", headers={"X-XSRFToken": xsrf})
        message = events.text
    else:
        assert spawned.status_code == 500, spawned.text
        message = spawned.json()["message"]
    assert f"The session could not start: {SENTENCE}." in message, message
    assert "Its log is /home/bob/.naic-session-" in message and "at Test cluster" in message
    assert time.monotonic() - began < 60, "the failure waited for JupyterHub's start timeout"
    assert squeue("--user=bob", "--format=%i") == ""

    home = web.get("/hub/home")
    assert home.status_code == 200
    assert f"it could not start: {SENTENCE}" in home.text, home.text
    assert "naic/sessions/log?server=" in home.text
    log = web.get("/hub/naic/sessions/log", params={"server": ""})
    assert log.status_code == 200, log.text
    assert f"naic-hub: {SENTENCE}" in log.text

    # Another user reads nobody's log but their own (and has none).
    other, _ = log_in(broken_hub, "alice", broken_hub.password)
    assert other.get("/hub/naic/sessions/log", params={"server": ""}).status_code == 404
