"""Budget periods and the sentence that refuses a session over a project's GPU-hour budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from naic.hub.usage.budget import budget_refusal, next_reset, period_start


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "reset"),
    [
        ("month", utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
        ("month", utc(2027, 1, 1), utc(2027, 1, 1), utc(2027, 2, 1)),
        ("month", utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),
        ("month", utc(2026, 3, 31, 23, 59), utc(2026, 3, 1), utc(2026, 4, 1)),
        ("quarter", utc(2026, 3, 31, 23, 59), utc(2026, 1, 1), utc(2026, 4, 1)),
        ("quarter", utc(2026, 4, 1), utc(2026, 4, 1), utc(2026, 7, 1)),
        ("quarter", utc(2026, 9, 30, 12), utc(2026, 7, 1), utc(2026, 10, 1)),
        ("quarter", utc(2026, 12, 31, 23, 59), utc(2026, 10, 1), utc(2027, 1, 1)),
        ("year", utc(2026, 12, 31, 23, 59), utc(2026, 1, 1), utc(2027, 1, 1)),
        ("year", utc(2026, 1, 1), utc(2026, 1, 1), utc(2027, 1, 1)),
        ("never", utc(2026, 6, 15), None, None),
    ],
)
def test_period_start_and_next_reset(period, now, start, reset):
    assert period_start(period, now) == start
    assert next_reset(period, now) == reset


def test_periods_follow_utc_not_the_callers_zone():
    # 00:30 on 1 January in Oslo is still 31 December in UTC: last year's budget.
    oslo_new_year = datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert period_start("year", oslo_new_year) == utc(2026, 1, 1)
    assert next_reset("month", oslo_new_year) == utc(2027, 1, 1)
    assert period_start("month", oslo_new_year).tzinfo is UTC


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="month, quarter, year, never, not 'weekly'"):
        period_start("weekly", utc(2026, 1, 1))
    with pytest.raises(ValueError, match="weekly"):
        budget_refusal("demo", None, 0, 1, "weekly", utc(2026, 1, 1))


NOW = utc(2026, 11, 27, 4, 0)


@pytest.mark.parametrize(
    ("budget", "used", "asked"),
    [
        (None, 5000, 10),  # no budget: no limit
        (1, 0, 0.5),
        (1, 0.5, 0.5),  # exactly full fits
        (0.3, 0.1 + 0.2, 0),  # float sums must not refuse an exact fit
        (1000, 999, 1),
    ],
)
def test_sessions_that_fit_are_not_refused(budget, used, asked):
    assert budget_refusal("demo", budget, used, asked, "year", NOW) is None


@pytest.mark.parametrize(
    ("budget", "used", "asked", "period", "sentence"),
    [
        (
            1,
            0,
            2,
            "year",
            "Project demo has used 0 of its 1 GPU-hours this year; this session would need 2 "
            "more. The budget resets on 1 January 2027.",
        ),
        (
            1,
            0.6,
            2,
            "year",
            "Project demo has used 0.6 of its 1 GPU-hours this year; this session would need 2 "
            "more. The budget resets on 1 January 2027.",
        ),
        (
            100,
            99.96,
            0.25,
            "month",
            "Project demo has used 100 of its 100 GPU-hours this month; this session would need "
            "0.2 more. The budget resets on 1 December 2026.",
        ),
        (
            1000,
            998.5,
            12,
            "quarter",
            "Project demo has used 998.5 of its 1000 GPU-hours this quarter; this session would "
            "need 12 more. The budget resets on 1 January 2027.",
        ),
        (
            1.5,
            1.5,
            4,
            "never",
            "Project demo has used 1.5 of its 1.5 GPU-hours; this session would need 4 more; it "
            "does not reset: ask the project's PI or support for more GPU-hours.",
        ),
        (
            0,
            0,
            0.5,
            "month",
            "Project demo has used 0 of its 0 GPU-hours this month; this session would need 0.5 "
            "more. The budget resets on 1 December 2026.",
        ),
    ],
)
def test_refusal_sentences(budget, used, asked, period, sentence):
    assert budget_refusal("demo", budget, used, asked, period, NOW) == sentence


def test_what_running_and_queued_sessions_hold_counts_and_is_named() -> None:
    assert budget_refusal("demo", 10, 2, 4, "year", NOW, held=4) is None  # exactly full
    assert budget_refusal("demo", 10, 2, 4.5, "year", NOW, held=4) == (
        "Project demo has used 2 of its 10 GPU-hours this year, and its running or queued "
        "sessions may use 4 more; this session would need 4.5 more. The budget resets on "
        "1 January 2027."
    )
