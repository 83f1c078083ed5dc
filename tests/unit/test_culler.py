"""The culler's policy with a jumped clock, the hub's report parsing, and the session side
(what a report says, what the session warns about). No sleeping: time is an argument."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from naic.extensions.reporter import ActivityReporter, summarize
from naic.extensions.session import SessionFacts, session_notices
from naic.extensions.sources.gpu import FakeGPUSource, GPUSample, GPUSampler
from naic.extensions.sources.hubclient import FakeHubSource
from naic.hub.catalogue import Culling
from naic.hub.sessions.activity import check_every_s, parse_report, report_every_s
from naic.hub.sessions.culler import Action, Notice, Policy, SessionView, deadlines, decide
from tests.unit.examples import DEMO

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
#: GPUs idle 30 min → stop; no activity 60 min → stop; warn 10 min before.
POLICY = Policy(idle_s=3600, gpu_idle_s=1800, max_age_s=None, warn_s=600)


def session(**kw) -> SessionView:
    base = SessionView(
        user="ola",
        server="",
        site_title="Saga",
        gpus=1,
        started_at=T0,
        last_activity=T0,
        gpu_reported_at=T0,
        gpu_busy_at=None,
        policy=POLICY,
    )
    return replace(base, **kw)


def warned(s: SessionView, kind: str, deadline: datetime, at: datetime) -> SessionView:
    return replace(s, notices={**s.notices, kind: Notice(kind, deadline, at)})


def test_an_idle_gpu_is_warned_then_stopped_even_while_the_browser_is_active() -> None:
    s = session()
    now = T0 + 19 * MIN
    assert decide(replace(s, last_activity=now), now) == []
    now = T0 + 20 * MIN  # 10 minutes before the 30-minute limit
    (warn,) = decide(replace(s, last_activity=now), now)
    assert (warn.what, warn.kind, warn.deadline) == ("warn", "gpu-idle", T0 + 30 * MIN)
    assert warn.text == (
        "This session's GPU is not in use (limit 30 minutes): it stops at 09:30 UTC unless a "
        "GPU is used. Save your work."
    )
    s = warned(s, "gpu-idle", T0 + 30 * MIN, T0 + 20 * MIN)
    assert decide(replace(s, last_activity=T0 + 29 * MIN), T0 + 29 * MIN) == []
    now = T0 + 30 * MIN
    assert decide(replace(s, last_activity=now), now) == [
        Action(
            "stop",
            "gpu-idle",
            "stopped by the hub because its GPU was not used for 30 minutes (the policy of Saga)",
        )
    ]


def test_gpu_use_after_a_warning_clears_it() -> None:
    s = warned(session(), "gpu-idle", T0 + 30 * MIN, T0 + 20 * MIN)
    now = T0 + 25 * MIN
    assert decide(replace(s, gpu_busy_at=now, last_activity=now), now) == [
        Action("clear", "gpu-idle")
    ]


def test_a_busy_gpu_keeps_a_session_whose_browser_is_long_gone() -> None:
    s = session(last_activity=T0)  # the tab was closed at 09:00
    for hours in range(1, 12):
        now = T0 + hours * timedelta(hours=1)
        assert decide(replace(s, gpu_busy_at=now - MIN, gpu_reported_at=now - MIN), now) == []


def test_a_culler_that_was_down_warns_first_and_stops_only_after_the_warning() -> None:
    s = session(policy=replace(POLICY, idle_s=None))
    now = T0 + 45 * MIN  # long past the 30-minute limit, and nobody warned
    (warn,) = decide(s, now)
    assert (warn.what, warn.deadline) == ("warn", now + 10 * MIN)
    s = warned(s, "gpu-idle", warn.deadline, now)
    assert decide(s, now + 9 * MIN) == []
    assert [a.what for a in decide(s, now + 10 * MIN)] == ["stop"]


def test_without_gpu_reports_only_activity_counts() -> None:
    cpu = session(gpus=0, gpu_reported_at=None)
    silent = session(gpu_reported_at=None)  # a GPU session whose NVML never answered
    for s in (cpu, silent):
        assert set(deadlines(s)) == {"idle"}
        assert deadlines(s)["idle"] == T0 + 60 * MIN
    (warn,) = decide(cpu, T0 + 50 * MIN)
    assert warn.text == (
        "This session is idle (limit 60 minutes): it stops at 10:00 UTC unless you use it."
    )


def test_max_age_and_no_policy() -> None:
    aged = session(policy=Policy(idle_s=None, gpu_idle_s=None, max_age_s=8 * 3600, warn_s=600))
    assert decide(aged, T0 + 7 * timedelta(hours=1)) == []
    (warn,) = decide(aged, T0 + 7 * timedelta(hours=1) + 50 * MIN)
    assert warn.text == (
        "This session reaches its maximum age (8 hours): it stops at 17:00 UTC. Save your work."
    )
    never = session(policy=Policy(idle_s=None, gpu_idle_s=None, max_age_s=None, warn_s=600))
    assert decide(never, T0 + timedelta(days=30)) == []
    # A warning left from a policy the operator has since turned off is taken back.
    assert decide(warned(never, "idle", T0, T0), T0) == [Action("clear", "idle")]


def test_session_views_read_the_hubs_listing() -> None:
    s = SessionView.from_json(
        {
            "user": "ola",
            "server": "gpu",
            "site_title": "Saga",
            "gpus": 2,
            "started_at": "2026-11-27T09:00:00+00:00",
            "last_activity": None,
            "gpu_reported_at": "2026-11-27T09:05:00+00:00",
            "gpu_busy_at": None,
            "policy": {"idle_s": None, "gpu_idle_s": 1800, "max_age_s": None, "warn_s": 600},
            "notices": [
                {
                    "kind": "gpu-idle",
                    "deadline": "2026-11-27T09:30:00+00:00",
                    "at": "2026-11-27T09:20:00+00:00",
                }
            ],
        }
    )
    assert s.notices["gpu-idle"].deadline == T0 + 30 * MIN
    assert deadlines(s) == {"gpu-idle": T0 + 30 * MIN}
    assert decide(s, T0 + 30 * MIN)[0].text.startswith("stopped by the hub because its 2 GPUs")


# --- the hub's side --------------------------------------------------------------------------


def test_reports_are_parsed_or_refused_with_a_sentence() -> None:
    assert parse_report(b"{}") == ([], 0.0, None)
    body = (
        b'{"gpus": [{"index": 0, "utilization_pct": 0}, {"index": 1, "utilization_pct": null}],'
        b' "window_s": 60}'
    )
    assert parse_report(body) == ([0.0, None], 60.0, None)
    progress = b'{"progress": {"02.ipynb": [0, 4], "01.ipynb": [3, 5]}}'
    assert parse_report(progress) == ([], 0.0, {"01.ipynb": [3, 5], "02.ipynb": [0, 4]})
    for bad, words in [
        (b"[", "the body is not JSON"),
        (b'{"gpus": [{"utilization_pct": 140}], "window_s": 1}', "from 0 to 100"),
        (b'{"gpus": [{"utilization_pct": 1}], "window_s": -1}', "window_s must be seconds"),
        (b'{"cpu": 1}', 'Send {"gpus"'),
        (b'{"progress": {"a.ipynb": [1]}}', "`progress` must map at most 100 notebook"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_report(bad)


def test_sessions_report_often_enough_for_the_warning() -> None:
    assert report_every_s(Culling()) == 60.0
    fast = Culling(idle_minutes=None, gpu_idle_minutes=0.2, warn_minutes=0.1)
    assert report_every_s(fast) == 2.0
    assert check_every_s(DEMO) == 60.0


# --- the session's side ----------------------------------------------------------------------


def a100(util: float | None, i: int = 0) -> GPUSample:
    return GPUSample(i, "A100", util, 1024.0, 40960.0)


def test_a_report_carries_each_gpus_highest_utilisation_since_the_last() -> None:
    now = [1000.0]
    sampler = GPUSampler(
        FakeGPUSource(
            [a100(0), a100(None, 1)], [a100(35), a100(None, 1)], [a100(0), a100(None, 1)]
        ),
        clock=lambda: now[0],
    )
    hub = FakeHubSource(notices=[{"id": "gpu-idle", "kind": "gpu-idle", "text": "Stop soon."}])
    reporter = ActivityReporter(hub, sampler, clock=lambda: now[0])
    for _ in range(3):
        now[0] += 5
        sampler.sample_once()
    reporter.report_once()
    assert hub.reports == [
        {
            "gpus": [{"index": 0, "utilization_pct": 35}, {"index": 1, "utilization_pct": None}],
            "window_s": 15.0,
        }
    ]
    assert reporter.notices == hub.notices
    now[0] += 60  # no new sample: the latest one stands for the window
    reporter.report_once()
    assert hub.reports[-1]["gpus"][0]["utilization_pct"] == 0


def test_a_workshop_session_reports_how_far_the_student_got(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    code = {"cell_type": "code", "execution_count": None, "source": ""}
    ran = {**code, "execution_count": 3}
    (tmp_path / "01-intro.ipynb").write_text(
        json.dumps({"cells": [ran, code, {"cell_type": "markdown", "source": ""}]})
    )
    (tmp_path / "sub" / "02-data.ipynb").write_text(json.dumps({"cells": [ran, ran]}))
    (tmp_path / "broken.ipynb").write_text("{not json")
    hub = FakeHubSource()
    ActivityReporter(hub, None, workshop_dir=tmp_path).report_once()
    assert hub.reports == [{"progress": {"01-intro.ipynb": [1, 2], "sub/02-data.ipynb": [2, 2]}}]


def test_a_cpu_only_session_reports_nothing_gpu_related() -> None:
    hub = FakeHubSource()
    ActivityReporter(hub, None).report_once()
    assert hub.reports == [{}]
    assert summarize([]) == []


def facts(ends_in: timedelta, notice_minutes: float = 30) -> SessionFacts:
    return SessionFacts(
        is_naic=True,
        site="saga",
        resource="a100",
        ends_at=T0 + ends_in,
        time_left_notice_minutes=notice_minutes,
    )


def test_the_session_says_30_minutes_left_once_and_offers_more_time() -> None:
    assert session_notices(facts(31 * MIN), [], T0, can_extend=True) == []
    (notice,) = session_notices(facts(29 * MIN), [], T0, can_extend=True)
    assert notice == {
        "id": "expiry",
        "kind": "expiry",
        "level": "warning",
        "text": "This session ends at 09:29 UTC, in less than 30 minutes. Save your work, "
        "or ask for more time.",
        "deadline": "2026-11-27T09:29:00+00:00",
        "can_extend": True,
    }
    # The same words a minute later: a page shows the notice once.
    later = session_notices(facts(29 * MIN), [], T0 + MIN, can_extend=True)
    assert later[0]["text"] == notice["text"]
    (plain,) = session_notices(facts(29 * MIN), [], T0, can_extend=False)
    assert plain["text"].endswith("Save your work.") and not plain["can_extend"]
    assert session_notices(facts(29 * MIN, notice_minutes=0), [], T0, can_extend=True) == []


def test_the_culler_warnings_follow_the_end_notice() -> None:
    hub = [{"id": "gpu-idle", "kind": "gpu-idle", "level": "warning", "text": "Idle GPU."}]
    notices = session_notices(facts(10 * MIN), hub, T0, can_extend=False)
    assert [(n["id"], n["can_extend"]) for n in notices] == [
        ("expiry", False),
        ("gpu-idle", False),
    ]


def test_the_culler_ends_with_the_hub_that_started_it() -> None:
    """A killed hub leaves its services running; the culler must not outlive it."""
    import asyncio

    from naic.hub.sessions.culler import Culler

    parents = iter([100, 100, 100, 1])  # the hub's pid at start, twice more, then init
    culler = Culler("http://127.0.0.1:1/hub/api", "t", parent=lambda: next(parents))
    rounds = []

    async def once() -> float:
        rounds.append(1)
        return 0.0

    async def no_sleep(_: float) -> None:
        return None

    culler.once = once
    asyncio.run(culler.run(sleep=no_sleep))
    assert len(rounds) == 2
