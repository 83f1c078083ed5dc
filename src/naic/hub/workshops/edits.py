"""Editing a workshop after it was made: what an instructor may change (`WorkshopEdit`: its
seats and its window), the rules an edit obeys beyond create's own (`edit_refusal`,
`policy_refusal`), the `scontrol update reservation …` that moves and resizes its Slurm
reservation (`reservation_update_argv`), and the sentence that says what changed. Pure: the
handlers (naic.hub.workshops.edit_api) do the I/O.

An edit is the stored workshop's spec with the new values, validated again as create
validates it (`WorkshopSpec`: the end after the start, at most 14 days, each session's hours
within the window), so the create-time rules hold after every edit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from naic.hub.catalogue import WorkshopPolicy
from naic.hub.workshops.rules import (
    MAX_SEATS,
    Reservation,
    WorkshopSpec,
    _slurm_time,
    reservation_argv,
    when,
)

#: What an edit may change, in the order sentences name them.
EDITABLE = ("seats", "start", "end")


class WorkshopEdit(BaseModel):
    """`PATCH /hub/api/naic/workshops/{name}` and `naic workshop edit`: any of these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seats: int | None = Field(None, ge=1, le=MAX_SEATS)
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, t: datetime | None) -> datetime | None:
        if t is not None and t.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2027-01-20T09:00+01:00 or …Z for UTC")
        return t.astimezone(UTC) if t is not None else None

    def changes(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def apply(self, spec: WorkshopSpec) -> WorkshopSpec:
        """The spec with these changes, validated as create validates (ValidationError)."""
        return WorkshopSpec.model_validate({**spec.model_dump(), **self.changes()})


def edit_refusal(
    *, title: str, old: WorkshopSpec, new: WorkshopSpec, seated: int, now: datetime
) -> str | None:
    """Pure: None if the edit from `old` to `new` may be made now with `seated` students in
    their seats, else the sentence why not, naming the field."""
    if new.seats < seated:
        return (
            f"`seats`: {seated} student{'s' * (seated != 1)} already hold a seat in {title}, "
            f"so its seats can go down to {seated}, not {new.seats}; remove a student first."
        )
    if new.start != old.start:
        if old.start <= now:
            return (
                f"`start`: {title} opened at {when(old.start)}; once it is open only its "
                "`end` can move."
            )
        if new.start < now:
            return f"`start` ({when(new.start)}) is in the past; choose a time from now on."
    if new.end != old.end and new.end <= now:
        return f"`end` ({when(new.end)}) is in the past; a workshop must end in the future."
    return None


def policy_refusal(
    old: WorkshopSpec, new: WorkshopSpec, policy: WorkshopPolicy | None
) -> str | None:
    """Pure: for an instructor (admins are not asked), why an edit goes above what the
    catalogue's `workshops` policy lets them reserve alone (None: it does not). Only what
    the edit raises counts: a workshop an admin approved above the policy may still shrink."""
    if policy is None:
        return None
    ask = "above what the site lets instructors reserve alone; ask an admin to make this edit."
    if new.seats > old.seats and new.seats > policy.max_seats:
        return f"`seats`: more than {policy.max_seats} seats ({new.seats}) is {ask}"
    old_h = (old.end - old.start).total_seconds() / 3600
    new_h = (new.end - new.start).total_seconds() / 3600
    if new_h > old_h + 1e-9 and new_h > policy.max_hours + 1e-9:
        field = "end" if new.end != old.end else "start"
        return f"`{field}`: a window longer than {policy.max_hours:g} hours ({new_h:g}) is {ask}"
    return None


def reservation_update_argv(
    r: Reservation, old: WorkshopSpec, new: WorkshopSpec
) -> list[str] | None:
    """Pure: `scontrol update reservation …` taking the reservation from `old` to `new` (`r`
    is the reservation `new` needs: its nodes or cores), as an argv list; None when Slurm has
    nothing to change. Only what changed is named: Slurm does not move the start of a
    reservation that is already active, even to the same time. IGNORE_JOBS: Slurm refuses
    any change to a reservation whose nodes run other jobs."""
    argv = ["scontrol", "update", f"ReservationName={r.name}"]
    if new.start != old.start:
        argv.append(f"StartTime={_slurm_time(new.start)}")
    if new.end != old.end:
        argv.append(f"EndTime={_slurm_time(new.end)}")
    if new.seats != old.seats and r.nodes:  # cores: `replaces_cores`
        argv.append(f"NodeCnt={r.nodes}")
    if len(argv) == 3:
        return None
    return [*argv, "Flags=IGNORE_JOBS"]


def replaces_cores(r: Reservation, old: WorkshopSpec, new: WorkshopSpec) -> bool:
    """Pure: whether a CPU workshop's edit needs more cores than it holds. Slurm updates no
    reservation of cores (`CoreCnt=` in an update: "Core-based reservation can not be
    updated"), so it is replaced: deleted, then created again (`replace_argvs`), which
    Slurm refuses while sessions run in it. Fewer seats keep their cores until the end."""
    return bool(r.cores) and new.seats > old.seats


def replace_argvs(
    r_new: Reservation, new: WorkshopSpec, r_old: Reservation, old: WorkshopSpec
) -> tuple[list[list[str]], list[str]]:
    """Pure: (delete and create for `new`, the create that puts `old` back)."""
    delete = ["scontrol", "delete", f"ReservationName={r_new.name}"]
    return (
        [delete, reservation_argv(r_new, new.start, new.end)],
        reservation_argv(r_old, old.start, old.end),
    )


def busy_sentence(title: str, exc: object) -> str:
    """Pure: why a CPU workshop's seats cannot go up while its sessions run."""
    return (
        f"`seats`: Slurm cannot give more cores to the reservation of {title} while sessions "
        f"run in it ({exc}); raise the seats before the window opens, or when no session runs."
    )


def edit_sentence(title: str, old: WorkshopSpec, new: WorkshopSpec) -> str:
    """Pure: what an edit changed, times in UTC with the zone said (as the pages show them)."""
    parts = []
    if new.seats != old.seats:
        parts.append(f"seats {old.seats} → {new.seats}")
    if (new.start, new.end) != (old.start, old.end):
        parts.append(
            f"window {when(new.start)} – {when(new.end)} (was {when(old.start)} – {when(old.end)})"
        )
    if not parts:
        return f"Nothing to change in {title}."
    return f"{title}: " + "; ".join(parts) + "."


def removal_sentence(title: str, student: str, *, stopped: bool) -> str:
    """Pure: what removing a student did."""
    session = "their session was stopped and " if stopped else ""
    return (
        f"{student} was removed from {title}: {session}their seat is free, and they can no "
        "longer join it or start its session."
    )


def removed_refusal(title: str) -> str:
    """Pure: what a removed student reads when they try the code again."""
    return (
        f"You were removed from the workshop {title} by its staff; ask the instructor if this "
        "is a mistake."
    )
