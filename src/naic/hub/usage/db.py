"""What the hub's own tables share, in the ledger (naic.hub.usage.ledger) and the workshop
store (naic.hub.workshops.store): aware UTC datetimes on every backend, and a write that
only the first of several (an end, a release) makes.

Datetimes are timezone-aware UTC everywhere in the API. SQLite stores them without a zone
and PostgreSQL hands them back in the server's zone; ``UTCDateTime`` stores UTC and reads
back UTC on both, so what goes in comes out equal. A naive datetime is refused rather than
guessed at: a local time mistaken for UTC would silently shift everyone's usage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


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


def set_once(engine: sa.Engine, table: sa.Table, column: str, value: Any, *where: Any) -> None:
    """Set `column` to `value` in the rows of `table` that match `where` and have no value
    there yet: idempotent, the first write stands (a session's or workshop's end, a hold's
    release)."""
    with engine.begin() as conn:
        conn.execute(
            table.update().where(*where, table.c[column].is_(None)).values({column: value})
        )
