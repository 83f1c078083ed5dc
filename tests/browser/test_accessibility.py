"""Accessibility of the hub's pages in Debian's Chromium, checked with axe-core (npm): the
login page, the home page, the spawn form and the help page have no serious or critical
violations (moderate ones, such as JupyterHub's pages lacking a <main> landmark, are printed)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.helpers import log_in
from tests.hub_process import Hub, start_hub, stop_hub

pytestmark = [pytest.mark.integration]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """`naic up` on its embedded defaults: the same pages and form code as every hub."""
    base = Path(tempfile.mkdtemp(prefix="naic-a11y-", dir="/var/tmp"))
    base.chmod(0o755)
    hub = start_hub(base / "data")
    try:
        yield hub
    finally:
        stop_hub(hub)


def violations(page: Page) -> list[dict]:
    page.add_script_tag(content=AXE.read_text())
    found = page.evaluate(
        "async () => (await axe.run()).violations.map(v => ({id: v.id, impact: v.impact,"
        " help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    print(page.url, json.dumps(found, indent=1))
    return [v for v in found if v["impact"] in BLOCKING]


def test_the_hubs_pages_have_no_serious_accessibility_violations(
    hub: Hub, browser: Browser
) -> None:
    assert AXE.exists(), "axe-core is missing: `make setup-test` installs it from npm"
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(hub.url + "hub/login")
        assert violations(page) == []
        log_in(page, hub, "alice")
        for path in ("hub/home", "hub/spawn", "hub/naic/help"):
            page.goto(hub.url + path)
            assert page.locator("body").inner_text().strip(), path
            assert violations(page) == [], path
        page.goto(hub.url + "hub/spawn")
        assert page.locator("form").count() >= 1  # the spawn form itself was checked
    finally:
        context.close()
