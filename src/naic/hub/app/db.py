"""`naic db …`: the hub's own tables (naic_*) in its database: backup, restore, upgrade,
current; and the upgrade `naic up` runs before the hub starts (a backup first).

The database is the hub's: ``--db URL``, else the one the hub on ``--data-dir`` (default
NAIC_DATA_DIR, else naic up's) uses: SQLite in it, unless a file in its
``jupyterhub_config.d/`` sets ``c.JupyterHub.db_url`` (as the Ansible role does for
PostgreSQL). Backups go to ``<data dir>/backups/`` unless ``--to`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa

from naic.hub.usage import backup, migrate

PREFIX = "naic db:"


def hub_db_url(data_dir: Path) -> str:
    """The database URL the hub on `data_dir` uses, as its configuration gives it."""
    from traitlets.config import Config

    from naic.hub.app.config import Settings, _load_config_d

    s = Settings(data_dir=data_dir)
    c = Config()
    c.JupyterHub.db_url = f"sqlite:///{s.db_file}"
    _load_config_d(c, s.config_d)
    return c.JupyterHub.db_url


def _data_dir(args: argparse.Namespace) -> Path:
    from naic.hub.app.config import Settings

    return (args.data_dir or Settings.from_env().data_dir).absolute()


def _url(args: argparse.Namespace) -> str:
    return args.db or hub_db_url(_data_dir(args))


def problem(url: str, exc: Exception) -> str:
    """One sentence for what went wrong with the database at `url`."""
    if isinstance(exc, migrate.MigrationError | backup.BackupError | OSError):
        return str(exc)
    cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    try:
        url = migrate.shown(url)
    except sa.exc.ArgumentError:
        return f"{url!r} is not a database URL: {cause}"
    return f"the database {url} cannot be used: {cause}"


FAILURES = (migrate.MigrationError, backup.BackupError, OSError, sa.exc.SQLAlchemyError)


def upgrade_at_start(data_dir: Path) -> str | None:
    """`naic up`'s step before JupyterHub: the naic_* tables to this release's schema, a
    backup first when there is something to migrate; one line when it took one. The
    sentence that stops the start, or None."""
    url = hub_db_url(data_dir)
    try:
        done = backup.upgrade_with_backup(url, data_dir / "backups")
    except FAILURES as exc:
        return f"naic up: {problem(url, exc)}"
    if done.backup is not None:
        print(
            f"naic-hub: the ledger (naic_* tables) went from schema revision {done.before} to "
            f"{done.after}; its backup from before is {done.backup}"
        )
    return None


def add_parser(sub) -> None:
    db = sub.add_parser("db", help="the hub's own tables: backup, restore, upgrade, current")
    act = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = act.add_parser("backup", help="write every naic_* row to a JSON file (mode 0600)")
    r = act.add_parser("restore", help="put a backup's rows into a database without them")
    r.add_argument("file", type=Path, help="a naic-ledger-….json file from `naic db backup`")
    u = act.add_parser("upgrade", help="migrate the naic_* tables to this release (backup first)")
    c = act.add_parser("current", help="the schema revision of the naic_* tables")
    for p in (b, r, u, c):
        where = p.add_mutually_exclusive_group()
        where.add_argument("--db", default=None, metavar="URL", help="the database's URL")
        where.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="the hub's data folder: its database (default NAIC_DATA_DIR, else naic up's)",
        )
    for p in (b, u):
        p.add_argument(
            "--to", type=Path, default=None, help="backup folder (default <data dir>/backups)"
        )


def run(args: argparse.Namespace) -> int:
    url = _url(args)
    try:
        return ACTIONS[args.action](args, url)
    except FAILURES as exc:
        print(f"{PREFIX} {problem(url, exc)}", file=sys.stderr)
        return 1


def _backups(args: argparse.Namespace) -> Path:
    return args.to or _data_dir(args) / "backups"


def _backup(args: argparse.Namespace, url: str) -> int:
    path = backup.backup(url, _backups(args))
    print(f"{PREFIX} backed up the naic_* tables of {migrate.shown(url)} to {path}")
    return 0


def _restore(args: argparse.Namespace, url: str) -> int:
    revision, rows = backup.restore(url, args.file)
    print(f"{PREFIX} restored {rows} rows from {args.file} at schema revision {revision}")
    before, after = migrate.upgrade(url)
    if after != before:
        print(f"{PREFIX} upgraded the naic_* tables from {before} to {after}")
    return 0


def _upgrade(args: argparse.Namespace, url: str) -> int:
    done = backup.upgrade_with_backup(url, _backups(args))
    where = migrate.shown(url)
    if done.before == done.after:
        print(f"{PREFIX} up to date: the naic_* tables of {where} are at {done.after}")
    elif done.created:
        print(f"{PREFIX} created the naic_* tables of {where} at {done.after}")
    else:
        start = done.before or "before migrations"
        line = f"{PREFIX} upgraded the naic_* tables of {where} from {start} to {done.after}"
        print(line + (f"; the backup from before: {done.backup}" if done.backup else ""))
    return 0


def _current(args: argparse.Namespace, url: str) -> int:
    st = migrate.standing(url)
    where = migrate.shown(url)
    if st.current is not None:
        state = "the newest" if not st.pending else f"`naic db upgrade` brings it to {st.head}"
        print(f"{where}: schema revision {st.current} ({state})")
    elif st.has_tables:
        print(f"{where}: naic_* tables from before migrations (`naic db upgrade` stamps them)")
    else:
        print(f"{where}: no naic_* tables yet (the hub or `naic db upgrade` makes them)")
    return 0


ACTIONS = {"backup": _backup, "restore": _restore, "upgrade": _upgrade, "current": _current}
