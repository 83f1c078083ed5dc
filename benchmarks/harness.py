"""Two hubs on the test Slurm cluster, driven through the same REST API.

- naic-hub: `naic up` on examples/catalogue-testcluster.yaml (this venv as the session
  environment), through `tests.hub_process.start_hub`, as the integration tests start it.
- stock: plain `jupyterhub -f` with `batchspawner.SlurmSpawner` and its default batch
  script; only what running as root without sudo forces is changed (submit with
  `--uid/--gid`, no exec prefix), plus the venv in the prologue so the job finds
  `batchspawner-singleuser`.

For the poll-load benchmark, every `squeue` a hub runs goes through a counting wrapper put
first on that hub's PATH (`SqueueCounter`), so each call is attributed to the hub that made
it, whatever else uses the shared cluster.
Run as root from the repository root, with the repository's venv (others must be able to
read it: the jobs run its Python as alice and bob).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from naic.hub.app.config import find_proxy
from tests.hub_process import START_TIMEOUT_S, Hub, free_port_base, start_hub, stop_hub
from tests.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
VENV_BIN = Path(sys.executable).parent
SQUEUE = shutil.which("squeue") or "/usr/bin/squeue"
SCANCEL = shutil.which("scancel") or "/usr/bin/scancel"
SPAWN_TIMEOUT_S = 150
STOP_TIMEOUT_S = 90

#: The stock hub: JupyterHub + batchspawner.SlurmSpawner as its README configures it.
STOCK_CONFIG = """\
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{base}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{base}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.SlurmSpawner.req_partition = "normal"
c.SlurmSpawner.req_runtime = "0:30:00"
c.SlurmSpawner.req_memory = "2G"
c.SlurmSpawner.req_nprocs = "1"
# Stock submits with `sudo -E -u {{username}}`; as root without sudo, sbatch --uid/--gid.
c.SlurmSpawner.exec_prefix = ""
c.SlurmSpawner.batch_submit_cmd = "sbatch --parsable --uid={{username}} --gid={{username}}"
c.SlurmSpawner.batch_query_cmd = "squeue -h -j {{job_id}} -o '%T %B'"
c.SlurmSpawner.batch_cancel_cmd = "scancel {{job_id}}"
# --get-user-env=L in the stock script replaces PATH with the login one: re-activate; and
# the stock `srun` step exports only `keepvars` (sbatch's --export list), so add PATH to it,
# or the step cannot find batchspawner-singleuser.
c.SlurmSpawner.req_prologue = "source {venv}/bin/activate"
c.SlurmSpawner.req_keepvars_extra = "PATH"
# The same server settings as naic-hub's config.
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
"""

#: What both hubs add for the poll-load benchmark (naic-hub through jupyterhub_config.d).
NAMED_SERVERS = """\
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.Spawner.poll_interval = {interval}
"""


def fail(message: str) -> None:
    print(f"benchmark: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_host() -> None:
    """Root, the repository's venv readable by the job users, the proxy, a live cluster."""
    if os.geteuid() != 0:
        fail("run as root: jobs are submitted as alice and bob with sbatch --uid/--gid.")
    for folder in [*reversed(Path(sys.prefix).resolve().parents), Path(sys.prefix).resolve()]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            fail(f"{folder} is private: the jobs run this venv's Python as alice; use .venv.")
    if find_proxy() is None:
        fail("configurable-http-proxy was not found: run `make setup`.")
    if not controller_up():
        print("benchmark: starting the test cluster (tests/cluster/slurm-up)", file=sys.stderr)
        up = subprocess.run([str(REPO / "tests/cluster/slurm-up")], timeout=900)
        if up.returncode:
            fail("tests/cluster/slurm-up failed")


def controller_up() -> bool:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return "is UP" in ping.stdout


def wait_controller(timeout_s: float = 180) -> None:
    """The cluster is shared: a test elsewhere may be stopping slurmctld on purpose."""
    deadline = time.monotonic() + timeout_s
    while not controller_up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"slurmctld did not answer for {timeout_s:g} s")
        print("benchmark: slurmctld is down (another test?); waiting", file=sys.stderr)
        time.sleep(5)


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A world-traversable temporary folder under /var/tmp (job users reach into it)."""
    base = Path(tempfile.mkdtemp(prefix="naic-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    ok = False
    try:
        yield base
        ok = True
    finally:
        if keep or not ok:
            print(f"benchmark: logs kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


# --- counting squeue ------------------------------------------------------------------


@dataclass
class SqueueCounter:
    """A `squeue` wrapper that logs each call (time, argv) before running the real one."""

    bin_dir: Path
    log: Path

    @classmethod
    def install(cls, folder: Path) -> SqueueCounter:
        bin_dir = folder / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        log = folder / "squeue-calls.log"
        log.touch()
        wrapper = bin_dir / "squeue"
        wrapper.write_text(
            f'#!/bin/bash\necho "$EPOCHREALTIME $*" >> {shlex.quote(str(log))}\n'
            f'exec {shlex.quote(SQUEUE)} "$@"\n'
        )
        wrapper.chmod(0o755)
        return cls(bin_dir, log)

    def calls(self, since: float, until: float) -> list[str]:
        out = []
        for line in self.log.read_text().splitlines():
            stamp, _, argv = line.partition(" ")
            if since <= float(stamp) <= until:
                out.append(argv)
        return out


@contextlib.contextmanager
def path_first(bin_dir: Path) -> Iterator[None]:
    """Put `bin_dir` first on PATH for processes started meanwhile (the hub and its jobs)."""
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{VENV_BIN}:{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old


# --- the two hubs ---------------------------------------------------------------------


def start_naic(base: Path, extra_config: str = "", session_env: bool = False) -> Hub:
    """`naic up` on the test cluster's catalogue with this venv as the environment, or with
    `session_env` as the site's session environment, the servers' own, and its
    environments (this venv and slurm-up's Lmod module) as kernels."""
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    if session_env:
        cat["sites"]["testcluster"]["session_env"] = sys.prefix
        cat["environments"]["scipy"] = {"title": "SciPy-bundle", "kind": "module",
                                        "modules": ["SciPy-bundle/2023.07"]}  # fmt: skip
    base.mkdir(mode=0o755, exist_ok=True)
    path = base / "catalogue.yaml"
    path.write_text(yaml.safe_dump(cat))
    data = base / "data"
    if extra_config:
        config_d = data / "jupyterhub_config.d"
        config_d.mkdir(mode=0o700, parents=True)
        data.chmod(0o711)
        (config_d / "10-bench.py").write_text(extra_config)
    return start_hub(data, "--catalogue", str(path))


def start_stock(base: Path, extra_config: str = "") -> Hub:
    """Plain `jupyterhub -f` with stock batchspawner.SlurmSpawner on loopback ports."""
    base.mkdir(mode=0o755, exist_ok=True)
    token = secrets.token_hex(32)
    token_file = base / "admin-token"  # where tests.hub_process.Hub looks for it
    token_file.write_text(token)
    token_file.chmod(0o600)
    port = free_port_base()
    config = base / "jupyterhub_config.py"
    config.write_text(
        STOCK_CONFIG.format(
            port=port,
            hub_port=port + 81,
            proxy_api_port=port + 1,
            proxy=find_proxy(),
            pid_file=str(base / "proxy.pid"),
            base=base,
            token=token,
            venv=sys.prefix,
        )
        + extra_config
    )
    log = base / "jupyterhub.log"
    proc = subprocess.Popen(
        [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
        cwd=base,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hub = Hub(f"http://127.0.0.1:{port}/", base, proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(hub.url + "hub/api", timeout=2).status_code == 200:
                return hub
        time.sleep(0.3)
    stop(hub)
    raise RuntimeError(f"the stock hub did not start:\n{tail(hub.log_text())}")


def stop(hub: Hub) -> None:
    """`tests.hub_process.stop_hub` (sessions first, then the hub), without its log echo."""
    with contextlib.redirect_stdout(io.StringIO()):
        stop_hub(hub)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- sessions through REST ------------------------------------------------------------


def server_path(user: str, name: str = "") -> str:
    return f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"


def ensure_user(api: httpx.Client, user: str) -> None:
    resp = api.post(f"/users/{user}")
    if resp.status_code not in (201, 409):
        raise RuntimeError(f"cannot create {user}: {resp.status_code} {resp.text}")


def request_spawn(api: httpx.Client, user: str, name: str, options: dict | None) -> None:
    body = {"user_options": options} if options is not None else None
    resp = api.post(server_path(user, name), json=body)
    if resp.status_code not in (201, 202):
        raise RuntimeError(f"spawn of {user}/{name} refused: {resp.status_code} {resp.text}")


def server_model(api: httpx.Client, user: str, name: str = "") -> dict | None:
    resp = api.get(f"/users/{user}")
    resp.raise_for_status()
    return resp.json()["servers"].get(name)


def wait_ready(
    api: httpx.Client, user: str, name: str = "", timeout_s: float = SPAWN_TIMEOUT_S
) -> dict:
    """Poll the hub every 0.1 s until the server is ready; raise if it failed or timed out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server = server_model(api, user, name)
        if server is None:
            raise RuntimeError(f"{user}/{name or '(default)'} failed to start (see the hub log)")
        if server["ready"]:
            return server
        time.sleep(0.1)
    raise RuntimeError(f"{user}/{name or '(default)'} was not ready within {timeout_s:g} s")


def job_id_of(server: dict | None) -> str:
    """The Slurm job id in the server's state: stock has it at the top, our router nested."""
    state = (server or {}).get("state") or {}
    return str(state.get("job_id") or (state.get("child_state") or {}).get("job_id") or "")


def stop_server(api: httpx.Client, user: str, name: str = "") -> None:
    resp = api.delete(server_path(user, name))
    if resp.status_code == 400:  # e.g. a spawn still pending: wait for it, then stop
        wait_ready(api, user, name)
        resp = api.delete(server_path(user, name))
    if resp.status_code not in (202, 204, 404):
        raise RuntimeError(f"stop of {user}/{name} refused: {resp.status_code} {resp.text}")
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server_model(api, user, name) is None:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{user}/{name or '(default)'} did not stop within {STOP_TIMEOUT_S} s")


ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


def job_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job (a job Slurm forgot is absent); calls the real squeue."""
    if not job_ids:
        return {}
    out = subprocess.run(
        [SQUEUE, "-h", "--states=all", "-o", "%i %T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def wait_jobs_gone(job_ids: list[str], timeout_s: float = 60) -> None:
    """Wait until none of the jobs is active any more; cancel what still is, then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not ACTIVE & set(job_states(job_ids).values()):
            return
        time.sleep(0.3)
    left = [j for j, s in job_states(job_ids).items() if s in ACTIVE]
    if left:
        subprocess.run([SCANCEL, *left], timeout=30, check=False)


def remove_job_logs(
    job_ids: list[str], keep_in: Path | None = None, users: tuple[str, ...] = ("alice", "bob")
) -> None:
    """The job logs both spawners leave in the home directory, for these jobs only; moved
    to `keep_in` when given."""
    if keep_in is not None:
        keep_in.mkdir(exist_ok=True)
    for user in users:
        home = Path(os.path.expanduser(f"~{user}"))
        for job in job_ids:
            if not re.fullmatch(r"[0-9]+", job):
                continue
            for name in (f".naic-session-{job}.log", f"jupyterhub_slurmspawner_{job}.log"):
                path = home / name
                if keep_in is not None and path.exists():
                    shutil.move(path, keep_in / f"{user}-{name.lstrip('.')}")
                path.unlink(missing_ok=True)


def kill_group(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """Stop a process we started in its own session, and everything it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- sdiag ------------------------------------------------------------------------------


def sdiag_reset() -> None:
    subprocess.run(["sdiag", "--reset"], check=True, capture_output=True, timeout=30)


def sdiag_rpcs() -> dict[str, int]:
    """RPC counts by message type since the last reset."""
    out = subprocess.run(["sdiag"], check=True, capture_output=True, text=True, timeout=30).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)[-1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\s*([A-Z_]+)\s+\(\s*\d+\)\s+count:(\d+)", section, re.M)
    }


# --- reporting --------------------------------------------------------------------------


def publish(text: str, result: dict, path: Path) -> None:
    """Print the table and keep the figures as JSON beside it."""
    print()
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {path}")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


def table(header: list[str], rows: list[list[object]]) -> str:
    """A plain Markdown table (readable in a terminal, pasteable into the README)."""
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def bare_singleuser(
    user: str, hub_api_url: str, token: str, log: Path, *, timeout_s: float = 60
) -> Iterator[tuple[subprocess.Popen, float]]:
    """Run `jupyterhub-singleuser` as `user` with this venv and a valid token of `user` (the
    server checks the hub's version before it listens), no Slurm and no hub in the path.
    Yields (the process, the wall seconds until its URL answered below HTTP 500); stops it.
    """
    port = _free_port()
    prefix = f"/user/{user}/"
    home = os.path.expanduser(f"~{user}")
    env = {
        "HOME": home,
        "USER": user,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "VIRTUAL_ENV": str(VENV_BIN.parent),
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": hub_api_url,
        "JUPYTERHUB_ACTIVITY_URL": f"{hub_api_url}/users/{user}/activity",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_DEFAULT_URL": "/lab",
    }
    argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    argv.append(str(VENV_BIN / "jupyterhub-singleuser"))
    url = f"http://127.0.0.1:{port}{prefix}"
    with log.open("a") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            while time.perf_counter() < t0 + timeout_s:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyterhub-singleuser exited early; see {log}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url, timeout=2).status_code < 500:
                        yield proc, time.perf_counter() - t0
                        return
                time.sleep(0.05)
            raise RuntimeError(f"jupyterhub-singleuser did not answer in {timeout_s} s")
        finally:
            kill_group(proc)
