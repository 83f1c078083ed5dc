"""Plain helpers the browser tests share: Debian's Chromium, logging in through the login
page, stopping a session, where screenshots are kept. The fixtures are in conftest.py."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Page

from tests.hub_process import Hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots a person can look at after CI (ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def log_in(page: Page, hub: Hub, name: str) -> None:
    page.goto(hub.url + "hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/hub/(home|spawn|spawn-pending/.*|user/.*)$|.*/user/.*"))


def stop_server(hub: Hub, name: str) -> None:
    with hub.api() as api:
        api.delete(f"/users/{name}/server")
        deadline = time.monotonic() + 60
        while api.get(f"/users/{name}").json()["servers"]:
            assert time.monotonic() < deadline, f"{name}'s session did not stop"
            time.sleep(0.5)


def start_session(hub: Hub, name: str, options: dict, timeout_s: float = 120) -> None:
    """Start `name`'s default server with `options` through the REST API, until ready."""
    with hub.api() as api:
        api.post(f"/users/{name}")
        resp = api.post(f"/users/{name}/server", json={"user_options": options})
        assert resp.status_code in (201, 202), resp.text
        deadline = time.monotonic() + timeout_s
        while not api.get(f"/users/{name}").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, f"{name}'s session did not become ready"
            time.sleep(0.5)
