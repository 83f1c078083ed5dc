"""Pytest plugin: a real `naic up` process on loopback, with a throw-away data dir.

The data dir lives under /var/tmp (not pytest's 0700 tmp) because, as root, user accounts
must reach their homes inside it. Accounts the hub created for test users are removed.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ports import free_ports
from tests.slurm_accounts import ensure_associations

NAIC = str(Path(sys.executable).parent / "naic")
START_TIMEOUT_S = 60


def free_port_base() -> int:
    """A port P with P (the hub's public port), P+1 and P+81 (the hub's API) all free on
    127.0.0.1, outside the ephemeral range (see tests/ports.py)."""
    return free_ports(0, 1, 81)


@dataclass
class Hub:
    url: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    @property
    def password(self) -> str:
        return (self.data_dir / "dev-password").read_text().strip()

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "hub/api",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=30,
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def log_in(hub: Hub, name: str, password: str) -> tuple[httpx.Client, httpx.Response]:
    """Log in through the real login page, as a browser does; the client keeps the cookies."""
    client = httpx.Client(base_url=hub.url, timeout=30)
    page = client.get("/hub/login")
    assert page.status_code == 200
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    resp = client.post("/hub/login", data={"username": name, "password": password, "_xsrf": token})
    return client, resp


def start_hub(
    data_dir: Path, *args: str, port: int | None = None, run_as: str | None = None
) -> Hub:
    """`naic up` on `port` (default: a free one), as `run_as` (default: this account);
    returns once `/hub/api` answers."""
    port = port or free_port_base()
    if "--catalogue" in args:
        ensure_associations(Path(args[args.index("--catalogue") + 1]))
    prefix = ["setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"]
    log = data_dir.parent / "naic-up.log"
    out = log.open("a")
    proc = subprocess.Popen(
        [
            *(prefix if run_as else []),
            NAIC,
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *args,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Each estimate asks the queue as it is now: tests change it between asks.
        env={"NAIC_ESTIMATE_FRESH_S": "0", **os.environ},
    )
    hub = Hub(f"http://127.0.0.1:{port}/", data_dir, proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"naic up exited with {proc.returncode}:\n{hub.log_text()}")
        try:
            if httpx.get(hub.url + "hub/api", timeout=2).status_code == 200:
                return hub
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop_hub(hub)
    pytest.fail(f"naic up did not answer within {START_TIMEOUT_S} s:\n{hub.log_text()}")


def stop_hub(hub: Hub) -> None:
    """Stop every session, then the hub (which stops the proxy it started)."""
    # Captured by pytest and shown only when the test failed.
    print("---- naic up log (last 80 lines) ----", *hub.log_text().splitlines()[-80:], sep="\n")
    if hub.process.poll() is None:
        try:
            with hub.api() as api:
                for user in api.get("/users").json():
                    for name in user.get("servers", {}):
                        path = (
                            f"/users/{user['name']}/servers/{name}"
                            if name
                            else (f"/users/{user['name']}/server")
                        )
                        api.delete(path)
        except (httpx.HTTPError, OSError, ValueError):
            pass  # the hub may be broken: still stop it below
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.process.pid, signal.SIGKILL)
            hub.process.wait(timeout=10)


@pytest.fixture
def hub_dir() -> Iterator[Path]:
    """A world-traversable temporary folder; its `data` subfolder is the hub's data dir."""
    base = Path(tempfile.mkdtemp(prefix="naic-test-", dir="/var/tmp"))
    base.chmod(0o755)
    accounts_before = {p.pw_name for p in pwd.getpwall()}
    try:
        yield base
    finally:
        if os.geteuid() == 0:
            for p in pwd.getpwall():
                if p.pw_name.startswith("naic-") and p.pw_name not in accounts_before:
                    subprocess.run(["userdel", p.pw_name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def naic_hub(hub_dir: Path) -> Iterator[Hub]:
    """`naic up` on embedded defaults with one admin, `boss`."""
    hub = start_hub(hub_dir / "data", "--admin", "boss")
    try:
        yield hub
    finally:
        stop_hub(hub)
