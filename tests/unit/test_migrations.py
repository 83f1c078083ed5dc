"""Migrations, backup and restore of the hub's naic_* tables, on SQLite files: the schema of
commit 4bc6e89 upgraded keeping every row, a backup dropped and restored giving the same rows
and figures, JupyterHub's own tables and alembic_version untouched, `naic db` and `naic up`'s
step. The same on PostgreSQL: tests/integration/test_migrations_postgres.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from naic.hub.app import db as db_cli
from naic.hub.app.cli import main
from naic.hub.usage import backup, migrate
from naic.hub.usage.migrations import baseline
from tests.ledger_migration import (
    ALL_TABLES,
    BASELINE_TABLES,
    drift,
    drop_naic,
    expected,
    figures,
    fill,
    jupyterhub_state,
    jupyterhub_tables,
    old_schema,
    read_all,
    schema,
    upgrade_at_once,
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


def other_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'other.sqlite'}"


# --- the migrations -----------------------------------------------------------------------


def test_the_revisions_are_the_baseline_the_environment_assignments_and_shared() -> None:
    """4bc6e89's tables, then 0002: a workshop's environment (naic_workshops.environment),
    then 0003: workshop assignments (naic_assignments, naic_submissions), then 0004: a
    workshop's shared course folder (naic_workshops.shared)."""
    assert migrate.revisions() == [baseline.REVISION, "0002", "0003", "0004"]
    assert migrate.head() == "0004"


def test_the_baseline_makes_the_schema_of_4bc6e89(url, tmp_path) -> None:
    old_schema(other_url(tmp_path))
    assert migrate.upgrade(url, baseline.REVISION) == (None, baseline.REVISION)
    assert set(schema(url)) == BASELINE_TABLES
    assert schema(url) == schema(other_url(tmp_path))


def test_the_newest_revision_is_the_tables_the_code_declares(url) -> None:
    """A change of naic.hub.usage.tables or naic.hub.workshops.tables needs a migration."""
    migrate.upgrade(url)
    assert drift(url) == [], "the tables changed without a migration in naic/hub/usage/migrations"


def test_upgrading_a_4bc6e89_database_keeps_every_row(url) -> None:
    old_schema(url)
    fill(url)
    assert read_all(url) == expected(baseline.REVISION)
    assert migrate.standing(url) == migrate.Standing(None, migrate.head(), True, True)
    assert migrate.upgrade(url) == (None, migrate.head())
    assert read_all(url) == expected()
    assert migrate.upgrade(url) == (migrate.head(), migrate.head())  # a restart: nothing
    assert read_all(url) == expected()


def test_a_database_older_than_4bc6e89_is_brought_to_the_baseline(url) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # guest accounts as they first shipped, nothing else
            conn.exec_driver_sql(
                "CREATE TABLE naic_guest_accounts (username VARCHAR(255) PRIMARY KEY, "
                "workshop VARCHAR(40) NOT NULL, password_hash VARCHAR(255) NOT NULL, "
                "issued_at DATETIME NOT NULL, expires_at DATETIME NOT NULL)"
            )
            conn.exec_driver_sql(
                "INSERT INTO naic_guest_accounts VALUES "
                "('guest-1', 'ml', 'h', '2026-11-27 09:00:00', '2026-11-27 12:00:00')"
            )
    finally:
        engine.dispose()
    migrate.upgrade(url)
    assert set(schema(url)) == ALL_TABLES
    columns = [c[0] for c in schema(url)["naic_guest_accounts"]["columns"]]
    assert {"password_used_at", "reset_at"} <= set(columns)
    assert [r["username"] for r in read_all(url)["naic_guest_accounts"]] == ["guest-1"]


def test_two_hubs_starting_at_once_migrate_once(url) -> None:
    head = migrate.head()
    assert upgrade_at_once(url) == {(None, head): 1, (head, head): 3}


def test_a_failed_migration_says_where_and_leaves_nothing(url, monkeypatch) -> None:
    def broken(conn) -> None:
        baseline.metadata.tables["naic_identities"].create(conn)
        conn.exec_driver_sql("CREATE TABLE naic_broken (")

    old_schema(url)  # tables without a version: the baseline step runs
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE naic_identities")
    engine.dispose()
    monkeypatch.setattr(baseline, "bring_to_baseline", broken)
    with pytest.raises(migrate.MigrationError, match=r"jupyterhub\.sqlite could not be migrated"):
        migrate.upgrade(url)
    assert "naic_identities" not in schema(url)  # its DDL rolled back with the rest
    assert migrate.standing(url).current is None


# --- backup and restore -------------------------------------------------------------------


def test_backup_drop_restore_gives_the_same_rows_and_figures(url, tmp_path) -> None:
    old_schema(url)
    fill(url)
    migrate.upgrade(url)
    before = figures(url)
    assert before["by_project"]["nn1234k"] > 0 and before["workshops"]

    path = backup.backup(url, tmp_path / "backups")
    assert re.fullmatch(r"naic-ledger-\d{8}T\d{6}\.\d{6}Z\.json", path.name)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    content = json.loads(path.read_text())
    assert content["revision"] == migrate.head()
    assert set(content["tables"]) == ALL_TABLES
    started = content["tables"]["naic_sessions"][0]["started_at"]
    assert started == "2026-11-27T13:00:00+00:00"

    drop_naic(url)
    assert migrate.standing(url).has_tables is False
    assert backup.restore(url, path) == (migrate.head(), sum(map(len, expected().values())))
    assert read_all(url) == expected()
    assert figures(url) == before


def test_restore_into_another_fresh_database_and_new_rows_get_new_ids(url, tmp_path) -> None:
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    target = other_url(tmp_path)
    backup.restore(target, path)
    assert read_all(target) == expected()
    from naic.hub.usage.ledger import Ledger

    ledger = Ledger(target)
    try:
        sid = ledger.session_started(user="kari", server="", project="p", site="s", gpus=1)
    finally:
        ledger.close()
    assert sid > max(r["id"] for r in expected()["naic_sessions"])


def test_restore_after_dropping_the_tables_but_not_their_version(url, tmp_path) -> None:
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in ALL_TABLES:
            conn.exec_driver_sql(f"DROP TABLE {name}")
    engine.dispose()
    backup.restore(url, path)
    assert read_all(url) == expected()


def test_restore_refuses_a_database_with_rows_and_writes_nothing(url, tmp_path) -> None:
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    with pytest.raises(backup.BackupError, match=r"already has rows in naic_access_requests"):
        backup.restore(url, path)
    assert read_all(url) == expected()


def test_restore_refuses_tables_not_made_by_the_migrations(url, tmp_path) -> None:
    migrate.upgrade(url)
    path = backup.backup(url, tmp_path)
    drop_naic(url)
    old_schema(url)
    with pytest.raises(backup.BackupError, match=r"not made by the migrations"):
        backup.restore(url, path)


def test_a_half_good_backup_restores_nothing(url, tmp_path) -> None:
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    content = json.loads(path.read_text())
    content["tables"]["naic_workshops"][0]["seats"] = None  # NOT NULL
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    target = other_url(tmp_path)
    with pytest.raises(backup.BackupError, match=r"bad\.json could not be restored into"):
        backup.restore(target, bad)
    assert migrate.standing(target).has_tables is False  # the tables went with the rows


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "is not a naic ledger backup: it is not JSON"),
        ('{"format": "other"}', 'no "format": "naic-ledger-backup"'),
        ('{"format": "naic-ledger-backup", "format_version": 9}', "format version 9"),
        (
            '{"format": "naic-ledger-backup", "format_version": 1, "revision": "9999", '
            '"tables": {}}',
            "revision 9999, which this naic-hub does not know",
        ),
        (
            '{"format": "naic-ledger-backup", "format_version": 1, "revision": "0001", '
            '"tables": {"naic_identities": {}}}',
            "is damaged",
        ),
    ],
)
def test_a_wrong_file_is_named_with_what_is_wrong(url, tmp_path, text, says) -> None:
    file = tmp_path / "x.json"
    file.write_text(text)
    with pytest.raises(backup.BackupError) as err:
        backup.restore(url, file)
    assert str(file) in str(err.value) and says in str(err.value)


def test_jupyterhubs_own_tables_and_alembic_version_are_untouched(url, tmp_path) -> None:
    hub = jupyterhub_tables(url)
    assert hub[0] and hub[1] == ["ola"]
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    assert not any(not name.startswith("naic_") for name in json.loads(path.read_text())["tables"])
    drop_naic(url)
    backup.restore(url, path)
    assert jupyterhub_state(url) == hub
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ours = conn.execute(sa.text("SELECT version_num FROM naic_alembic_version")).all()
    finally:
        engine.dispose()
    assert ours == [(migrate.head(),)] and hub[0] != migrate.head()


# --- upgrade with a backup first: naic up, naic db ------------------------------------------


def test_upgrade_takes_a_backup_only_when_it_migrates_rows(url, tmp_path) -> None:
    backups = tmp_path / "backups"
    assert backup.upgrade_with_backup(url, backups).backup is None  # empty: created
    drop_naic(url)
    old_schema(url)
    fill(url)
    done = backup.upgrade_with_backup(url, backups)
    assert (done.before, done.after) == (None, migrate.head())
    assert done.backup is not None and json.loads(done.backup.read_text())["revision"] is None
    assert backup.upgrade_with_backup(url, backups).backup is None  # nothing to migrate
    assert list(backups.iterdir()) == [done.backup]


def test_only_the_newest_ten_backups_are_kept(tmp_path) -> None:
    for i in range(12):
        (tmp_path / f"naic-ledger-2026120{i // 10}T0000{i % 10}0.000000Z.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    gone = backup.prune(tmp_path)
    assert [p.name for p in gone] == [
        "naic-ledger-20261200T000000.000000Z.json",
        "naic-ledger-20261200T000010.000000Z.json",
    ]
    assert len(list(tmp_path.glob("naic-ledger-*.json"))) == 10
    assert (tmp_path / "notes.txt").exists()


def test_naic_up_upgrades_with_a_backup_and_says_where(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"  # the data dir's database
    old_schema(url)
    fill(url)
    assert db_cli.upgrade_at_start(tmp_path) is None
    (line,) = capsys.readouterr().out.splitlines()
    (path,) = (tmp_path / "backups").iterdir()
    assert line.endswith(f"its backup from before is {path}")
    assert db_cli.upgrade_at_start(tmp_path) is None
    assert capsys.readouterr().out == ""


def test_naic_db_follows_the_data_dirs_configuration(tmp_path) -> None:
    config_d = tmp_path / "jupyterhub_config.d"
    config_d.mkdir()
    assert db_cli.hub_db_url(tmp_path) == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    (config_d / "50-ansible.py").write_text("c.JupyterHub.db_url = 'sqlite:////srv/x.sqlite'\n")
    assert db_cli.hub_db_url(tmp_path) == "sqlite:////srv/x.sqlite"


def test_naic_db_commands(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    d = ["--data-dir", str(tmp_path)]
    assert main(["db", "current", *d]) == 0
    assert "no naic_* tables yet" in capsys.readouterr().out
    old_schema(url)
    fill(url)
    assert main(["db", "current", *d]) == 0
    assert "from before migrations" in capsys.readouterr().out
    assert main(["db", "upgrade", *d]) == 0
    out = capsys.readouterr().out
    assert f"from before migrations to {migrate.head()}; the backup from before:" in out
    assert main(["db", "upgrade", *d]) == 0
    assert capsys.readouterr().out.startswith("naic db: up to date:")
    assert main(["db", "current", "--db", url]) == 0
    assert f"schema revision {migrate.head()} (the newest)" in capsys.readouterr().out
    assert main(["db", "backup", *d, "--to", str(tmp_path / "mine")]) == 0
    (path,) = (tmp_path / "mine").iterdir()
    assert str(path) in capsys.readouterr().out
    assert main(["db", "restore", str(path), *d]) == 1
    assert "already has rows" in capsys.readouterr().err
    drop_naic(url)
    assert main(["db", "restore", str(path), *d]) == 0
    rows = sum(map(len, expected().values()))
    assert f"restored {rows} rows from {path}" in capsys.readouterr().out
    assert read_all(url) == expected()
    assert main(["db", "restore", str(tmp_path / "nope.json"), "--db", url]) == 1
    assert capsys.readouterr().err.startswith(f"naic db: {tmp_path / 'nope.json'} cannot be read")
