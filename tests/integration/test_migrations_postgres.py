"""Migrations, backup and restore of the hub's naic_* tables on a real PostgreSQL server (the
throw-away one of tests/postgres.py, whose zone is not UTC): the schema of commit 4bc6e89
upgraded keeping every row, backup → drop → restore giving the same rows and figures and
sequences past the restored ids, a restore across SQLite and PostgreSQL, JupyterHub's own
tables and alembic_version untouched. The same on SQLite: tests/unit/test_migrations.py."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from naic.hub.usage import backup, migrate
from naic.hub.usage.ledger import Ledger
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
from tests.postgres import create_database

pytestmark = [pytest.mark.integration]


@pytest.fixture
def url(postgres_url) -> str:
    return create_database(postgres_url)


def test_it_runs_on_the_real_server(url) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version()")).startswith("PostgreSQL ")
    finally:
        engine.dispose()


def test_a_url_of_the_shape_the_role_renders_works(url, tmp_path) -> None:
    """ansible/roles/naic_hub/templates/50-ansible.py.j2: host and port in the query, the
    password (none here: the test server trusts) from a pgpass file."""
    given = sa.make_url(url)
    (tmp_path / "pgpass").write_text("*:*:*:*:unused\n")
    (tmp_path / "pgpass").chmod(0o600)
    rendered = sa.URL.create(
        "postgresql+psycopg",
        username=given.username,
        database=given.database,
        query={**given.query, "passfile": str(tmp_path / "pgpass")},
    ).render_as_string()
    assert migrate.upgrade(rendered) == (None, migrate.head())


def test_the_baseline_makes_the_schema_of_4bc6e89(url, postgres_url) -> None:
    old = create_database(postgres_url)
    old_schema(old)
    assert migrate.upgrade(url, baseline.REVISION) == (None, baseline.REVISION)
    assert set(schema(url)) == BASELINE_TABLES
    assert schema(url) == schema(old)


def test_the_newest_revision_is_the_tables_the_code_declares(url) -> None:
    migrate.upgrade(url)
    assert drift(url) == [], "the tables changed without a migration in naic/hub/usage/migrations"


def test_upgrading_a_4bc6e89_database_keeps_every_row(url) -> None:
    old_schema(url)
    fill(url)
    assert read_all(url) == expected(baseline.REVISION)
    assert migrate.upgrade(url) == (None, migrate.head())
    assert read_all(url) == expected()
    assert migrate.upgrade(url) == (migrate.head(), migrate.head())
    assert read_all(url) == expected()


def test_backup_drop_restore_gives_the_same_rows_figures_and_fresh_ids(url, tmp_path) -> None:
    old_schema(url)
    fill(url)
    migrate.upgrade(url)
    before = figures(url)
    path = backup.backup(url, tmp_path / "backups")
    content = json.loads(path.read_text())
    assert content["dialect"] == "postgresql" and content["revision"] == migrate.head()
    # The server's zone is Europe/Oslo; the file says UTC.
    assert content["tables"]["naic_sessions"][0]["started_at"] == "2026-11-27T13:00:00+00:00"

    drop_naic(url)
    assert backup.restore(url, path) == (migrate.head(), sum(map(len, expected().values())))
    assert read_all(url) == expected()
    assert figures(url) == before
    ledger = Ledger(url)  # the sequences start past the restored ids: no duplicate key
    try:
        sid = ledger.session_started(user="kari", server="", project="p", site="s", gpus=1)
        rid = ledger.request_access("kari", "nn1234k", "for a course")
    finally:
        ledger.close()
    assert sid > max(r["id"] for r in expected()["naic_sessions"])
    assert rid.id > max(r["id"] for r in expected()["naic_access_requests"])


def test_a_backup_moves_between_sqlite_and_postgresql(url, tmp_path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    old_schema(sqlite)
    fill(sqlite)
    migrate.upgrade(sqlite)
    backup.restore(url, backup.backup(sqlite, tmp_path / "from-sqlite"))
    assert read_all(url) == expected()
    back = f"sqlite:///{tmp_path / 'again.sqlite'}"
    backup.restore(back, backup.backup(url, tmp_path / "from-postgresql"))
    assert read_all(back) == expected()
    assert figures(back) == figures(url) == figures(sqlite)


def test_restore_refuses_a_database_with_rows_and_writes_nothing(url, tmp_path) -> None:
    migrate.upgrade(url)
    fill(url)
    path = backup.backup(url, tmp_path)
    with pytest.raises(backup.BackupError, match=r"already has rows in naic_access_requests"):
        backup.restore(url, path)
    assert read_all(url) == expected()


def test_a_half_good_backup_restores_nothing(url, tmp_path, postgres_url) -> None:
    migrate.upgrade(url)
    fill(url)
    content = json.loads(backup.backup(url, tmp_path).read_text())
    content["tables"]["naic_workshops"][0]["seats"] = None  # NOT NULL
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    target = create_database(postgres_url)
    with pytest.raises(backup.BackupError, match=r"bad\.json could not be restored into"):
        backup.restore(target, bad)
    assert schema(target) == {}  # the tables went with the rows (transactional DDL)
    assert migrate.standing(target).current is None


def test_two_hubs_starting_at_once_migrate_once(url) -> None:
    head = migrate.head()
    assert upgrade_at_once(url) == {(None, head): 1, (head, head): 3}


def test_jupyterhubs_own_tables_and_alembic_version_are_untouched(url, tmp_path) -> None:
    hub = jupyterhub_tables(url)
    assert hub[0] and hub[1] == ["ola"]
    old_schema(url)
    fill(url)
    backup.upgrade_with_backup(url, tmp_path / "backups")
    path = backup.backup(url, tmp_path)
    assert set(json.loads(path.read_text())["tables"]) == ALL_TABLES
    drop_naic(url)
    backup.restore(url, path)
    assert jupyterhub_state(url) == hub
    assert read_all(url) == expected()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ours = conn.execute(sa.text("SELECT version_num FROM naic_alembic_version")).all()
    finally:
        engine.dispose()
    assert ours == [(migrate.head(),)] and hub[0] != migrate.head()
