"""The ledger: GPU-hour usage, access requests and identity bindings, kept in the hub's database.

It lives in the same database as JupyterHub (the same ``db_url``) so that one backup and one
restart story cover both, but it has its own ``MetaData`` and ``naic_`` tables: it creates
and reads only those, never JupyterHub's. SQLAlchemy Core (no ORM) runs it on SQLite and
PostgreSQL alike; datetimes are aware UTC everywhere (``UTCDateTime``, in `db`).

`Ledger` is one object over the database, made of one part per concern:

- `identities`: who is who (`bind_identity`, `identity_of`; `IdentityTaken`)
- `access_requests`: who asked for which project (`request_access`, `decide`, `requests`)
- `records`: who used what (`session_started` … `session_ended`, GPU-hours, GPU idle time)
- `holds`: budget holds, so that sessions admitted at once fit their budget together
- `tables`: the tables themselves; `budget`: the pure budget helpers (`budget_refusal`)
- `migrate`: their schema, made and changed by migrations (every start runs `upgrade`)

The names other modules use are importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.access_requests import AccessRequest, AccessRequests
from naic.hub.usage.budget import MONTHS, PERIODS, budget_refusal, next_reset, period_start
from naic.hub.usage.db import UTCDateTime, utcnow
from naic.hub.usage.holds import BudgetHolds
from naic.hub.usage.identities import Identities, IdentityTaken
from naic.hub.usage.migrate import upgrade
from naic.hub.usage.records import Session, UsageRecords
from naic.hub.usage.tables import MAX_REASON, STATES, metadata

__all__ = [
    "MAX_REASON",
    "MONTHS",
    "PERIODS",
    "STATES",
    "AccessRequest",
    "IdentityTaken",
    "Ledger",
    "Session",
    "UTCDateTime",
    "budget_refusal",
    "metadata",
    "next_reset",
    "period_start",
    "utcnow",
]


class Ledger(Identities, AccessRequests, UsageRecords, BudgetHolds):
    """The hub's record of who is who, who asked for which project, and who used what."""

    def __init__(self, db_url: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        # pre_ping: a hub outlives PostgreSQL restarts; a stale pooled connection is replaced
        # instead of failing the next spawn.
        self._engine = sa.create_engine(db_url, pool_pre_ping=True)
        self._clock = clock
        upgrade(self._engine)  # the naic_* tables, by the migrations (naic.hub.usage.migrate)

    def close(self) -> None:
        self._engine.dispose()
