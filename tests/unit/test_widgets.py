"""Widgets fed by fake sources: what a user sees (the text and values of the parts that are
shown), and what the buttons do."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import ipywidgets as w
import pytest

from naic.extensions.session import FixedSessionSource, SessionFacts, StorageArea
from naic.extensions.sources.gpu import FakeGPUSource, GPUSample, GPUSampler
from naic.extensions.sources.hubclient import (
    BUDGETS_NOT_AVAILABLE,
    Budgets,
    Extension,
    FakeHubSource,
    ProjectUsage,
)
from naic.extensions.sources.storage import FakeStorageSource, StorageUsage
from naic.extensions.widgets import (
    DaskLauncher,
    GPUMonitor,
    OnboardingChecklist,
    OwnEnvironments,
    ProjectBudget,
    SessionPanel,
    StorageOverview,
    mark_done,
)
from naic.extensions.widgets._parts import bar_html
from naic.extensions.widgets.dask_launcher import proxied_dashboard
from naic.extensions.widgets.onboarding import NOTEBOOKS
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import session_env
from tests.unit.examples import DEMO


def shown(widget: w.Widget) -> list[w.Widget]:
    """The widget and everything inside it that is not hidden."""
    if getattr(getattr(widget, "layout", None), "display", "") == "none":
        return []
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += shown(child)
    return out


def text(widget: w.Widget) -> str:
    """What a user reads: labels, HTML without tags, button and checkbox captions."""
    parts = []
    for x in shown(widget):
        if isinstance(x, w.HTML | w.Label):
            parts.append(re.sub(r"<[^>]+>", "", x.value))
        elif isinstance(x, w.Button | w.Checkbox):
            parts.append(x.description)
    return " | ".join(p for p in parts if p)


def by_class(widget: w.Widget, css: str) -> list[w.Widget]:
    return [x for x in shown(widget) if css in getattr(x, "_dom_classes", ())]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def tags(markup: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(markup)
    return parser.tags


def aria(bar: w.HTML) -> dict[str, str]:
    """What a screen reader reads of a bar: the progressbar's role and aria-* attributes."""
    [found] = [a for _, a in tags(bar.value) if a.get("role") == "progressbar"]
    return {k: v for k, v in found.items() if k == "role" or k.startswith("aria-")}


def links(widget: w.HTML) -> list[tuple[str, str]]:
    """(href, words) of each link in an HTML widget."""
    return re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', widget.value)


def no_bare_progress(widget: w.Widget) -> bool:
    """No ipywidgets progress bar anywhere inside (they render a div without ARIA)."""
    if isinstance(widget, w.FloatProgress | w.IntProgress):
        return False
    return all(no_bare_progress(c) for c in getattr(widget, "children", ()))


# --- storage ----------------------------------------------------------------------------------

HOME = StorageArea("home", "Home", "/home/ola", quota_gb=20)
SCRATCH = StorageArea("scratch", "Scratch", "/cluster/work/ola", purge_days=21)
DATASETS = StorageArea("datasets", "Datasets", "/datasets", read_only=True)
PROJECT = StorageArea("project", "Project", "/cluster/projects/nn1234k", quota_gb=1000)


def test_storage_shows_one_bar_per_area_with_used_of_quota() -> None:
    overview = StorageOverview(
        FakeStorageSource(
            [
                StorageUsage(HOME, True, 12.34, 20.0, "area", "du"),
                StorageUsage(SCRATCH, True, 120.0, 500.0, "file system", "df"),
                StorageUsage(DATASETS, True, 40.0, 80.0, "file system", "df"),
                StorageUsage(PROJECT, False, method="du", note="not available here"),
            ]
        )
    )
    home = overview.rows["home"]
    assert (home.bar.bar_now, home.bar.bar_max, home.label.value) == (12.34, 20.0, "12.3 of 20 GB")
    assert "Home" in home.title.value and "/home/ola" in home.title.value
    scratch = overview.rows["scratch"]
    assert scratch.label.value == "120.0 of 500 GB used on the shared file system"
    assert "files not used for 21 days are deleted" in text(scratch)
    assert "read-only" in text(overview.rows["datasets"])
    project = overview.rows["project"]
    assert text(project) == "Project /cluster/projects/nn1234k | not available here"
    assert by_class(overview, "naic-storage-bar") == [
        home.bar,
        scratch.bar,
        overview.rows["datasets"].bar,
    ]


def test_a_nearly_full_home_is_red_and_an_overfull_one_stays_on_the_bar() -> None:
    overview = StorageOverview(FakeStorageSource([StorageUsage(HOME, True, 25.0, 20.0, "area")]))
    bar = overview.rows["home"].bar
    assert (aria(bar)["aria-valuenow"], bar.bar_style) == ("20", "danger")
    assert 'style="width: 100%; height: 100%; background: #c62828"' in bar.value
    assert overview.rows["home"].label.value == "25.0 of 20 GB — over the quota"
    assert aria(bar)["aria-valuetext"] == "25.0 of 20 GB used, 125 %, over the quota"


def test_a_storage_bar_is_a_progressbar_that_says_its_numbers_in_words() -> None:
    overview = StorageOverview(
        FakeStorageSource(
            [
                StorageUsage(HOME, True, 12.34, 20.0, "area", "du"),
                StorageUsage(SCRATCH, True, 460.0, 500.0, "file system", "df"),
            ]
        )
    )
    assert aria(overview.rows["home"].bar) == {
        "role": "progressbar",
        "aria-label": "Home (/home/ola): storage used",
        "aria-valuenow": "12.3",
        "aria-valuemin": "0",
        "aria-valuemax": "20",
        "aria-valuetext": "12.3 of 20 GB used, 62 %",
    }
    scratch = overview.rows["scratch"]
    assert aria(scratch.bar)["aria-valuetext"] == (
        "460.0 of 500 GB used on the shared file system, 92 %, nearly full"
    )
    assert scratch.label.value == "460.0 of 500 GB used on the shared file system — nearly full"
    assert no_bare_progress(overview)


def test_the_bar_html_is_exact() -> None:
    assert bar_html(12.34, 20.0, name="Home: storage used", words="12.3 of 20 GB <used>") == (
        '<div class="naic-bar" role="progressbar" aria-label="Home: storage used" '
        'aria-valuenow="12.3" aria-valuemin="0" aria-valuemax="20" '
        'aria-valuetext="12.3 of 20 GB &lt;used&gt;" title="12.3 of 20 GB &lt;used&gt;" '
        'style="display: inline-block; box-sizing: border-box; width: 200px; height: 14px; '
        "margin: 0 8px 0 0; vertical-align: middle; background: #e8e8e8; border: 1px solid "
        '#6e6e6e; border-radius: 3px; overflow: hidden"><div class="naic-bar-fill" '
        'style="width: 62%; height: 100%; background: #1565c0"></div></div>'
    )
    # Not known: an indeterminate bar, no aria-valuenow, the words still there.
    unknown = bar_html(None, 100, name="GPU 0 utilisation", words="not reported")
    assert "aria-valuenow" not in unknown and 'aria-valuetext="not reported"' in unknown


# The session's facts with the site's help links (as the catalogue's site names them).
def helped_facts() -> SessionFacts:
    return dataclasses.replace(
        saga_facts(),
        docs_url="https://documentation.sigma2.no/",
        support_url="mailto:support@nris.no",
        job_id="4242",
    )


def test_storage_and_gpus_link_the_sites_documentation_and_a_report_with_the_facts() -> None:
    for widget, css in (
        (StorageOverview(FakeStorageSource([]), facts=helped_facts()), "naic-storage-help"),
        (GPUMonitor(FakeGPUSource([]), facts=helped_facts()), "naic-gpu-help"),
    ):
        [line] = by_class(widget, css)
        found = links(line)
        if css == "naic-storage-help":  # the storage overview names the hub's datasets first
            assert text(line).startswith("Datasets (copy one here: naic-data stage NAME) · ")
            assert found.pop(0)[0] == "/hub/naic/datasets"
        assert text(line).endswith("Site documentation · Report a problem")
        (docs, _), (report, _) = found
        assert docs == "https://documentation.sigma2.no/"
        mail = urlsplit(report.replace("&amp;", "&"))
        assert (mail.scheme, mail.path) == ("mailto", "support@nris.no")
        query = parse_qs(mail.query)
        assert query["subject"] == ["naic-hub: a problem in a session at Saga (Sigma2)"]
        assert query["body"] == [
            "Site: Saga (Sigma2)\nResource: NVIDIA A100 (1 × a100 GPU, 8 CPUs, 32 GB memory)\n"
            "Job: 4242\n\nWhat happened:\n"
        ]
        assert 'style="text-decoration: underline"' in line.value  # not by colour alone


def test_no_help_line_without_links_or_outside_a_session() -> None:
    plain = dataclasses.replace(helped_facts(), docs_url=None, support_url=None)
    docs_only = dataclasses.replace(helped_facts(), support_url=None)
    [line] = by_class(StorageOverview(FakeStorageSource([]), facts=plain), "naic-storage-help")
    assert text(line) == "Datasets (copy one here: naic-data stage NAME)"  # the hub's own
    outside = SessionFacts.from_env({})
    assert not by_class(StorageOverview(FakeStorageSource([]), facts=outside), "naic-storage-help")
    assert not by_class(
        GPUMonitor(FakeGPUSource([]), facts=SessionFacts.from_env({})), "naic-gpu-help"
    )
    [line] = by_class(GPUMonitor(FakeGPUSource([]), facts=docs_only), "naic-gpu-help")
    assert text(line) == "Site documentation"


def test_storage_refresh_shows_new_numbers() -> None:
    source = FakeStorageSource([StorageUsage(HOME, True, 1.0, 20.0, "area")])
    overview = StorageOverview(source)
    source.usages = [StorageUsage(HOME, True, 2.0, 20.0, "area")]
    overview.refresh_button.click()
    assert overview.rows["home"].label.value == "2.0 of 20 GB"


def test_no_storage_areas_says_so() -> None:
    assert "no storage areas" in text(StorageOverview(FakeStorageSource([])))


# --- the session panel --------------------------------------------------------------------------

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def saga_facts() -> SessionFacts:
    req = SessionRequest(
        site="saga",
        resource="a100",
        gpus=1,
        cpus=8,
        memory_gb=32,
        hours=4.0,
        environment="pytorch",
        project="nn1234k",
    )
    env = session_env(req, DEMO, "ola", started_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    return SessionFacts.from_env(env)


def panel(hub: FakeHubSource | None = None) -> SessionPanel:
    return SessionPanel(
        FixedSessionSource(saga_facts()), hub or FakeHubSource(), clock=lambda: NOON, tz=UTC
    )


def test_the_panel_shows_site_resources_and_time_left() -> None:
    p = panel()
    assert text(p.site) == "Saga (Sigma2) · project Deep learning for weather"
    assert text(p.resources) == "NVIDIA A100 · 1 × a100 GPU, 8 CPUs, 32 GB memory · PyTorch + CUDA"
    assert text(p.time_left) == "1 h 0 min left (ends at 13:00 UTC)"


def test_stop_asks_first_and_calls_the_hub_only_after_yes() -> None:
    hub = FakeHubSource()
    p = panel(hub)
    assert not by_class(p, "naic-session-confirm")
    p.stop_button.click()
    assert hub.stops == 0
    assert "Running kernels end" in text(by_class(p, "naic-session-confirm")[0])
    p.cancel_button.click()
    assert hub.stops == 0 and not by_class(p, "naic-session-confirm")
    p.confirm_button.click()  # a stray click without the question does nothing
    assert hub.stops == 0
    p.stop_button.click()
    p.confirm_button.click()
    assert hub.stops == 1
    assert "Stopping" in text(p.status)


def test_a_refused_stop_is_explained_and_stop_stays_available() -> None:
    p = panel(FakeHubSource(stop_error="The hub does not let this session stop itself."))
    p.stop_button.click()
    p.confirm_button.click()
    assert text(p.status) == "The hub does not let this session stop itself."
    assert by_class(p, "naic-session-stop")


def test_asking_for_more_time_appears_only_when_the_hub_can_extend() -> None:
    assert not by_class(panel(FakeHubSource()), "naic-session-extend")
    assert by_class(panel(FakeHubSource(can_extend=True)), "naic-session-extend")


def test_more_time_shows_the_new_end_or_the_refusal() -> None:
    ends = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    hub = FakeHubSource(can_extend=True, extension=Extension(ends, 5.0, 0))
    p = panel(hub)
    p.extend_button.click()
    assert hub.extends == 1
    assert text(p.status) == (
        "Extended: the session now ends at 14:00 UTC. "
        "That was the last extension this resource allows."
    )
    assert text(p.time_left) == "2 h 0 min left (ends at 14:00 UTC)"
    assert not by_class(p, "naic-session-extend")  # none left: the offer goes away
    refused = "This resource allows at most 2 extensions; you have used 2."
    p = panel(FakeHubSource(can_extend=True, extend_error=refused))
    p.extend_button.click()
    assert text(p.status) == refused
    assert text(p.time_left) == "1 h 0 min left (ends at 13:00 UTC)"


def test_the_panel_shows_the_end_and_the_cullers_warning_in_words() -> None:
    p = panel()
    assert not by_class(p, "naic-session-notice")  # an hour left: nothing to say
    idle = "The GPU is not in use (limit 30 minutes): it stops at 12:30 UTC."
    hub = FakeHubSource(notices=[{"id": "gpu-idle", "kind": "gpu-idle", "text": idle}])
    late = SessionPanel(
        FixedSessionSource(saga_facts()),
        hub,
        clock=lambda: datetime(2026, 3, 2, 12, 40, tzinfo=UTC),
        tz=UTC,
        refresh_every_s=None,
    )
    assert text(late.notice) == (
        f"⚠ This session ends at 13:00 UTC, in less than 30 minutes. Save your work.⚠ {idle}"
    )
    assert by_class(late, "naic-session-notice")


def test_outside_naic_hub_the_panel_says_so_and_offers_no_stop() -> None:
    p = SessionPanel(FixedSessionSource(SessionFacts.from_env({})), FakeHubSource())
    assert (
        text(p) == "This session | This is not a naic-hub session, so there are no "
        "session facts to show. | Refresh"
    )


def test_a_session_whose_time_is_up() -> None:
    p = SessionPanel(
        FixedSessionSource(saga_facts()),
        FakeHubSource(),
        clock=lambda: datetime(2026, 3, 2, 14, tzinfo=UTC),
    )
    assert text(p.time_left) == "The session's time is up."


# --- GPUs ---------------------------------------------------------------------------------------


def a100(i: int, util: float | None, used_mb: float) -> GPUSample:
    return GPUSample(i, "NVIDIA A100-SXM4-80GB", util, used_mb, 81920.0)


def test_no_gpu_in_this_session() -> None:
    monitor = GPUMonitor(FakeGPUSource([]))
    assert text(monitor) == "GPUs | No GPU in this session."


def test_each_gpu_has_utilisation_and_memory_bars() -> None:
    monitor = GPUMonitor(FakeGPUSource([a100(0, 37.0, 12288.0), a100(1, None, 0.0)]))
    first, second = monitor.rows
    assert (first.util_bar.bar_now, first.util_label.value) == (37.0, "37 %")
    assert (first.memory_bar.bar_now, first.memory_label.value) == (12288.0, "12.0 of 80.0 GB")
    assert "GPU 0" in first.title.value and "A100" in first.title.value
    assert second.util_label.value == "not reported"
    assert "No GPU" not in text(monitor)
    # The figure explained where it is shown; not without GPUs.
    assert "the share of the last sample period in which at least one kernel ran" in text(monitor)
    assert "sample period" not in text(GPUMonitor(FakeGPUSource([])))


def test_gpu_bars_are_progressbars_and_full_memory_is_said_in_words() -> None:
    monitor = GPUMonitor(FakeGPUSource([a100(0, 37.0, 77824.0), a100(1, None, 0.0)]))
    first, second = monitor.rows
    assert aria(first.util_bar) == {
        "role": "progressbar",
        "aria-label": "GPU 0 utilisation",
        "aria-valuenow": "37",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuetext": "37 %",
    }
    assert aria(first.memory_bar) == {
        "role": "progressbar",
        "aria-label": "GPU 0 memory",
        "aria-valuenow": "77824",
        "aria-valuemin": "0",
        "aria-valuemax": "81920",
        "aria-valuetext": "76.0 of 80.0 GB used, 95 %, nearly full",
    }
    assert first.memory_label.value == "76.0 of 80.0 GB — nearly full"
    assert first.memory_bar.bar_style == "danger"
    # Utilisation not reported: an indeterminate bar that says so.
    assert aria(second.util_bar) == {
        "role": "progressbar",
        "aria-label": "GPU 1 utilisation",
        "aria-valuemin": "0",
        "aria-valuemax": "100",
        "aria-valuetext": "not reported",
    }
    assert no_bare_progress(monitor)


def test_the_plot_draws_recent_utilisation_as_svg() -> None:
    now = [0.0]
    source = FakeGPUSource([a100(0, 0.0, 0)], [a100(0, 50.0, 0)], [a100(0, 100.0, 0)])
    monitor = GPUMonitor(sampler=GPUSampler(source, clock=lambda: now[0]))
    assert monitor.plot.value == ""  # one reading is no line
    monitor.refresh()
    monitor.refresh()
    svg = monitor.plot.value
    assert svg.startswith("<svg") and 'points="0.0,64.0 160.0,32.0 320.0,0.0"' in svg
    assert monitor.rows[0].util_label.value == "100 %"


def test_live_view_starts_and_stops_the_sampler_and_updates_in_place() -> None:
    sampler = GPUSampler(FakeGPUSource([a100(0, 5.0, 0)], [a100(0, 95.0, 0)]), interval_s=60)
    monitor = GPUMonitor(sampler=sampler)
    row = monitor.rows[0]
    monitor.live_button.click()
    try:
        assert sampler.running and monitor.live_button.description == "Stop live view"
        sampler.sample_once()  # what the thread does every interval
        assert monitor.rows[0] is row and row.util_label.value == "95 %"
    finally:
        monitor.live_button.click()
    assert not sampler.running and monitor.live_button.description == "Start live view"


# --- budgets ------------------------------------------------------------------------------------


def test_budgets_show_used_of_budget_per_project() -> None:
    budgets = Budgets(
        True,
        (
            ProjectUsage(
                "nn1234k",
                "Deep learning for weather",
                1000.0,
                12.5,
                987.5,
                "year",
                "2027-01-01T00:00:00+00:00",
                2.0,
            ),
            ProjectUsage("open", "Open science", None, 3.0, None),
        ),
    )
    widget = ProjectBudget(FakeHubSource(budgets))
    row = widget.rows["nn1234k"]
    assert (row.bar.bar_now, row.bar.bar_max) == (12.5, 1000.0)
    assert aria(row.bar) == {
        "role": "progressbar",
        "aria-label": "GPU-hours of project Deep learning for weather (nn1234k)",
        "aria-valuenow": "12.5",
        "aria-valuemin": "0",
        "aria-valuemax": "1000",
        "aria-valuetext": "12.5 of 1000 GPU-hours used, 1 %",
    }
    assert row.label.value == "12.5 of 1000 GPU-hours used · 987.5 left · resets 1 Jan 2027"
    assert row.mine.value == "2.0 GPU-hours of it are yours"
    free = widget.rows["open"]
    assert text(free) == "Open science open | 3.0 GPU-hours used; no budget limit"


def test_a_nearly_spent_or_spent_budget_says_so_in_words() -> None:
    nearly = ProjectUsage("nn1234k", "Weather", 100.0, 93.0, 7.0)
    spent = ProjectUsage("nn5678k", "Climate", 100.0, 104.0, -4.0)
    widget = ProjectBudget(FakeHubSource(Budgets(True, (nearly, spent))))
    row, over = widget.rows["nn1234k"], widget.rows["nn5678k"]
    assert row.label.value == "93.0 of 100 GPU-hours used — nearly used up · 7.0 left"
    assert aria(row.bar)["aria-valuetext"] == "93.0 of 100 GPU-hours used, 93 %, nearly used up"
    assert over.label.value == "104.0 of 100 GPU-hours used — used up · -4.0 left"
    assert (aria(over.bar)["aria-valuenow"], over.bar.bar_style) == ("100", "danger")
    assert aria(over.bar)["aria-valuetext"] == "104.0 of 100 GPU-hours used, 104 %, used up"
    assert no_bare_progress(widget)


def test_budgets_not_available_yet() -> None:
    widget = ProjectBudget(FakeHubSource())
    assert text(widget) == f"GPU-hour budgets | {BUDGETS_NOT_AVAILABLE} | Refresh"


def test_no_project_yet() -> None:
    widget = ProjectBudget(FakeHubSource(Budgets(True, ())))
    assert "You are in no project yet" in text(widget)


# --- Dask ---------------------------------------------------------------------------------------


class FakeCluster:
    def __init__(self) -> None:
        self.scaled: list[int] = []
        self.closed = False
        self.dashboard_link = "http://10.1.2.3:8787/status"

    def scale(self, n: int) -> None:
        self.scaled.append(n)

    def close(self) -> None:
        self.closed = True


HUB_ENV = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ola/"}


def test_dask_start_scale_stop() -> None:
    clusters: list[FakeCluster] = []

    def factory() -> FakeCluster:
        clusters.append(FakeCluster())
        return clusters[-1]

    launcher = DaskLauncher(factory, workers=2, environ=HUB_ENV)
    assert text(launcher.status) == "No cluster running."
    assert launcher.scale_button.disabled and launcher.stop_button.disabled
    launcher.start_button.click()
    [cluster] = clusters
    assert cluster.scaled == [2] and launcher.start_button.disabled
    assert 'href="/user/ola/proxy/8787/status"' in launcher.dashboard.value
    launcher.workers.value = 8
    launcher.scale_button.click()
    assert cluster.scaled == [2, 8] and text(launcher.status) == "Running, 8 workers asked for."
    launcher.stop_button.click()
    assert (
        cluster.closed
        and launcher.cluster is None
        and not by_class(launcher, "naic-dask-dashboard")
    )


def test_a_cluster_that_fails_to_start_says_why() -> None:
    def factory():
        raise RuntimeError("no account <b>x</b>")

    launcher = DaskLauncher(factory)
    launcher.start_button.click()
    assert launcher.cluster is None
    assert launcher.status.value == "The cluster did not start: no account &lt;b&gt;x&lt;/b&gt;"


def test_dashboard_links_go_through_the_hub_when_there_is_one() -> None:
    assert (
        proxied_dashboard("http://10.1.2.3:8787/status", HUB_ENV) == "/user/ola/proxy/8787/status"
    )
    named = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ola/gpu/"}
    assert proxied_dashboard("http://node:41234/", named) == "/user/ola/gpu/proxy/41234/status"
    assert proxied_dashboard("http://127.0.0.1:8787/status", {}) == "http://127.0.0.1:8787/status"


# --- own environments --------------------------------------------------------------------------


def test_the_environment_forms_fields_are_labelled_not_only_by_placeholders() -> None:
    form = OwnEnvironments(lambda: [], lambda *_: Path("/x"), modules=[])
    assert [form.name.description, form.module.description, form.packages.description] == [
        "Name",
        "On",
        "Packages",
    ]


# --- onboarding ---------------------------------------------------------------------------------


def test_the_checklist_remembers_across_instances(tmp_path: Path) -> None:
    state = tmp_path / ".naic" / "onboarding.json"
    first = OnboardingChecklist(state)
    assert [b.description for b in first.boxes.values()] == [
        "Start here (00-start-here.ipynb)",
        "Storage and data (01-storage-and-data.ipynb)",
        "Compute and GPUs (02-compute-and-gpus.ipynb)",
        "Scale out with Dask (03-scale-out-with-dask.ipynb)",
        "From notebook to batch job (04-from-notebook-to-batch-job.ipynb)",
        "Data in and out (05-data-in-and-out.ipynb)",
    ]
    assert first.summary.value == "0 of 6 done" and not state.exists()
    first.boxes["00-start-here"].value = True
    first.mark("02-compute-and-gpus")
    assert json.loads(state.read_text()) == {
        "done": {"00-start-here": True, "02-compute-and-gpus": True}
    }
    second = OnboardingChecklist(state)
    assert [b.value for b in second.boxes.values()] == [True, False, True, False, False, False]
    assert second.summary.value == "2 of 6 done"
    assert [p.name for p in state.parent.iterdir()] == ["onboarding.json"]  # no temp files left


def test_a_notebook_marks_itself_done_and_all_done_is_celebrated(tmp_path: Path) -> None:
    state = tmp_path / "onboarding.json"
    for name, _ in NOTEBOOKS[:-1]:
        mark_done(name, path=state)
    checklist = OnboardingChecklist(state)
    assert checklist.summary.value == "5 of 6 done"
    checklist.boxes["05-data-in-and-out"].value = True
    assert checklist.summary.value == "All done: you know your way around."


def test_a_broken_state_file_counts_as_nothing_done(tmp_path: Path) -> None:
    state = tmp_path / "onboarding.json"
    state.write_text("{half a file")
    checklist = OnboardingChecklist(state)
    assert checklist.summary.value == "0 of 6 done"
    checklist.mark("00-start-here")
    assert json.loads(state.read_text()) == {"done": {"00-start-here": True}}


@pytest.mark.parametrize(
    "css",
    ["naic-storage", "naic-session", "naic-gpus", "naic-budget", "naic-dask", "naic-onboarding"],
)
def test_every_widget_carries_its_css_class(css: str, tmp_path: Path) -> None:
    widgets = {
        "naic-storage": lambda: StorageOverview(FakeStorageSource([])),
        "naic-session": lambda: panel(),
        "naic-gpus": lambda: GPUMonitor(FakeGPUSource([])),
        "naic-budget": lambda: ProjectBudget(FakeHubSource()),
        "naic-dask": lambda: DaskLauncher(FakeCluster),
        "naic-onboarding": lambda: OnboardingChecklist(tmp_path / "o.json"),
    }
    assert css in widgets[css]()._dom_classes


def test_only_the_newest_panel_refreshes_by_itself() -> None:
    """A cell run again makes a new panel: the old one stops asking Slurm; closing stops it."""
    first, second = panel(), panel()
    assert not first.refreshing and second.refreshing
    second.close()
    assert not second.refreshing
    third = SessionPanel(FixedSessionSource(saga_facts()), FakeHubSource(), refresh_every_s=None)
    assert not third.refreshing
