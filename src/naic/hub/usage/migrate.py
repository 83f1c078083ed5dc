"""The hub's own tables (every ``naic_*`` table) brought to this release's schema with the
migrations in `naic.hub.usage.migrations`, and where a database stands.

`upgrade(url)` is what every start runs (the ledger, the workshop store, ``naic up``,
``naic db upgrade``): an empty database gets its tables from the migrations; one that an
older hub made with ``create_all`` (naic_* tables, no ``naic_alembic_version``) is brought to
the baseline and stamped, then upgraded; one under migrations is upgraded. All of it in one
transaction that holds the database's write lock (SQLite) or an advisory lock (PostgreSQL),
so two hubs starting at once migrate once. JupyterHub's own tables and its
``alembic_version`` are never touched.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from naic.hub.usage.migrations import baseline

VERSION_TABLE = "naic_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_xact_lock's key for "naic_* migrations" (any fixed number; ours: b"naic").
LOCK_KEY = 0x6E616963


class MigrationError(RuntimeError):
    """A database the migrations cannot bring forward; the message is one sentence."""


@dataclass(frozen=True)
class Standing:
    """Where a database stands: its revision (None: not under migrations), the newest this
    release knows, whether it has naic_* tables at all and whether any holds a row."""

    current: str | None
    head: str
    has_tables: bool
    has_rows: bool

    @property
    def pending(self) -> bool:
        return self.current != self.head


def is_naic_table(name: str) -> bool:
    return name.startswith("naic_") and name != VERSION_TABLE


def config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """Alembic's settings without a file: our scripts, and the connection to run on."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    return scripts().get_current_head()


def revisions() -> list[str]:
    """Every revision this release knows, oldest first."""
    return [s.revision for s in reversed(list(scripts().walk_revisions()))]


def shown(url: str | sa.URL) -> str:
    """The URL for messages: never its password."""
    return sa.make_url(url).render_as_string(hide_password=True)


def engine_for(url: str | sa.Engine) -> tuple[sa.Engine, bool]:
    """(engine, whether the caller made it here and must dispose of it)."""
    if isinstance(url, sa.Engine):
        return url, False
    return sa.create_engine(url), True


@contextlib.contextmanager
def locked(url: str | sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that only one process at a time holds: SQLite's write lock from its
    first statement (BEGIN IMMEDIATE, so DDL is in it too), PostgreSQL's advisory lock."""
    engine, own = engine_for(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
    finally:
        if own:
            engine.dispose()


def current_of(conn: sa.Connection) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def naic_tables(conn: sa.Connection) -> list[str]:
    return sorted(t for t in sa.inspect(conn).get_table_names() if is_naic_table(t))


def standing_of(conn: sa.Connection) -> Standing:
    names = naic_tables(conn)
    rows = any(
        conn.execute(sa.select(sa.literal(1)).select_from(sa.table(t)).limit(1)).first()
        for t in names
    )
    return Standing(current_of(conn), head(), bool(names), rows)


def standing(url: str | sa.Engine) -> Standing:
    engine, own = engine_for(url)
    try:
        with engine.connect() as conn:
            return standing_of(conn)
    finally:
        if own:
            engine.dispose()


def upgrade_on(conn: sa.Connection, to: str = "head") -> tuple[str | None, str | None]:
    """`upgrade` on a connection already in `locked`'s transaction."""
    before = current_of(conn)
    if before is None and naic_tables(conn):  # made by create_all, before migrations
        baseline.bring_to_baseline(conn)
        command.stamp(config(conn), baseline.REVISION)
    target = head() if to == "head" else to
    if current_of(conn) != target:
        command.upgrade(config(conn), target)
    return before, current_of(conn)


def upgrade(url: str | sa.Engine, to: str = "head") -> tuple[str | None, str | None]:
    """Bring the naic_* tables to revision `to` (the newest by default); returns the
    revision before (None: none) and after. MigrationError names the database and the
    cause when a step fails; nothing of a failed upgrade stays (one transaction)."""
    try:
        with locked(url) as conn:
            return upgrade_on(conn, to)
    except (sa.exc.SQLAlchemyError, CommandError) as exc:
        where = shown(url.url if isinstance(url, sa.Engine) else url)
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise MigrationError(
            f"The naic_* tables in {where} could not be migrated to {to}: {cause}"
        ) from exc
