"""The spawn form in Debian's Chromium (Playwright), against a real hub on the test cluster.

A student logs in, sees the catalogue's choices and the expected start, picks one fake A100
and lands in JupyterLab; without JavaScript the same form still starts a session.
Screenshots go to each test's tmp dir (their paths are printed).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import log_in, stop_server
from tests.hub_process import Hub
from tests.integration.helpers import squeue

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


ESTIMATE = re.compile(r"^(Starts now|Expected start in about .+)$")


def shot(page: Page, folder: Path, name: str) -> Path:
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_a_student_picks_one_a100_sees_the_estimate_and_lands_in_jupyterlab(
    slurm_hub: Hub, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        log_in(page, slurm_hub, "alice")
        page.goto(slurm_hub.url + "hub/spawn")

        # The catalogue's choices, by their titles, and the first one chosen.
        for title in ("1 CPU, 2 GB", "CPU only", "NVIDIA A100 (fake)"):
            expect(page.get_by_label(title, exact=True)).to_be_visible()
        expect(page.get_by_label("1 CPU, 2 GB", exact=True)).to_be_checked()
        estimate = page.locator("#naic-estimate")
        expect(estimate).to_have_text("Starts now")

        page.get_by_label("NVIDIA A100 (fake)", exact=True).check()
        gpus = page.locator("#naic-testcluster-a100-gpus")
        expect(gpus).to_be_visible()
        expect(page.locator("#naic-local-cpu-small-hours")).to_be_hidden()
        assert (gpus.get_attribute("min"), gpus.get_attribute("max")) == ("1", "4")
        gpus.fill("1")
        expect(page.locator("#naic-testcluster-a100-project")).to_have_value("demo")
        expect(estimate).to_have_text(ESTIMATE, timeout=20_000)
        shot(page, tmp_path, "spawn-form.png")

        # Out of bounds: the form says so before any request is made.
        gpus.fill("9")
        expect(estimate).to_contain_text("GPUs:")
        gpus.fill("1")
        expect(estimate).to_have_text(ESTIMATE, timeout=20_000)

        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
        # The lab shell, whatever tabs alice's saved workspace reopens.
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=120_000)
        expect(page.locator(".jp-DirListing-item").first).to_be_visible()
        shot(page, tmp_path, "jupyterlab.png")

        with slurm_hub.api() as api:
            server = api.get("/users/alice").json()["servers"][""]
        assert server["user_options"] == {
            "site": "testcluster",
            "resource": "a100",
            "gpus": 1,
            "cpus": 2,
            "memory_gb": 4,
            "hours": 2.0,
            "environment": "python",
            "project": "demo",
        }
        jobs = squeue("--user=alice", "--states=RUNNING", "--format=%b %P")
        assert "gpu:a100:1 accel" in jobs, jobs
    finally:
        context.close()
        stop_server(slurm_hub, "alice")


def test_without_javascript_the_form_still_starts_a_session(
    slurm_hub: Hub, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1200, "height": 900}
    )
    page = context.new_page()
    try:
        log_in(page, slurm_hub, "bob")
        page.goto(slurm_hub.url + "hub/spawn")
        page.get_by_label("CPU only", exact=True).check()
        cpus = page.locator("#naic-testcluster-cpu-cpus")
        expect(cpus).to_be_visible()  # CSS alone shows the chosen resource's inputs
        cpus.fill("2")
        expect(page.locator("#naic-estimate")).to_be_hidden()
        shot(page, tmp_path, "spawn-form-no-js.png")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r".*/hub/spawn-pending/bob.*|.*/user/bob/.*"))

        with slurm_hub.api() as api:
            deadline = time.monotonic() + 60
            while not (server := api.get("/users/bob").json()["servers"].get("")):
                assert time.monotonic() < deadline, "no session was started"
                time.sleep(0.5)
        assert server["user_options"]["site"] == "testcluster"
        assert server["user_options"]["resource"] == "cpu"
        assert server["user_options"]["cpus"] == 2
    finally:
        context.close()
        stop_server(slurm_hub, "bob")
