"""The ledger's tables, in the hub's database beside JupyterHub's (its own ``MetaData``, every
table named ``naic_…``), and what the ledger's parts share: `Book`, and rows as records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Row

from naic.hub.usage.db import UTCDateTime

T = TypeVar("T")
STATES = ("pending", "approved", "declined")
MAX_REASON = 500

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


class Book:
    """One concern of the ledger; `Ledger` combines them and sets what they share."""

    _engine: sa.Engine
    _clock: Callable[[], datetime]


def record(cls: type[T], row: Row) -> T:
    """A row as a record; the column is "username" because "user" is reserved in PostgreSQL."""
    return cls(**{("user" if k == "username" else k): v for k, v in row._mapping.items()})
