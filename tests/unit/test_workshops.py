"""Workshops, pure: specs against the catalogue, join codes, the window, the reservation's
scontrol line, the request a seat gives, and the CLI's arguments."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from naic.hub.catalogue import WorkshopPolicy
from naic.hub.workshops.api import rate_limited
from naic.hub.workshops.base import first_error
from naic.hub.workshops.cli import spec_of
from naic.hub.workshops.rules import (
    CODE_ALPHABET,
    WIPE_SCRIPT,
    Failures,
    WorkshopSpec,
    approval_reasons,
    awaiting_sentence,
    catalogue_problems,
    code_digest,
    code_key,
    guest_login_refusal,
    home_of,
    is_code_digest,
    join_refusal,
    needs_reset,
    new_code,
    normalise_code,
    project_refusal,
    real_peer,
    reservation_argv,
    reservation_for,
    reset_argvs,
)
from naic.spawners.request import RequestError, UserFacts, WorkshopPreset, parse_request
from tests.unit.examples import DEMO

#: The demo catalogue, with Saga's nodes of four A100s.
SAGA4 = DEMO.model_copy(
    update={
        "sites": {
            **DEMO.sites,
            "saga": DEMO.sites["saga"].model_copy(update={"gpus_per_node": {"a100": 4}}),
        }
    }
)
START = datetime(2027, 1, 20, 9, 0, tzinfo=UTC)
END = datetime(2027, 1, 20, 16, 0, tzinfo=UTC)


def spec(**kw) -> WorkshopSpec:
    base = dict(
        name="ml-intro",
        seats=40,
        start=START,
        end=END,
        resource="saga:a100",
        gpus=1,
        hours=3,
        material="https://github.com/naic/ml-intro.git",
        project="nn1234k",
    )
    return WorkshopSpec.model_validate({**base, **kw})


def test_codes_are_unguessable_and_forgiving_to_type() -> None:
    codes = {new_code() for _ in range(1000)}
    assert len(codes) == 1000
    code = next(iter(codes))
    assert len(code) == 11 and code[5] == "-"
    assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert normalise_code(code.lower().replace("-", " ")) == code
    assert normalise_code("  abcde fghjk ") == "ABCDE-FGHJK"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": START}, "`end` must be after `start`."),
        ({"hours": 8}, "`hours` (8) must fit in the window (7 hours)."),
        ({"start": "2027-01-20T09:00"}, "`start`: needs a time zone"),
        ({"name": "ML intro"}, "`name`: String should match pattern"),
        ({"name": "join"}, "`name`: `join` is the name of the page that takes codes"),
        ({"seats": 0}, "`seats`: Input should be greater than or equal to 1."),
        ({"material": "http://x/y; rm -rf ~"}, "`material` must be an http(s):// or git@ URL"),
    ],
)
def test_bad_specs_are_refused_with_a_sentence_naming_the_field(change, message) -> None:
    with pytest.raises(ValidationError) as err:
        spec(**change)
    assert first_error(err.value).startswith(message)


def test_the_catalogue_must_host_the_workshop() -> None:
    assert catalogue_problems(spec(), DEMO) == []
    assert catalogue_problems(spec(gpus=9), DEMO) == [
        "`gpus` must be at most 4 on NVIDIA A100; you asked for 9."
    ]
    (problem,) = catalogue_problems(spec(resource="saga:h100"), DEMO)
    assert problem.startswith("`resource` 'saga:h100' is not in the catalogue; choose one of:")
    (local,) = catalogue_problems(spec(resource="local:cpu-small", gpus=0), DEMO)
    assert local == "`resource` 'local:cpu-small' is not on a Slurm site; workshops reserve Slurm."


def test_gpu_workshops_reserve_whole_nodes_within_what_the_cluster_has() -> None:
    with pytest.raises(ValueError, match="does not say how many a100 GPUs a node of Saga"):
        reservation_for(spec(), DEMO, users=(), nodes_in_partition=8)
    r = reservation_for(spec(seats=10, gpus=1), SAGA4, users=(), nodes_in_partition=8)
    assert (r.name, r.partition, r.nodes, r.cores, r.accounts) == (
        "naic-ws-ml-intro",
        "accel",
        3,  # 10 GPUs on nodes of 4
        0,
        ("nn1234k",),
    )
    with pytest.raises(ValueError) as err:
        reservation_for(spec(seats=40, gpus=2), SAGA4, users=(), nodes_in_partition=8)
    assert str(err.value) == (
        "40 seats × 2 GPUs need 20 nodes of 4 GPUs, and NVIDIA A100 has 8; lower the seats or "
        "GPUs (at most 32 GPUs in all)."
    )
    cpu = reservation_for(spec(gpus=0), SAGA4, users=("ola",), nodes_in_partition=1)
    assert (cpu.nodes, cpu.cores, cpu.users) == (0, 40 * 8, ("ola",))


def test_the_reservation_is_one_argv_without_a_shell() -> None:
    r = reservation_for(spec(seats=4), SAGA4, users=(), nodes_in_partition=8)
    argv = reservation_argv(r, START, END)
    assert argv[:4] == ["scontrol", "create", "reservation", "ReservationName=naic-ws-ml-intro"]
    assert argv[6:] == ["PartitionName=accel", "NodeCnt=1", "Accounts=nn1234k"]
    assert argv[4].startswith("StartTime=2027-01-2") and argv[5].startswith("EndTime=2027-01-2")


def test_the_window_and_the_seats() -> None:
    def refusal(now, taken=3, already_in=False, ended=False):
        return join_refusal(
            title="ML intro",
            start=START,
            end=END,
            ended=ended,
            seats=10,
            taken=taken,
            already_in=already_in,
            now=now,
        )

    assert refusal(START) is None
    assert refusal(START - timedelta(minutes=1)) == (
        "The workshop ML intro opens at 20 Jan 2027 09:00 UTC; come back then with the same code."
    )
    assert refusal(END) == (
        "The workshop ML intro ended at 20 Jan 2027 16:00 UTC; its code no longer works."
    )
    assert refusal(START, ended=True).startswith("The workshop ML intro ended")
    assert refusal(START, taken=10) == (
        "The workshop ML intro is full (10 seats); ask the instructor whether another seat can "
        "be added."
    )
    assert refusal(START, taken=10, already_in=True) is None  # the same seat again


def test_a_seat_gives_the_preset_session_in_its_reservation_and_nothing_else() -> None:
    seat = WorkshopPreset(
        name="ml-intro",
        title="ML intro",
        site="saga",
        resource="a100",
        gpus=1,
        hours=3.0,
        project="nn1234k",
        reservation="naic-ws-ml-intro",
    )
    student = UserFacts(name="kari", workshops=(seat,))  # in no project of her own
    req = parse_request({"workshop": "ml-intro"}, DEMO, student)
    assert (req.site, req.resource, req.gpus, req.hours, req.project) == (
        "saga",
        "a100",
        1,
        3.0,
        "nn1234k",
    )
    assert (req.reservation, req.workshop) == ("naic-ws-ml-intro", "ml-intro")
    with pytest.raises(RequestError, match="only"):
        parse_request({"workshop": "ml-intro", "gpus": 4}, DEMO, student)
    with pytest.raises(RequestError, match="You hold no seat in a workshop"):
        parse_request({"workshop": "ml-intro"}, DEMO, UserFacts(name="ola"))


def test_redemption_attempts_are_limited_per_user() -> None:
    results = [rate_limited("mallory", now=1000.0 + i) for i in range(11)]
    assert results == [False] * 10 + [True]
    assert rate_limited("mallory", now=1000.0 + 601 + 10) is False  # the window moved on
    assert rate_limited("kari", now=1000.0) is False


def test_the_cli_reads_times_without_a_zone_as_utc_as_the_web_form_does() -> None:
    args = argparse.Namespace(
        name="ml-intro",
        title="",
        seats=40,
        start="2027-01-20T09:00Z",
        end="2027-01-20T16:00",
        resource="saga:a100",
        gpus=1,
        hours=3.0,
        material="",
        project=None,
    )
    body = spec_of(args)
    assert body["start"] == "2027-01-20T09:00:00+00:00"
    assert body["end"] == "2027-01-20T16:00:00+00:00"
    args.end = "2027-01-20T17:00+01:00"
    assert spec_of(args)["end"] == "2027-01-20T17:00:00+01:00"
    assert "project" not in body


def test_a_workshop_account_is_reset_once_its_window_passed_and_not_again() -> None:
    def due(now, reset_at=None):
        return needs_reset(expires_at=END, reset_at=reset_at, now=now)

    assert not due(END - timedelta(seconds=1))
    assert due(END) and due(END + timedelta(days=3))
    assert not due(END + timedelta(minutes=2), reset_at=END + timedelta(minutes=1))
    # A reset from before this window (the account's previous holder) does not count.
    assert due(END + timedelta(minutes=2), reset_at=START)


def test_a_one_time_password_logs_in_once_and_says_why_not() -> None:
    def refusal(known=True, ok=True, used_at=None, now=START):
        return guest_login_refusal(
            known=known, password_ok=ok, expires_at=END, used_at=used_at, now=now
        )

    assert refusal() is None
    wrong = "That workshop account or password is not right."
    assert refusal(ok=False) == refusal(known=False) == wrong
    assert refusal(ok=False, used_at=START) == wrong  # nothing told to a guesser
    assert refusal(used_at=START) == (
        "This one-time password was already used, at 20 Jan 2027 09:00 UTC; log in from the "
        "browser you used then, or ask the instructor for a new account."
    )
    assert refusal(used_at=START, now=END) == (
        "This workshop account expired at 20 Jan 2027 16:00 UTC, at the end of the workshop."
    )


def test_a_reset_runs_as_the_account_itself_without_user_strings_in_a_shell() -> None:
    kill, cancel, wipe = reset_argvs("guest01", "/home/guest01", root_here=True)
    assert kill == ["runuser", "-u", "guest01", "--", "scancel", "--signal=KILL", "--user=guest01"]
    assert cancel == ["runuser", "-u", "guest01", "--", "scancel", "--user=guest01"]
    me = ["runuser", "-u", "guest01", "--"]
    assert wipe == [*me, "sh", "-c", WIPE_SCRIPT, "naic-wipe", "/home/guest01"]
    assert "guest01" not in WIPE_SCRIPT and '"$1"' in WIPE_SCRIPT
    remote = reset_argvs("guest01", "/home/guest01", root_here=False)
    assert all(argv[:5] == ["sudo", "-n", "-u", "guest01", "--"] for argv in remote)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("guest01:x:1013:1013::/:/bin/bash", "The home of guest01 is '/', which the hub"),
        ("guest01:x:1013:1013::/home:/bin/bash", "The home of guest01 is '/home', which"),
        ("guest01:x:1013:1013::/home/../etc:/bin/sh", "The home of guest01 is '/home/../etc'"),
        ("guest01:x:1013:1013::home/guest01:/bin/sh", "The home of guest01 is 'home/guest01'"),
        ("guest02:x:1014:1014::/home/guest02:/bin/sh", "The system does not know the account"),
        ("", "The system does not know the account guest01."),
    ],
)
def test_only_a_home_of_its_own_is_emptied(line: str, message: str) -> None:
    assert home_of("guest01:x:1013:1013::/home/guest01:/bin/bash\n", "guest01") == ("/home/guest01")
    with pytest.raises(ValueError, match=re.escape(message)):
        home_of(line, "guest01")


# -- join codes kept as hashes ----------------------------------------------------------------


def test_a_code_is_kept_as_a_keyed_hash_of_what_students_type():
    key = code_key(b"cookie secret")
    digest = code_digest("ABCDE-FGHJK", key)
    assert is_code_digest(digest) and not is_code_digest("ABCDE-FGHJK")
    assert code_digest(" abcde fghjk ", key) == digest
    assert code_digest("ABCDE-FGHJK", code_key(b"another hub")) != digest
    assert "ABCDE" not in digest


# -- password guessing --------------------------------------------------------------------------


def test_the_real_peer_is_what_the_proxy_appended_never_what_the_client_wrote():
    # Through the hub's own proxy (loopback): the last X-Forwarded-For entry it appended.
    assert real_peer("127.0.0.1", "6.6.6.6, 10.0.0.7") == "10.0.0.7"
    assert real_peer("::1", "10.0.0.7") == "10.0.0.7"
    # nginx, then configurable-http-proxy, both on the hub's machine (the Ansible site).
    assert real_peer("127.0.0.1", "6.6.6.6, 127.0.0.1, 10.0.0.7,127.0.0.1") == "10.0.0.7"
    # From anywhere else, the socket's address, whatever the headers say.
    assert real_peer("10.1.2.3", "6.6.6.6") == "10.1.2.3"
    assert real_peer("127.0.0.1", None) == "127.0.0.1"
    assert real_peer("", None) == "local"  # a Unix socket


def test_only_failures_use_up_the_budget_and_they_age_out():
    f = Failures(limit=3, window_s=600)
    assert [f.take("guest01", t) for t in (0.0, 1.0, 2.0)] == [True] * 3
    assert f.take("guest01", 3.0) is False and f.blocked("guest01", 3.0)
    assert f.take("guest02", 3.0) is True  # another key, its own budget
    assert f.take("guest01", 600.0) is True  # the first failure aged out
    g = Failures(limit=2, window_s=600)
    for t in (0.0, 1.0, 2.0, 3.0):  # successes: taken, then forgiven
        assert g.take("guest03", t)
        g.forgive("guest03", t)
    assert not g.blocked("guest03", 4.0)


# -- who may charge what, and what needs an admin ----------------------------------------------


def test_an_instructor_charges_only_their_own_projects():
    assert project_refusal(None, [], admin=False) is None
    assert project_refusal("course", ["course"], admin=False) is None
    assert project_refusal("course", [], admin=True) is None
    assert project_refusal("course", ["other"], admin=False) == (
        "You are not a member of the project course, so your workshops cannot charge it; "
        "choose one of your projects, or none."
    )


def test_a_workshop_above_the_policy_needs_an_admin():
    policy = WorkshopPolicy(max_seats=5, max_gpus_per_seat=1, max_hours=8)  # the window: 7 h
    small = spec(seats=5)
    assert approval_reasons(small, None, active=99) == []
    assert approval_reasons(small, policy, active=0) == []
    big = spec(seats=6, gpus=2)
    assert approval_reasons(big, policy, active=2) == [
        "more than 5 seats (6)",
        "more than 1 GPUs a seat (2)",
        "more than 2 workshops of one instructor at once",
    ]
    long = spec(seats=5, end=small.start + timedelta(hours=9))
    assert approval_reasons(long, policy, active=0) == ["a window longer than 8 hours (9)"]
    assert awaiting_sentence(["more than 5 seats (6)"]).startswith(
        "This workshop asks for more than 5 seats (6), above what the site lets instructors"
    )


def test_a_workshop_awaiting_approval_takes_nobody():
    t = datetime(2027, 1, 20, 9, tzinfo=UTC)
    facts = dict(title="ML", start=t, end=t + timedelta(hours=2), ended=False, seats=3, taken=0)
    assert join_refusal(**facts, already_in=False, now=t, awaiting_approval=True) == (
        "The workshop ML awaits an admin's approval; its code works once approved."
    )
    assert join_refusal(**facts, already_in=False, now=t) is None
