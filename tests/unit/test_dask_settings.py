"""`naic.extensions.dask.cluster_settings`: session facts → SLURMCluster arguments, exactly."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
import subprocess
from datetime import UTC, datetime

import pytest

from naic.extensions.dask import (
    RELAY_ROUTE,
    WORKER_START,
    SessionError,
    _without_relay,
    cluster_settings,
    dashboard_url,
    write_credentials,
)
from naic.spawners.slurm import cancel_dask_workers
from naic.spawners.slurm_text import dask_job_name

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: Stands for the cluster's `Security`: cluster_settings passes it on untouched.
TLS = object()
WORKERS = [
    "--host",
    "$SLURMD_NODENAME",
    "--dashboard-address",
    "$SLURMD_NODENAME:0",
    "--no-dashboard",
]


def venv_session(**changes) -> dict:
    session = {
        "site": "saga",
        "partition": "normal",
        "slurm_account": None,
        "environment": "python",
        "activate": {"venv": "/opt/naic/envs/base", "modules": []},
        "project": None,
        "cpus": 2,
        "memory_gb": 4,
        "ends_at": "2026-03-02T13:00:00Z",
    }
    session.update(changes)
    return session


def expected(**changes) -> dict:
    settings = {
        "queue": "normal",
        "account": None,
        "cores": 1,
        "processes": 1,
        "memory": "2GB",
        "walltime": "01:00:00",
        "job_name": "naic-dask-123",
        "job_script_prologue": [WORKER_START, "source /opt/naic/envs/base/bin/activate"],
        "protocol": "tls://",
        "security": TLS,
        "scheduler_options": {"host": "c1-7", "dashboard_address": "127.0.0.1:8787"},
        "death_timeout": 60,
        "worker_extra_args": WORKERS,
    }
    settings.update(changes)
    return settings


def settings(session: dict, job_id: str | None = "123", **overrides) -> dict:
    return cluster_settings(session, job_id, node="c1-7", now=NOW, tls=TLS, **overrides)


def test_venv_environment_without_account():
    assert settings(venv_session()) == expected()


def test_modules_environment_with_account():
    session = venv_session(
        partition="accel",
        slurm_account="nn1234k",
        environment="pytorch",
        activate={
            "venv": None,
            "modules": ["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1", "dask/2024.1; rm -rf ~"],
        },
    )
    assert settings(session) == expected(
        queue="accel",
        account="nn1234k",
        job_script_prologue=[
            WORKER_START,
            "module load PyTorch/2.1.2-foss-2023a-CUDA-12.1.1",
            "module load 'dask/2024.1; rm -rf ~'",
        ],
    )


def test_modules_then_venv_and_quoted_path():
    session = venv_session(
        environment="x", activate={"venv": "/opt/my envs/x", "modules": ["Python/3.11"]}
    )
    assert settings(session)["job_script_prologue"] == [
        WORKER_START,
        "module load Python/3.11",
        "source '/opt/my envs/x/bin/activate'",
    ]


def test_workers_are_forked_by_their_nanny_unless_the_session_says_otherwise():
    line = settings(venv_session())["job_script_prologue"][0]
    name = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"
    show = [line + f'; echo "${name}"']
    env = {k: v for k, v in os.environ.items() if k != name}
    assert subprocess.run(["bash", "-c", *show], env=env, capture_output=True,
                          text=True).stdout == "fork\n"  # fmt: skip
    env[name] = "spawn"
    assert subprocess.run(["bash", "-c", *show], env=env, capture_output=True,
                          text=True).stdout == "spawn\n"  # fmt: skip


def test_job_name_follows_the_session_job_and_matches_the_hub():
    assert settings(venv_session(), job_id="98765")["job_name"] == "naic-dask-98765"
    assert dask_job_name("98765") == "naic-dask-98765"
    assert settings(venv_session(), job_id=None)["job_name"] == "naic-dask-local"


def test_overrides_win():
    got = settings(venv_session(), cores=4, memory="16GB", processes=2, walltime="00:30:00")
    assert got == expected(cores=4, memory="16GB", processes=2, walltime="00:30:00")


def test_scheduler_options_are_merged_and_the_dashboard_stays_on_loopback():
    got = settings(
        venv_session(),
        scheduler_options={"idle_timeout": "1h", "dashboard_address": ":8787", "host": "c1-8"},
    )
    assert got == expected(
        scheduler_options={
            "host": "c1-8",
            "idle_timeout": "1h",
            "dashboard_address": "127.0.0.1:8787",
        }
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"security": None}, "security"),
        ({"protocol": "tcp://"}, "protocol"),
        ({"security": True, "protocol": "tls://"}, "security, protocol"),
        ({"scheduler_options": {"protocol": "tcp://"}}, "scheduler_options['protocol']"),
        ({"scheduler_options": {"security": None}}, "scheduler_options['security']"),
    ],
)
def test_tls_cannot_be_turned_off(overrides, named):
    with pytest.raises(ValueError, match="always uses TLS") as refused:
        settings(venv_session(), **overrides)
    assert str(refused.value).startswith(f"slurm_cluster() does not take {named}: ")


def test_the_relay_route_is_left_out_and_the_rest_kept_in_order():
    routes = ["a.prometheus", RELAY_ROUTE, "b.info", "c.statics"]
    assert _without_relay(routes) == ["a.prometheus", "b.info", "c.statics"]
    assert RELAY_ROUTE == "distributed.http.proxy"


def test_credentials_are_private_files_for_every_role(tmp_path):
    folder, security = write_credentials(tmp_path, "4242")
    assert folder.parent == tmp_path / ".naic" / "dask"
    assert folder.name.startswith("4242-")
    assert sorted(p.name for p in folder.iterdir()) == ["cert.pem", "key.pem"]
    assert stat.S_IMODE((tmp_path / ".naic" / "dask").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    assert security.require_encryption is True
    for role in ("client", "scheduler", "worker"):
        tls = security.get_tls_config_for_role(role)
        assert (tls["ca_file"], tls["cert"], tls["key"]) == (cert, cert, key)
        # Both ends insist on the other's certificate (mutual authentication).
        assert security.get_listen_args(role)["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert security.get_connection_args(role)["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert (folder / "key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_each_cluster_gets_its_own_certificate(tmp_path):
    first, _ = write_credentials(tmp_path, None)
    second, _ = write_credentials(tmp_path, None)
    assert first != second and first.name.startswith("local-")
    assert (first / "cert.pem").read_text() != (second / "cert.pem").read_text()


@pytest.mark.parametrize(
    ("ends_at", "walltime", "want"),
    [
        ("2026-03-02T09:20:30Z", "01:00:00", "00:20:00"),  # whole minutes left
        ("2026-03-02T09:20:30Z", "10", "00:10:00"),  # Slurm's minutes
        ("2026-03-02T13:00:00Z", "1-00:00", "04:00:00"),  # D-H:M
        ("2026-03-02T13:00:00+00:00", "02:30", "00:02:30"),  # M:S
        (None, "2-00:00:00", "48:00:00"),  # end unknown: as asked
    ],
)
def test_walltime_is_clipped_to_the_session(ends_at, walltime, want):
    assert settings(venv_session(ends_at=ends_at), walltime=walltime)["walltime"] == want


def test_no_time_left():
    with pytest.raises(SessionError, match="less than a minute"):
        settings(venv_session(ends_at="2026-03-02T09:00:59Z"))


def test_bad_walltime():
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        settings(venv_session(), walltime="one hour")


@pytest.mark.parametrize("key", ["partition", "activate"])
def test_missing_key_is_named(key):
    session = venv_session()
    del session[key]
    with pytest.raises(SessionError, match=f"NAIC_SESSION has no '{key}'"):
        settings(session)


def test_missing_account_means_none():
    session = venv_session()
    del session["slurm_account"]
    assert settings(session)["account"] is None


def test_activation_that_is_not_an_object_is_refused_clearly():
    with pytest.raises(SessionError, match="'activate' must say the 'venv' or 'modules'"):
        settings(venv_session(activate="python"))


class FakeCluster:
    dashboard_link = "http://127.0.0.1:8787/status"
    scheduler_info = {"services": {"dashboard": 40123}}  # noqa: RUF012


def test_dashboard_url_through_the_proxy():
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ola/"}
    assert dashboard_url(FakeCluster(), env) == "/user/ola/proxy/40123/status"
    assert dashboard_url(FakeCluster(), {}) == "http://127.0.0.1:8787/status"


def test_cancel_dask_workers_argv_and_tolerance():
    calls = []

    async def run(argv):
        calls.append(argv)
        raise RuntimeError("scancel failed at saga: nothing")

    asyncio.run(cancel_dask_workers("77", "alice", run))
    assert calls == [["scancel", "--name=naic-dask-77", "--user=alice"]]


def test_the_slurm_spawner_cancels_a_sessions_workers_once() -> None:
    from types import SimpleNamespace

    from naic.spawners.slurm import SlurmSpawner

    hub = SimpleNamespace(public_host="", api_url="", base_url="/hub/", url="")
    user = SimpleNamespace(name="alice", url="/user/alice/", escaped_name="alice")
    spawner = SlurmSpawner(site="testcluster", hub=hub, user=user, submit_as="sudo")
    calls = []

    async def run(argv, stdin=None):
        calls.append(argv)
        return ""

    spawner._run = run
    spawner.job_id = "42"
    asyncio.run(spawner.cancel_batch_job())
    asyncio.run(spawner.cancel_batch_job())  # again: the workers were cancelled already
    sudo = ["sudo", "-n", "-u", "alice"]
    assert calls == [
        [*sudo, "scancel", "42"],
        [*sudo, "scancel", "--name=naic-dask-42", "--user=alice"],
        [*sudo, "scancel", "42"],
    ]


def test_a_death_timeout_override_wins_and_extra_worker_args_keep_the_listen_limits():
    got = settings(venv_session(), death_timeout=300, worker_extra_args=["--nthreads", "2"])
    assert got["death_timeout"] == 300
    assert "--death-timeout" not in got["worker_extra_args"]
    assert got["worker_extra_args"] == ["--nthreads", "2", *WORKERS]
    # Where workers listen comes last, so a user's own --host cannot widen it.
    widened = settings(venv_session(), worker_extra_args=["--host", "0.0.0.0"])  # noqa: S104
    assert widened["worker_extra_args"][-len(WORKERS) :] == WORKERS
