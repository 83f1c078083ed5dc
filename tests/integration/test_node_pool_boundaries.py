"""Attacks on node-pool sessions by another user of the same cloud VM (tests/sshd.py VMs).

A node-pool session reaches the hub through a forward the hub's SSH connection sets up on
the VM. That connection ends when the hub restarts or SSH drops; if the session's hub
address were a loopback port, `bob` (any account on the VM) could bind it in that window
and collect what alice's session sends the hub: her tokens with every token check, the
server's own token with every activity report, and answer as the hub. The address is a
Unix socket in a folder only alice (and root) can enter, forwarded again whenever the hub
finds the session running, so bob's listener must hear nothing and alice's session must
reach the real hub again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import (
    L40S,
    client,
    cloud_site,
    ready,
    restart_hub,
    start,
    start_testcluster_hub,
    wait_until,
)
from tests.sshd import CloudVM, CloudVMs, SshKeys

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: Runs as bob on the VM: bind 127.0.0.1:<port> as soon as it is free, say so, answer every
#: request as a hub would ("this token is kari's"), and write what arrived to a file.
LISTENER = r"""
import http.server, json, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
def note(record):
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")
class Squat(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace") if n else ""
        note({"line": self.requestline, "headers": dict(self.headers), "body": body})
        reply = json.dumps({"kind": "user", "name": "kari", "admin": True,
                            "scopes": ["access:servers!user=kari"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    do_GET = do_POST = _answer
    def log_message(self, *a): pass
deadline = time.monotonic() + 30
while True:
    try:
        server = http.server.HTTPServer(("127.0.0.1", port), Squat)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
note({"line": "LISTENING"})
server.serve_forever()
"""


def squat_on(vm: CloudVM, port: int, record: Path) -> subprocess.Popen:
    """bob, on `vm`, listens on its 127.0.0.1:`port` as soon as it is free; returns then."""
    record.touch()
    subprocess.run(["chown", "bob", str(record)], check=True)
    proc = subprocess.Popen(
        [
            *("ip", "netns", "exec", vm.netns, "runuser", "-u", "bob", "--"),
            *(sys.executable, "-c", LISTENER, str(port), str(record)),
        ],
        start_new_session=True,  # runuser forks: bob's listener is killed as a group
    )
    deadline = time.monotonic() + 40
    while "LISTENING" not in record.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_squatting(proc)
            pytest.fail(f"bob could not listen on port {port} of {vm.name}")
        time.sleep(0.1)
    return proc


def stop_squatting(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def heard(record: Path) -> list[str]:
    """What bob's listener received: each request line, and whether it carried a token."""
    records = map(json.loads, record.read_text().splitlines())
    calls = [r for r in records if r["line"] != "LISTENING"]
    return [
        r["line"] + (" + a token" if "token" in r["headers"].get("Authorization", "") else "")
        for r in calls
    ]


def hub_port(hub: Hub) -> int:
    """The hub's API port (naic up: its port + 81), which the VMs' loopback used to forward."""
    return int(hub.url.rsplit(":", 1)[1].strip("/")) + 81


def tcp_listeners(vm: CloudVM) -> str:
    return vm.run(["ss", "-Hltn"]).stdout


def last_activity(hub: Hub, user: str, server: str) -> datetime | None:
    with hub.api() as api:
        when = api.get(f"/users/{user}").json()["servers"][server]["last_activity"]
    return datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None


def visit(hub: Hub, user: str, server: str) -> httpx.Response:
    """A request with one of `user`'s tokens the session has never seen: the session asks the
    hub whose it is, and counts the visit as activity it reports to the hub."""
    with hub.api() as api:
        token = api.post(f"/users/{user}/tokens", json={"expires_in": 600}).json()["token"]
    return httpx.get(
        f"{hub.url}user/{user}/{server}/api/contents",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )


def test_a_squatter_on_the_vm_hears_nothing_when_the_hub_restarts_or_its_ssh_drops(
    pool_hub: Hub, cloud_vms: CloudVMs, hub_dir: Path
) -> None:
    vm1, record = cloud_vms.vm1, hub_dir / "bob-heard.jsonl"
    alice = client(pool_hub, "alice")
    start(alice, "alice", L40S, server="s1")
    wait_until(lambda: ready(alice, "alice", "s1"), 120, "alice's session")
    assert visit(pool_hub, "alice", "s1").status_code == 200

    # The hub goes away (a crash, an upgrade); alice's session on vm1 keeps running, and
    # bob, who has a session on vm1 too, takes the port where the hub's API used to be.
    pool_hub.process.kill()
    pool_hub.process.wait()
    bob = squat_on(vm1, hub_port(pool_hub), record)
    try:
        restart_hub(pool_hub)
        wait_until(lambda: ready(alice, "alice", "s1"), 60, "alice's session after the restart")
        before = datetime.now(UTC)
        # The session asks "the hub" about a token it has not seen, and reports the visit.
        seen = visit(pool_hub, "alice", "s1")
        time.sleep(6)  # three activity reports are due by now
        got = heard(record)
        assert got == [], f"bob on vm1 received alice's session's hub calls: {got}"
        assert seen.status_code == 200, seen.text[:300]  # the real hub vouched for the token
        wait_until(
            lambda: (last_activity(pool_hub, "alice", "s1") or before) > before,
            30,
            "alice's session's activity report reaching the restarted hub",
        )
    finally:
        stop_squatting(bob)
    assert heard(record) == []
    # Nothing on vm1 listens on a TCP port for the hub, so there is nothing to take over.
    assert f"127.0.0.1:{hub_port(pool_hub)} " not in tcp_listeners(vm1)

    # alice's way to the hub is hers alone: bob can neither use it nor put his own there.
    sock = "/run/naic-hub/alice/s1/hub.sock"
    assert vm1.run(["stat", "-c", "%U %a", sock.rsplit("/", 1)[0]]).stdout.split() == [
        "alice",
        "700",
    ]
    as_bob = ["runuser", "-u", "bob", "--"]
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({sock!r})"
    assert vm1.run([*as_bob, sys.executable, "-c", connect], check=False).returncode != 0
    assert vm1.run([*as_bob, "ln", "-sf", "/tmp", sock], check=False).returncode != 0

    # The hub's SSH connection to vm1 drops while the hub runs on; bob listens again. The
    # next poll forwards alice's socket again, and her session reaches the hub through it.
    bob = squat_on(vm1, hub_port(pool_hub), record)
    try:
        assert vm1.process is not None
        connections = vm1.run(["pgrep", "-P", str(vm1.process.pid)]).stdout.split()
        assert connections, "no SSH connection from the hub to vm1"
        for pid in connections:
            os.kill(int(pid), signal.SIGTERM)
        wait_until(
            lambda: visit(pool_hub, "alice", "s1").status_code == 200,
            60,
            "alice's session reaching the hub after the SSH connection dropped",
        )
        time.sleep(4)
        got = heard(record)
        assert got == [], f"bob on vm1 received alice's session's hub calls: {got}"
    finally:
        stop_squatting(bob)


# --- GPUs: a session's are its user's alone -------------------------------------------------


def gpu_file(vm: CloudVM, index: int) -> Path:
    return Path(f"/dev/naic-test-{vm.name}-gpu{index}")


def opens(user: str, vm: CloudVM, device: Path) -> bool:
    """Whether `user`'s process on `vm` can open `device` for reading and writing, as CUDA
    does with a GPU's device file."""
    got = vm.run(["runuser", "-u", user, "--", "sh", "-c", f"exec 3<>{device}"], check=False)
    return got.returncode == 0


def test_another_user_on_the_vm_cannot_open_a_sessions_gpus(
    slurm_cluster, ssh_keys: SshKeys, cloud_vms: CloudVMs, hub_dir: Path
) -> None:
    """With `gpu_devices` in the catalogue, alice's GPU is hers alone while her session runs:
    bob's process on the same VM cannot open its device file (it could, and use the GPU,
    with only CUDA_VISIBLE_DEVICES as advice). The GPU she does not hold stays open to all,
    and hers is everyone's again when her session ends."""
    vm1 = cloud_vms.vm1
    devices = [gpu_file(vm1, i) for i in range(2)]
    for dev in devices:  # stand-ins for /dev/nvidiaN: character devices, mode 0666
        dev.unlink(missing_ok=True)
        subprocess.run(["mknod", "-m", "0666", str(dev), "c", "1", "3"], check=True)
    site = cloud_site(ssh_keys, cloud_vms, when_full="wait", known_hosts=ssh_keys.known_hosts)
    site["hosts"][vm1.name]["gpu_devices"] = f"/dev/naic-test-{vm1.name}-gpu{{index}}"
    hub = start_testcluster_hub(hub_dir, lambda cat: cat["sites"].update(cloud=site))
    try:
        alice = client(hub, "alice")
        start(alice, "alice", L40S, "g")
        wait_until(lambda: ready(alice, "alice", "g"), 90, "alice's session ready")
        mine, free = devices  # the first free GPU of the first VM
        alice_uid = int(vm1.run(["id", "-u", "alice"]).stdout)
        assert (mine.stat().st_uid, mine.stat().st_mode & 0o777) == (alice_uid, 0o600)
        assert opens("alice", vm1, mine)
        assert not opens("bob", vm1, mine), "bob opened the GPU alice's session holds"
        assert opens("bob", vm1, free) and free.stat().st_mode & 0o777 == 0o666

        assert alice.delete("/hub/api/users/alice/servers/g").status_code in (202, 204)
        wait_until(lambda: not ready(alice, "alice", "g"), 60, "alice's session stopped")
        wait_until(lambda: mine.stat().st_uid == 0, 30, "the GPU handed back")
        assert mine.stat().st_mode & 0o777 == 0o666 and opens("bob", vm1, mine)
    finally:
        stop_hub(hub)
        for vm in cloud_vms:
            vm.run(["pkill", "-u", "alice", "-f", "jupyterhub-singleuser"], check=False)
        vm1.run(["rm", "-rf", "/run/naic-hub"])
        for dev in devices:
            dev.unlink(missing_ok=True)
