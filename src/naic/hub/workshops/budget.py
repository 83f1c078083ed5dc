"""Whether a workshop's seats fit its project's GPU-hour budget: every seat may use its
GPUs for its hours, so seats × GPUs × hours must fit what the project has left this period
(what is used, by the ledger or, at `accounting: slurm` sites, by Slurm's accounting, and
what running and queued sessions hold). At create time and in `naic workshop check`."""

from __future__ import annotations

from datetime import datetime

from naic.hub.catalogue import Catalogue
from naic.hub.usage import accounting
from naic.hub.usage.ledger import Ledger, period_start
from naic.hub.usage.slurm_usage import accounted_sites


def _n(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def seat_hours(seats: int, gpus: int, hours: float) -> float:
    return seats * gpus * hours


def seats_sentence(seats: int, gpus: int, hours: float) -> str:
    """Pure: `40 seats × 1 GPU × 6 h = 240 GPU-hours`."""
    return (
        f"{seats} seat{'s' * (seats != 1)} × {gpus} GPU{'s' * (gpus != 1)} × {_n(hours)} h = "
        f"{_n(seat_hours(seats, gpus, hours))} GPU-hours"
    )


def budget_refusal(
    *, seats: int, gpus: int, hours: float, project: str | None, left: float | None, period: str
) -> str | None:
    """Pure: None if every seat's GPU-hours fit what `project` has `left` (None: no budget),
    else the sentence with the numbers."""
    if project is None or left is None or gpus == 0:
        return None
    if seat_hours(seats, gpus, hours) <= left + 1e-9:
        return None
    when = "" if period == "never" else f" this {period}"
    return (
        f"{seats_sentence(seats, gpus, hours)}, but project {project} has {_n(max(left, 0))} "
        f"left{when}; lower the seats, GPUs or hours, or ask the project's PI for more."
    )


def budget_fits(
    *, seats: int, gpus: int, hours: float, project: str | None, left: float | None, period: str
) -> str:
    """Pure: the sentence that says it fits (for `naic workshop check`)."""
    if project is None:
        return "the sessions charge no project"
    if gpus == 0:
        return "CPU sessions use no GPU-hours"
    if left is None:
        return f"project {project} has no GPU-hour limit"
    when = "" if period == "never" else f" this {period}"
    return f"{seats_sentence(seats, gpus, hours)}; project {project} has {_n(left)} left{when}"


async def gpu_hours_left(cat: Catalogue, ledger: Ledger, project: str, now: datetime):
    """What `project` has left this period (None: no limit), counted as a session's budget
    check counts it; RuntimeError when Slurm's accounting does not answer."""
    p = cat.projects[project]
    if p.gpu_hours is None:
        return None
    slurm = await accounting.slurm_hours(cat, project, now)
    since = period_start(p.budget_period, now)
    used, held = ledger.committed(project, since, not_at=accounted_sites(cat))
    return p.gpu_hours - sum(slurm.values()) - used - held


async def seats_budget(cat: Catalogue, ledger: Ledger, spec, now: datetime) -> tuple[bool, str]:
    """(fits, the sentence) for a workshop's spec (or a stored workshop: seats, gpus,
    hours, project). RuntimeError when Slurm's accounting does not answer."""
    if spec.project is None or spec.gpus == 0:
        left = None
    else:
        left = await gpu_hours_left(cat, ledger, spec.project, now)
    period = cat.projects[spec.project].budget_period if spec.project else "never"
    args = dict(
        seats=spec.seats, gpus=spec.gpus, hours=spec.hours, project=spec.project, left=left,
        period=period,
    )  # fmt: skip
    refusal = budget_refusal(**args)
    return (refusal is None, refusal or budget_fits(**args))
