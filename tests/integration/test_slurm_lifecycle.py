"""What happens to Slurm sessions over time: queueing, hub restarts, outages, time limits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import (
    client,
    progress_messages,
    ready,
    restart_hub,
    server_path,
    start,
    wait_until,
)
from tests.slurm_cluster import SLURM_UP

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SLURMCTLD_PID = Path("/var/lib/naic-slurm/run/slurmctld.pid")
A100 = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5}
CPU = {"site": "testcluster", "resource": "cpu", "hours": 0.5}


def test_a_fifth_gpu_session_waits_in_the_queue_and_starts_when_one_ends(fast_hub: Hub) -> None:
    alice = client(fast_hub, "alice")
    for i in range(1, 5):
        start(alice, "alice", A100, f"g{i}")
    for i in range(1, 5):
        wait_until(lambda i=i: ready(alice, "alice", f"g{i}"), 120, f"session g{i} ready")

    start(alice, "alice", A100, "g5")
    seen = progress_messages(alice, "alice", "g5", "waiting for free GPUs or CPUs", 60)
    assert any("Queued at testcluster, position 1 in partition accel" in m for m in seen), seen
    assert not ready(alice, "alice", "g5")

    assert alice.delete(server_path("alice", "g1")).status_code in (202, 204)
    wait_until(lambda: ready(alice, "alice", "g5"), 90, "the queued session starting")


def test_sessions_survive_the_hub_being_killed_and_restarted(fast_hub: Hub) -> None:
    alice = client(fast_hub, "alice")
    start(alice, "alice", CPU)
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")
    before = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-o", "%i %T"], capture_output=True, text=True, check=True
    ).stdout

    os.kill(fast_hub.process.pid, signal.SIGKILL)  # no clean-up of any kind
    fast_hub.process.wait(timeout=10)
    restart_hub(fast_hub)

    after = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-o", "%i %T"], capture_output=True, text=True, check=True
    ).stdout
    assert after == before and "RUNNING" in after
    wait_until(lambda: ready(alice, "alice"), 30, "the restored session ready")
    assert alice.get("/user/alice/api/status").status_code == 200


def test_a_slurmctld_outage_loses_no_session_and_a_spawn_gets_a_clear_error(fast_hub) -> None:
    alice, bob = client(fast_hub, "alice"), client(fast_hub, "bob")
    start(alice, "alice", CPU)
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")

    os.kill(int(SLURMCTLD_PID.read_text()), signal.SIGTERM)
    try:
        time.sleep(3)
        resp = bob.post(server_path("bob", ""), json={"user_options": CPU})
        assert resp.status_code == 503, resp.text
        assert "scheduler" in resp.json()["message"]
        for _ in range(12):  # 60 s, a dozen status polls of alice's session
            assert ready(alice, "alice")
            time.sleep(5)
    finally:
        subprocess.run([str(SLURM_UP)], check=True, capture_output=True, timeout=120)
    assert ready(alice, "alice")
    assert alice.get("/user/alice/api/status").status_code == 200


def test_a_session_that_hits_its_time_limit_says_so_on_the_home_page(fast_hub: Hub) -> None:
    alice = client(fast_hub, "alice")
    start(alice, "alice", {**CPU, "hours": 1 / 60})
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")
    wait_until(
        lambda: not alice.get("/hub/api/users/alice").json()["servers"],
        180,
        "the session ending at its time limit",
    )
    browser, _ = log_in(fast_hub, "alice", fast_hub.password)
    home = browser.get("/hub/home")
    assert home.status_code == 200
    assert "time limit reached" in home.text
    assert "It used all the hours it asked for. Start a new one with more hours" in home.text
    help_page = browser.get("/hub/naic/help")
    assert help_page.status_code == 200
    assert "<dt>Time limit reached</dt>" in help_page.text
    assert "<strong>Test cluster (Slurm on this machine)</strong>" in help_page.text
