"""The workshop store's tables, in the hub's database beside JupyterHub's (its own
``MetaData``, every table named ``naic_…``), the records read from them, and their upgrades
in place for a database an older hub made (columns added since, join codes kept in clear)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from naic.hub.usage.db import UTCDateTime
from naic.hub.workshops.rules import is_code_digest

metadata = sa.MetaData()

workshops_table = sa.Table(
    "naic_workshops",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("instructor", sa.String(255), nullable=False, index=True),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("site", sa.String(40), nullable=False),
    sa.Column("resource", sa.String(40), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("project", sa.String(40)),
    sa.Column("material", sa.String(500), nullable=False),
    # The join code's keyed hash (naic.hub.workshops.rules.code_digest), never the code itself:
    # a copy of the database gives no usable code. Hubs before kept codes here in clear;
    # the store hashes them at start (`hash_clear_codes`).
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("reservation", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    # Why it waits for an admin (the catalogue's `workshops` policy); None: it does not.
    sa.Column("awaiting_approval", sa.String(1000)),
    sa.Column("approved_by", sa.String(255)),
    # The catalogue environment its sessions run (None: the resource's first); migration 0002.
    sa.Column("environment", sa.String(40)),
    # A read-only course folder on the site, linked into each student's ~/<workshop>; 0004.
    sa.Column("shared", sa.String(500)),
)

seats_table = sa.Table(
    "naic_workshop_seats",
    metadata,
    sa.Column("workshop", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("seat", sa.Integer, nullable=False),
    sa.Column("joined_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("workshop", "seat", name="naic_one_student_per_seat"),
)

#: Temporary accounts: who holds which guest account, until when, with which password.
guests_table = sa.Table(
    "naic_guest_accounts",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("workshop", sa.String(40), nullable=False, index=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # One login per password: when it was used (None: not yet).
    sa.Column("password_used_at", UTCDateTime),
    # When the account was last reset (its hub tokens, jobs, home) after its window passed.
    sa.Column("reset_at", UTCDateTime),
)
#: Workshop assignments (naic.hub.workshops.assignments; migration 0003): what the staff
#: released, a zip of the assignment's folder; one row per name, a release again replaces it.
assignments_table = sa.Table(
    "naic_assignments",
    metadata,
    sa.Column("workshop", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("released_at", UTCDateTime, nullable=False),
    sa.Column("released_by", sa.String(255), nullable=False),
    sa.Column("archive", sa.LargeBinary, nullable=False),
)

#: Each student's latest submission of an assignment (a zip); a resubmission replaces it.
submissions_table = sa.Table(
    "naic_submissions",
    metadata,
    sa.Column("workshop", sa.String(40), primary_key=True),
    sa.Column("assignment", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("archive", sa.LargeBinary, nullable=False),
)

#: Columns added after the table first shipped: a hub's existing table gets them at start.
ADDED_COLUMNS = {
    guests_table.name: ("password_used_at", "reset_at"),
    workshops_table.name: ("awaiting_approval", "approved_by"),
}


@dataclass(frozen=True)
class Workshop:
    name: str
    title: str
    instructor: str
    seats: int
    starts_at: datetime
    ends_at: datetime
    site: str
    resource: str
    gpus: int
    hours: float
    project: str | None
    material: str
    code_digest: str
    reservation: str | None
    created_at: datetime
    ended_at: datetime | None
    awaiting_approval: str | None = None
    approved_by: str | None = None
    environment: str | None = None
    shared: str | None = None

    def is_open(self, now: datetime) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.ends_at


@dataclass(frozen=True)
class Seat:
    workshop: str
    username: str
    seat: int
    joined_at: datetime


@dataclass(frozen=True)
class GuestAccount:
    """One issue of a temporary account: to whom (the workshop), until when."""

    username: str
    workshop: str
    issued_at: datetime
    expires_at: datetime
    reset_at: datetime | None


def workshop_of(row) -> Workshop:
    """A row of `workshops_table` as a Workshop: its `code` column holds the code's digest."""
    fields = dict(row._mapping)
    fields["code_digest"] = fields.pop("code")
    return Workshop(**fields)


def add_missing_columns(engine: sa.Engine) -> None:
    """`create_all` makes missing tables only; columns added since come here (nullable,
    so every backend adds them in place). Another hub adding them at once is harmless."""
    inspector = sa.inspect(engine)
    for table_name, names in ADDED_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table_name)}
        for name in names:
            if name in have:
                continue
            column = metadata.tables[table_name].c[name]
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))
            except sa.exc.DBAPIError:
                if name not in {c["name"] for c in sa.inspect(engine).get_columns(table_name)}:
                    raise


def hash_clear_codes(engine: sa.Engine, digest: Callable[[str], str]) -> None:
    """Join codes an older hub kept in clear become their hash, in place (the column
    widened first where the database enforces its length). Repeatable; another hub
    doing it at once hashes nothing twice (a digest is left as it is)."""
    w = workshops_table.c
    if engine.dialect.name == "postgresql":
        length = next(
            c["type"].length
            for c in sa.inspect(engine).get_columns(workshops_table.name)
            if c["name"] == "code"
        )
        if length is not None and length < 64:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {workshops_table.name} ALTER COLUMN code TYPE VARCHAR(64)"
                    )
                )
    with engine.begin() as conn:
        rows = conn.execute(sa.select(w.name, w.code)).all()
        for name, code in rows:
            if not is_code_digest(code):
                conn.execute(
                    workshops_table.update()
                    .where(w.name == name, w.code == code)
                    .values(code=digest(code))
                )
