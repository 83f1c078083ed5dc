"""Backups of the hub's own tables (every ``naic_*`` table: the ledger and the workshops)
as one JSON file, restored into SQLite or PostgreSQL alike.

`backup(url, dest_dir)` writes ``naic-ledger-<UTC time>.json`` (mode 0600): the schema
revision (naic.hub.usage.migrate) and every row of every naic_* table, datetimes as ISO 8601
in UTC with their zone, binary columns (assignments' zips) in base64. `restore(url, file)`
puts them into a database without naic_* rows: it creates the tables by the migrations at
the file's revision, inserts every row and moves PostgreSQL's sequences past them, all in
one transaction, or refuses with one sentence.
`upgrade_with_backup` is what ``naic up``, ``naic db upgrade`` and the Ansible role run.

JupyterHub's own tables (users, tokens, servers) are not in it: back them up with the
database (``pg_dump``, or a copy of the SQLite file while the hub is stopped).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.util import CommandError

from naic.hub.usage import migrate
from naic.hub.usage.migrations import baseline

FORMAT = "naic-ledger-backup"
FORMAT_VERSION = 1
PATTERN = "naic-ledger-*.json"
KEEP = 10
CHUNK = 1000


class BackupError(RuntimeError):
    """A backup that cannot be written or restored; the message is one sentence."""


@dataclass(frozen=True)
class Upgraded:
    """What `upgrade_with_backup` did: the revisions before and after, the backup taken
    first (None: nothing to migrate, or no rows to keep), whether it made the tables."""

    before: str | None
    after: str | None
    backup: Path | None
    created: bool = False


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):  # an assignment's zip: base64 text
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):  # SQLite gives stored UTC back without a zone
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    return value


def _reflect(conn: sa.Connection, names: list[str]) -> sa.MetaData:
    meta = sa.MetaData()
    meta.reflect(conn, only=names)
    return meta


def dump(conn: sa.Connection) -> dict:
    """Every naic_* row on `conn`, with the revision, as the backup file holds them."""
    names = migrate.naic_tables(conn)
    meta = _reflect(conn, names)
    tables = {}
    for name in names:
        table = meta.tables[name]
        order = list(table.primary_key.columns) or list(table.columns)
        rows = conn.execute(sa.select(table).order_by(*order)).mappings()
        tables[name] = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "revision": migrate.current_of(conn),
        "taken_at": datetime.now(UTC).isoformat(),
        "dialect": conn.dialect.name,
        "tables": tables,
    }


def backup(url: str | sa.Engine, dest_dir: Path) -> Path:
    """Every naic_* row into a new file in `dest_dir` (made 0700 if missing); its path."""
    engine, own = migrate.engine_for(url)
    try:
        with engine.connect() as conn:  # one consistent read of all tables
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            elif conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            content = dump(conn)
            conn.rollback()
    finally:
        if own:
            engine.dispose()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = dest_dir / f"naic-ledger-{stamp}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(content, out, indent=1, ensure_ascii=False)
        out.write("\n")
    return path


def prune(dest_dir: Path, keep: int = KEEP) -> list[Path]:
    """Delete all but the newest `keep` backups in `dest_dir`; the paths deleted."""
    old = sorted(Path(dest_dir).glob(PATTERN))[:-keep] if keep > 0 else []
    for path in old:
        path.unlink()
    return old


def read(file: Path) -> dict:
    """A backup file's content; BackupError naming the file and what is wrong."""
    try:
        content = json.loads(Path(file).read_text())
    except OSError as exc:
        raise BackupError(f"{file} cannot be read: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise BackupError(f"{file} is not a naic ledger backup: it is not JSON ({exc}).") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise BackupError(f'{file} is not a naic ledger backup (no "format": "{FORMAT}").')
    if content.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{file} is a ledger backup of format version {content.get('format_version')}; "
            f"this naic-hub reads version {FORMAT_VERSION}."
        )
    tables = content.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        for rows in tables.values()
    ):
        raise BackupError(f'{file} is damaged: "tables" is not a list of rows per table.')
    revision = content.get("revision")
    if revision is not None and revision not in migrate.revisions():
        raise BackupError(
            f"{file} was taken at schema revision {revision}, which this naic-hub does not "
            "know: restore it with the naic-hub release that took it (or a newer one)."
        )
    return content


def _typed(table: sa.Table, row: dict, file: Path) -> dict:
    out = {}
    for name, value in row.items():
        column = table.c.get(name)
        if column is None:
            raise BackupError(f"{file}: table {table.name} has no column {name} here.")
        if value is not None and isinstance(column.type, sa.DateTime):
            value = datetime.fromisoformat(value).astimezone(UTC)
        elif value is not None and isinstance(column.type, sa.LargeBinary):
            value = base64.b64decode(value)
        out[name] = value
    return out


def _reset_sequences(conn: sa.Connection, table: sa.Table) -> None:
    """PostgreSQL: each serial column's sequence past the largest value restored."""
    for column in table.columns:
        seq = conn.execute(
            sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
        ).scalar()
        if seq:
            top = conn.execute(sa.select(sa.func.max(column))).scalar()
            conn.execute(
                sa.text("SELECT setval(:seq, :value, false)"), {"seq": seq, "value": (top or 0) + 1}
            )


def restore(url: str | sa.Engine, file: Path) -> tuple[str | None, int]:
    """The rows of backup `file` into `url`'s database, which must have no naic_* rows;
    returns the revision restored at and the number of rows. BackupError (one sentence)
    when it refuses or fails; then nothing was written."""
    file = Path(file)
    content = read(file)
    revision = content["revision"] or baseline.REVISION
    where = migrate.shown(url.url if isinstance(url, sa.Engine) else url)
    try:
        with migrate.locked(url) as conn:
            count = _restore_on(conn, content, revision, file, where)
    except (sa.exc.SQLAlchemyError, CommandError, ValueError, TypeError) as exc:
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise BackupError(f"{file} could not be restored into {where}: {cause}") from exc
    return revision, count


def _restore_on(conn: sa.Connection, content: dict, revision: str, file: Path, where: str) -> int:
    current, names = migrate.current_of(conn), migrate.naic_tables(conn)
    if current is not None and not names:  # the tables dropped, their version left
        conn.execute(sa.text(f"DROP TABLE {migrate.VERSION_TABLE}"))
        current = None
    if current is None and names:
        raise BackupError(
            f"{where} has naic_* tables not made by the migrations ({', '.join(names)}): "
            f"drop them (and naic_alembic_version) before restoring {file}."
        )
    if current is not None and current != revision:
        raise BackupError(
            f"{where} is at schema revision {current} but {file} was taken at {revision}: "
            "restore into a database without naic_* tables (drop them and "
            "naic_alembic_version first), or one at that revision."
        )
    migrate.upgrade_on(conn, revision)
    meta = _reflect(conn, migrate.naic_tables(conn))
    full = [
        n
        for n in sorted(meta.tables)
        if conn.execute(sa.select(sa.literal(1)).select_from(meta.tables[n]).limit(1)).first()
    ]
    if full:
        raise BackupError(
            f"{where} already has rows in {', '.join(full)}: restore {file} only into a "
            "database without naic_* rows (a fresh one, or drop the naic_* tables first)."
        )
    count = 0
    for name, rows in content["tables"].items():
        table = meta.tables.get(name)
        if table is None:
            raise BackupError(f"{file} has table {name}, which revision {revision} does not.")
        typed = [_typed(table, row, file) for row in rows]
        for start in range(0, len(typed), CHUNK):
            conn.execute(table.insert(), typed[start : start + CHUNK])
        count += len(typed)
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn, table)
    return count


def upgrade_with_backup(url: str, backups_dir: Path, keep: int = KEEP) -> Upgraded:
    """`migrate.upgrade`, with a backup into `backups_dir` first when there is something to
    migrate and rows to keep (the newest `keep` backups stay)."""
    before = migrate.standing(url)
    path = None
    if before.pending and before.has_rows:
        path = backup(url, backups_dir)
        prune(backups_dir, keep)
    was, now = migrate.upgrade(url)
    return Upgraded(was, now, path, created=not before.has_tables)
