"""Workshops and seats on a real SQLite file and a real PostgreSQL server: the seat limit
holds when students join at the same moment, and a second redemption is the same seat."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from naic.hub.workshops.rules import WorkshopSpec, code_digest, code_key
from naic.hub.workshops.store import WorkshopExists, WorkshopStore
from tests.integration.helpers import KEY, T0, Clock

pytestmark = [pytest.mark.integration]


def spec(seats: int = 10) -> WorkshopSpec:
    return WorkshopSpec(
        name="ml-intro",
        seats=seats,
        start=T0 + timedelta(hours=1),
        end=T0 + timedelta(hours=8),
        resource="testcluster:cpu",
        hours=2,
    )


def test_a_workshop_is_kept_and_its_name_is_unique(store: WorkshopStore, clock: Clock):
    ws = store.create(spec(), instructor="ingrid", code="ABCDE-FGHJK")
    assert (ws.title, ws.instructor, ws.site, ws.resource, ws.ended_at) == (
        "ml-intro",
        "ingrid",
        "testcluster",
        "cpu",
        None,
    )
    assert store.by_code("ABCDE-FGHJK") == ws
    with pytest.raises(WorkshopExists, match="already a workshop named ml-intro"):
        store.create(spec(), instructor="other", code="BCDEF-GHJKM")
    assert [w.name for w in store.list("ingrid")] == ["ml-intro"]
    assert store.list("other") == []


def test_seats_open_with_the_window_and_stop_at_the_limit(store: WorkshopStore, clock: Clock):
    store.create(spec(seats=10), instructor="ingrid", code="ABCDE-FGHJK")
    with pytest.raises(ValueError, match="opens at"):
        store.join("ml-intro", "s00")
    clock.now = T0 + timedelta(hours=1)

    seats, refused = [], []

    def join(name: str) -> None:
        try:
            seats.append(store.join("ml-intro", name).seat)
        except ValueError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=join, args=(f"s{i:02}",)) for i in range(11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seats) == list(range(1, 11))
    assert refused == [
        "The workshop ml-intro is full (10 seats); ask the instructor whether another seat can "
        "be added."
    ]
    again = store.join("ml-intro", store.seats("ml-intro")[0].username)
    assert again.seat == 1
    assert [w.name for w in store.open_seats_of("s00")] in (["ml-intro"], [])

    store.end("ml-intro")
    with pytest.raises(ValueError, match="ended at"):
        store.join("ml-intro", "s00")
    assert store.open_seats_of(store.seats("ml-intro")[0].username) == []


def test_guest_accounts_are_handed_out_once_and_expire_with_the_workshop(
    store: WorkshopStore, clock: Clock
):
    store.create(spec(seats=3), instructor="ingrid", code="ABCDE-FGHJK")
    pool = ["guest01", "guest02", "guest03"]
    issued = store.issue_guests("ml-intro", pool, 2)
    assert [u for u, _ in issued] == ["guest01", "guest02"]
    (_, password), _ = issued
    assert len(password) == 20 and password.count("-") == 2
    assert [s.username for s in store.seats("ml-intro")] == ["guest01", "guest02"]  # seated
    with pytest.raises(ValueError, match="Only 1 workshop accounts are free now"):
        store.issue_guests("ml-intro", pool, 2)

    assert store.guest_login("guest01", password) == "ml-intro"
    with pytest.raises(ValueError, match="This one-time password was already used"):
        store.guest_login("guest01", password)
    with pytest.raises(ValueError, match="not right"):
        store.guest_login("guest01", password + "x")
    with pytest.raises(ValueError, match="not right"):
        store.guest_login("guest03", password)

    clock.now = T0 + timedelta(hours=2)
    assert sorted(store.expire_guests("ml-intro")) == ["guest01", "guest02"]
    with pytest.raises(ValueError, match="expired at"):
        store.guest_login("guest01", password)
    # Free again for the next workshop.
    store.end("ml-intro")
    store.create(
        spec().model_copy(update={"name": "next"}), instructor="ingrid", code="BCDEF-GHJKM"
    )
    assert [u for u, _ in store.issue_guests("next", pool, 3)] == pool


def test_an_account_whose_window_passed_is_due_for_a_reset_once(store: WorkshopStore, clock: Clock):
    store.create(spec(seats=3), instructor="ingrid", code="ABCDE-FGHJK")
    store.issue_guests("ml-intro", ["guest01", "guest02"], 2)
    assert store.guests_due() == []
    clock.now = T0 + timedelta(hours=8)  # the window's end, nobody acting
    due = store.guests_due()
    assert [g.username for g in due] == ["guest01", "guest02"]
    store.mark_reset("guest01", due[0].issued_at)
    assert [g.username for g in store.guests_due()] == ["guest02"]
    # A stale reset (of an earlier issue of the account) marks nothing.
    store.mark_reset("guest02", due[1].issued_at - timedelta(seconds=1))
    assert [g.username for g in store.guests_due()] == ["guest02"]

    # Issued again: due again only when the next window passes.
    store.end("ml-intro")
    nxt = spec().model_copy(
        update={"name": "next", "start": clock.now, "end": clock.now + timedelta(hours=2)}
    )
    store.create(nxt, instructor="ingrid", code="BCDEF-GHJKM")
    [(_, password)] = store.issue_guests("next", ["guest01"], 1)
    assert [g.username for g in store.guests_due()] == ["guest02"]
    assert store.guest_login("guest01", password) == "next"  # a new password, unused
    clock.now += timedelta(hours=2)
    assert [g.username for g in store.guests_due()] == ["guest01", "guest02"]


def test_a_hubs_older_table_of_accounts_gets_the_new_columns(db_url):
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:  # the table as it first shipped, with one account
            conn.execute(
                sa.text(
                    "CREATE TABLE naic_guest_accounts (username VARCHAR(255) PRIMARY KEY, "
                    "workshop VARCHAR(40) NOT NULL, password_hash VARCHAR(255) NOT NULL, "
                    "issued_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL)"
                )
            )
        WorkshopStore(db_url).close()
        WorkshopStore(db_url).close()  # a restart: nothing more to add
        columns = {c["name"] for c in sa.inspect(engine).get_columns("naic_guest_accounts")}
        assert {"password_used_at", "reset_at"} <= columns
    finally:
        engine.dispose()


def test_join_codes_are_kept_as_keyed_hashes(store: WorkshopStore, db_url):
    store.create(spec(), instructor="ingrid", code="ABCDE-FGHJK")
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT code FROM naic_workshops")).scalar_one()
    finally:
        engine.dispose()
    assert kept == code_digest("ABCDE-FGHJK", KEY) and "ABCDE" not in kept
    assert store.by_code("abcde fghjk").name == "ml-intro"  # as students type it
    assert (
        WorkshopStore(db_url, code_key=code_key(b"another secret")).by_code("ABCDE-FGHJK") is None
    )
    store.set_code("ml-intro", "BCDEF-GHJKM")
    assert store.by_code("ABCDE-FGHJK") is None
    assert store.by_code("BCDEF-GHJKM").name == "ml-intro"


def test_an_older_hubs_join_codes_in_clear_are_hashed_at_start(db_url):
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:  # the table as it shipped, a code in clear
            conn.execute(
                sa.text(
                    "CREATE TABLE naic_workshops (name VARCHAR(40) PRIMARY KEY, "
                    "title VARCHAR(120) NOT NULL, instructor VARCHAR(255) NOT NULL, "
                    "seats INTEGER NOT NULL, starts_at TIMESTAMP NOT NULL, "
                    "ends_at TIMESTAMP NOT NULL, site VARCHAR(40) NOT NULL, "
                    "resource VARCHAR(40) NOT NULL, gpus INTEGER NOT NULL, "
                    "hours FLOAT NOT NULL, project VARCHAR(40), material VARCHAR(500) NOT NULL, "
                    "code VARCHAR(16) NOT NULL UNIQUE, reservation VARCHAR(64), "
                    "created_at TIMESTAMP NOT NULL, ended_at TIMESTAMP)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO naic_workshops VALUES ('old', 'Old', 'ingrid', 3, "
                    "'2027-01-01 09:00:00', '2027-01-01 12:00:00', 'testcluster', 'cpu', 0, "
                    "1, NULL, '', 'ABCDE-FGHJK', NULL, '2026-12-01 09:00:00', NULL)"
                )
            )
        WorkshopStore(db_url, code_key=KEY).close()
        store = WorkshopStore(db_url, code_key=KEY)  # a restart: nothing hashed twice
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT code FROM naic_workshops")).scalar_one()
        assert kept == code_digest("ABCDE-FGHJK", KEY)
        assert store.by_code("ABCDE-FGHJK").name == "old"
        assert store.get("old").awaiting_approval is None  # the new columns, added
        store.close()
    finally:
        engine.dispose()


def test_an_edit_moves_seats_and_window_and_the_accounts_follow_the_end(
    store: WorkshopStore, clock: Clock
):
    store.create(spec(seats=4), instructor="ingrid", code="ABCDE-FGHJK")
    store.issue_guests("ml-intro", ["guest01"], 1)
    later = T0 + timedelta(hours=10)
    ws = store.edit("ml-intro", seats=6, starts_at=T0 + timedelta(hours=2), ends_at=later)
    assert (ws.seats, ws.starts_at, ws.ends_at) == (6, T0 + timedelta(hours=2), later)
    clock.now = T0 + timedelta(hours=9)  # past the old end: the account is not due yet
    assert store.guests_due() == []
    clock.now = later
    assert [g.username for g in store.guests_due()] == ["guest01"]
