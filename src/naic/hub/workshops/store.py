"""Workshops and their seats, kept durably in the hub's database (its own `naic_` tables).

As the ledger, SQLAlchemy Core over the hub's `db_url`, so SQLite and PostgreSQL alike; the
database's unique constraints decide races: two students taking the last seat at once get
seat numbers that collide, and one of them is told the workshop is full.

`WorkshopStore` is workshops and seats (here) with temporary accounts (`guests`); the tables,
records and upgrades in place are in `tables`. Their names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.db import set_once, utcnow
from naic.hub.usage.migrate import upgrade
from naic.hub.workshops.guests import Guests, hash_password, password_matches
from naic.hub.workshops.rules import MAX_SEATS, WorkshopSpec, code_digest, join_refusal
from naic.hub.workshops.tables import (
    GuestAccount,
    Seat,
    Workshop,
    add_missing_columns,
    guests_table,
    hash_clear_codes,
    metadata,
    seats_table,
    workshop_of,
    workshops_table,
)

__all__ = [
    "GuestAccount",
    "Seat",
    "Workshop",
    "WorkshopExists",
    "WorkshopStore",
    "guests_table",
    "hash_password",
    "metadata",
    "password_matches",
    "seats_table",
    "workshops_table",
]


class WorkshopExists(ValueError):
    pass


class WorkshopStore(Guests):
    """`code_key` (naic.hub.workshops.rules.code_key) hashes join codes; a store without one
    (the spawn router's, the hub's timer) does not make or look up codes."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        code_key: bytes | None = None,
    ):
        self._engine = sa.create_engine(url, future=True)
        self._clock = clock
        self._code_key = code_key
        upgrade(self._engine)  # the naic_* tables, by the migrations (naic.hub.usage.migrate)
        add_missing_columns(self._engine)
        if code_key is not None:
            hash_clear_codes(self._engine, self._digest)

    def _digest(self, code: str) -> str:
        if self._code_key is None:
            raise RuntimeError("this workshop store was made without the key for join codes")
        return code_digest(code, self._code_key)

    def close(self) -> None:
        self._engine.dispose()

    def create(
        self,
        spec: WorkshopSpec,
        *,
        instructor: str,
        code: str,
        awaiting_approval: str | None = None,
    ) -> Workshop:
        """`awaiting_approval`: why an admin must approve it first (None: no need)."""
        row = dict(
            awaiting_approval=awaiting_approval,
            name=spec.name,
            title=spec.title or spec.name,
            instructor=instructor,
            seats=spec.seats,
            starts_at=spec.start,
            ends_at=spec.end,
            site=spec.site,
            resource=spec.resource_name,
            gpus=spec.gpus,
            hours=spec.hours,
            project=spec.project,
            material=spec.material,
            environment=spec.environment,
            shared=spec.shared,
            code=self._digest(code),
            created_at=self._clock(),
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(workshops_table.insert().values(**row))
        except sa.exc.IntegrityError:
            raise WorkshopExists(
                f"There is already a workshop named {spec.name}; choose another name."
            ) from None
        return self.get(spec.name)

    def approve(self, name: str, admin: str) -> Workshop:
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update()
                .where(w.name == name)
                .values(awaiting_approval=None, approved_by=admin)
            )
        return self.get(name)

    def set_awaiting(self, name: str, why: str) -> None:
        """A new reason a workshop awaiting approval waits (it was edited)."""
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update().where(w.name == name).values(awaiting_approval=why)
            )

    def active_of(self, instructor: str) -> list[Workshop]:
        """The instructor's workshops not ended and whose window has not passed."""
        w = workshops_table.c
        now = self._clock()
        return self._workshops(w.instructor == instructor, w.ended_at.is_(None), w.ends_at > now)

    def set_reservation(self, name: str, reservation: str | None) -> None:
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update().where(w.name == name).values(reservation=reservation)
            )

    def edit(self, name: str, *, seats: int, starts_at: datetime, ends_at: datetime) -> Workshop:
        """An instructor's edit (naic.hub.workshops.edits), in one transaction: the seats and
        the window; the temporary accounts issued for the workshop and not yet expired
        follow its end."""
        w, g = workshops_table.c, guests_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update()
                .where(w.name == name)
                .values(seats=seats, starts_at=starts_at, ends_at=ends_at)
            )
            conn.execute(
                guests_table.update()
                .where(g.workshop == name, g.expires_at > self._clock())
                .values(expires_at=ends_at)
            )
        return self.get(name)

    def delete(self, name: str) -> None:
        """Undo a create that could not be completed (its reservation failed)."""
        with self._engine.begin() as conn:
            conn.execute(seats_table.delete().where(seats_table.c.workshop == name))
            conn.execute(workshops_table.delete().where(workshops_table.c.name == name))

    def get(self, name: str) -> Workshop | None:
        found = self._workshops(workshops_table.c.name == name)
        return found[0] if found else None

    def by_code(self, code: str) -> Workshop | None:
        found = self._workshops(workshops_table.c.code == self._digest(code))
        return found[0] if found else None

    def set_code(self, name: str, code: str) -> None:
        """A new join code for workshop `name`; the old one stops working."""
        w = workshops_table.c
        with self._engine.begin() as conn:
            conn.execute(
                workshops_table.update().where(w.name == name).values(code=self._digest(code))
            )

    def list(self, instructor: str | None = None) -> list[Workshop]:
        """Soonest first."""
        w = workshops_table.c
        return self._workshops(*([] if instructor is None else [w.instructor == instructor]))

    def join(self, name: str, user: str, *, guest: bool = False) -> Seat:
        """Take a seat (the same one again for a second redemption), or ValueError with the
        sentence why not. Guest accounts are seated when issued, before the window opens."""
        # A collision on the seat number means another student just took that seat: each try
        # either succeeds or sees one more seat taken, so this ends by the seat limit.
        for _ in range(MAX_SEATS + 2):
            ws = self.get(name)
            if ws is None:
                raise ValueError("That code belongs to no workshop.")
            taken = self.seats(name)
            mine = next((s for s in taken if s.username == user), None)
            refusal = join_refusal(
                title=ws.title,
                start=ws.starts_at,
                end=ws.ends_at,
                ended=ws.ended_at is not None,
                seats=ws.seats,
                taken=len(taken),
                already_in=mine is not None,
                now=max(self._clock(), ws.starts_at) if guest else self._clock(),
                awaiting_approval=ws.awaiting_approval is not None,
            )
            if refusal:
                raise ValueError(refusal)
            if mine is not None:
                return mine
            seat = max((s.seat for s in taken), default=0) + 1
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        seats_table.insert().values(
                            workshop=name, username=user, seat=seat, joined_at=self._clock()
                        )
                    )
            except sa.exc.IntegrityError:
                continue
            return Seat(name, user, seat, self._clock())
        raise ValueError("Many students are joining at this moment; please try again.")

    def leave(self, name: str, user: str) -> None:
        """Give a seat back (a join that could not be completed, a student removed)."""
        s = seats_table.c
        with self._engine.begin() as conn:
            conn.execute(seats_table.delete().where(s.workshop == name, s.username == user))

    def seats(self, name: str) -> list[Seat]:
        s = seats_table.c
        query = sa.select(seats_table).where(s.workshop == name).order_by(s.seat)
        with self._engine.connect() as conn:
            return [Seat(r.workshop, r.username, r.seat, r.joined_at) for r in conn.execute(query)]

    def open_seats_of(self, user: str) -> list[Workshop]:
        """Workshops in which `user` holds a seat and whose window is open now."""
        s, w = seats_table.c, workshops_table.c
        now = self._clock()
        query = (
            sa.select(workshops_table)
            .join(seats_table, s.workshop == w.name)
            .where(
                s.username == user,
                w.ended_at.is_(None),
                w.awaiting_approval.is_(None),
                w.starts_at <= now,
                w.ends_at > now,
            )
        )
        with self._engine.connect() as conn:
            return [workshop_of(row) for row in conn.execute(query)]

    def end(self, name: str) -> Workshop:
        """Idempotent: the first end stands."""
        set_once(
            self._engine, workshops_table, "ended_at", self._clock(), workshops_table.c.name == name
        )
        return self.get(name)

    def _workshops(self, *filters) -> list[Workshop]:
        w = workshops_table.c
        query = sa.select(workshops_table).where(*filters).order_by(w.starts_at, w.name)
        with self._engine.connect() as conn:
            return [workshop_of(row) for row in conn.execute(query)]
