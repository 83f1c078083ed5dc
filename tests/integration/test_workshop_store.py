"""Workshops and seats on a real SQLite file and a real PostgreSQL server: the seat limit
holds when students join at the same moment, and a second redemption is the same seat."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from naic.hub.workshop_store import WorkshopExists, WorkshopStore
from naic.hub.workshops import WorkshopSpec
from tests.integration.test_ledger import T0, Clock, clock, db_url

pytestmark = [pytest.mark.integration]
__all__ = ["clock", "db_url"]


@pytest.fixture
def store(db_url, clock) -> Iterator[WorkshopStore]:
    s = WorkshopStore(db_url, clock=clock)
    yield s
    s.close()


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
