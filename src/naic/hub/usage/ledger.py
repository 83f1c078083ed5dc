"""The ledger: GPU-hour usage, access requests and identity bindings, kept in the hub's database.

It lives in the same database as JupyterHub (the same ``db_url``) so that one backup and one
restart story cover both, but it has its own ``MetaData`` and ``naic_`` tables: it creates
and reads only those, never JupyterHub's. SQLAlchemy Core (no ORM) keeps it one small file
that runs on SQLite and PostgreSQL alike.

Datetimes are timezone-aware UTC everywhere in the API. SQLite stores them without a zone
and PostgreSQL hands them back in the server's zone; ``UTCDateTime`` stores UTC and reads
back UTC on both, so what goes in comes out equal. A naive datetime is refused rather than
guessed at: a local time mistaken for UTC would silently shift everyone's usage.

The budget helpers at the end are pure: the spawner asks them whether a session fits.
"""

from __future__ import annotations

import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Row

T = TypeVar("T")
STATES = ("pending", "approved", "declined")
MAX_REASON = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """``DateTime(timezone=True)`` that takes and gives aware UTC datetimes on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the ledger takes timezone-aware datetimes, not naive {value}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite gives back what was stored (UTC) without a zone.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

identities = sa.Table(
    "naic_identities",
    metadata,
    # Both columns unique: one name per identity and one identity per name, enforced by the
    # database so that two hub processes (or threads) cannot both win a race.
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("identity", sa.String(255), nullable=False, unique=True),
    sa.Column("bound_at", UTCDateTime, nullable=False),
)

access_requests = sa.Table(
    "naic_access_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("identity", sa.String(255)),
    sa.Column("project", sa.String(255), nullable=False),
    sa.Column("reason", sa.String(MAX_REASON), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decided_by", sa.String(255)),
    sa.Column("note", sa.Text, nullable=False, default=""),
    # At most one pending request per user and project, even when two arrive at once.
    sa.Index(
        "naic_one_pending_request",
        "username",
        "project",
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
)

sessions_table = sa.Table(
    "naic_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("server", sa.String(255), nullable=False),
    sa.Column("project", sa.String(255), index=True),
    sa.Column("site", sa.String(255), nullable=False),
    sa.Column("job_id", sa.String(255), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, index=True),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)

#: What in-session reports said about each session's GPUs: GPU-seconds used and left idle.
gpu_use_table = sa.Table(
    "naic_gpu_use",
    metadata,
    sa.Column("session_id", sa.Integer, primary_key=True),
    sa.Column("busy_gpu_seconds", sa.Float, nullable=False),
    sa.Column("idle_gpu_seconds", sa.Float, nullable=False),
    sa.Column("reported_at", UTCDateTime, nullable=False),
)


#: GPU-hours a session may still use, held from its admission (queued or running) to its end,
#: so that sessions admitted at once cannot together spend more than the budget.
holds_table = sa.Table(
    "naic_budget_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("server", sa.String(255), nullable=False),
    sa.Column("project", sa.String(255), nullable=False, index=True),
    sa.Column("gpu_hours", sa.Float, nullable=False),
    sa.Column("session_id", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    #: A hold nobody released (a hub that died mid-spawn) lapses here.
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("released_at", UTCDateTime, index=True),
)
_hold_lock = threading.Lock()


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


@dataclass(frozen=True)
class AccessRequest:
    id: int
    user: str
    identity: str | None
    project: str
    reason: str
    state: str  # "pending" | "approved" | "declined"
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str


class IdentityTaken(Exception):
    """A user name or institutional identity is already bound to someone else."""


def _record(cls: type[T], row: Row) -> T:
    # The column is "username" because "user" is a reserved word in PostgreSQL.
    return cls(**{("user" if k == "username" else k): v for k, v in row._mapping.items()})


class Ledger:
    """The hub's record of who is who, who asked for which project, and who used what."""

    def __init__(self, db_url: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        # pre_ping: a hub outlives PostgreSQL restarts; a stale pooled connection is replaced
        # instead of failing the next spawn.
        self._engine = sa.create_engine(db_url, pool_pre_ping=True)
        self._clock = clock
        metadata.create_all(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    # -- identities ------------------------------------------------------------------------

    def bind_identity(self, username: str, identity: str) -> None:
        """Bind on first login; the same pair again is fine; anything else is IdentityTaken."""
        # Insert first and look only on a conflict: the unique constraints decide races.
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    identities.insert().values(
                        username=username, identity=identity, bound_at=self._clock()
                    )
                )
            return
        except sa.exc.IntegrityError as exc:
            conflict = exc
        by_name = self.identity_of(username)
        with self._engine.connect() as conn:
            query = sa.select(identities.c.username).where(identities.c.identity == identity)
            by_identity = conn.scalar(query)
        if by_name == identity:
            return
        if by_name is not None:
            raise IdentityTaken(
                f"The user name '{username}' already belongs to another account ({by_name}); "
                "sign in with that account, or ask support to give yours a different user name."
            )
        if by_identity is None:
            raise conflict  # not a binding conflict: let the real error show
        raise IdentityTaken(
            f"The account {identity} already has the user name '{by_identity}'; sign in as "
            f"'{by_identity}', or ask support if that name must change."
        )

    def identity_of(self, username: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.scalar(
                sa.select(identities.c.identity).where(identities.c.username == username)
            )

    # -- access requests -------------------------------------------------------------------

    def request_access(
        self, user: str, project: str, reason: str, identity: str | None = None
    ) -> AccessRequest:
        reason = reason.strip()
        if not reason:
            raise ValueError("Please say in a few words why you need this project.")
        if len(reason) > MAX_REASON:
            raise ValueError(
                f"Please keep the reason to {MAX_REASON} characters; it has {len(reason)}."
            )
        if project in self.granted_projects(user):
            raise ValueError(f"You already have access to project {project}.")
        row = dict(username=user, identity=identity, project=project, reason=reason)
        row.update(state="pending", created_at=self._clock(), note="")
        try:
            with self._engine.begin() as conn:
                new_id = conn.execute(access_requests.insert().values(**row)).inserted_primary_key
        except sa.exc.IntegrityError:  # the partial unique index: one pending per project
            raise ValueError(
                f"You have already asked for project {project}; an administrator will decide soon."
            ) from None
        return self._requests(access_requests.c.id == new_id[0])[0]

    def decide(self, request_id: int, *, approve: bool, by: str, note: str = "") -> AccessRequest:
        """Approve (which grants the project) or decline a pending request, exactly once."""
        state = "approved" if approve else "declined"
        with self._engine.begin() as conn:
            # The state condition makes a second, concurrent decision change nothing.
            changed = conn.execute(
                access_requests.update()
                .where(access_requests.c.id == request_id, access_requests.c.state == "pending")
                .values(state=state, decided_at=self._clock(), decided_by=by, note=note)
            ).rowcount
        found = self._requests(access_requests.c.id == request_id)
        if not found:
            raise ValueError(f"There is no access request {request_id}.")
        request = found[0]
        if not changed:
            raise ValueError(
                f"Access request {request_id} was already {request.state} by {request.decided_by}."
            )
        return request

    def requests(self, user: str | None = None, state: str | None = None) -> list[AccessRequest]:
        """Newest first."""
        if state is not None and state not in STATES:
            raise ValueError(f"A request's state is one of {', '.join(STATES)}, not {state!r}.")
        r = access_requests.c
        return self._requests(
            *([] if user is None else [r.username == user]),
            *([] if state is None else [r.state == state]),
        )

    def granted_projects(self, user: str) -> set[str]:
        return {r.project for r in self.requests(user, "approved")}

    def has_pending(self, user: str) -> bool:
        return bool(self.requests(user, "pending"))

    def _requests(self, *filters) -> list[AccessRequest]:
        r = access_requests.c
        query = (
            sa.select(access_requests).where(*filters).order_by(r.created_at.desc(), r.id.desc())
        )
        with self._engine.connect() as conn:
            return [_record(AccessRequest, row) for row in conn.execute(query)]

    # -- usage -----------------------------------------------------------------------------

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
            conn.execute(
                sessions_table.update()
                .where(s.id == session_id, s.ended_at.is_(None), s.last_seen < at)
                .values(last_seen=at)
            )
        self._session_by_id(session_id)  # raises for an unknown id

    def session_ended(self, session_id: int, ended_at: datetime | None = None) -> None:
        """Idempotent: the first end stands. An end before the start is clipped to the start."""
        session = self._session_by_id(session_id)
        ended_at = max(ended_at or self._clock(), session.started_at)
        s = sessions_table.c
        with self._engine.begin() as conn:
            conn.execute(
                sessions_table.update()
                .where(s.id == session_id, s.ended_at.is_(None))
                .values(ended_at=ended_at)
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
    ) -> float:
        """Ended sessions count to their end, open ones to ``now``, all only after ``since``."""
        now = now or self._clock()
        return sum(
            _hours(s, since, now) for s in self.sessions(user=user, project=project, since=since)
        )

    def usage_by_project(self, since: datetime | None = None) -> dict[str, float]:
        """GPU-hours per project; sessions without a project count only in usage_by_user."""
        return _sum_by(self.sessions(since=since), "project", since, self._clock())

    def usage_by_user(
        self, since: datetime | None = None, project: str | None = None
    ) -> dict[str, float]:
        return _sum_by(self.sessions(project=project, since=since), "user", since, self._clock())

    # -- budget holds ------------------------------------------------------------------------

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
    ) -> int | tuple[float, float]:
        """Hold `gpu_hours` of `project` for one session if what is used and held already
        leaves room: returns the hold's id, or (refused) what is (used, held). Atomic: one
        check-and-insert at a time, in this process (a lock) and across hub processes on
        PostgreSQL (a transaction-scoped advisory lock per project). The server's previous
        hold, if any, is released first: a server runs one session at a time."""
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
            used, held = self._committed(conn, project, since, now)
            if used + held + gpu_hours > budget + 1e-9:
                return used, held
            values = dict(username=user, server=server, project=project, gpu_hours=gpu_hours)
            values.update(created_at=now, expires_at=expires_at)
            return conn.execute(holds_table.insert().values(**values)).inserted_primary_key[0]

    def committed(
        self, project: str, since: datetime | None, *, without_hold: int | None = None
    ) -> tuple[float, float]:
        """GPU-hours of `project` used since `since`, and what open holds may still use."""
        with self._engine.connect() as conn:
            return self._committed(conn, project, since, self._clock(), without_hold)

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
        h = holds_table.c
        with self._engine.begin() as conn:
            conn.execute(
                holds_table.update()
                .where(h.id == hold_id, h.released_at.is_(None))
                .values(released_at=self._clock())
            )

    def _committed(
        self, conn, project: str, since: datetime | None, now: datetime, without: int | None = None
    ) -> tuple[float, float]:
        s, h = sessions_table.c, holds_table.c
        rows = conn.execute(
            sa.select(sessions_table).where(
                s.project == project,
                *([] if since is None else [sa.or_(s.ended_at.is_(None), s.ended_at > since)]),
            )
        )
        used = {row.id: _hours(_record(Session, row), since, now) for row in rows}
        held = 0.0
        for row in conn.execute(
            sa.select(holds_table).where(
                h.project == project, h.released_at.is_(None), h.expires_at > now
            )
        ):
            if row.id != without:  # what it may still use on top of what it used
                held += max(row.gpu_hours - used.get(row.session_id, 0.0), 0.0)
        return sum(used.values()), held

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
            return [_record(Session, row) for row in conn.execute(query)]

    def _session_by_id(self, session_id: int) -> Session:
        found = self._sessions(sessions_table.c.id == session_id)
        if not found:
            raise ValueError(f"There is no session {session_id} in the ledger.")
        return found[0]


def _hours(session: Session, since: datetime | None, now: datetime) -> float:
    start = max(session.started_at, since) if since else session.started_at
    end = session.ended_at or now
    return session.gpus * max(0.0, (end - start).total_seconds()) / 3600


def _sum_by(sessions: Iterable[Session], key: str, since, now) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for session in sessions:
        if getattr(session, key) is not None:
            totals[getattr(session, key)] += _hours(session, since, now)
    return dict(totals)


# -- budgets ---------------------------------------------------------------------------------

PERIODS = {"month": 1, "quarter": 3, "year": 12, "never": None}  # length in months
MONTHS = (
    "January February March April May June July August September October November December"
).split()  # not %B: that follows the locale


def _months(period: str) -> int | None:
    if period not in PERIODS:
        raise ValueError(f"A budget period is one of {', '.join(PERIODS)}, not {period!r}.")
    return PERIODS[period]


def period_start(period: str, now: datetime) -> datetime | None:
    """The first day, 00:00 UTC, of the period that contains ``now``; None for "never"."""
    months = _months(period)
    if months is None:
        return None
    now = now.astimezone(UTC)
    first_month = (now.month - 1) // months * months + 1
    return datetime(now.year, first_month, 1, tzinfo=UTC)


def next_reset(period: str, now: datetime) -> datetime | None:
    """The start of the period after the one that contains ``now``; None for "never"."""
    start = period_start(period, now)
    if start is None:
        return None
    years, month0 = divmod(start.month - 1 + PERIODS[period], 12)
    return start.replace(year=start.year + years, month=month0 + 1)


def _brief(number: float) -> str:
    text = f"{number:.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def budget_refusal(
    project: str,
    budget: float | None,
    used: float,
    asked: float,
    period: str,
    now: datetime,
    held: float = 0.0,
) -> str | None:
    """None if the session fits the project's budget, else the sentence that says why not.
    `held`: what the project's running and queued sessions may still use."""
    reset = next_reset(period, now)  # validates the period even when the session fits
    # A hair of tolerance: sums of float hours must not refuse a session that fits exactly.
    if budget is None or used + held + asked <= budget + 1e-9:
        return None
    when = "" if reset is None else f" this {period}"
    holding = (
        f", and its running or queued sessions may use {_brief(held)} more" if held > 1e-9 else ""
    )
    head = (
        f"Project {project} has used {_brief(used)} of its {_brief(budget)} GPU-hours{when}"
        f"{holding}; this session would need {_brief(asked)} more"
    )
    if reset is None:
        return f"{head}; it does not reset: ask the project's PI or support for more GPU-hours."
    return f"{head}. The budget resets on {reset.day} {MONTHS[reset.month - 1]} {reset.year}."
