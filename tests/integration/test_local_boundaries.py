"""Attacks on local sessions while the hub restarts, by another account on the hub's machine.

Sessions outlive the hub. While it is down, its TCP ports are free: `bob` (any account on
the machine) binds them and waits. The hub's API for local sessions and the proxy's API
are Unix sockets in the data dir, so bob's listeners must hear nothing: no session token,
no user's token, no proxy token, and nobody he could answer as the hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, start_hub, stop_hub

pytestmark = pytest.mark.integration

#: Runs as bob: listen on a port, answer every request as a hub would ("you are kari"),
#: and write what arrived (request lines and headers) to a file bob owns.
LISTENER = r"""
import http.server, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Squat(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        with open(out, "a") as f:
            f.write(json.dumps({"line": self.requestline, "headers": dict(self.headers)}) + "\n")
        body = json.dumps({"kind": "user", "name": "kari", "admin": True,
                           "scopes": ["access:servers!user=kari"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = _answer
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), Squat).serve_forever()
"""


def squat(port: int, record: Path) -> subprocess.Popen:
    """bob listens on 127.0.0.1:`port`, answering as the hub; returns once it listens."""
    record.touch()
    subprocess.run(["chown", "bob", str(record)], check=True)
    proc = subprocess.Popen(
        ["runuser", "-u", "bob", "--", sys.executable, "-c", LISTENER, str(port), str(record)],
        start_new_session=True,  # runuser forks: bob's listener is stopped as a group
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    stop(proc)
    pytest.fail(f"bob could not listen on port {port}")


def stop(proc: subprocess.Popen) -> None:
    """Stop bob's listener and runuser with it (killing runuser alone leaves the child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def heard(record: Path) -> list[dict]:
    return [
        r
        for r in map(json.loads, record.read_text().splitlines())
        if r["line"] != "GET /ready HTTP/1.1"
    ]


def kill_hub(hub: Hub) -> None:
    """Stop the hub the way a crash or an upgrade does: its sessions keep running."""
    hub.process.send_signal(signal.SIGTERM)
    hub.process.wait(timeout=30)


def port_of(hub: Hub) -> int:
    return int(hub.url.rsplit(":", 1)[1].strip("/"))


def server_port(data_dir: Path, user: str) -> int:
    """The local session's own port, from its process's environment (as root)."""
    out = subprocess.run(
        ["pgrep", "-u", f"naic-{user}", "-f", "jupyterhub-singleuser|naic.extensions.launch"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert out, f"no session process of {user}"
    for pid in out:
        env = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        if "JUPYTERHUB_SERVICE_URL" in env:
            return int(env["JUPYTERHUB_SERVICE_URL"].rsplit(":", 1)[1].split("/")[0])
    pytest.fail(f"no JUPYTERHUB_SERVICE_URL in the environment of {user}'s session")


def start_session(hub: Hub, user: str) -> None:
    with hub.api() as api:
        api.post("/users", json={"usernames": [user]})
        resp = api.post(f"/users/{user}/server", json={"site": "local", "resource": "small"})
        assert resp.status_code in (201, 202), resp.text
        deadline = time.monotonic() + 90
        while not api.get(f"/users/{user}").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.5)


def test_a_squatter_on_the_hubs_port_hears_nothing_from_a_local_session(
    hub_dir: Path, slurm_cluster
) -> None:
    data = hub_dir / "data"
    hub = start_hub(data, "--admin", "boss")
    record = hub_dir / "bob-heard.jsonl"
    bob = None
    try:
        start_session(hub, "kari")
        session_port = server_port(data, "kari")
        hub_api_port = port_of(hub) + 81
        kill_hub(hub)

        bob = squat(hub_api_port, record)
        # Somebody presents a token to kari's server: it asks "the hub" who that is.
        asked = httpx.get(
            f"http://127.0.0.1:{session_port}/user/kari/api/contents",
            headers={"Authorization": "token presented-by-a-visitor"},
            timeout=30,
        )
        assert asked.status_code != 200  # the hub is down: nobody vouches for the visitor
        assert heard(record) == [], "bob's listener received the session's hub traffic"
        # Nor can bob put his own socket where the hub's is.
        replaced = subprocess.run(
            ["runuser", "-u", "bob", "--", "rm", "-f", str(data / "hub.sock")],
            capture_output=True,
            check=False,
        )
        assert replaced.returncode != 0 and (data / "hub.sock").exists()
        stop(bob)
        bob = None

        # The hub comes back: kari's session, never restarted, reaches it again.
        hub.process = start_hub(data, "--admin", "boss", port=port_of(hub)).process
        with hub.api() as api:
            token = api.post("/users/kari/tokens", json={"expires_in": 600}).json()["token"]
        back = httpx.get(
            hub.url + "user/kari/api/contents",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert back.status_code == 200, back.text[:500]
        assert heard(record) == []
    finally:
        if bob is not None:
            stop(bob)
        stop_hub(hub)


def test_a_squatter_on_the_proxys_api_port_gets_no_proxy_token(
    hub_dir: Path, slurm_cluster
) -> None:
    """bob holds the port where the proxy's API used to be before the hub starts."""
    from tests.hub_process import free_port_base

    port = free_port_base()
    record = hub_dir / "bob-heard.jsonl"
    bob = squat(port + 1, record)
    try:
        hub = start_hub(hub_dir / "data", "--admin", "boss", port=port)
        try:
            assert httpx.get(hub.url + "hub/api", timeout=10).status_code == 200
            assert heard(record) == [], "the hub sent its proxy token to bob"
        finally:
            stop_hub(hub)
    finally:
        stop(bob)
