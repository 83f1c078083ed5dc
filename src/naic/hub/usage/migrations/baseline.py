"""The hub's tables as of commit 4bc6e89, frozen: the schema of migration 0001, and what
brings a database made before migrations (by ``create_all``) to it so it can be stamped.

Frozen on purpose: these definitions never follow later edits of the live tables
(naic.hub.usage.tables, naic.hub.workshops.tables); changes there are later migrations.
"""

from __future__ import annotations

import sqlalchemy as sa

REVISION = "0001"

metadata = sa.MetaData()
When = sa.DateTime(timezone=True)  # what naic.hub.usage.db.UTCDateTime stores

sa.Table(
    "naic_identities",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("identity", sa.String(255), nullable=False, unique=True),
    sa.Column("bound_at", When, nullable=False),
)
sa.Table(
    "naic_access_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("identity", sa.String(255)),
    sa.Column("project", sa.String(255), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", When, nullable=False),
    sa.Column("decided_at", When),
    sa.Column("decided_by", sa.String(255)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Index(
        "naic_one_pending_request",
        "username",
        "project",
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
)
sa.Table(
    "naic_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("server", sa.String(255), nullable=False),
    sa.Column("project", sa.String(255), index=True),
    sa.Column("site", sa.String(255), nullable=False),
    sa.Column("job_id", sa.String(255), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("started_at", When, nullable=False),
    sa.Column("ended_at", When, index=True),
    sa.Column("last_seen", When, nullable=False),
)
sa.Table(
    "naic_gpu_use",
    metadata,
    sa.Column("session_id", sa.Integer, primary_key=True),
    sa.Column("busy_gpu_seconds", sa.Float, nullable=False),
    sa.Column("idle_gpu_seconds", sa.Float, nullable=False),
    sa.Column("reported_at", When, nullable=False),
)
sa.Table(
    "naic_budget_holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("server", sa.String(255), nullable=False),
    sa.Column("project", sa.String(255), nullable=False, index=True),
    sa.Column("gpu_hours", sa.Float, nullable=False),
    sa.Column("session_id", sa.Integer),
    sa.Column("created_at", When, nullable=False),
    sa.Column("expires_at", When, nullable=False),
    sa.Column("released_at", When, index=True),
)
sa.Table(
    "naic_workshops",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("title", sa.String(120), nullable=False),
    sa.Column("instructor", sa.String(255), nullable=False, index=True),
    sa.Column("seats", sa.Integer, nullable=False),
    sa.Column("starts_at", When, nullable=False),
    sa.Column("ends_at", When, nullable=False),
    sa.Column("site", sa.String(40), nullable=False),
    sa.Column("resource", sa.String(40), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("hours", sa.Float, nullable=False),
    sa.Column("project", sa.String(40)),
    sa.Column("material", sa.String(500), nullable=False),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("reservation", sa.String(64)),
    sa.Column("created_at", When, nullable=False),
    sa.Column("ended_at", When),
    sa.Column("awaiting_approval", sa.String(1000)),
    sa.Column("approved_by", sa.String(255)),
)
sa.Table(
    "naic_workshop_seats",
    metadata,
    sa.Column("workshop", sa.String(40), primary_key=True),
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("seat", sa.Integer, nullable=False),
    sa.Column("joined_at", When, nullable=False),
    sa.UniqueConstraint("workshop", "seat", name="naic_one_student_per_seat"),
)
sa.Table(
    "naic_guest_accounts",
    metadata,
    sa.Column("username", sa.String(255), primary_key=True),
    sa.Column("workshop", sa.String(40), nullable=False, index=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("issued_at", When, nullable=False),
    sa.Column("expires_at", When, nullable=False),
    sa.Column("password_used_at", When),
    sa.Column("reset_at", When),
)

#: Columns hubs before 4bc6e89 did not have yet (all nullable, so added in place).
EARLIER_MISSING = {
    "naic_guest_accounts": ("password_used_at", "reset_at"),
    "naic_workshops": ("awaiting_approval", "approved_by"),
}


def bring_to_baseline(conn: sa.Connection) -> None:
    """A database an older hub made with ``create_all``: the tables it lacks, the columns
    added since it was made, join codes' column widened for their hashes (PostgreSQL)."""
    metadata.create_all(conn, checkfirst=True)
    inspector = sa.inspect(conn)
    for table, names in EARLIER_MISSING.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for name in (n for n in names if n not in have):
            kind = metadata.tables[table].c[name].type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
    if conn.dialect.name == "postgresql":
        code = next(c for c in inspector.get_columns("naic_workshops") if c["name"] == "code")
        if (code["type"].length or 64) < 64:
            conn.execute(sa.text("ALTER TABLE naic_workshops ALTER COLUMN code TYPE VARCHAR(64)"))
