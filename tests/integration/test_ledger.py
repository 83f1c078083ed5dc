"""The ledger on a real SQLite file and a real PostgreSQL server: the same tests on both.

Time is injected: each test moves ``clock`` instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from naic.hub.usage.ledger import IdentityTaken, Ledger
from tests.integration.helpers import T0

pytestmark = [pytest.mark.integration]

HOUR = timedelta(hours=1)


# -- the database itself ---------------------------------------------------------------------


def test_the_ledger_keeps_to_its_own_tables_in_the_hubs_database(db_url, request):
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:  # a table of JupyterHub's, with a row the hub needs
            conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(sa.text("INSERT INTO users VALUES (1, 'ola')"))
        Ledger(db_url).close()
        Ledger(db_url).close()  # a hub restart: migrating again is harmless
        # The migrations (naic.hub.usage.migrate) make every naic_* table, the workshop
        # store's too, and keep their version in naic_alembic_version.
        assert set(sa.inspect(engine).get_table_names()) == {
            "users",
            "naic_identities",
            "naic_access_requests",
            "naic_sessions",
            "naic_gpu_use",
            "naic_budget_holds",
            "naic_workshops",
            "naic_workshop_seats",
            "naic_guest_accounts",
            "naic_assignments",
            "naic_submissions",
            "naic_alembic_version",
        }
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM users")).scalars().all() == ["ola"]
            if request.node.callspec.params["db_url"] == "postgresql":
                # Proof that this variant ran against the real server, not a stand-in.
                assert conn.dialect.name == "postgresql"
                assert conn.scalar(sa.text("SELECT version()")).startswith("PostgreSQL ")
            else:
                assert conn.dialect.name == "sqlite"
    finally:
        engine.dispose()


def test_datetimes_round_trip_as_aware_utc(ledger):
    oslo = timezone(timedelta(hours=1))
    started = datetime(2026, 11, 27, 10, 15, 30, 123456, tzinfo=oslo)
    sid = ledger.session_started(
        user="ola", server="", project="demo", site="saga", gpus=1, started_at=started
    )
    ledger.session_seen(sid, at=datetime(2026, 11, 27, 9, 45, 0, 1, tzinfo=UTC))
    (session,) = ledger.sessions()
    assert session.started_at == started
    assert session.started_at.tzinfo is UTC
    assert session.started_at.isoformat() == "2026-11-27T09:15:30.123456+00:00"
    assert session.last_seen == datetime(2026, 11, 27, 9, 45, 0, 1, tzinfo=UTC)
    assert session.last_seen.tzinfo is UTC
    assert session.ended_at is None
    request = ledger.request_access("ola", "demo", "thesis")
    assert request.created_at == T0 and request.created_at.tzinfo is UTC


def test_naive_datetimes_are_refused(ledger):
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        ledger.session_started(
            user="ola", server="", project=None, site="local", gpus=0,
            started_at=datetime(2026, 11, 27, 9),
        )  # fmt: skip


def test_a_restarted_hub_sees_the_same_data(db_url, clock):
    first = Ledger(db_url, clock=clock)
    first.bind_identity("ola", "ola@uio.no")
    request = first.request_access("ola", "demo", "My thesis needs GPUs.", identity="ola@uio.no")
    first.decide(request.id, approve=True, by="admin")
    open_id = first.session_started(user="ola", server="", project="demo", site="saga", gpus=2)
    first.close()

    clock.now = T0 + 3 * HOUR
    second = Ledger(db_url, clock=clock)
    try:
        assert second.identity_of("ola") == "ola@uio.no"
        assert second.granted_projects("ola") == {"demo"}
        assert [s.id for s in second.open_sessions()] == [open_id]
        assert second.gpu_hours(project="demo") == 6.0
        with pytest.raises(IdentityTaken):
            second.bind_identity("ola", "ola@ntnu.no")
    finally:
        second.close()


# -- identities ------------------------------------------------------------------------------


def test_first_login_binds_and_the_same_pair_again_is_fine(ledger):
    assert ledger.identity_of("ola") is None
    ledger.bind_identity("ola", "ola@uio.no")
    ledger.bind_identity("ola", "ola@uio.no")
    assert ledger.identity_of("ola") == "ola@uio.no"
    assert ledger.identity_of("kari") is None


def test_a_taken_user_name_is_refused_with_a_sentence(ledger):
    ledger.bind_identity("ola", "ola@ntnu.no")
    with pytest.raises(IdentityTaken) as refused:
        ledger.bind_identity("ola", "ola@uio.no")
    assert str(refused.value) == (
        "The user name 'ola' already belongs to another account (ola@ntnu.no); sign in with "
        "that account, or ask support to give yours a different user name."
    )
    assert ledger.identity_of("ola") == "ola@ntnu.no"


def test_an_identity_keeps_its_one_user_name(ledger):
    ledger.bind_identity("ola", "ola@uio.no")
    with pytest.raises(IdentityTaken) as refused:
        ledger.bind_identity("ola2", "ola@uio.no")
    assert str(refused.value) == (
        "The account ola@uio.no already has the user name 'ola'; sign in as 'ola', or ask "
        "support if that name must change."
    )
    assert ledger.identity_of("ola2") is None


def _at_once(n: int, work) -> list[BaseException | None]:
    """Run work(i) in n threads released together; each thread's exception, or None."""
    barrier = threading.Barrier(n)
    outcomes: list[BaseException | None] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_concurrent_identical_binds_all_succeed(ledger):
    assert _at_once(8, lambda i: ledger.bind_identity("ola", "ola@uio.no")) == [None] * 8
    assert ledger.identity_of("ola") == "ola@uio.no"


def test_concurrent_rival_binds_leave_exactly_one_winner(ledger):
    outcomes = _at_once(6, lambda i: ledger.bind_identity("ola", f"ola{i}@uio.no"))
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, IdentityTaken) for o in outcomes if o is not None)
    winner = outcomes.index(None)
    assert ledger.identity_of("ola") == f"ola{winner}@uio.no"


# -- budget holds ----------------------------------------------------------------------------


def _hold(ledger, i, gpu_hours=1.0, budget=4.0):
    return ledger.hold(
        user=f"u{i}",
        server="",
        project="demo",
        gpu_hours=gpu_hours,
        budget=budget,
        since=None,
        expires_at=T0 + 13 * HOUR,
    )


def test_sessions_asked_for_at_once_never_hold_more_than_the_budget(ledger):
    """Ten people press Start at the same moment on a 4 GPU-hour budget, 1 GPU-hour each."""
    got: list = [None] * 10

    def ask(i: int) -> None:
        got[i] = _hold(ledger, i)

    assert _at_once(10, ask) == [None] * 10
    granted = [g for g in got if isinstance(g, int)]
    assert len(granted) == 4
    assert all(g == (0.0, 4.0) for g in got if not isinstance(g, int))
    assert ledger.committed("demo", None) == (0.0, 4.0)


def test_a_hold_counts_what_its_session_may_still_use_and_frees_at_the_end(ledger, clock):
    hold = _hold(ledger, 1, gpu_hours=2.0)
    session = ledger.session_started(user="u1", server="", project="demo", site="s", gpus=1)
    ledger.link_hold(hold, session)
    clock.now = T0 + HOUR
    ledger.session_seen(session)
    assert ledger.committed("demo", None) == (1.0, 1.0)  # 1 used, 1 more it may use
    assert ledger.committed("demo", None, without_hold=hold) == (1.0, 0.0)
    ledger.session_ended(session)
    ledger.release_hold(hold)
    assert ledger.committed("demo", None) == (1.0, 0.0)
    assert isinstance(_hold(ledger, 2, gpu_hours=3.0), int)


def test_a_forgotten_hold_lapses_and_a_servers_new_hold_replaces_its_old(ledger, clock):
    assert isinstance(_hold(ledger, 1, gpu_hours=4.0), int)
    assert isinstance(_hold(ledger, 1, gpu_hours=4.0), int)  # the same server again
    assert _hold(ledger, 2) == (0.0, 4.0)
    clock.now = T0 + 14 * HOUR  # past expires_at: a hub died before releasing it
    assert isinstance(_hold(ledger, 2), int)


# -- access requests -------------------------------------------------------------------------


def test_an_approved_request_grants_the_project(ledger, clock):
    request = ledger.request_access("ola", "demo", "  Fine-tuning for my thesis. ", "ola@uio.no")
    assert (request.user, request.project, request.identity) == ("ola", "demo", "ola@uio.no")
    assert (request.state, request.reason, request.note) == (
        "pending",
        "Fine-tuning for my thesis.",
        "",
    )
    assert (request.decided_at, request.decided_by) == (None, None)
    assert ledger.has_pending("ola")
    assert ledger.granted_projects("ola") == set()

    clock.now = T0 + HOUR
    decided = ledger.decide(request.id, approve=True, by="admin", note="Welcome.")
    assert (decided.id, decided.state, decided.decided_by, decided.note) == (
        request.id,
        "approved",
        "admin",
        "Welcome.",
    )
    assert decided.decided_at == T0 + HOUR
    assert decided.created_at == T0
    assert not ledger.has_pending("ola")
    assert ledger.granted_projects("ola") == {"demo"}
    assert ledger.granted_projects("kari") == set()
    with pytest.raises(ValueError, match=r"^You already have access to project demo\.$"):
        ledger.request_access("ola", "demo", "again")


def test_a_declined_request_grants_nothing_and_may_be_asked_again(ledger):
    request = ledger.request_access("ola", "demo", "please")
    declined = ledger.decide(request.id, approve=False, by="admin", note="Ask your PI first.")
    assert declined.state == "declined"
    assert ledger.granted_projects("ola") == set()
    assert not ledger.has_pending("ola")
    again = ledger.request_access("ola", "demo", "My PI agreed.")
    assert again.id != request.id and again.state == "pending"


def test_a_second_pending_request_for_the_same_project_is_refused(ledger):
    ledger.request_access("ola", "demo", "first")
    with pytest.raises(ValueError) as refused:
        ledger.request_access("ola", "demo", "second")
    assert str(refused.value) == (
        "You have already asked for project demo; an administrator will decide soon."
    )
    ledger.request_access("ola", "other", "a different project is fine")
    ledger.request_access("kari", "demo", "another user is fine")
    assert len(ledger.requests(state="pending")) == 3


def test_concurrent_duplicate_requests_leave_one_pending(ledger):
    outcomes = _at_once(4, lambda i: ledger.request_access("ola", "demo", f"try {i}"))
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, ValueError) for o in outcomes if o is not None)
    assert len(ledger.requests("ola")) == 1


def test_a_request_is_decided_once(ledger):
    request = ledger.request_access("ola", "demo", "please")
    ledger.decide(request.id, approve=False, by="admin")
    with pytest.raises(ValueError) as refused:
        ledger.decide(request.id, approve=True, by="root")
    assert str(refused.value) == f"Access request {request.id} was already declined by admin."
    assert ledger.granted_projects("ola") == set()
    with pytest.raises(ValueError, match=r"^There is no access request 9999\.$"):
        ledger.decide(9999, approve=True, by="admin")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "Please say in a few words why you need this project."),
        ("  \n\t ", "Please say in a few words why you need this project."),
        ("x" * 501, "Please keep the reason to 500 characters; it has 501."),
    ],
)
def test_reasons_are_validated(ledger, reason, message):
    with pytest.raises(ValueError) as refused:
        ledger.request_access("ola", "demo", reason)
    assert str(refused.value) == message
    assert ledger.requests() == []


def test_a_reason_of_500_characters_is_kept_whole(ledger):
    reason = "æ" * 500  # characters, not bytes
    assert ledger.request_access("ola", "demo", reason).reason == reason


def test_requests_are_listed_newest_first_and_filtered(ledger, clock):
    first = ledger.request_access("ola", "a", "one")
    clock.now += HOUR
    second = ledger.request_access("kari", "a", "two")
    clock.now += HOUR
    third = ledger.request_access("ola", "b", "three")
    ledger.decide(first.id, approve=True, by="admin")
    assert [r.id for r in ledger.requests()] == [third.id, second.id, first.id]
    assert [r.id for r in ledger.requests("ola")] == [third.id, first.id]
    assert [r.id for r in ledger.requests(state="pending")] == [third.id, second.id]
    assert [r.id for r in ledger.requests("ola", "approved")] == [first.id]
    with pytest.raises(ValueError, match="not 'open'"):
        ledger.requests(state="open")


# -- usage -----------------------------------------------------------------------------------


def start(ledger: Ledger, user="ola", project="demo", gpus=1, **kw) -> int:
    return ledger.session_started(
        user=user, server=kw.pop("server", ""), project=project, site="saga", gpus=gpus, **kw
    )


def test_an_open_session_counts_up_to_now(ledger, clock):
    sid = start(ledger, gpus=2, job_id="4711")
    clock.now = T0 + 90 * timedelta(minutes=1)
    assert ledger.gpu_hours(project="demo") == 3.0
    assert ledger.gpu_hours(project="demo", now=T0 + 4 * HOUR) == 8.0
    (session,) = ledger.open_sessions()
    assert (session.id, session.user, session.project, session.site) == (sid, "ola", "demo", "saga")
    assert (session.job_id, session.gpus, session.started_at) == ("4711", 2, T0)
    assert session.gpu_hours == 0.0  # the record itself counts to its last heartbeat
    ledger.session_seen(sid)
    assert ledger.open_sessions()[0].last_seen == T0 + 90 * timedelta(minutes=1)
    assert ledger.open_sessions()[0].gpu_hours == 3.0


def test_an_ended_session_counts_its_wall_time(ledger, clock):
    sid = start(ledger, gpus=4)
    ledger.session_ended(sid, ended_at=T0 + HOUR / 2)
    clock.now = T0 + 100 * HOUR
    assert ledger.gpu_hours() == 2.0
    assert ledger.open_sessions() == []
    (session,) = ledger.sessions()
    assert session.ended_at == T0 + HOUR / 2
    assert session.gpu_hours == 2.0


def test_ending_twice_keeps_the_first_end_and_an_early_end_is_clipped(ledger, clock):
    sid = start(ledger)
    clock.now = T0 + HOUR
    ledger.session_ended(sid)
    ledger.session_ended(sid, ended_at=T0 + 5 * HOUR)
    assert ledger.sessions()[0].ended_at == T0 + HOUR

    early = start(ledger, started_at=T0 + 2 * HOUR)
    ledger.session_ended(early, ended_at=T0)  # e.g. a node clock behind the hub's
    assert ledger.sessions()[0].ended_at == T0 + 2 * HOUR
    assert ledger.gpu_hours() == 1.0


def test_heartbeats_only_move_forward_and_stop_at_the_end(ledger, clock):
    sid = start(ledger)
    ledger.session_seen(sid, at=T0 + 2 * HOUR)
    ledger.session_seen(sid, at=T0 + HOUR)  # a late, out-of-order beat
    assert ledger.sessions()[0].last_seen == T0 + 2 * HOUR
    ledger.session_ended(sid, ended_at=T0 + 3 * HOUR)
    ledger.session_seen(sid, at=T0 + 9 * HOUR)
    assert ledger.sessions()[0].last_seen == T0 + 2 * HOUR
    with pytest.raises(ValueError, match=r"^There is no session 9999 in the ledger\.$"):
        ledger.session_seen(9999)
    with pytest.raises(ValueError, match="9999"):
        ledger.session_ended(9999)


def test_since_counts_only_the_part_after_it(ledger, clock):
    since = T0 + 10 * HOUR
    before = start(ledger, gpus=1)  # 09:00-13:00: ended before `since`
    ledger.session_ended(before, ended_at=T0 + 4 * HOUR)
    across = start(ledger, gpus=2, started_at=T0 + 8 * HOUR)  # 17:00-21:00 straddles it
    ledger.session_ended(across, ended_at=T0 + 12 * HOUR)
    still_open = start(ledger, gpus=1, started_at=T0 + 9 * HOUR)  # open since 18:00
    clock.now = T0 + 14 * HOUR

    assert ledger.gpu_hours() == 4 + 2 * 4 + 5
    assert ledger.gpu_hours(since=since) == 2 * 2 + 4
    assert [s.id for s in ledger.sessions(since=since)] == [still_open, across]
    assert ledger.gpu_hours(since=T0 + 20 * HOUR) == 0.0  # `now` before `since`


def test_usage_sums_by_project_and_by_user(ledger, clock):
    a = start(ledger, user="ola", project="demo", gpus=1)
    b = start(ledger, user="kari", project="demo", gpus=2)
    c = start(ledger, user="ola", project="other", gpus=4, server="big")
    d = start(ledger, user="per", project=None, gpus=1)  # a CPU/local session, no project
    for sid in (a, b, c):
        ledger.session_ended(sid, ended_at=T0 + HOUR)
    clock.now = T0 + 2 * HOUR  # d is still open: 2 h

    assert ledger.usage_by_project() == {"demo": 3.0, "other": 4.0}
    assert ledger.usage_by_user() == {"ola": 5.0, "kari": 2.0, "per": 2.0}
    assert ledger.usage_by_user(project="demo") == {"ola": 1.0, "kari": 2.0}
    assert ledger.usage_by_project(since=T0 + HOUR / 2) == {"demo": 1.5, "other": 2.0}
    assert ledger.usage_by_user(since=T0 + HOUR) == {"per": 1.0}
    assert ledger.gpu_hours(user="ola") == 5.0
    assert ledger.gpu_hours(user="ola", project="demo") == 1.0
    assert [s.id for s in ledger.sessions(user="ola")] == [c, a]
    assert [s.id for s in ledger.sessions(project="demo")] == [b, a]
    assert [s.id for s in ledger.open_sessions()] == [d]
    assert ledger.sessions(user="ola", project="other")[0].server == "big"


def test_gpu_use_reports_add_up_per_project_and_period(ledger, clock):
    first = ledger.session_started(user="ola", server="", project="demo", site="saga", gpus=2)
    other = ledger.session_started(user="kari", server="", project=None, site="saga", gpus=1)
    ledger.gpu_use_reported(first, busy_gpu_s=60, idle_gpu_s=60)
    ledger.gpu_use_reported(first, busy_gpu_s=0, idle_gpu_s=120)
    ledger.gpu_use_reported(other, busy_gpu_s=3600, idle_gpu_s=0)
    assert ledger.gpu_idle_hours() == {"demo": (60 / 3600, 180 / 3600), "": (1.0, 0.0)}
    assert ledger.gpu_idle_hours(project="demo") == {"demo": (60 / 3600, 180 / 3600)}
    ledger.session_ended(first)
    clock.now += HOUR
    assert ledger.gpu_idle_hours(since=clock.now - HOUR / 2) == {"": (1.0, 0.0)}
