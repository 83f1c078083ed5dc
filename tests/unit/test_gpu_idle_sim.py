"""The GPU-idle simulation (benchmarks/gpu_idle.py): its week is reproducible and its
policies stop what they should, when they should."""

from __future__ import annotations

import pytest

from benchmarks.gpu_idle import (
    ARCHETYPES,
    LONG_TRAINING,
    RETURN_AFTER_MIN,
    RETURN_MIN,
    WEEK_MIN,
    Policy,
    Session,
    reclaimed_gpu_h,
    simulate,
    synthetic_week,
    work_cut_gpu_h,
)

NONE = Policy("none", "none")
ACTIVITY = Policy("activity-only", "activity", idle_timeout=60)
GPU = Policy("gpu-aware", "gpu", gpu_idle_pct=5, gpu_idle_timeout=30, warn=10, come_back=0.5)
NEVER_BACK = (0.99,) * 16


def session(
    active: bool,
    gpu_pct: float,
    minutes: int = 600,
    gpus: int = 1,
    archetype: str = "hand-made",
    draws: tuple[float, ...] = NEVER_BACK,
) -> Session:
    return Session(
        id=1,
        archetype=archetype,
        start=0,
        gpus=gpus,
        requested_min=minutes,
        active=(active,) * minutes,
        gpu_pct=(gpu_pct,) * minutes,
        return_draws=draws,
    )


def test_the_week_is_the_same_for_a_seed_and_differs_for_another():
    week = synthetic_week(1, 60)
    assert week == synthetic_week(1, 60)
    assert week != synthetic_week(2, 60)
    assert simulate(week, GPU) == simulate(synthetic_week(1, 60), GPU)


def test_the_week_has_every_archetype_within_the_week_and_its_limits():
    week = synthetic_week(1, 400)
    assert len(week) == 400
    assert {s.archetype for s in week} == set(ARCHETYPES)
    for s in week:
        assert 0 <= s.start < WEEK_MIN
        assert 1 <= s.gpus <= 4
        assert 60 <= s.requested_min <= 24 * 60
        assert 0 < s.natural_min <= s.requested_min
        assert len(s.gpu_pct) == s.natural_min
        assert all(0 <= p <= 100 for p in s.gpu_pct)


def test_busy_gpu_without_a_browser_is_kept_by_gpu_aware_and_killed_by_activity_only():
    training = [session(active=False, gpu_pct=90, archetype=LONG_TRAINING)]

    kept = simulate(training, GPU)
    assert kept.ran_min == [600]
    assert (kept.stopped, kept.wrongful, kept.warnings) == (0, 0, 0)

    killed = simulate(training, ACTIVITY)
    assert killed.ran_min == [60]
    assert (killed.stopped, killed.wrongful) == (1, 1)


def test_idle_gpu_with_the_tab_open_is_stopped_after_timeout_and_warning():
    tab_open = [session(active=True, gpu_pct=0)]

    stopped = simulate(tab_open, GPU)
    assert stopped.ran_min == [30 + 10]
    assert (stopped.stopped, stopped.wrongful, stopped.warnings, stopped.came_back) == (1, 0, 1, 0)

    assert simulate(tab_open, ACTIVITY).ran_min == [600]


def test_a_user_who_comes_back_on_the_warning_restarts_the_count():
    # Comes back after the first warning, not after the second.
    tab_open = [session(active=True, gpu_pct=0, draws=(0.0, 0.99))]
    result = simulate(tab_open, GPU)
    assert result.ran_min == [30 + RETURN_AFTER_MIN + RETURN_MIN + 30 + 10]
    assert (result.warnings, result.came_back, result.wrongful) == (2, 1, 0)


def test_a_short_dip_in_gpu_use_does_not_stop_a_session():
    dips = (90.0,) * 20 + (0.0,) * 35 + (90.0,) * 20 + (0.0,) * 25
    s = Session(1, "hand-made", 0, 1, len(dips), (False,) * len(dips), dips, NEVER_BACK)
    result = simulate([s], GPU)
    assert result.ran_min == [len(dips)]
    assert result.warnings == 1


def test_sessions_without_gpus_fall_back_to_the_activity_rule():
    cpu_only = [session(active=False, gpu_pct=0, gpus=0)]
    assert simulate(cpu_only, GPU).ran_min == [60]
    assert simulate(cpu_only, GPU).allocated_gpu_h == 0


def test_a_stop_right_after_gpu_use_counts_as_wrongful():
    busy_then_gone = (80.0,) * 30 + (0.0,) * 200
    active = (True,) * 5 + (False,) * 225
    s = Session(1, "hand-made", 0, 1, 230, active, busy_then_gone, NEVER_BACK)
    # Activity-only stops it at minute 65, long after the GPU went quiet: not wrongful.
    assert simulate([s], ACTIVITY).wrongful == 0
    # A 30-minute activity timeout stops it at 35, 5 minutes after GPU use: wrongful.
    assert simulate([s], Policy("short", "activity", idle_timeout=30)).wrongful == 1


@pytest.mark.parametrize("policy", [ACTIVITY, GPU])
def test_reclaimed_hours_are_allocated_under_none_minus_under_the_policy(policy):
    week = synthetic_week(3, 120)
    baseline = simulate(week, NONE)
    result = simulate(week, policy)
    assert baseline.stopped == 0
    assert baseline.ran_min == [s.natural_min for s in week]
    expected = baseline.allocated_gpu_h - result.allocated_gpu_h
    assert reclaimed_gpu_h(result, baseline) == pytest.approx(expected)
    ran_min = zip(week, result.ran_min, strict=True)
    by_session = sum(s.gpus * (s.natural_min - ran) for s, ran in ran_min)
    assert reclaimed_gpu_h(result, baseline) == pytest.approx(by_session / 60)
    assert reclaimed_gpu_h(result, baseline) > 0
    idle_reclaimed = baseline.idle_gpu_h - result.idle_gpu_h
    assert reclaimed_gpu_h(result, baseline) == pytest.approx(
        idle_reclaimed + work_cut_gpu_h(result, baseline)
    )


def test_on_the_default_week_only_activity_only_kills_long_trainings():
    week = synthetic_week(1, 400)
    trainings = {s.id for s in week if s.archetype == LONG_TRAINING}
    activity = simulate(week, ACTIVITY)
    gpu = simulate(week, GPU)
    assert trainings <= set(activity.wrongful_ids)
    assert gpu.wrongful == 0
    assert simulate(week, NONE).idle_gpu_h - gpu.idle_gpu_h > 0
