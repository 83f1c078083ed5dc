"""A pool of two cloud GPU VMs (network namespaces with their own sshd, tests/sshd.py), each
with two (declared) L40S: sessions placed on free GPUs over SSH, reachable through the
proxy, surviving a hub restart; a fifth session waits for a GPU or is refused; a VM that
goes away ends its sessions with the reason; a host key the hub cannot verify is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    L40S,
    client,
    progress_messages,
    ready,
    restart_hub,
    start,
    start_pool_hub,
    wait_until,
)
from tests.kernel import run_cell
from tests.sshd import CloudVMs, SshKeys

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def cuda_of(hub: Hub, c: httpx.Client, server: str) -> str:
    token = c.headers["Authorization"].split()[1]
    url = f"{hub.url}user/alice/{server}/"
    code = "import os, socket; print(os.environ['CUDA_VISIBLE_DEVICES'], socket.gethostname())"
    return asyncio.run(run_cell(url, token, code)).strip()


def test_sessions_fill_the_pool_survive_a_restart_and_the_fifth_waits(
    cloud_hub: Hub, cloud_vms: CloudVMs
) -> None:
    alice = client(cloud_hub, "alice")
    for name in ("g1", "g2", "g3", "g4"):
        start(alice, "alice", L40S, server=name)
        wait_until(lambda n=name: ready(alice, "alice", n), 120, f"session {name}")
    # Two per VM, each with its own GPU; the proxy reaches each (through the hub's forward).
    assert cuda_of(cloud_hub, alice, "g1").split()[0] == "0"
    assert cuda_of(cloud_hub, alice, "g2").split()[0] == "1"
    assert cuda_of(cloud_hub, alice, "g4").split()[0] == "1"
    assert alice.get("/user/alice/g3/api/status").status_code == 200

    # The form says so before anyone asks; the fifth waits, saying why, and starts when a
    # GPU is free.
    estimate = alice.get(
        "/hub/api/naic/estimate", params={"site": "cloud", "resource": "l40s", "gpus": "1"}
    )
    assert estimate.json()["message"] == "All 4 L40S GPUs of Cloud pool are in use; you are next."
    start(alice, "alice", L40S, server="g5")
    seen = progress_messages(alice, "alice", "g5", "you are next", 60)
    assert "All 4 L40S GPUs of Cloud pool are in use; you are next." in seen
    assert not ready(alice, "alice", "g5")
    alice.delete("/hub/api/users/alice/servers/g2")
    wait_until(lambda: ready(alice, "alice", "g5"), 120, "g5 on the freed GPU")
    assert cuda_of(cloud_hub, alice, "g5").split()[0] == "1"

    # A hub restart: the sessions keep running, reachable as before, and hold their GPUs.
    cloud_hub.process.kill()
    cloud_hub.process.wait()
    restart_hub(cloud_hub)
    for name in ("g1", "g3", "g4", "g5"):
        wait_until(lambda n=name: ready(alice, "alice", n), 60, f"{name} after the restart")
        resp = alice.get(f"/user/alice/{name}/api/status")
        assert resp.status_code == 200, (name, resp.status_code)
    bob = client(cloud_hub, "bob")
    start(bob, "bob", L40S, server="g6")
    seen = progress_messages(bob, "bob", "g6", "you are next", 60)
    assert any("are in use" in m for m in seen)  # the restored allocation is full
    bob.delete("/hub/api/users/bob/servers/g6")

    # A VM goes away: its sessions end with the reason; the other VM's keep running.
    vm2 = cloud_vms.vm2
    vm2.stop_sshd()
    wait_until(lambda: not ready(alice, "alice", "g3"), 90, "g3 ended with vm2")
    web, _ = log_in(cloud_hub, "alice", cloud_hub.password)
    wait_until(
        lambda: "the cloud machine vm2 stopped answering" in web.get("/hub/home").text,
        30,
        "the reason on alice's home page",
    )
    assert ready(alice, "alice", "g1")
    vm2.start_sshd()
    for name in ("g1", "g4", "g5"):
        alice.delete(f"/hub/api/users/alice/servers/{name}")


def test_a_full_pool_that_refuses_and_an_unverifiable_host(
    slurm_cluster, ssh_keys: SshKeys, cloud_vms: CloudVMs, hub_dir: Path
) -> None:
    hub = start_pool_hub(hub_dir, ssh_keys, cloud_vms, known_hosts=ssh_keys.wrong_known_hosts)
    try:
        alice = client(hub, "alice")
        refused = alice.post("/hub/api/users/alice/servers/x", json={"user_options": L40S})
        assert refused.status_code == 503
        assert refused.json()["message"].startswith(
            "The hub cannot use vm1 of Cloud pool, so no session was started: 10.231.1.2 "
            "offered a host key that is not in"
        )
        assert not ready(alice, "alice", "x")
    finally:
        stop_hub(hub)
    for vm in cloud_vms:
        out = vm.run(["pgrep", "-u", "alice", "-f", "jupyterhub-singleuser"], check=False)
        assert out.stdout.strip() == ""  # nothing was started on a host we cannot verify

    refusing = hub_dir / "refusing"
    refusing.mkdir()
    hub = start_pool_hub(refusing, ssh_keys, cloud_vms, when_full="refuse")
    try:
        alice = client(hub, "alice")
        for name in ("r1", "r2", "r3", "r4"):
            start(alice, "alice", L40S, server=name)
        for name in ("r1", "r2", "r3", "r4"):
            wait_until(lambda n=name: ready(alice, "alice", n), 120, f"session {name}")
        refused = alice.post("/hub/api/users/alice/servers/r5", json={"user_options": L40S})
        assert refused.status_code == 409
        assert refused.json()["message"] == (
            "All 4 L40S GPUs of Cloud pool are in use; please try again later."
        )
    finally:
        for name in ("r1", "r2", "r3", "r4"):
            alice.delete(f"/hub/api/users/alice/servers/{name}")
        stop_hub(hub)
