"""The culler's warning as a student sees it: a JupyterLab notification in Debian's Chromium,
in a real session on the test cluster whose (injected) GPU samples say it is idle."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import ARTIFACTS, log_in, stop_server
from tests.hub_process import Hub
from tests.integration.helpers import client, ready, set_gpu_use, start, wait_until
from tests.integration.test_culling import A100

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_an_idle_gpu_warning_is_a_jupyterlab_notification(notice_hub: Hub, browser: Browser):
    set_gpu_use("alice", 0)
    alice = client(notice_hub, "alice")
    start(alice, "alice", A100)
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, notice_hub, "alice")
        page.goto(notice_hub.url + "user/alice/lab/workspaces/notices")
        page.wait_for_url(re.compile(r".*/user/alice/lab.*"))
        toast = page.locator(".Toastify__toast", has_text="This session's GPU is not in use")
        expect(toast).to_be_visible(timeout=150_000)
        expect(toast).to_contain_text("limit 2 minutes")
        expect(toast).to_contain_text("it stops at")
        expect(toast).to_be_in_viewport(ratio=1)  # toasts slide in: a whole one on the picture
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gpu-idle-notification.png"))
    finally:
        context.close()
        stop_server(notice_hub, "alice")
