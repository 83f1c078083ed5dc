"""Budgets, pure: when a project's budget period starts and resets, and whether a session
fits (None) or the sentence that says why not. The spawner and the hub ask these."""

from __future__ import annotations

from datetime import UTC, datetime

PERIODS = {"month": 1, "quarter": 3, "year": 12, "never": None}  # length in months
MONTHS = (
    "January February March April May June July August September October November December"
).split()  # not %B: that follows the locale


def _months(period: str) -> int | None:
    if period not in PERIODS:
        raise ValueError(f"A budget period is one of {', '.join(PERIODS)}, not {period!r}.")
    return PERIODS[period]


def period_start(period: str, now: datetime) -> datetime | None:
    """The first day, 00:00 UTC, of the period that contains ``now``; None for "never"."""
    months = _months(period)
    if months is None:
        return None
    now = now.astimezone(UTC)
    first_month = (now.month - 1) // months * months + 1
    return datetime(now.year, first_month, 1, tzinfo=UTC)


def next_reset(period: str, now: datetime) -> datetime | None:
    """The start of the period after the one that contains ``now``; None for "never"."""
    start = period_start(period, now)
    if start is None:
        return None
    years, month0 = divmod(start.month - 1 + PERIODS[period], 12)
    return start.replace(year=start.year + years, month=month0 + 1)


def _brief(number: float) -> str:
    text = f"{number:.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def budget_refusal(
    project: str,
    budget: float | None,
    used: float,
    asked: float,
    period: str,
    now: datetime,
    held: float = 0.0,
) -> str | None:
    """None if the session fits the project's budget, else the sentence that says why not.
    `held`: what the project's running and queued sessions may still use."""
    reset = next_reset(period, now)  # validates the period even when the session fits
    # A hair of tolerance: sums of float hours must not refuse a session that fits exactly.
    if budget is None or used + held + asked <= budget + 1e-9:
        return None
    when = "" if reset is None else f" this {period}"
    holding = (
        f", and its running or queued sessions may use {_brief(held)} more" if held > 1e-9 else ""
    )
    head = (
        f"Project {project} has used {_brief(used)} of its {_brief(budget)} GPU-hours{when}"
        f"{holding}; this session would need {_brief(asked)} more"
    )
    if reset is None:
        return f"{head}; it does not reset: ask the project's PI or support for more GPU-hours."
    return f"{head}. The budget resets on {reset.day} {MONTHS[reset.month - 1]} {reset.year}."
