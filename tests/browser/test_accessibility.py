"""Accessibility of the hub's pages in Debian's Chromium, checked with axe-core (npm): the
login page, the home page (also with its note on how the last session ended, its remedy and
the site's help links), the spawn form, the help page and the datasets page have no serious
or critical violations (moderate ones, such as JupyterHub's pages lacking a <main> landmark,
are printed)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page

from naic.hub.catalogue import DEFAULT_CATALOGUE
from tests.browser.helpers import log_in
from tests.hub_process import Hub, start_hub, stop_hub
from tests.integration.helpers import start_testcluster_hub

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


#: Not alice: other tests cancel all of alice's jobs.
USER = "student07"


@pytest.fixture
def ended_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The test cluster's catalogue, USER in project demo, polling Slurm every 5 s."""
    hub = start_testcluster_hub(
        hub_dir, lambda cat: cat["projects"]["demo"]["members"].append(USER)
    )
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", f"--user={USER}"], check=False)


@pytest.mark.slurm
def test_the_home_page_after_a_cancelled_session_has_no_serious_violations(
    ended_hub: Hub, browser: Browser
) -> None:
    """The note on the home page: the reason, the remedy and its "More help" link, the
    site's documentation and "report a problem" (links inside a coloured alert)."""
    with ended_hub.api() as api:
        api.post(f"/users/{USER}")
        options = {"site": "testcluster", "resource": "cpu", "hours": 0.5, "project": "demo"}
        resp = api.post(f"/users/{USER}/server", json={"user_options": options})
        assert resp.status_code in (201, 202), resp.text
        deadline = time.monotonic() + 120
        while not api.get(f"/users/{USER}").json()["servers"].get("", {}).get("ready"):
            assert time.monotonic() < deadline, f"{USER}'s session did not become ready"
            time.sleep(0.5)
        state = api.get(f"/users/{USER}").json()["servers"][""]["state"]
        job = state["child_state"]["job_id"]  # USER may have other jobs
        subprocess.run(["scancel", job], check=True)
        while api.get(f"/users/{USER}").json()["servers"]:
            assert time.monotonic() < deadline + 60, "the hub did not see the job cancelled"
            time.sleep(0.5)
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, ended_hub, USER)
        page.goto(ended_hub.url + "hub/home")
        note = page.locator(".naic-last-end")
        assert "cancelled" in note.inner_text()
        for link in ("a.naic-help-page", "a.naic-docs", "a.naic-report"):
            assert note.locator(link).count() == 1, link
        assert violations(page) == []
    finally:
        context.close()


def test_the_datasets_page_has_no_serious_violations(browser: Browser, hub_dir: Path) -> None:
    """The embedded catalogue with two datasets: one everyone reads, one for a group."""
    raw = yaml.safe_load(DEFAULT_CATALOGUE.read_text())
    site = next(iter(raw["sites"]))
    common = {"site": site, "licence": "CC BY 4.0", "size_gb": 0.2}
    raw["datasets"] = {
        "iris": {**common, "title": "Iris", "path": "/data/iris", "readers": {"everyone": True},
                 "description": "Fisher's iris measurements."},
        "scans": {**common, "title": "Scans", "path": "/data/scans",
                  "readers": {"groups": ["radiology"]}},
    }  # fmt: skip
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(raw))
    hub = start_hub(hub_dir / "data", "--catalogue", str(hub_dir / "catalogue.yaml"))
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, hub, "alice")
        page.goto(hub.url + "hub/naic/datasets")
        assert page.locator("tr[data-dataset=iris]").inner_text().count("/data/iris") == 1
        assert "not yours to read" in page.locator("tr[data-dataset=scans]").inner_text()
        assert violations(page) == []
    finally:
        context.close()
        stop_hub(hub)
