"""One request, the soonest site, in Debian's Chromium (#22): alice asks the spawn form's
"Any site" card for a GPU with 40 GB while the multi-host Slurm site is full, sees every
option with its start and lands on the free cloud pool; then a session she pinned to the
full cluster waits on its progress page, which offers the pool when a GPU there frees, and
one click on "Move there" moves it. Screenshots go to each test's tmp dir."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import log_in
from tests.browser.test_spawn_form import shot
from tests.hub_process import Hub
from tests.integration.helpers import client, ready, server_path, squeue, start, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_any_site_lands_on_the_free_pool_and_a_queued_session_moves_in_one_click(
    federated_hub: Hub, full_nodes: list[str], browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    api = client(federated_hub, "alice")
    try:
        log_in(page, federated_hub, "alice")
        page.goto(federated_hub.url + "hub/spawn")
        expect(page.get_by_label("Wherever it starts soonest")).to_be_checked()
        page.get_by_label("GPU memory (GB)").fill("40")
        options = page.locator("#naic-options .naic-option")
        expect(options).to_have_count(3, timeout=30_000)  # the remote centre: after 8 s
        first = options.first
        expect(first).to_contain_text("NVIDIA L40S (declared) at Cloud pool (soonest)")
        expect(first.locator("input")).to_be_checked()
        expect(page.locator("#naic-options")).to_contain_text("behind")  # the full cluster
        expect(page.locator("#naic-options")).to_contain_text("did not answer within 8 s")
        shot(page, tmp_path, "any-site-options.png")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
        server = api.get("/hub/api/users/alice").json()["servers"][""]
        assert server["user_options"]["site"] == "cloud"

        # The pool full (the default session has one GPU; two more sessions take three),
        # and a session pinned to the full cluster, whose progress page alice watches.
        for name, gpus in (("p2", 2), ("p3", 1)):
            start(api, "alice", {"site": "cloud", "resource": "l40s", "gpus": gpus,
                                 "hours": 1}, server=name)  # fmt: skip
        for name in ("p2", "p3"):
            wait_until(lambda n=name: ready(api, "alice", n), 120, f"pool session {name}")
        start(api, "alice", {"site": "cluster", "resource": "gpu", "gpus": 1,
                             "hours": 1}, server="q")  # fmt: skip
        page.goto(federated_hub.url + "hub/spawn-pending/alice/q")
        expect(page.locator("#progress-message")).to_contain_text("Queued at cluster",
                                                                   timeout=60_000)  # fmt: skip
        assert api.delete(server_path("alice", "p3")).status_code in (202, 204)
        move = page.get_by_role("button", name="Move there")
        expect(move).to_be_visible(timeout=60_000)
        expect(page.locator("#progress-message")).to_contain_text("at Cloud pool could start")
        shot(page, tmp_path, "move-offer.png")
        move.click()
        expect(page.locator("#naic-move-status")).to_contain_text("Moving to Cloud pool")
        page.wait_for_url(re.compile(r".*/user/alice/q/.*"), timeout=180_000)
        expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=120_000)
        shot(page, tmp_path, "moved-session.png")
        server = api.get("/hub/api/users/alice").json()["servers"]["q"]
        assert server["user_options"]["site"] == "cloud"
        assert squeue("--user=alice", "--format=%i").strip() == ""
    finally:
        context.close()
