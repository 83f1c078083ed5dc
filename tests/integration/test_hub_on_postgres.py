"""JupyterHub itself on PostgreSQL (`naic up --db-url`), as a national hub runs: users,
servers and tokens in PostgreSQL with naic's own tables; the URL kept for later starts in a
0600 file of the data dir; a restart without the option finds the same hub; nothing of it
in the SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.hub_process import start_hub, stop_hub
from tests.integration.helpers import wait_ready
from tests.postgres import create_database

pytestmark = pytest.mark.integration

SESSION = {"site": "local", "resource": "small"}


def test_the_hub_keeps_everything_in_postgresql_across_a_restart(
    postgres_url: str, hub_dir: Path
) -> None:
    url = create_database(postgres_url)
    data = hub_dir / "data"
    hub = start_hub(data, "--db-url", url)
    try:
        with hub.api() as api:
            api.post("/users/kari")
            started = api.post("/users/kari/server", json={"user_options": SESSION})
            assert started.status_code in (201, 202), started.text
            wait_ready(api, "kari")
        kept = data / "jupyterhub_config.d" / "00-db-url.py"
        assert kept.stat().st_mode & 0o777 == 0o600
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            users = conn.execute(sa.text("SELECT name FROM users")).scalars().all()
            assert "kari" in users
            servers = conn.execute(sa.text(
                "SELECT count(*) FROM spawners s JOIN users u ON s.user_id = u.id "
                "WHERE u.name = 'kari' AND s.server_id IS NOT NULL")).scalar()  # fmt: skip
            assert servers == 1
            tables = set(sa.inspect(conn).get_table_names())
            assert {"naic_sessions", "naic_workshops", "naic_alembic_version"} <= tables
            runs = conn.execute(sa.text(
                "SELECT count(*) FROM naic_sessions WHERE username = 'kari'")).scalar()  # fmt: skip
            assert runs == 1  # the ledger's record of the session, in PostgreSQL too
        port = int(hub.url.rsplit(":", 1)[1].strip("/"))
        os.kill(hub.process.pid, signal.SIGKILL)  # a crash: the database is all it has
        hub.process.wait(timeout=10)
        hub = start_hub(data, port=port)  # no --db-url: the kept one
        with hub.api() as api:
            wait_ready(api, "kari", 60)  # the same session, found again
        # The SQLite file next to it holds none of it.
        lite = data / "jupyterhub.sqlite"
        if lite.exists() and lite.stat().st_size:
            names = {r[0] for r in sqlite3.connect(lite).execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}  # fmt: skip
            assert "users" not in names
    finally:
        with hub.api() as api:
            api.delete("/users/kari/server")
        stop_hub(hub)
