"""Dask on Slurm from inside a session: `cluster = slurm_cluster()`.

The cluster's scheduler runs in the session (the notebook's own process); each worker is a
Slurm job at the session's site, in its partition and account, with its software
environment, named `naic-dask-<session job id>` so the hub can cancel a session's workers
when the session ends (`naic.spawners.slurm.cancel_dask_workers`). Workers also end by
themselves `DEATH_TIMEOUT_S` after the scheduler disappears.

Scheduler, workers and nannies run whatever function a peer sends them, so every Dask
connection is TLS with mutual authentication (`tls://` addresses): each cluster gets its
own key and self-signed certificate (`Security.temporary()`), which is also the only CA
its members accept. The worker jobs run as the same user on other nodes and read the key
and certificate from `~/.naic/dask/<session job id>-<random>/` (folder 0700, files 0600,
on the shared home); the folder is removed when the cluster's process exits (a killed
process leaves it behind: a key for a scheduler that is gone). Another user who knows the
addresses gets no further than a failed TLS handshake. In the same process,
`Client(cluster)` carries the cluster's `Security`.

`cluster_settings` is the pure part (session facts → `SLURMCluster` keyword arguments);
`slurm_cluster` reads `NAIC_SESSION`, writes the cluster's certificate, builds the cluster
and makes sure it is closed when the kernel exits. Nothing listens beyond the machines
involved: the scheduler binds to the session's node name, workers to their own node name.

The dashboard is plain HTTP on 127.0.0.1 (the browser reaches it through the hub and
jupyter-server-proxy, `dashboard_url`, which checks the hub's token). Distributed serves it
on a TCP port only and jupyter-server-proxy forwards `/proxy/<port>` to TCP only, so
another user's process on the same node can read it (task names, worker logs, call
stacks), though it offers no way to run code: the scheduler's HTTP API is not among its
routes, and the route that relays to other hosts' ports is removed (`RELAY_ROUTE`). Each
worker's own HTTP server (health, Prometheus metrics) is plain HTTP on its node's name.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster
    from distributed.security import Security

VARIABLE = "NAIC_SESSION"
#: A session's worker jobs are named this; the hub cancels them by name (keep in step with
#: `naic.spawners.slurm_text.dask_job_name`; extensions do not import the hub's code).
JOB_NAME = "naic-dask-{job_id}"
DASHBOARD_PORT = 8787
#: Seconds a worker waits for a scheduler it lost before it exits (and its job ends).
DEATH_TIMEOUT_S = 60
#: How a worker's nanny starts the worker: forked, not a second interpreter that imports
#: distributed again (spawn, distributed's default), which halved a worker's start beyond its
#: job start (benchmarks/dask_start.py). The nanny holds no CUDA context, so the forked
#: worker still can. A session that sets the variable (e.g. `spawn`) keeps its choice.
WORKER_START = (
    'export DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="'
    '${DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD:-fork}"'
)
#: Per worker job, unless overridden: small, so that scaling out asks little of the queue.
DEFAULT_CORES = 1
DEFAULT_MEMORY_GB = 2
DEFAULT_WALLTIME = "01:00:00"
#: The proxied dashboard, for `distributed.dashboard.link` (formatted by distributed with
#: `port` and the environment).
PROXIED_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
#: Under the home (shared with the worker nodes): one folder per cluster, its key and
#: certificate for the worker jobs.
CREDENTIALS = Path(".naic") / "dask"
CERTIFICATE = "cert.pem"
KEY = "key.pem"
#: distributed's scheduler route that relays HTTP and websockets to any host's port the
#: scheduler knows (unauthenticated, and on 127.0.0.1 any local user's); workers here have
#: no dashboards for it to relay to.
RELAY_ROUTE = "distributed.http.proxy"
#: Arguments a session's cluster does not take from its caller: they would turn TLS off.
FIXED = ("security", "protocol")


class SessionError(ValueError):
    """The session's facts do not say enough to start Dask workers."""


def _require(session: Mapping[str, Any], key: str) -> Any:
    if key not in session or session[key] in (None, ""):
        raise SessionError(
            f"{VARIABLE} has no {key!r}, which Dask workers need; this session was not "
            "started by a naic-hub that supports Dask on Slurm."
        )
    return session[key]


def _parse_slurm_time(text: str) -> int:
    """Seconds in a Slurm time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a Slurm time limit such as '01:30:00'")
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # D-H[:M[:S]]
        return days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:  # H:M:S
        return a * 3600 + b * 60 + c
    if b is not None:  # M:S
        return a * 60 + b
    return a * 60  # M


def _format_walltime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _walltime(requested: str, ends_at: str | None, now: datetime) -> str:
    """`requested`, but never past the session's end (whole minutes left, at least one)."""
    seconds = _parse_slurm_time(requested)
    if ends_at:
        end = datetime.fromisoformat(ends_at.replace("Z", "+00:00"))
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        left = int((end - now).total_seconds()) // 60 * 60
        if left < 60:
            raise SessionError(
                "This session ends in less than a minute; there is no time left for Dask workers."
            )
        seconds = min(seconds, left)
    return _format_walltime(seconds)


def _prologue(environment: Any) -> list[str]:
    """Shell lines that give a worker the session's software environment."""
    if not isinstance(environment, Mapping):
        raise SessionError(
            f"{VARIABLE}'s 'activate' must say the 'venv' or 'modules' Dask workers need "
            f"(got {environment!r})."
        )
    lines = [f"module load {shlex.quote(m)}" for m in environment.get("modules") or []]
    if environment.get("venv"):
        lines.append(f"source {shlex.quote(environment['venv'] + '/bin/activate')}")
    return lines


def _refuse_plain(overrides: Mapping[str, Any]) -> None:
    scheduler = overrides.get("scheduler_options") or {}
    named = [k for k in FIXED if k in overrides] + [
        f"scheduler_options[{k!r}]" for k in FIXED if k in scheduler
    ]
    if named:
        raise ValueError(
            f"slurm_cluster() does not take {', '.join(named)}: a session's Dask cluster "
            "always uses TLS with its own certificate, so that no other user can run code "
            "in it."
        )


def cluster_settings(
    session: Mapping[str, Any],
    job_id: str | None,
    *,
    node: str,
    now: datetime,
    tls: Security,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for `dask_jobqueue.SLURMCluster` from the session's facts.

    `session` is `NAIC_SESSION` decoded; `job_id` the session's Slurm job (None outside
    one: the workers then get the name `naic-dask-local`); `node` the name the workers
    reach the session's node by; `now` for the time left; `tls` the cluster's `Security`
    (certificate files the worker jobs can read, see `write_credentials`). `overrides` win
    over everything (`cores`, `memory`, `walltime`, `death_timeout`, ...;
    `scheduler_options` are merged, `worker_extra_args` come before naic's), except that
    the walltime never outlasts the session, the scheduler's dashboard stays on 127.0.0.1,
    workers listen on their node only, and `security`/`protocol` are refused (`ValueError`)."""
    _refuse_plain(overrides)
    partition = _require(session, "partition")
    prologue = [WORKER_START, *_prologue(_require(session, "activate"))]
    settings: dict[str, Any] = {
        "queue": partition,
        "account": session.get("slurm_account") or None,
        "cores": DEFAULT_CORES,
        "processes": 1,
        "memory": f"{DEFAULT_MEMORY_GB}GB",
        "walltime": DEFAULT_WALLTIME,
        "job_name": JOB_NAME.format(job_id=job_id or "local"),
        "job_script_prologue": prologue,
        # Scheduler, workers and nannies: TLS, each side showing the cluster's certificate.
        "protocol": "tls://",
        "security": tls,
        "scheduler_options": {"host": node},
        # dask-jobqueue writes it as the worker's --death-timeout (a second one in
        # worker_extra_args would silently win over an override).
        "death_timeout": DEATH_TIMEOUT_S,
    }
    scheduler = {**settings["scheduler_options"], **(overrides.get("scheduler_options") or {})}
    extra = list(overrides.get("worker_extra_args") or [])
    settings.update(overrides)
    settings["scheduler_options"] = {
        **scheduler,
        "dashboard_address": f"127.0.0.1:{DASHBOARD_PORT}",
    }
    # A user's own worker arguments, then where workers listen, last so that it wins:
    # `$SLURMD_NODENAME` expands in the worker's batch script to its own node's name. A
    # worker's HTTP server (health, metrics) runs even with --no-dashboard; without
    # --dashboard-address it listens on every interface.
    settings["worker_extra_args"] = [
        *extra,
        "--host",
        "$SLURMD_NODENAME",
        "--dashboard-address",
        "$SLURMD_NODENAME:0",
        "--no-dashboard",
    ]
    settings["walltime"] = _walltime(str(settings["walltime"]), session.get("ends_at"), now)
    return settings


def write_credentials(home: Path, job_id: str | None) -> tuple[Path, Security]:
    """A new key and self-signed certificate (also the only CA accepted) in a new folder
    `~/.naic/dask/<job id>-<random>/` (0700, files 0600), and the `Security` that uses them
    for the scheduler, the workers and clients. Files, not memory: the worker jobs read
    them on their nodes through the shared home."""
    from distributed.security import Security

    parent = home / CREDENTIALS
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    parent.chmod(0o700)
    folder = Path(tempfile.mkdtemp(prefix=f"{job_id or 'local'}-", dir=parent))  # 0700
    fresh = Security.temporary()
    for name, text in ((CERTIFICATE, fresh.tls_ca_file), (KEY, fresh.tls_scheduler_key)):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    certificate, key = str(folder / CERTIFICATE), str(folder / KEY)
    security = Security(
        require_encryption=True,
        tls_ca_file=certificate,
        tls_client_cert=certificate,
        tls_client_key=key,
        tls_scheduler_cert=certificate,
        tls_scheduler_key=key,
        tls_worker_cert=certificate,
        tls_worker_key=key,
    )
    return folder, security


def session_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`NAIC_SESSION` decoded, or a `SessionError` that says it is missing."""
    raw = (os.environ if environ is None else environ).get(VARIABLE)
    if not raw:
        raise SessionError(
            f"{VARIABLE} is not set: slurm_cluster() works in a naic-hub session only."
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{VARIABLE} is not valid JSON: {exc}") from None


def _slurm_end(job_id: str) -> str | None:
    """The job's end as Slurm has it now (an operator may have extended it)."""
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--jobs", job_id, "--format=%e"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:  # Slurm prints the cluster's local time without a zone
        return datetime.fromisoformat(out).astimezone(UTC).isoformat()
    except ValueError:
        return None


def dashboard_url(cluster: SLURMCluster, environ: Mapping[str, str] | None = None) -> str:
    """The dashboard a browser can open: through the session's proxy when in JupyterHub."""
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        return cluster.dashboard_link
    port = cluster.scheduler_info.get("services", {}).get("dashboard", DASHBOARD_PORT)
    return f"{prefix.rstrip('/')}/proxy/{port}/status"


def _close(ref: weakref.ref, credentials: Path) -> None:
    cluster = ref()
    try:
        if cluster is not None and cluster.status.name not in ("closing", "closed"):
            cluster.close()
    finally:
        shutil.rmtree(credentials, ignore_errors=True)


def _without_relay(routes: list[str]) -> list[str]:
    return [route for route in routes if route != RELAY_ROUTE]


def slurm_cluster(**overrides: Any) -> SLURMCluster:
    """A Dask cluster whose workers are Slurm jobs of this session: `cluster.scale(4)`.

    Each worker gets 1 core and 2 GB unless `cores=`/`memory=` say otherwise; any other
    `SLURMCluster` argument may be overridden too. The cluster closes (and its worker jobs
    are cancelled) when the kernel exits; so is its certificate folder in ~/.naic/dask.
    Connections are TLS (`tls://` addresses): connect with `Client(cluster)`, or with
    `Client(cluster.scheduler_address, security=cluster.security)`."""
    import dask
    from dask_jobqueue import SLURMCluster

    job_id = os.environ.get("SLURM_JOB_ID")
    session = session_from_env()
    if job_id:
        session = dict(session, ends_at=_slurm_end(job_id) or session.get("ends_at"))
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    credentials, security = write_credentials(Path.home(), job_id)
    try:
        settings = cluster_settings(
            session, job_id, node=node, now=datetime.now(UTC), tls=security, **overrides
        )
        # Worker job logs in one hidden folder, not as slurm-N.out files all over the home.
        logs = Path.home() / ".naic" / "dask-logs"
        settings.setdefault("log_directory", str(logs))
        logs.mkdir(parents=True, exist_ok=True)
        if os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
            dask.config.set({"distributed.dashboard.link": PROXIED_LINK})
        routes = dask.config.get("distributed.scheduler.http.routes")
        with dask.config.set({"distributed.scheduler.http.routes": _without_relay(routes)}):
            cluster = SLURMCluster(**settings)
    except BaseException:
        shutil.rmtree(credentials, ignore_errors=True)
        raise
    atexit.register(_close, weakref.ref(cluster), credentials)
    return cluster
