"""What happens to Slurm sessions over time: queueing, hub restarts, outages, time limits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_process import Hub, log_in, start_hub, stop_hub
from tests.slurm_cluster import SLURM_UP

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
SLURMCTLD_PID = Path("/var/lib/naic-slurm/run/slurmctld.pid")
A100 = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5}
CPU = {"site": "testcluster", "resource": "cpu", "hours": 0.5}
# Poll every 5 s instead of 30 s so the tests see ends and outages quickly.
FAST_POLLS = "c.Spawner.poll_interval = 5\nc.SlurmSpawner.status_max_age = 5\n"


def start_testcluster_hub(
    hub_dir: Path, edit: Callable[[dict], None] | None = None, *args: str, config: str = ""
) -> Hub:
    """`naic up` on the test cluster's catalogue (this venv as its environment, `edit`
    applied to the parsed YAML), polling every 5 s; `args` go to `naic up`, `config` is
    more of the hub's config (a `jupyterhub_config.d` file)."""
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    if edit is not None:
        edit(cat)
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    config_d = hub_dir / "data" / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "10-fast-polls.py").write_text(FAST_POLLS + config)
    return start_hub(hub_dir / "data", "--catalogue", str(hub_dir / "catalogue.yaml"), *args)


def restart_hub(hub: Hub) -> None:
    """Start the hub again on its data dir, catalogue and port, after it was killed; `hub`
    then holds the new process (which its fixture stops)."""
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    restarted = start_hub(
        hub.data_dir, "--catalogue", str(hub.data_dir.parent / "catalogue.yaml"), port=port
    )
    hub.process = restarted.process


@pytest.fixture
def fast_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    hub = start_testcluster_hub(hub_dir)
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=alice"], check=False)
        subprocess.run(["scancel", "--user=bob"], check=False)


def client(hub: Hub, name: str) -> httpx.Client:
    with hub.api() as api:
        api.post(f"/users/{name}")
        token = api.post(f"/users/{name}/tokens", json={"note": "test"}).json()["token"]
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=30)


def server_path(name: str, server: str) -> str:
    return f"/hub/api/users/{name}/servers/{server}" if server else f"/hub/api/users/{name}/server"


def start(c: httpx.Client, name: str, options: dict, server: str = "") -> None:
    resp = c.post(server_path(name, server), json={"user_options": options})
    assert resp.status_code in (201, 202), resp.text


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.5)


def ready(c: httpx.Client, name: str, server: str = "") -> bool:
    s = c.get(f"/hub/api/users/{name}").json()["servers"].get(server)
    return bool(s and s["ready"])


def progress_messages(c: httpx.Client, name: str, server: str, until: str, timeout_s: float):
    """Read the progress event stream a user's spawn page reads, until a message has `until`."""
    url = f"/hub/api/users/{name}/servers/{server}/progress"
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    with c.stream("GET", url, timeout=timeout_s) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
                if until in seen[-1]:
                    return seen
            if time.monotonic() > deadline:
                break
    pytest.fail(f"no progress message with {until!r}; saw {seen}")


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
