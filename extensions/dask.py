"""Dask on Slurm from inside a session: `cluster = slurm_cluster()`.

The cluster's scheduler runs in the session (the notebook's own process); each worker is a
Slurm job at the session's site, in its partition and account, with its software
environment, named `naic-dask-<session job id>` so the hub can cancel a session's workers
when the session ends (`naic.spawners.slurm.cancel_dask_workers`). Workers also end by
themselves `DEATH_TIMEOUT_S` after the scheduler disappears.

`cluster_settings` is the pure part (session facts → `SLURMCluster` keyword arguments);
`slurm_cluster` reads `NAIC_SESSION`, builds the cluster and makes sure it is closed when
the kernel exits. Nothing listens beyond the machines involved: the scheduler binds to the
session's node name, workers to their own node name, the dashboard to 127.0.0.1 (the
browser reaches it through jupyter-server-proxy, `dashboard_url`).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import socket
import subprocess
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dask_jobqueue import SLURMCluster

VARIABLE = "NAIC_SESSION"
#: A session's worker jobs are named this; the hub cancels them by name (keep in step with
#: `naic.spawners.slurm.dask_job_name`; extensions do not import the hub's code).
JOB_NAME = "naic-dask-{job_id}"
DASHBOARD_PORT = 8787
#: Seconds a worker waits for a scheduler it lost before it exits (and its job ends).
DEATH_TIMEOUT_S = 60
#: Per worker job, unless overridden: small, so that scaling out asks little of the queue.
DEFAULT_CORES = 1
DEFAULT_MEMORY_GB = 2
DEFAULT_WALLTIME = "01:00:00"
#: The proxied dashboard, for `distributed.dashboard.link` (formatted by distributed with
#: `port` and the environment).
PROXIED_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"


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


def cluster_settings(
    session: Mapping[str, Any],
    job_id: str | None,
    *,
    node: str,
    now: datetime,
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for `dask_jobqueue.SLURMCluster` from the session's facts.

    `session` is `NAIC_SESSION` decoded; `job_id` the session's Slurm job (None outside
    one: the workers then get the name `naic-dask-local`); `node` the name the workers
    reach the session's node by; `now` for the time left. `overrides` win over everything
    (`cores`, `memory`, `walltime`, ...), except that the walltime never outlasts the
    session and the scheduler's dashboard stays on 127.0.0.1."""
    partition = _require(session, "partition")
    prologue = _prologue(_require(session, "activate"))
    settings: dict[str, Any] = {
        "queue": partition,
        "account": session.get("slurm_account") or None,
        "cores": DEFAULT_CORES,
        "processes": 1,
        "memory": f"{DEFAULT_MEMORY_GB}GB",
        "walltime": DEFAULT_WALLTIME,
        "job_name": JOB_NAME.format(job_id=job_id or "local"),
        "job_script_prologue": prologue,
        "scheduler_options": {
            "host": node,
            "dashboard_address": f"127.0.0.1:{DASHBOARD_PORT}",
        },
        # `$SLURMD_NODENAME` expands in the worker's batch script: its own node's name. A
        # worker's HTTP server (health, metrics) runs even with --no-dashboard; without
        # --dashboard-address it listens on every interface.
        "worker_extra_args": [
            "--death-timeout",
            str(DEATH_TIMEOUT_S),
            "--host",
            "$SLURMD_NODENAME",
            "--dashboard-address",
            "$SLURMD_NODENAME:0",
            "--no-dashboard",
        ],
    }
    settings.update(overrides)
    settings["walltime"] = _walltime(str(settings["walltime"]), session.get("ends_at"), now)
    return settings


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


def _close(ref: weakref.ref) -> None:
    cluster = ref()
    if cluster is not None and cluster.status.name not in ("closing", "closed"):
        cluster.close()


def slurm_cluster(**overrides: Any) -> SLURMCluster:
    """A Dask cluster whose workers are Slurm jobs of this session: `cluster.scale(4)`.

    Each worker gets 1 core and 2 GB unless `cores=`/`memory=` say otherwise; any other
    `SLURMCluster` argument may be overridden too. The cluster closes (and its worker jobs
    are cancelled) when the kernel exits."""
    import dask
    from dask_jobqueue import SLURMCluster

    job_id = os.environ.get("SLURM_JOB_ID")
    session = session_from_env()
    if job_id:
        session = dict(session, ends_at=_slurm_end(job_id) or session.get("ends_at"))
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    settings = cluster_settings(session, job_id, node=node, now=datetime.now(UTC), **overrides)
    # Worker job logs in one hidden folder, not as slurm-N.out files all over the home.
    logs = Path.home() / ".naic" / "dask-logs"
    settings.setdefault("log_directory", str(logs))
    logs.mkdir(parents=True, exist_ok=True)
    if os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        dask.config.set({"distributed.dashboard.link": PROXIED_LINK})
    cluster = SLURMCluster(**settings)
    atexit.register(_close, weakref.ref(cluster))
    return cluster
