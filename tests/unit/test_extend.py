"""Extending a running session: the policy's sentences, Slurm's words, the session's client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from naic.extensions.sources.hubclient import Extension, HubError, HubSource
from naic.hub.app.config import Settings, build_config
from naic.hub.sessions.extend import EXTEND_HANDLERS, asked_hours, extension_refusal
from naic.hub.usage.ledger import budget_refusal
from naic.spawners.slurm_text import minutes_from_slurm, reservation_end
from tests.unit.examples import TC

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
A100 = dict(resource_title="NVIDIA A100", max_extensions=2, max_hours=24)


def refusal(**facts) -> str | None:
    return extension_refusal(**{**A100, "used": 0, "hours_total": 1, "asked": 1, **facts})


def test_an_extension_within_policy_is_allowed() -> None:
    assert refusal() is None
    assert refusal(used=1, hours_total=22, asked=2) is None  # exactly up to max_hours


def test_a_resource_without_extensions_says_so() -> None:
    assert refusal(max_extensions=0) == (
        "Sessions on NVIDIA A100 cannot be extended; save your work and start a new session "
        "when this one ends."
    )


@pytest.mark.parametrize(
    ("most", "used", "sentence"),
    [
        (2, 2, "This resource allows at most 2 extensions; you have used 2."),
        (1, 1, "This resource allows at most 1 extension; you have used 1."),
    ],
)
def test_no_extensions_left(most: int, used: int, sentence: str) -> None:
    assert refusal(max_extensions=most, used=used) == sentence


def test_no_session_lasts_longer_than_max_hours() -> None:
    assert refusal(hours_total=23.5) == (
        "Sessions on NVIDIA A100 may last at most 24 hours; this one already has 23.5."
    )
    assert refusal(hours_total=23.5, asked=0.5) is None


def test_a_reservation_bounds_the_new_end() -> None:
    end = NOW + timedelta(hours=1)
    res = dict(reservation="ws-2026", reservation_ends=NOW + timedelta(hours=2))
    assert refusal(**res, new_end=end + timedelta(hours=1)) is None  # exactly at its end
    assert refusal(**res, new_end=end + timedelta(hours=1, minutes=1)) == (
        "This session runs in the reservation ws-2026, which ends at 2026-11-27 11:00 UTC; "
        "it cannot be extended past that."
    )
    assert refusal(reservation="ws-2026", reservation_ends=None, new_end=end) == (
        "This session runs in the reservation ws-2026, which the scheduler no longer knows, "
        "so it cannot be extended."
    )


def test_the_budget_sentence_is_the_ledgers() -> None:
    budget = budget_refusal("demo", 1, 0.5, 1.5, "month", NOW)
    assert refusal(budget=budget) == (
        "Project demo has used 0.5 of its 1 GPU-hours this month; this session would need "
        "1.5 more. The budget resets on 1 December 2026."
    )
    # Policy first: a student cannot fix a budget for an extension that is not allowed.
    assert refusal(budget=budget, used=2).startswith("This resource allows")


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("30:00", 30),
        ("1:30:00", 90),
        ("2-00:00:00", 2880),
        ("1-02", 1560),
        ("45", 45),
        ("0:30", 1),  # 30 seconds: a started minute counts
        ("UNLIMITED", None),
        ("N/A", None),
        ("", None),
    ],
)
def test_slurm_durations(text: str, minutes: int | None) -> None:
    assert minutes_from_slurm(text) == minutes


def test_reservation_end_from_scontrol() -> None:
    out = (
        "ReservationName=ws-2026 StartTime=2026-11-27T08:00:00 EndTime=2026-11-27T12:00:00 "
        "Duration=04:00:00\n   Nodes=c1 NodeCnt=1 Users=alice,bob State=ACTIVE\n"
    )
    got = reservation_end(out)
    assert got == datetime.fromisoformat("2026-11-27T12:00:00").astimezone(UTC)
    assert reservation_end("Reservation ws-2026 not found") is None


USAGE = 'Send nothing, or {"hours": h} with a positive number of hours'


@pytest.mark.parametrize(
    ("body", "hours"), [(b"", None), (b"{}", None), (b'{"hours": 0.5}', 0.5), (b'{"hours": 2}', 2)]
)
def test_asked_hours(body: bytes, hours: float | None) -> None:
    assert asked_hours(body) == hours


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (b"{", f"{USAGE}; the body is not JSON."),
        (b'{"hours": -1}', f"{USAGE}; you sent -1."),
        (b'{"hours": "two"}', f'{USAGE}; you sent "two".'),
        (b'{"hours": true}', f"{USAGE}; you sent true."),
        (b'{"minutes": 30}', f'{USAGE}; you sent {{"minutes": 30}}.'),
        (b"[1]", f"{USAGE}; you sent [1]."),
    ],
)
def test_bad_bodies_get_one_sentence(body: bytes, sentence: str) -> None:
    with pytest.raises(ValueError) as err:
        asked_hours(body)
    assert str(err.value) == sentence


def test_servers_may_extend_themselves_and_users_their_own_sessions(tmp_path) -> None:
    c = build_config(Settings.from_env({"NAIC_DATA_DIR": str(tmp_path)}), TC, None)
    assert "custom:naic:extend" in c.JupyterHub.custom_scopes
    server = next(r for r in c.JupyterHub.load_roles if r["name"] == "server")
    assert "custom:naic:extend!server" in server["scopes"]
    assert "custom:naic:extend!user" in c.JupyterHub.extra_user_scopes
    paths = [p for p, _ in EXTEND_HANDLERS]
    assert paths == [
        r"/api/naic/users/([^/]+)/servers/([^/]*)/extend",
        r"/api/naic/users/([^/]+)/extend",
    ]


# --- the session's client -----------------------------------------------------------------

ENV = {
    "JUPYTERHUB_API_URL": "http://hub/hub/api",
    "JUPYTERHUB_API_TOKEN": "tok",
    "JUPYTERHUB_USER": "ola",
}


class Transport:
    def __init__(self, *answers: tuple[int, dict]):
        self.answers, self.seen = list(answers), []

    def __call__(self, req, timeout_s):
        self.seen.append((req.get_method(), req.full_url, req.data))
        status, body = self.answers.pop(0)
        return status, json.dumps(body).encode()


def test_the_session_asks_the_hub_once_whether_it_may_extend_and_then_extends() -> None:
    t = Transport(
        (200, {"offered": True, "extensions_left": 1}),
        (200, {"ends_at": "2026-11-27T10:30:00+00:00", "hours_total": 1.5, "extensions_left": 0}),
    )
    hub = HubSource({**ENV, "JUPYTERHUB_SERVER_NAME": "gpu run"}, transport=t)
    assert hub.can_extend and hub.can_extend
    got = hub.extend()
    assert got == Extension(datetime(2026, 11, 27, 10, 30, tzinfo=UTC), 1.5, 0)
    url = "http://hub/hub/api/naic/users/ola/servers/gpu%20run/extend"
    assert t.seen == [("GET", url, None), ("POST", url, b"{}")]


def test_a_refused_extension_is_the_hubs_sentence() -> None:
    sentence = "This resource allows at most 1 extension; you have used 1."
    t = Transport((404, {"message": "Not found"}), (403, {"status": 403, "message": sentence}))
    hub = HubSource(ENV, transport=t)
    assert not hub.can_extend  # a hub without the endpoint offers nothing
    with pytest.raises(HubError) as err:
        hub.extend(2)
    assert str(err.value) == sentence
    assert t.seen[1] == ("POST", "http://hub/hub/api/naic/users/ola/extend", b'{"hours": 2}')
    assert not HubSource({}).can_extend
