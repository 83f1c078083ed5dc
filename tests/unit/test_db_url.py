"""`naic up --db-url`: which URLs the hub takes, how a password is shown, and where the URL
is kept (a 0600 file of the data dir's config, which later starts and `naic db` read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from naic.hub.app.config import Settings, normal_db_url, shown_url, write_db_url
from naic.hub.app.db import hub_db_url


def test_postgresql_goes_through_psycopg_3_and_sqlite_stays() -> None:
    assert normal_db_url("postgresql://naic:s3cret@db:5432/naic") == (
        "postgresql+psycopg://naic:s3cret@db:5432/naic"
    )
    assert normal_db_url("postgresql+psycopg://naic@db/naic") == "postgresql+psycopg://naic@db/naic"
    assert (
        normal_db_url("sqlite:////var/lib/naic/hub.sqlite") == "sqlite:////var/lib/naic/hub.sqlite"
    )
    with pytest.raises(ValueError, match="the hub runs on PostgreSQL or SQLite, not mysql"):
        normal_db_url("mysql://db/naic")
    with pytest.raises(ValueError, match="is not a database URL"):
        normal_db_url("db.example.org")


def test_a_password_is_never_shown() -> None:
    assert shown_url("postgresql://naic:s3cret@db/naic") == "postgresql://naic:***@db/naic"
    assert "s3cret" not in shown_url("not a url //naic:s3cret@db")


def test_the_url_is_kept_private_and_read_back(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    s.config_d.mkdir(parents=True)
    path = write_db_url(s, "postgresql://naic:s3cret@db/naic")
    assert path.stat().st_mode & 0o777 == 0o600
    assert hub_db_url(tmp_path) == "postgresql+psycopg://naic:s3cret@db/naic"
