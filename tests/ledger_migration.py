"""What the migration tests share on SQLite (tests/unit/test_migrations.py) and PostgreSQL
(tests/integration/test_migrations_postgres.py): the naic_* schema of commit 4bc6e89 from
its snapshot in tests/data/, rows for every table, the rows and figures read back, and a
database that also holds JupyterHub's own tables."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from naic.hub.usage import migrate
from naic.hub.usage import tables as usage_tables
from naic.hub.usage.ledger import Ledger
from naic.hub.usage.migrations import baseline
from naic.hub.workshops import tables as workshop_tables
from naic.hub.workshops.store import WorkshopStore

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)
OSLO = timezone(timedelta(hours=1))
BASELINE_TABLES = {
    "naic_identities",
    "naic_access_requests",
    "naic_sessions",
    "naic_gpu_use",
    "naic_budget_holds",
    "naic_workshops",
    "naic_workshop_seats",
    "naic_guest_accounts",
}
#: Tables later migrations make (0003: workshop assignments), empty in `fill`'s database.
LATER_TABLES = {"naic_assignments", "naic_submissions"}
ALL_TABLES = BASELINE_TABLES | LATER_TABLES


def old_schema(url: str) -> None:
    """The naic_* tables exactly as a hub at commit 4bc6e89 made them (create_all)."""
    engine = sa.create_engine(url)
    script = (DATA / f"ledger-4bc6e89.{engine.dialect.name}.sql").read_text()
    lines = [x for x in script.splitlines() if not x.startswith("--")]
    try:
        with engine.begin() as conn:
            for statement in "\n".join(lines).split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _at(hours: float, zone=UTC) -> datetime:
    return (T0 + timedelta(hours=hours)).astimezone(zone)


#: A row in every table, with what tends to break: other zones, microseconds, NULLs,
#: non-ASCII text, floats with many digits, ids with gaps.
# fmt: off
ROWS: dict[str, list[dict]] = {
    "naic_identities": [
        {"username": "ola", "identity": "ola@uio.no", "bound_at": _at(0.5, OSLO)},
        {"username": "åse", "identity": "åse@ntnu.no", "bound_at": _at(1 + 1e-6 / 3600)},
    ],
    "naic_access_requests": [
        {"id": 3, "username": "åse", "identity": "åse@ntnu.no", "project": "nn1234k",
         "reason": "Kurs i djup læring — «GPU»", "state": "approved", "created_at": _at(1),
         "decided_at": _at(2, OSLO), "decided_by": "admin", "note": "ok"},
        {"id": 7, "username": "ola", "identity": None, "project": "nn9999k",
         "reason": "please", "state": "pending", "created_at": _at(3), "decided_at": None,
         "decided_by": None, "note": ""},
    ],
    "naic_sessions": [
        {"id": 1, "username": "ola", "server": "", "project": "nn1234k", "site": "saga",
         "job_id": "101", "gpus": 2, "started_at": _at(4), "ended_at": _at(6.25),
         "last_seen": _at(6)},
        {"id": 5, "username": "åse", "server": "gpu", "project": "nn1234k", "site": "local",
         "job_id": "", "gpus": 1, "started_at": _at(5, OSLO), "ended_at": None,
         "last_seen": _at(30)},
        {"id": 6, "username": "ola", "server": "x", "project": None, "site": "saga",
         "job_id": "202", "gpus": 4, "started_at": _at(10), "ended_at": _at(11.5),
         "last_seen": _at(11.5)},
    ],
    "naic_gpu_use": [
        {"session_id": 1, "busy_gpu_seconds": 1234.567890123, "idle_gpu_seconds": 0.1,
         "reported_at": _at(6)},
        {"session_id": 5, "busy_gpu_seconds": 0.0, "idle_gpu_seconds": 3600.0,
         "reported_at": _at(29)},
    ],
    "naic_budget_holds": [
        {"id": 2, "username": "ola", "server": "", "project": "nn1234k", "gpu_hours": 8.0,
         "session_id": 1, "created_at": _at(4), "expires_at": _at(12), "released_at": _at(6.25)},
        {"id": 9, "username": "åse", "server": "gpu", "project": "nn1234k",
         "gpu_hours": 100.0 / 3, "session_id": 5, "created_at": _at(5),
         "expires_at": _at(200), "released_at": None},
    ],
    "naic_workshops": [
        {"name": "ml-intro", "title": "Maskinlæring", "instructor": "ingrid", "seats": 40,
         "starts_at": _at(48, OSLO), "ends_at": _at(56), "site": "saga", "resource": "a100",
         "gpus": 1, "hours": 7.5, "project": "nn1234k", "material": "https://git.example/m",
         "code": "f" * 64, "reservation": "ws_ml-intro", "created_at": _at(1),
         "ended_at": None, "awaiting_approval": None, "approved_by": "admin"},
    ],
    "naic_workshop_seats": [
        {"workshop": "ml-intro", "username": "ola", "seat": 1, "joined_at": _at(49)},
        {"workshop": "ml-intro", "username": "guest-1", "seat": 2, "joined_at": _at(50)},
    ],
    "naic_guest_accounts": [
        {"username": "guest-1", "workshop": "ml-intro", "password_hash": "pbkdf2$x$y",
         "issued_at": _at(47), "expires_at": _at(57), "password_used_at": _at(50),
         "reset_at": None},
    ],
}
# fmt: on


def _utc(value):
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def fill(url: str) -> None:
    """ROWS into the naic_* tables as they are at the baseline (and 4bc6e89)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name, rows in ROWS.items():
                table = baseline.metadata.tables[name]
                conn.execute(table.insert(), [{k: _utc(v) for k, v in r.items()} for r in rows])
    finally:
        engine.dispose()


#: Columns later migrations add, with what they hold in rows that existed before.
LATER_COLUMNS = {"naic_workshops": {"environment": None, "shared": None}}


def expected(revision: str = "head") -> dict[str, list[dict]]:
    """ROWS as `read_all` gives them back at `revision` (the baseline's, or the newest
    with the columns added since): aware UTC, in primary key order."""
    out = {}
    for name, rows in ROWS.items():
        key = [c.name for c in baseline.metadata.tables[name].primary_key.columns]
        ordered = sorted(rows, key=lambda r: [r[k] for k in key])
        later = LATER_COLUMNS.get(name, {}) if revision != baseline.REVISION else {}
        out[name] = [{**{k: _utc(v) for k, v in r.items()}, **later} for r in ordered]
    if revision != baseline.REVISION:
        out.update({name: [] for name in sorted(LATER_TABLES)})
    return out


def read_all(url: str) -> dict[str, list[dict]]:
    """Every row of every naic_* table, datetimes as aware UTC, in key order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn, only=migrate.naic_tables(conn))
            out = {}
            for name, table in meta.tables.items():
                query = sa.select(table).order_by(*table.primary_key.columns)
                out[name] = [
                    {k: _aware(v) for k, v in row.items()} for row in conn.execute(query).mappings()
                ]
            return out
    finally:
        engine.dispose()


def _aware(value):
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def figures(url: str) -> dict:
    """What people see of the ledger and the workshops: GPU-hours by project and user,
    budgets used and held, GPU idle time, grants, identities, workshops and seats."""
    ledger = Ledger(url, clock=lambda: NOW)
    store = WorkshopStore(url, clock=lambda: NOW)
    try:
        return {
            "by_project": ledger.usage_by_project(),
            "by_user": ledger.usage_by_user(),
            "since": ledger.usage_by_project(since=_at(5)),
            "gpu_hours": ledger.gpu_hours(project="nn1234k", now=NOW),
            "committed": ledger.committed("nn1234k", None),
            "idle": ledger.gpu_idle_hours(),
            "granted": ledger.granted_projects("åse"),
            "identity": ledger.identity_of("ola"),
            "requests": ledger.requests(),
            "workshops": store.list(),
            "seats": store.seats("ml-intro"),
            "guests": store.guests("ml-intro"),
        }
    finally:
        ledger.close()
        store.close()


def drop_naic(url: str) -> None:
    """Drop every naic_* table and naic_alembic_version: a lost ledger."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in sa.inspect(conn).get_table_names():
                if name.startswith("naic_"):
                    conn.exec_driver_sql(f"DROP TABLE {name}")
    finally:
        engine.dispose()


def schema(url: str) -> dict:
    """The naic_* tables' columns, keys, indexes and unique constraints, as reflected."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            name: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
                ],
                "pk": inspector.get_pk_constraint(name)["constrained_columns"],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(name)
                ),
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
                ),
            }
            for name in sorted(inspector.get_table_names())
            if migrate.is_naic_table(name)
        }
    finally:
        engine.dispose()


def jupyterhub_tables(url: str) -> tuple[str, list[str]]:
    """JupyterHub's own tables in the database, as JupyterHub makes them, with one user;
    returns its alembic_version and its users."""
    from jupyterhub import orm

    session = orm.new_session_factory(url)()
    try:
        session.add(orm.User(name="ola"))
        session.commit()
    finally:
        session.close()
    return jupyterhub_state(url)


def jupyterhub_state(url: str) -> tuple[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            users = conn.execute(sa.text("SELECT name FROM users ORDER BY name")).scalars()
            return version, list(users)
    finally:
        engine.dispose()


def drift(url: str) -> list:
    """What differs between the migrated naic_* tables and those the code declares."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda n, t, p: t != "table" or migrate.is_naic_table(n),
                },
            )
            return compare_metadata(ctx, [usage_tables.metadata, workshop_tables.metadata])
    finally:
        engine.dispose()


def upgrade_at_once(url: str, hubs: int = 4) -> Counter:
    """`migrate.upgrade` from `hubs` threads at once: how often each result (or exception)."""
    results: list = []

    def start() -> None:
        try:
            results.append(migrate.upgrade(url))
        except Exception as exc:  # the caller's assertion shows it
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(hubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(results)
