"""Plain helpers the integration tests (and the browser tests) share: starting a hub on the
test cluster's catalogue, API clients as a user, waiting, Slurm queries, workshop and
cloud-pool set-ups. The fixtures built on them are in conftest.py."""

from __future__ import annotations

import contextlib
import copy
import json
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from naic.hub.workshops.rules import code_key
from tests.hub_process import Hub, start_hub, stop_hub
from tests.sshd import CloudVMs, Sshd, SshKeys

REPO = Path(__file__).resolve().parents[2]


# --- a hub on the test cluster (test_slurm_lifecycle) -------------------------------------


# Poll every 5 s instead of 30 s so the tests see ends and outages quickly.
FAST_POLLS = "c.Spawner.poll_interval = 5\nc.SlurmSpawner.status_max_age = 5\n"


def testcluster_catalogue() -> dict:
    """examples/catalogue-testcluster.yaml, parsed, with this venv as its environment."""
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    return cat


def start_testcluster_hub(
    hub_dir: Path, edit: Callable[[dict], None] | None = None, *args: str, config: str = ""
) -> Hub:
    """`naic up` on the test cluster's catalogue (this venv as its environment, `edit`
    applied to the parsed YAML), polling every 5 s; `args` go to `naic up`, `config` is
    more of the hub's config (a `jupyterhub_config.d` file)."""
    cat = testcluster_catalogue()
    if edit is not None:
        edit(cat)
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    config_d = hub_dir / "data" / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "10-fast-polls.py").write_text(FAST_POLLS + config)
    return start_hub(hub_dir / "data", "--catalogue", str(hub_dir / "catalogue.yaml"), *args)


def restart_hub(hub: Hub) -> None:
    """Start the hub again on its data dir, catalogue and port, after it was killed; `hub`
    then holds the new process (which its fixture stops)."""
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    restarted = start_hub(
        hub.data_dir, "--catalogue", str(hub.data_dir.parent / "catalogue.yaml"), port=port
    )
    hub.process = restarted.process


# --- a user's API client, spawning, waiting -----------------------------------------------


def client(hub: Hub, name: str) -> httpx.Client:
    with hub.api() as api:
        api.post(f"/users/{name}")
        token = api.post(f"/users/{name}/tokens", json={"note": "test"}).json()["token"]
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=30)


def server_path(name: str, server: str) -> str:
    return f"/hub/api/users/{name}/servers/{server}" if server else f"/hub/api/users/{name}/server"


def start(c: httpx.Client, name: str, options: dict, server: str = "") -> None:
    resp = c.post(server_path(name, server), json={"user_options": options})
    assert resp.status_code in (201, 202), resp.text


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.5)


def ready(c: httpx.Client, name: str, server: str = "") -> bool:
    s = c.get(f"/hub/api/users/{name}").json()["servers"].get(server)
    return bool(s and s["ready"])


def progress_messages(c: httpx.Client, name: str, server: str, until: str, timeout_s: float):
    """Read the progress event stream a user's spawn page reads, until a message has `until`."""
    url = f"/hub/api/users/{name}/servers/{server}/progress"
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    with c.stream("GET", url, timeout=timeout_s) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
                if until in seen[-1]:
                    return seen
            if time.monotonic() > deadline:
                break
    pytest.fail(f"no progress message with {until!r}; saw {seen}")


def user_token(hub: Hub, name: str) -> str:
    with hub.api() as api:
        api.post(f"/users/{name}")
        resp = api.post(f"/users/{name}/tokens", json={"note": "test"})
        resp.raise_for_status()
        return resp.json()["token"]


def wait_ready(api: httpx.Client, name: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server = api.get(f"/users/{name}").json()["servers"].get("")
        if server and server["ready"]:
            return server
        time.sleep(0.5)
    pytest.fail(f"{name}'s session was not ready within {timeout_s} s")


def squeue(*args: str) -> str:
    return subprocess.run(
        ["squeue", "--noheader", *args], capture_output=True, text=True, check=True
    ).stdout


def server_token(job_id: str) -> str:
    """The session's own JUPYTERHUB_API_TOKEN, read (as root) from its job's processes, as
    the SessionPanel inside the session uses it."""
    out = subprocess.run(
        ["scontrol", "listpids", job_id], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines()[1:]:
        pid = line.split()[0]
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"JUPYTERHUB_API_TOKEN="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError(f"no JUPYTERHUB_API_TOKEN in the processes of job {job_id}")


# --- metrics (test_metrics) ---------------------------------------------------------------


def scrape(hub: Hub) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    resp = httpx.get(
        hub.url + "hub/metrics", headers={"Authorization": f"token {hub.admin_token}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text[:300]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- GPU samples and culling (test_culling) -----------------------------------------------


SAMPLES = Path("/var/tmp/naic-test-gpu-samples")


def set_gpu_use(user: str, percent: float) -> None:
    path = SAMPLES / f"{user}.json"
    row = {"name": "NVIDIA A100 (fake)", "utilization_pct": percent}
    row.update(memory_used_mb=1024, memory_total_mb=40960)
    path.write_text(json.dumps([row]))
    path.chmod(0o644)


@contextlib.contextmanager
def hub_with_policy(hub_dir: Path, policy: dict) -> Iterator[Hub]:
    """A test-cluster hub whose Slurm sessions read their GPU samples from SAMPLES/{user}.json
    and whose test cluster has the culling `policy`."""
    SAMPLES.mkdir(mode=0o755, exist_ok=True)
    config = (
        "c.SlurmSpawner.environment = {'NAIC_GPU_SAMPLES': "
        f"lambda spawner: '{SAMPLES}/' + spawner.user.name + '.json'}}\n"
    )
    hub = start_testcluster_hub(
        hub_dir,
        lambda cat: cat["sites"]["testcluster"].update(culling=policy),
        "--admin",
        "ops",
        config=config,
    )
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in ("alice", "bob"):
            subprocess.run(["scancel", f"--user={user}"], check=False)


# --- the multi-host site: compute nodes node1 and node2 (test_multi_host, federation) ------

#: bob's jobs that hold a whole node (`block`).
BLOCKER = "naic-test-blocker"


def cluster_site(cat: dict) -> None:
    """The test cluster's compute nodes as a site of their own (2 fake A100s per node)."""
    cat["sites"]["cluster"] = {
        "title": "Test cluster, compute nodes on their own hosts",
        "backend": "slurm",
        "submit": {"host": "localhost"},
        "gpus_per_node": {"a100": 2},
        "resources": {
            "gpu": {
                "title": "NVIDIA A100 (fake) on node1/node2",
                "partition": "nodes",
                "gpu": {"type": "a100", "max": 2, "model": "NVIDIA A100", "memory_gb": 40},
                "cpus": {"default": 1, "max": 16},
                "memory_gb": {"default": 2, "max": 16},
                "max_hours": 8,
            }
        },
    }
    cat["projects"]["course"] = {"title": "ML course", "slurm_account": "course",
                                 "members": ["ingrid"]}  # fmt: skip
    cat["workshops"] = {"max_seats": 10, "max_gpus_per_seat": 1, "max_hours": 4}


def block(node: str) -> str:
    """bob's job holding all of `node`, running; its id."""
    job = subprocess.run(
        ["sbatch", "--parsable", "--uid=bob", "--gid=bob", "--partition=nodes",
         f"--nodelist={node}", "--exclusive", "--time=10", f"--job-name={BLOCKER}",
         "--output=/dev/null", "--wrap=sleep 600"],
        capture_output=True, text=True, check=True, cwd="/tmp",
    ).stdout.strip().split(";")[0]  # fmt: skip
    deadline = time.monotonic() + 30
    while squeue(f"--jobs={job}", "--format=%T").strip() != "RUNNING":
        assert time.monotonic() < deadline, f"bob's job on {node} did not start"
        time.sleep(0.3)
    return job


# --- cloud node pools (test_cloud_nodes) --------------------------------------------------


L40S = {"site": "cloud", "resource": "l40s", "gpus": 1, "hours": 1}


def cloud_site(keys: SshKeys, vms: CloudVMs, *, when_full: str, known_hosts: Path) -> dict:
    return {
        "title": "Cloud pool",
        "backend": "nodes",
        "when_full": when_full,
        "ssh": {
            "user": "root",
            "identity_file": str(keys.private_key),
            "known_hosts": str(known_hosts),
        },
        "hosts": {vm.name: {"address": vm.address, "gpus": {"l40s": 2}} for vm in vms},
        "resources": {
            "l40s": {
                "title": "NVIDIA L40S (declared)",
                "gpu": {"type": "l40s", "max": 2, "model": "NVIDIA L40S", "memory_gb": 48},
                "cpus": 1,
                "memory_gb": 2,
                "max_hours": 4,
            }
        },
    }


def start_pool_hub(hub_dir: Path, keys: SshKeys, vms: CloudVMs, **kw) -> Hub:
    site = cloud_site(keys, vms, **{"when_full": "wait", "known_hosts": keys.known_hosts, **kw})
    return start_testcluster_hub(hub_dir, lambda cat: cat["sites"].update(cloud=site))


# --- remote Slurm over SSH (test_remote_slurm) --------------------------------------------


def remote_site(node: Sshd, keys: SshKeys, known_hosts: Path) -> Callable[[dict], None]:
    """A catalogue edit: `remote`, the test cluster's site reached through `node`."""

    def edit(cat: dict) -> None:
        site = copy.deepcopy(cat["sites"]["testcluster"])
        site["title"] = "Remote centre"
        site["submit"] = {"host": node.address, "port": node.port, "via": "ssh"}
        site["ssh"] = {
            "user": "root",
            "identity_file": str(keys.private_key),
            "known_hosts": str(known_hosts),
        }
        cat["sites"]["remote"] = site

    return edit


# --- workshops (test_workshops, test_workshop_guests) -------------------------------------


COURSE = Path("/var/tmp/naic-test-course")


RESERVATION = "naic-ws-ml-intro"


#: Workshop accounts whose window passed are looked for every 2 s (the default is a minute).
GUEST_CHECK = "c.WorkshopGuests.check_interval = 2\n"


def git(*args: str) -> None:
    subprocess.run(
        ["git", "-C", str(COURSE), "-c", "user.name=T", "-c", "user.email=t@x", *args],
        check=True,
        capture_output=True,
    )


def notebook(*counts: int | None) -> str:
    """A notebook with one code cell per count (None: not run yet)."""
    cells = [
        {"cell_type": "code", "execution_count": n, "source": "", "outputs": []} for n in counts
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def course_repository() -> None:
    """A git repository every student can read, as a shared course folder would be."""
    subprocess.run(["rm", "-rf", str(COURSE)], check=True)
    COURSE.mkdir(mode=0o755)
    git("init", "-q", "-b", "main")
    (COURSE / "01-intro.ipynb").write_text(notebook(None, None))
    git("add", ".")
    git("commit", "-q", "-m", "course")
    subprocess.run(["chmod", "-R", "a+rX", str(COURSE)], check=True)


def token_of(hub: Hub, name: str) -> str:
    with hub.api() as api:
        api.post(f"/users/{name}")
        return api.post(f"/users/{name}/tokens", json={"note": "test"}).json()["token"]


def jobs_of(user: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-u", user, "-t", "PENDING,RUNNING", "-o", "%u %v"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split("\n")[:-1]


def issue(api: httpx.Client, name: str, count: int = 1) -> list[tuple[str, str]]:
    got = api.post(f"/hub/api/naic/workshops/{name}/accounts", json={"count": count})
    assert got.status_code == 200, got.text
    return [(a["username"], a["password"]) for a in got.json()["accounts"]]


def guest_login(hub: Hub, username: str, password: str) -> tuple[httpx.Client, httpx.Response]:
    """The workshop login page, as a browser; the redirect to the spawn is not followed."""
    c = httpx.Client(base_url=hub.url, timeout=60)
    page = c.get("/hub/naic/workshops/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    form = {"username": username, "password": password, "_xsrf": xsrf}
    return c, c.post("/hub/naic/workshops/login", data=form, follow_redirects=False)


# --- the sudo service account (test_slurm_sudo) -------------------------------------------


SERVICE = "naic-svc-test"


# --- OIDC (test_oidc_login) ---------------------------------------------------------------


def refusal_of(resp: httpx.Response) -> str:
    """The sentence on a refusal page, as a person reads it."""
    import html
    import re

    found = re.search(r'<p class="lead naic-message">(.*?)</p>', resp.text, re.S)
    assert found, resp.text[:3000]
    return " ".join(html.unescape(found.group(1)).split())


# --- the test ledger's clock (test_ledger) ------------------------------------------------


#: The workshop store's key for join codes (test_workshop_store).
KEY = code_key(b"the hub's cookie secret")
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def uid_gid(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def make_instructors(hub: Hub, *names: str) -> None:
    """Create `names` on the hub and put them in the instructors group."""
    with hub.api() as api:
        for name in names:
            api.post(f"/users/{name}")
        resp = api.post("/groups/instructors/users", json={"users": list(names)})
        assert resp.is_success, resp.text
