"""The session's own facts, handed to the server as one environment variable: pure.

`NAIC_SESSION` is the contract between the spawners (which know the request and the
catalogue) and what runs inside the session (`naic.extensions.session`, the widgets and the
server extension, which know neither). One JSON object, ASCII only, so it survives any
environment a scheduler passes along:

    {"version": 1, "catalogue": "NAIC demo",
     "site": "saga", "site_title": "Saga (Sigma2)", "backend": "slurm",
     "resource": "a100", "resource_title": "NVIDIA A100",
     "gpus": 1, "gpu_type": "a100", "cpus": 8, "memory_gb": 32, "hours": 4.0,
     "environment": "pytorch", "environment_title": "PyTorch + CUDA",
     "activate": {"venv": null, "modules": ["PyTorch/2.1.2-foss-2023a-CUDA-12.1.1"]},
     "partition": "accel", "transfer_partition": "accel", "slurm_account": "nn1234k",
     "project": {"name": "nn1234k", "title": "Deep learning for weather"},
     "started_at": "2026-03-02T09:00:00Z", "ends_at": "2026-03-02T13:00:00Z",
     "storage": [{"name": "home", "title": "Home", "path": "/home/ola", "quota_gb": 20.0,
                  "read_only": false, "purge_days": null}, ...],
     "help": {"docs_url": "https://documentation.sigma2.no", "support_url": null}}

`gpu_type` is null when the session has no GPUs, `project` null without a project, and
storage areas whose path needs `{project}` are left out when there is none. `ends_at` is
when the session was asked to end; a scheduler may end it at another time (the session
asks Slurm itself).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse, urlunparse

from naic.hub.catalogue import Catalogue
from naic.spawners.request import SessionRequest

#: The environment variable that carries the facts.
VARIABLE = "NAIC_SESSION"
#: The catalogue's environments as kernels, for the launcher (naic.extensions.kernels).
KERNELS_VARIABLE = "NAIC_KERNELS"
#: Bumped when a field changes meaning or disappears (adding fields keeps the version).
VERSION = 1


def _utc(when: datetime) -> datetime:
    """Whole seconds in UTC; a naive time counts as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def iso_utc(when: datetime) -> str:
    """`2026-03-02T09:00:00Z`: whole seconds, always UTC (a naive time counts as UTC)."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_facts(
    req: SessionRequest,
    cat: Catalogue,
    username: str,
    *,
    started_at: datetime,
    home: str | None = None,
) -> dict[str, Any]:
    """The facts as a mapping (what `session_env` serialises). `home`: where the backend
    really put the user's home (the local backend's own folders), overriding the catalogue's
    `home` area path."""
    site = cat.sites[req.site]
    res = site.resources[req.resource]
    env = cat.environments.get(req.environment)
    start = _utc(started_at)
    project = None
    if req.project is not None:
        project = {"name": req.project, "title": cat.projects[req.project].title}
    names = {"username": username, "project": req.project or ""}
    storage = []
    for name, area in cat.storage.items():
        if req.project is None and "{project}" in area.path:
            continue
        storage.append(
            {
                "name": name,
                "title": area.title or name.capitalize(),
                "path": home if name == "home" and home else area.path.format_map(names),
                "quota_gb": area.quota_gb,
                "read_only": area.read_only,
                "purge_days": area.purge_days,
                **({"node_local": True} if area.node_local else {}),
            }
        )
    return {
        "version": VERSION,
        "catalogue": cat.name,
        "site": req.site,
        "site_title": site.title,
        "backend": site.backend,
        "resource": req.resource,
        "resource_title": res.title,
        "gpus": req.gpus,
        "gpu_type": res.gpu.type if res.gpu is not None and req.gpus else None,
        "cpus": req.cpus,
        "memory_gb": req.memory_gb,
        "hours": float(req.hours),
        "environment": req.environment,
        "environment_title": env.title if env is not None else req.environment,
        # What Dask workers (naic.extensions.dask) need to run like the session.
        # With a site session environment they run from it (it has Dask), like the server.
        "activate": (
            {"venv": site.session_env, "modules": []}
            if site.session_env
            else {
                "venv": env.prefix if env is not None else None,
                "modules": list(env.modules) if env is not None else [],
            }
        ),
        "partition": res.partition,
        "transfer_partition": site.transfer_partition or res.partition,
        "slurm_account": req.slurm_account(cat),
        "project": project,
        "started_at": iso_utc(start),
        # Whole minutes, as the job's time limit (`--time`) has them.
        "ends_at": iso_utc(start + timedelta(minutes=req.time_minutes)),
        "time_left_notice_minutes": site.culling.time_left_notice_minutes,
        "storage": storage,
        # Where to read more and ask for help (the hub's help page is /hub/naic/help).
        "help": {"docs_url": site.docs_url, "support_url": site.support_url},
        **(
            {
                "workshop": {
                    "name": req.workshop,
                    "material": req.material or "",
                    "shared": req.shared or "",
                }
            }
            if req.workshop
            else {}
        ),
    }


def session_env(req: SessionRequest, cat: Catalogue, *args: Any, **kw: Any) -> dict[str, str]:
    """`{"NAIC_SESSION": json}` for the server's environment: `session_facts(…)`, serialised;
    on a site with a session environment also NAIC_KERNELS (`kernels_json`)."""
    out = {VARIABLE: json.dumps(session_facts(req, cat, *args, **kw), separators=(",", ":"))}
    if cat.sites[req.site].session_env:
        out[KERNELS_VARIABLE] = kernels_json(req, cat)
    return out


def kernels_json(req: SessionRequest, cat: Catalogue) -> str:
    """Pure: the environments offered with the session's resource, as the launcher makes
    them kernels (naic.extensions.kernels), and the chosen one, the default kernel."""
    envs = {
        name: {k: v for k, v in cat.environments[name].model_dump().items() if v}
        for name in cat.environments_for(req.site, req.resource)
    }
    default = req.environment if req.environment in envs else None
    return json.dumps({"environments": envs, "default": default}, separators=(",", ":"))


def unix_url(url: str, socket_path: str | Path) -> str:
    """Pure: `url` with its host replaced by a Unix socket, in the `http+unix://` form
    JupyterHub's client and configurable-http-proxy understand (the path percent-encoded
    as the host)."""
    parts = urlparse(url)
    return urlunparse(parts._replace(scheme="http+unix", netloc=quote(str(socket_path), safe="")))


def hub_urls_on_socket(env: dict[str, str], socket_path: str) -> dict[str, str]:
    """Pure: the environment's hub API URLs (`JUPYTERHUB_API_URL`, `…_ACTIVITY_URL`) with
    the hub's address replaced by the session's socket on its VM (`http+unix://`)."""
    keys = ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL")
    return {key: unix_url(env[key], socket_path) for key in keys if env.get(key)}
