"""Fixtures the browser tests share: Debian's Chromium, a JupyterLab with the notices
extension, hubs on the test cluster. The hubs the integration tests also use (slurm_hub,
ws_hub) come from tests/integration/conftest.py; plain helpers are in helpers.py."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from naic.extensions.launch import QUIET_LAB
from tests.browser import _fake_notices
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS
from tests.browser.lab_server import (
    BASE_URL,
    JUPYTER,
    LABEXTENSIONS,
    START_TIMEOUT_S,
    Lab,
    isolated_env,
)
from tests.hub_process import Hub
from tests.integration.conftest import (
    blockers,
    federated_hub,
    full_nodes,
    silent_host,
    slurm_hub,
    ws_hub,
)
from tests.integration.helpers import hub_with_policy
from tests.ports import free_port

# The integration tests' hubs (and what they need), for the browser tests too.
__all__ = ["blockers", "federated_hub", "full_nodes", "silent_host", "slurm_hub", "ws_hub"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


#: Warned about two seconds into the session, stopped two minutes in: long enough for
#: JupyterLab to load on a busy CI machine and show the warning before the stop.
NOTICE_POLICY = {"gpu_idle_minutes": 2, "idle_minutes": None, "warn_minutes": 1.9}


@pytest.fixture
def notice_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """A test-cluster hub that warns of an idle GPU early (test_session_notices)."""
    with hub_with_policy(hub_dir, NOTICE_POLICY) as hub:
        yield hub


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A `jupyter lab` with the notices extension; `lab.answer` sets what the fake notices
    endpoints say (test_lab_notices)."""
    root = tmp_path_factory.mktemp("lab")
    (root / "work").mkdir()
    env = isolated_env(root)
    script = root / "notices.json"
    env[_fake_notices.SCRIPT_ENV] = str(script)
    port, token, log = free_port(), secrets.token_hex(16), root / "lab.log"
    command = [
        JUPYTER,
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={BASE_URL}",
        f"--ServerApp.root_dir={root / 'work'}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.jpserver_extensions={_fake_notices.__name__}=True",
        # The wiring the session launcher adds (extensions/labextension/README.md).
        f"--LabServerApp.extra_labextensions_path={LABEXTENSIONS}",
        *QUIET_LAB,
    ]
    url = f"http://127.0.0.1:{port}{BASE_URL}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    the_lab = Lab(url, token, script, process, log)
    the_lab.answer([])
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"jupyter lab exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer:\n{log.read_text()}"
            try:
                status = httpx.get(url + "api/status", params={"token": token}, timeout=2)
                if status.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield the_lab
    finally:
        # Captured by pytest and shown only when a test failed.
        print("---- jupyter lab log (last 60 lines) ----")
        print(*log.read_text(errors="replace").splitlines()[-60:], sep="\n")
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
