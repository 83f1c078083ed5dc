"""Budget holds: GPU-hours a session may still use, held from its admission to its end, so
that sessions admitted at once cannot together spend more than their project's budget."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.db import set_once
from naic.hub.usage.records import Session, session_hours
from naic.hub.usage.tables import Book, holds_table, record, sessions_table

#: One check-and-insert at a time in this process (see `BudgetHolds.hold`).
_hold_lock = threading.Lock()


class BudgetHolds(Book):
    """The ledger's holds (`naic_budget_holds`)."""

    def hold(
        self,
        *,
        user: str,
        server: str,
        project: str,
        gpu_hours: float,
        budget: float,
        since: datetime | None,
        expires_at: datetime,
        counted_elsewhere: float = 0.0,
        not_at: Collection[str] = (),
    ) -> int | tuple[float, float]:
        """Hold `gpu_hours` of `project` for one session if what is used and held already
        leaves room: returns the hold's id, or (refused) what is (used, held). Atomic: one
        check-and-insert at a time, in this process (a lock) and across hub processes on
        PostgreSQL (a transaction-scoped advisory lock per project). The server's previous
        hold, if any, is released first: a server runs one session at a time.

        `counted_elsewhere`: GPU-hours Slurm's accounting counted at the sites `not_at`,
        whose sessions the ledger then leaves out of what is used."""
        now = self._clock()
        h = holds_table.c
        with _hold_lock, self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                key = zlib.crc32(f"naic-budget:{project}".encode())
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            conn.execute(
                holds_table.update()
                .where(h.username == user, h.server == server, h.released_at.is_(None))
                .values(released_at=now)
            )
            used, held = self._committed(conn, project, since, now, not_at=not_at)
            used += counted_elsewhere
            if used + held + gpu_hours > budget + 1e-9:
                return used, held
            values = dict(username=user, server=server, project=project, gpu_hours=gpu_hours)
            values.update(created_at=now, expires_at=expires_at)
            return conn.execute(holds_table.insert().values(**values)).inserted_primary_key[0]

    def committed(
        self, project: str, since: datetime | None, *, without_hold: int | None = None,
        not_at: Collection[str] = (),
    ) -> tuple[float, float]:  # fmt: skip
        """GPU-hours of `project` used since `since` (but at the sites `not_at`), and what
        open holds may still use."""
        with self._engine.connect() as conn:
            return self._committed(conn, project, since, self._clock(), without_hold, not_at)

    def link_hold(self, hold_id: int, session_id: int) -> None:
        """The held session started: from now on its usage is recorded, and the hold keeps
        only what it may still use on top."""
        with self._engine.begin() as conn:
            conn.execute(
                holds_table.update()
                .where(holds_table.c.id == hold_id)
                .values(session_id=session_id)
            )

    def grow_hold(self, hold_id: int, gpu_hours: float, expires_at: datetime) -> None:
        h = holds_table.c
        with self._engine.begin() as conn:
            conn.execute(
                holds_table.update()
                .where(h.id == hold_id)
                .values(gpu_hours=h.gpu_hours + gpu_hours, expires_at=expires_at)
            )

    def release_hold(self, hold_id: int) -> None:
        """Idempotent: the session ended or never started."""
        set_once(
            self._engine, holds_table, "released_at", self._clock(), holds_table.c.id == hold_id
        )

    def _committed(
        self, conn, project: str, since: datetime | None, now: datetime,
        without: int | None = None, not_at: Collection[str] = (),
    ) -> tuple[float, float]:  # fmt: skip
        s, h = sessions_table.c, holds_table.c
        rows = conn.execute(
            sa.select(sessions_table).where(
                s.project == project,
                *([] if since is None else [sa.or_(s.ended_at.is_(None), s.ended_at > since)]),
            )
        )
        sessions = [record(Session, row) for row in rows]
        used = {x.id: session_hours(x, since, now) for x in sessions}
        held = 0.0
        for row in conn.execute(
            sa.select(holds_table).where(
                h.project == project, h.released_at.is_(None), h.expires_at > now
            )
        ):
            if row.id != without:  # what it may still use on top of what it used
                held += max(row.gpu_hours - used.get(row.session_id, 0.0), 0.0)
        # What a held session used so far still shrinks its hold (above); what counts as
        # used leaves out the sites whose usage Slurm's accounting gives.
        return sum(used[x.id] for x in sessions if x.site not in not_at), held
