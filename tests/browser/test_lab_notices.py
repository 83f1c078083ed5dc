"""A session's notices as JupyterLab notifications, in Debian's Chromium (Playwright).

A real `jupyter lab` loads the prebuilt extension (built from extensions/notices) from
extensions/labextension (as the session launcher passes it) and a stand-in for the notices
endpoints (tests/browser/_fake_notices.py); the browser then sees what a student would: one
warning toast per notice, an "Ask for more time" button where the session can be extended,
and the hub's answer as a toast of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.lab_server import BASE_URL, GRANTED, JUPYTER, LABEXTENSIONS, Lab, isolated_env

EXTENSION = LABEXTENSIONS / "naic-hub-notices"
LAB_READY_MS = 120_000
ASK = "Ask for more time"

EXPIRY = "This session reaches its time limit at 13:10: 30 minutes left."
EXPIRY_LATER = "This session reaches its time limit at 15:10: 30 minutes left."
GPU_IDLE = (
    "This session's GPU has been idle for 50 minutes; it will be stopped at 12:40 "
    "unless the GPU is used."
)
REFUSED = "No more time: project demo has no GPU hours left."


def notice(id: str, text: str, *, can_extend: bool = False) -> dict[str, Any]:
    kind = "gpu-idle" if id == "gpu-idle" else "expiry"
    return {
        "id": id,
        "kind": kind,
        "level": "warning",
        "text": text,
        "deadline": "2026-11-27T12:40:00+00:00",
        "can_extend": can_extend,
    }


class Polls:
    """Counts the page's answered polls of the notices endpoint."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0
        page.on("response", self._seen)

    def _seen(self, response: Any) -> None:
        if response.url.split("?")[0].endswith(BASE_URL + "naic/api/notices"):
            self.count += 1

    def wait(self, n: int, timeout_s: float = 60) -> None:
        """Until `n` more polls were answered; the plugin polls one after the other, so after
        two the first one's toasts are on the page."""
        target, deadline = self.count + n, time.monotonic() + timeout_s
        while self.count < target:
            assert time.monotonic() < deadline, f"only {self.count} polls, wanted {target}"
            self.page.wait_for_timeout(100)  # lets Playwright deliver the response events


def open_lab(page: Page, lab: Lab) -> None:
    page.goto(f"{lab.url}lab?token={lab.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_READY_MS)


def toast(page: Page, text: str) -> Locator:
    """The toast (JupyterLab's react-toastify) whose message is `text`."""
    message = page.locator(".jp-toast-message", has_text=text)
    return page.locator(".Toastify__toast", has=message)


def shot(page: Page, folder: Path, name: str, *toasts: Locator) -> None:
    """A screenshot once `toasts` have slid in whole (react-toastify animates them)."""
    for t in toasts:
        expect(t).to_be_in_viewport(ratio=1)
    path = folder / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def test_the_file_name_carries_its_content_hash_and_package_json_names_it() -> None:
    # static/ is served as immutable: a changed file under an old name would stay cached.
    (entry,) = EXTENSION.glob("static/remoteEntry.*.js")
    digest = hashlib.sha256(entry.read_bytes()).hexdigest()[:20]
    assert entry.name == f"remoteEntry.{digest}.js"
    build = json.loads((EXTENSION / "package.json").read_text())["jupyterlab"]["_build"]
    assert build == {"load": f"static/{entry.name}", "extension": "./extension"}


@pytest.mark.integration
def test_labextension_list_shows_it_enabled_and_ok(tmp_path: Path) -> None:
    # `jupyter labextension list` reads config files only, not its command line.
    env = isolated_env(tmp_path)
    config = {"LabServerApp": {"extra_labextensions_path": [str(LABEXTENSIONS)]}}
    (tmp_path / "home" / ".jupyter" / "jupyter_lab_config.json").write_text(json.dumps(config))
    listing = subprocess.run(
        [JUPYTER, "labextension", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert str(LABEXTENSIONS) in text, text
    assert re.search(r"^\s+naic-hub-notices v0\.1\.0 enabled OK$", text, re.M), text


@pytest.mark.integration
def test_notices_show_once_per_tab_and_ask_for_more_time(
    lab: Lab, browser: Browser, tmp_path: Path
) -> None:
    lab.answer(
        [notice("expiry", EXPIRY, can_extend=True), notice("gpu-idle", GPU_IDLE)],
        extend=(200, GRANTED),
    )
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    polls = Polls(page)
    try:
        open_lab(page, lab)
        expiry, idle = toast(page, EXPIRY), toast(page, GPU_IDLE)
        expect(expiry).to_be_visible(timeout=30_000)
        expect(idle).to_be_visible()
        expect(expiry).to_have_class(re.compile(r"\bjp-Notification-Toast-warning\b"))
        expect(expiry.get_by_role("button", name=ASK)).to_be_visible()
        expect(idle.get_by_role("button", name=ASK)).to_have_count(0)
        shot(page, tmp_path, "notices.png", expiry, idle)

        # Later polls give the same notices: still one toast each.
        polls.wait(2)
        expect(page.locator(".jp-toast-message", has_text=EXPIRY)).to_have_count(1)
        expect(page.locator(".jp-toast-message", has_text=GPU_IDLE)).to_have_count(1)

        # The hub agrees: its sentence, as a success toast (POST passes the XSRF check).
        expiry.get_by_role("button", name=ASK).click()
        granted = toast(page, GRANTED)
        expect(granted).to_be_visible()
        expect(granted).to_have_class(re.compile(r"\bjp-Notification-Toast-success\b"))
        shot(page, tmp_path, "granted.png", granted)

        # A reload in the same tab: the notices were shown already, so no toast.
        page.reload()
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=LAB_READY_MS)
        polls.wait(2)
        expect(page.locator(".jp-toast-message")).to_have_count(0)

        # A new deadline is a new notice; this time the hub refuses, as an error toast.
        lab.answer([notice("expiry", EXPIRY_LATER, can_extend=True)], extend=(409, REFUSED))
        later = toast(page, EXPIRY_LATER)
        expect(later).to_be_visible(timeout=30_000)
        later.get_by_role("button", name=ASK).click()
        expect(later).to_have_count(0)  # an action closes its toast
        refused = toast(page, REFUSED)
        expect(refused).to_be_visible()
        expect(refused).to_have_class(re.compile(r"\bjp-Notification-Toast-error\b"))
        shot(page, tmp_path, "refused.png", refused)
        assert not errors, errors
    finally:
        context.close()


@pytest.mark.integration
def test_an_older_server_keeps_it_quiet_and_dropped_notices_are_withdrawn(
    lab: Lab, browser: Browser
) -> None:
    lab.answer([notice("gpu-idle", GPU_IDLE)], notices_status=404)
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    polls = Polls(page)
    try:
        open_lab(page, lab)
        polls.wait(1)
        expect(page.locator(".jp-toast-message")).to_have_count(0)

        # The endpoint appears (the server was upgraded): the plugin asks again, after the
        # default 30 s since a 404 carries no poll_s.
        lab.answer([notice("gpu-idle", GPU_IDLE)])
        idle = toast(page, GPU_IDLE)
        expect(idle).to_be_visible(timeout=45_000)

        # The GPU was used again: the server drops the notice and its toast goes.
        lab.answer([])
        expect(idle).to_have_count(0, timeout=30_000)
        assert not errors, errors
    finally:
        context.close()


WORKSHOP_END = (
    "Machine learning on GPUs, day… ends at 16:00 UTC on 2026-12-04: your files (~/ml-intro) "
    "are deleted then. Download them."
)


@pytest.mark.integration
def test_a_workshops_end_notice_offers_the_folder_download(lab: Lab, browser: Browser) -> None:
    end = {**notice("workshop-end", WORKSHOP_END), "kind": "workshop-end"}
    end["link"] = {"label": "Download my folder", "url": f"{BASE_URL}naic/api/workshop/archive"}
    lab.answer([end], extend=(200, GRANTED))
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    try:
        open_lab(page, lab)
        shown = toast(page, WORKSHOP_END)
        expect(shown).to_be_visible(timeout=30_000)
        expect(shown.get_by_role("button", name=ASK)).to_have_count(0)
        with context.expect_page() as opened:
            shown.get_by_role("button", name="Download my folder").click()
        assert opened.value.url.split("?")[0].endswith(f"{BASE_URL}naic/api/workshop/archive")
    finally:
        context.close()
