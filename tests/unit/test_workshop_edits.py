"""Editing a workshop after it was made (#19, item 7), pure: the edit re-validated as create
validates, seats never below those seated, a window neither past nor too long, the policy
only for what an edit raises, the `scontrol update` line that moves and resizes the
reservation, and the sentences (times in UTC, the zone said)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from naic.hub.catalogue import WorkshopPolicy
from naic.hub.workshops.base import first_error
from naic.hub.workshops.cli import CLIError, describe, edit_of
from naic.hub.workshops.edits import (
    WorkshopEdit,
    busy_sentence,
    edit_refusal,
    edit_sentence,
    policy_refusal,
    removal_sentence,
    removed_refusal,
    replace_argvs,
    replaces_cores,
    reservation_update_argv,
)
from naic.hub.workshops.rules import reservation_for
from tests.unit.test_workshops import END, SAGA4, START, spec

BEFORE = START - timedelta(days=1)  # "now", the day before the workshop
DURING = START + timedelta(hours=2)  # "now", while it is open


def edited(**changes):
    return WorkshopEdit.model_validate(changes).apply(spec(seats=10, hours=1))


def refusal(new, *, seated=0, now=BEFORE):
    old = spec(seats=10, hours=1)
    return edit_refusal(title="Intro", old=old, new=new, seated=seated, now=now)


def test_an_edit_changes_only_what_it_names_and_is_validated_as_create_is() -> None:
    new = edited(seats=12)
    assert (new.seats, new.start, new.end, new.hours) == (12, START, END, 1)
    later = edited(start="2027-01-21T10:00+01:00", end="2027-01-21T17:00+01:00")
    assert (later.start, later.end) == (START + timedelta(days=1), END + timedelta(days=1))
    assert later.start.tzinfo == UTC
    for changes, message in [
        ({"end": "2027-01-20T08:00Z"}, "`end` must be after `start`."),
        ({"end": "2027-02-20T08:00Z"}, "A workshop lasts at most 14 days."),
        ({"end": "2027-01-20T09:30Z"}, "`hours` (1) must fit in the window (0.5 hours)."),
        ({"seats": 0}, "`seats`: Input should be greater than or equal to 1."),
        ({"seats": "many"}, "`seats`: Input should be a valid integer, unable to parse string"),
        ({"start": "2027-01-20T09:00"}, "`start`: needs a time zone"),
        ({"gpus": 4}, "`gpus`: Extra inputs are not permitted."),
        ({"title": "x"}, "`title`: Extra inputs are not permitted."),
    ]:
        with pytest.raises(ValidationError) as err:
            edited(**changes)
        assert first_error(err.value).startswith(message), first_error(err.value)


def test_seats_go_down_to_those_seated_and_no_further() -> None:
    assert refusal(edited(seats=7), seated=7) is None
    assert refusal(edited(seats=6), seated=7) == (
        "`seats`: 7 students already hold a seat in Intro, so its seats can go down to 7, "
        "not 6; remove a student first."
    )
    assert refusal(edited(seats=40), seated=7) is None


def test_a_window_in_the_past_or_an_open_workshops_start_is_refused() -> None:
    past = edited(start=(BEFORE - timedelta(hours=1)).isoformat())
    assert refusal(past).startswith("`start` (19 Jan 2027 08:00 UTC) is in the past")
    moved = edited(start=(START + timedelta(hours=1)).isoformat())
    assert refusal(moved, now=DURING) == (
        "`start`: Intro opened at 20 Jan 2027 09:00 UTC; once it is open only its `end` can move."
    )
    longer = edited(end=(END + timedelta(hours=1)).isoformat())
    assert refusal(longer, now=DURING) is None
    shorter = edited(end=(DURING - timedelta(minutes=1)).isoformat())
    assert refusal(shorter, now=DURING) == (
        "`end` (20 Jan 2027 10:59 UTC) is in the past; a workshop must end in the future."
    )
    assert refusal(moved) is None  # before it opens, both ends move


def test_the_policy_refuses_only_what_an_edit_raises() -> None:
    policy = WorkshopPolicy(max_seats=10, max_gpus_per_seat=1, max_hours=8)  # the window: 7 h
    old = spec(seats=10)
    assert policy_refusal(old, old.model_copy(update={"seats": 11}), policy) == (
        "`seats`: more than 10 seats (11) is above what the site lets instructors reserve "
        "alone; ask an admin to make this edit."
    )
    nine = WorkshopEdit(end=END + timedelta(hours=2)).apply(old)
    assert policy_refusal(old, nine, policy).startswith(
        "`end`: a window longer than 8 hours (9) is above what the site lets"
    )
    # An admin approved 40 seats: the instructor may still lower them, or move the window.
    big = spec(seats=40)
    assert policy_refusal(big, big.model_copy(update={"seats": 30}), policy) is None
    assert policy_refusal(old, old.model_copy(update={"seats": 11}), None) is None


def test_the_reservation_is_updated_with_only_what_changed() -> None:
    old = spec(seats=4)  # 1 node of 4 A100s
    new = WorkshopEdit(seats=6, end=END + timedelta(hours=1)).apply(old)
    r = reservation_for(new, SAGA4, users=(), nodes_in_partition=8)
    argv = reservation_update_argv(r, old, new)
    assert argv[:3] == ["scontrol", "update", "ReservationName=naic-ws-ml-intro"]
    assert argv[3].startswith("EndTime=2027-01-2")
    assert argv[4:] == ["NodeCnt=2", "Flags=IGNORE_JOBS"]
    assert not any(a.startswith("StartTime=") for a in argv)  # an active one's start stays
    assert reservation_update_argv(r, old, old) is None


def test_more_cores_replace_the_reservation_fewer_keep_it() -> None:
    # Slurm updates no reservation of cores ("Core-based reservation can not be updated").
    cpu_old = spec(seats=4, gpus=0)
    more = cpu_old.model_copy(update={"seats": 5})
    r_more = reservation_for(more, SAGA4, users=(), nodes_in_partition=1)
    r_old = reservation_for(cpu_old, SAGA4, users=(), nodes_in_partition=1)
    assert replaces_cores(r_more, cpu_old, more)
    assert reservation_update_argv(r_more, cpu_old, more) is None  # no CoreCnt= update
    (delete, create), back = replace_argvs(r_more, more, r_old, cpu_old)
    assert delete == ["scontrol", "delete", "ReservationName=naic-ws-ml-intro"]
    assert create[:4] == ["scontrol", "create", "reservation", "ReservationName=naic-ws-ml-intro"]
    assert "CoreCnt=40" in create and "CoreCnt=32" in back
    fewer = cpu_old.model_copy(update={"seats": 3})
    r_fewer = reservation_for(fewer, SAGA4, users=(), nodes_in_partition=1)
    assert not replaces_cores(r_fewer, cpu_old, fewer)
    assert reservation_update_argv(r_fewer, cpu_old, fewer) is None  # the cores stay held
    gpu = reservation_for(spec(seats=6), SAGA4, users=(), nodes_in_partition=8)
    assert not replaces_cores(gpu, spec(seats=4), spec(seats=6))
    assert busy_sentence("Intro", "Reservation busy").startswith(
        "`seats`: Slurm cannot give more cores to the reservation of Intro while sessions run"
    )


def test_the_sentences_say_what_changed_in_utc() -> None:
    old = spec(seats=10)
    new = WorkshopEdit(seats=12, end=END + timedelta(hours=1)).apply(old)
    assert edit_sentence("Intro", old, new) == (
        "Intro: seats 10 → 12; window 20 Jan 2027 09:00 UTC – 20 Jan 2027 17:00 UTC (was "
        "20 Jan 2027 09:00 UTC – 20 Jan 2027 16:00 UTC)."
    )
    assert edit_sentence("Intro", old, old) == "Nothing to change in Intro."
    assert removal_sentence("Intro", "ola", stopped=True) == (
        "ola was removed from Intro: their session was stopped and their seat is free, and "
        "they can no longer join it or start its session."
    )
    assert removed_refusal("Intro").startswith("You were removed from the workshop Intro")


def test_the_cli_edit_reads_times_as_create_does_and_needs_a_change() -> None:
    args = argparse.Namespace(seats=None, start=None, end="2027-01-20T17:00Z")
    assert edit_of(args) == {"end": "2027-01-20T17:00:00+00:00"}
    local = edit_of(argparse.Namespace(seats=12, start="2027-01-20T10:00", end=None))
    assert local["seats"] == 12 and datetime.fromisoformat(local["start"]).tzinfo is not None
    with pytest.raises(CLIError, match="say what to change: --seats, --start or --end"):
        edit_of(argparse.Namespace(seats=None, start=None, end=None))
    with pytest.raises(CLIError, match="--end 'soon' is not a time"):
        edit_of(argparse.Namespace(seats=None, start=None, end="soon"))
    shown = describe(
        {"name": "x", "title": "X", "seats": 2, "start": "2027-01-20T09:00+00:00",
         "end": "2027-01-22T16:00+00:00", "resource": "saga:a100", "gpus": 0, "hours": 1}
    )  # fmt: skip
    assert "–2027-01-2" in shown  # a window over days shows the end's date, and the zone
