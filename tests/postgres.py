"""Pytest plugin: a real, throw-away PostgreSQL server as a session fixture.

``postgres_url`` runs Debian's own binaries (``/usr/lib/postgresql/*/bin``) as the
``postgres`` OS user: ``initdb`` into a fresh temporary directory, then a server that
listens on 127.0.0.1 and on a unix socket in that directory, on a free port. It yields a
SQLAlchemy URL of the form JupyterHub gets (``postgresql+psycopg://postgres@/naic?host=…``),
and afterwards stops the server and deletes the directory. A cluster the machine runs
itself (Debian's ``main``) is never touched: nothing here reads /etc/postgresql or
/var/run/postgresql.

``create_database(postgres_url)`` makes a fresh, empty database on that server and returns
its URL, for tests that want nothing left over from their neighbours.

Missing root or missing binaries is a failure, not a skip, as for the Slurm cluster.
Imports nothing from ``naic``.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.ports import free_port as _free_port

PG_USER = "postgres"
DATABASE = "naic"
START_TIMEOUT_S = 60
# The server's zone is deliberately not UTC: code that forgets to normalise datetimes read
# back from PostgreSQL then fails its tests here instead of in Oslo.
SERVER_TIMEZONE = "Europe/Oslo"


def postgres_bin_dir() -> Path:
    """The newest installed version's bin directory; pytest.fail if there is none."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if not found:
        pytest.fail(
            "The PostgreSQL tests need Debian's PostgreSQL server binaries "
            "(/usr/lib/postgresql/*/bin/initdb) and none are installed: run `make setup-test` "
            "as root, or `apt-get install postgresql`."
        )
    return found[-1].parent


def _as_postgres(argv: list[str], timeout_s: int = START_TIMEOUT_S) -> str:
    """Run a PostgreSQL binary as the postgres user; pytest.fail with its output if it fails."""
    try:
        result = subprocess.run(
            ["runuser", "-u", PG_USER, "--", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(argv)} did not finish within {timeout_s} s:\n{exc.output}")
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of database ``naic`` on a PostgreSQL server started for this test session."""
    if os.geteuid() != 0:
        pytest.fail(
            "The PostgreSQL tests must run as root: they start a throw-away server as the "
            "postgres user with runuser. Run pytest as root, or deselect them with "
            "-m 'not integration'."
        )
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.fail(f"There is no OS user {PG_USER}: is Debian's postgresql package installed?")
    with postgres_server() as url:
        yield url


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The throw-away server itself (as root), for the fixture and the benchmarks."""
    bin_dir = postgres_bin_dir()
    owner = pwd.getpwnam(PG_USER)

    # Not pytest's tmp_path: that is root's and private; the server must own its directory.
    root = Path(tempfile.mkdtemp(prefix="naic-postgres-"))
    os.chown(root, owner.pw_uid, grp.getgrgid(owner.pw_gid).gr_gid)
    data, log, port = root / "data", root / "server.log", _free_port()
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), f"--username={PG_USER}"]
        # trust, no password: a throw-away server on loopback that holds only test data.
        _as_postgres([*initdb, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
        # Settings go into the server's own config so pg_ctl needs no shell quoting.
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{root}'\ntimezone = '{SERVER_TIMEZONE}'\n"
                # A test server: speed over crash safety.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        _as_postgres([pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"])
        started = True
        _as_postgres([str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), DATABASE])
        yield f"postgresql+psycopg://{PG_USER}@/{DATABASE}?host={root}&port={port}"
    except BaseException:
        if log.exists():
            print(f"PostgreSQL server log ({log}):\n{log.read_text(errors='replace')}")
        raise
    finally:
        if started:
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count(1)


def create_database(postgres_url: str) -> str:
    """A fresh, empty database on the same server; returns its URL."""
    url = sa.make_url(postgres_url)
    name = f"{url.database}_{os.getpid()}_{next(_database_numbers)}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
