"""A workshop in Debian's Chromium: a student enters the code and presses one button, lands in
JupyterLab with the course folder; the instructor's page shows her session running."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import ARTIFACTS, log_in
from tests.hub_process import Hub
from tests.integration.helpers import token_of

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_a_student_joins_with_the_code_and_the_instructor_sees_her(
    ws_hub: Hub, browser: Browser
) -> None:
    ingrid = httpx.Client(
        base_url=ws_hub.url, headers={"Authorization": f"token {token_of(ws_hub, 'ingrid')}"}
    )
    now = datetime.now(UTC)
    made = ingrid.post(
        "/hub/api/naic/workshops",
        json={
            "name": "ml-intro",
            "title": "Intro to ML",
            "seats": 4,
            "start": (now - timedelta(minutes=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
            "resource": "testcluster:cpu",
            "hours": 0.5,
            "project": "course",
            "material": "/var/tmp/naic-test-course",
        },
    )
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        log_in(page, ws_hub, "student04")
        page.goto(ws_hub.url + "hub/naic/workshops/join")
        page.get_by_label("Workshop code").fill(code.lower().replace("-", " "))
        page.get_by_role("button", name="Join and start my session").click()
        page.wait_for_url(re.compile(r".*/user/student04/ml-intro/lab.*"), timeout=180_000)
        folder = page.locator(".jp-DirListing-item", has_text="ml-intro")
        expect(folder).to_be_visible(timeout=120_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "workshop-student.png"))

        board = context.new_page()
        board.context.clear_cookies()
        log_in(board, ws_hub, "ingrid")
        board.goto(ws_hub.url + "hub/naic/workshops/ml-intro")
        row = board.locator("tr[data-user='student04']")
        expect(row.locator(".naic-session-state")).to_have_text("running")
        # The code was shown once, at creation: the hub keeps only its hash.
        expect(board.locator(".naic-join-code")).to_have_count(0)
        expect(board.get_by_text("the hub keeps only its hash")).to_be_visible()
        board.screenshot(path=str(ARTIFACTS / "workshop-dashboard.png"), full_page=True)
    finally:
        context.close()
        ingrid.delete("/hub/api/naic/workshops/ml-intro")
