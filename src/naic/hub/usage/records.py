"""Who used what: session usage records (GPUs from start to end, heartbeats in between), the
GPU time sessions reported busy or idle, and GPU-hours summed by project or user."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.db import set_once
from naic.hub.usage.tables import Book, gpu_use_table, record, sessions_table


@dataclass(frozen=True)
class Session:
    """One GPU/CPU session's usage record."""

    id: int
    user: str
    server: str
    project: str | None
    site: str
    job_id: str
    gpus: int
    started_at: datetime
    ended_at: datetime | None
    last_seen: datetime

    @property
    def gpu_hours(self) -> float:
        end = self.ended_at or self.last_seen
        return self.gpus * max(0.0, (end - self.started_at).total_seconds()) / 3600


class UsageRecords(Book):
    """The ledger's sessions (`naic_sessions`) and their GPU use (`naic_gpu_use`)."""

    def session_started(
        self,
        *,
        user: str,
        server: str,
        project: str | None,
        site: str,
        gpus: int,
        job_id: str = "",
        started_at: datetime | None = None,
    ) -> int:
        started_at = started_at or self._clock()
        values = dict(username=user, server=server, project=project, site=site, gpus=gpus)
        values.update(job_id=job_id, started_at=started_at, last_seen=started_at)
        with self._engine.begin() as conn:
            return conn.execute(sessions_table.insert().values(**values)).inserted_primary_key[0]

    def session_seen(self, session_id: int, at: datetime | None = None) -> None:
        """Heartbeat. Late or out-of-order beats never move last_seen back or touch an end."""
        at = at or self._clock()
        s = sessions_table.c
        with self._engine.begin() as conn:
            written = conn.execute(
                sessions_table.update()
                .where(s.id == session_id, s.ended_at.is_(None), s.last_seen < at)
                .values(last_seen=at)
            ).rowcount
        if not written:  # one statement per beat; only a beat that changed nothing looks
            self._session_by_id(session_id)  # raises for an unknown id

    def session_ended(self, session_id: int, ended_at: datetime | None = None) -> None:
        """Idempotent: the first end stands. An end before the start is clipped to the start."""
        session = self._session_by_id(session_id)
        ended_at = max(ended_at or self._clock(), session.started_at)
        set_once(
            self._engine, sessions_table, "ended_at", ended_at, sessions_table.c.id == session_id
        )

    def open_sessions(self) -> list[Session]:
        """Newest first."""
        return self._sessions(sessions_table.c.ended_at.is_(None))

    def sessions(
        self, *, user: str | None = None, project: str | None = None, since: datetime | None = None
    ) -> list[Session]:
        """Newest first; with ``since``, the sessions that ran at some time after it."""
        s = sessions_table.c
        return self._sessions(
            *([] if user is None else [s.username == user]),
            *([] if project is None else [s.project == project]),
            *([] if since is None else [sa.or_(s.ended_at.is_(None), s.ended_at > since)]),
        )

    def gpu_hours(
        self,
        *,
        project: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        now: datetime | None = None,
        not_at: Collection[str] = (),
    ) -> float:
        """Ended sessions count to their end, open ones to ``now``, all only after ``since``;
        sessions at the sites `not_at` not at all (Slurm's accounting counts those)."""
        now = now or self._clock()
        return sum(
            session_hours(s, since, now)
            for s in self.sessions(user=user, project=project, since=since)
            if s.site not in not_at
        )

    def gpu_hours_by_user(
        self, *, project: str, since: datetime | None, now: datetime, not_at: Collection[str] = ()
    ) -> dict[str, float]:
        """`gpu_hours` of `project` per user, from one query (the home page shows both)."""
        s = sessions_table.c
        found = self._sessions(
            s.project == project,
            s.gpus > 0,
            *([] if since is None else [sa.or_(s.ended_at.is_(None), s.ended_at > since)]),
        )
        return _sum_by((x for x in found if x.site not in not_at), "user", since, now)

    def usage_by_project(self, since: datetime | None = None) -> dict[str, float]:
        """GPU-hours per project; sessions without a project count only in usage_by_user."""
        return _sum_by(self.sessions(since=since), "project", since, self._clock())

    def usage_by_user(
        self, since: datetime | None = None, project: str | None = None
    ) -> dict[str, float]:
        return _sum_by(self.sessions(project=project, since=since), "user", since, self._clock())

    def gpu_use_reported(
        self, session_id: int, *, busy_gpu_s: float, idle_gpu_s: float, at: datetime | None = None
    ) -> None:
        """Add one activity report's GPU-seconds (busy and idle) to the session's totals."""
        at = at or self._clock()
        g = gpu_use_table.c
        add = dict(
            busy_gpu_seconds=g.busy_gpu_seconds + busy_gpu_s,
            idle_gpu_seconds=g.idle_gpu_seconds + idle_gpu_s,
            reported_at=at,
        )
        with self._engine.begin() as conn:
            if conn.execute(
                gpu_use_table.update().where(g.session_id == session_id).values(add)
            ).rowcount:
                return
        first = dict(
            session_id=session_id, busy_gpu_seconds=busy_gpu_s, idle_gpu_seconds=idle_gpu_s
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(gpu_use_table.insert().values(reported_at=at, **first))
        except sa.exc.IntegrityError:  # a report of the same session got in first
            with self._engine.begin() as conn:
                conn.execute(gpu_use_table.update().where(g.session_id == session_id).values(add))

    def gpu_idle_hours(self, *, project: str | None = None, since: datetime | None = None) -> dict:
        """{project or "": (busy, idle) GPU-hours} that sessions reported, for sessions that
        ran after `since`. Sessions that never reported (no GPUs, or no NVML) add nothing."""
        s, g = sessions_table.c, gpu_use_table.c
        query = (
            sa.select(s.project, sa.func.sum(g.busy_gpu_seconds), sa.func.sum(g.idle_gpu_seconds))
            .select_from(gpu_use_table.join(sessions_table, s.id == g.session_id))
            .group_by(s.project)
        )
        if project is not None:
            query = query.where(s.project == project)
        if since is not None:
            query = query.where(sa.or_(s.ended_at.is_(None), s.ended_at > since))
        with self._engine.connect() as conn:
            return {(p or ""): (busy / 3600, idle / 3600) for p, busy, idle in conn.execute(query)}

    def _sessions(self, *filters) -> list[Session]:
        s = sessions_table.c
        query = sa.select(sessions_table).where(*filters).order_by(s.started_at.desc(), s.id.desc())
        with self._engine.connect() as conn:
            return [record(Session, row) for row in conn.execute(query)]

    def _session_by_id(self, session_id: int) -> Session:
        found = self._sessions(sessions_table.c.id == session_id)
        if not found:
            raise ValueError(f"There is no session {session_id} in the ledger.")
        return found[0]


def session_hours(session: Session, since: datetime | None, now: datetime) -> float:
    """The session's GPU-hours after `since`; an open session counts to `now`."""
    start = max(session.started_at, since) if since else session.started_at
    end = session.ended_at or now
    return session.gpus * max(0.0, (end - start).total_seconds()) / 3600


def _sum_by(sessions: Iterable[Session], key: str, since, now) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for session in sessions:
        if getattr(session, key) is not None:
            totals[getattr(session, key)] += session_hours(session, since, now)
    return dict(totals)
