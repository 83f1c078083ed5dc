"""Fixtures the integration tests share: hubs on the test cluster with a given catalogue,
OIDC hubs, node pools, the ledger and the workshop store on both databases, the Ansible
deployments. The services under them (Slurm, PostgreSQL, the OIDC provider, sshd, slapd)
are the plugins in tests/conftest.py; plain helpers are in helpers.py and ansible_play.py."""

from __future__ import annotations

import contextlib
import copy
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from naic.hub.usage.ledger import Ledger
from naic.hub.workshops.store import WorkshopStore
from tests.hub_process import Hub, free_port_base, start_hub, stop_hub
from tests.integration.ansible_play import (
    DeployedHub,
    Deployment,
    build_wheel,
    recap_line,
    run_playbook,
    stop_process_group,
    write_play,
)
from tests.integration.helpers import (
    BLOCKER,
    GUEST_CHECK,
    KEY,
    REPO,
    RESERVATION,
    SERVICE,
    Clock,
    block,
    cloud_site,
    cluster_site,
    course_repository,
    hub_with_policy,
    remote_site,
    squeue,
    start_pool_hub,
    start_testcluster_hub,
    testcluster_catalogue,
    uid_gid,
)
from tests.oidc_provider import OidcHub, Provider, Relay, oidc_catalogue, start_oidc_hub
from tests.postgres import create_database
from tests.slurm_cluster import GUESTS, STUDENTS
from tests.sshd import CloudVMs, SshKeys

# --- the ledger and the workshop store, on SQLite and PostgreSQL --------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database per test, the way JupyterHub's db_url names it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    return create_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand, at T0."""
    return Clock()


@pytest.fixture
def ledger(db_url, clock) -> Iterator[Ledger]:
    """The ledger on `db_url` (SQLite, then PostgreSQL), on `clock`'s time."""
    ledger = Ledger(db_url, clock=clock)
    yield ledger
    ledger.close()


@pytest.fixture
def store(db_url, clock) -> Iterator[WorkshopStore]:
    """The workshop store on `db_url` (SQLite, then PostgreSQL), on `clock`'s time."""
    s = WorkshopStore(db_url, clock=clock, code_key=KEY)
    yield s
    s.close()


# --- hubs on the test cluster's catalogue -------------------------------------------------


@pytest.fixture
def slurm_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """`naic up` as root on the test cluster's catalogue, with this venv as the environment."""
    cat = testcluster_catalogue()
    path = hub_dir / "catalogue.yaml"
    path.write_text(yaml.safe_dump(cat))
    hub = start_hub(hub_dir / "data", "--catalogue", str(path))
    try:
        yield hub
    finally:
        stop_hub(hub)


@pytest.fixture
def fast_hub(slurm_cluster, hub_dir: Path, postgres_url: str) -> Iterator[Hub]:
    """The test cluster's catalogue, polling every 5 s; alice's and bob's jobs cancelled after.
    JupyterHub itself on PostgreSQL (`--db-url`), as a national hub runs: these tests kill
    and restart it, and queue, stop and end sessions."""
    hub = start_testcluster_hub(hub_dir, None, "--db-url", create_database(postgres_url))
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=alice"], check=False)
        subprocess.run(["scancel", "--user=bob"], check=False)


@pytest.fixture
def budget_hub(slurm_cluster, hub_dir: Path, postgres_url: str) -> Iterator[Hub]:
    """The test cluster's catalogue with project demo holding 1 GPU-hour a month; on
    PostgreSQL (holds taken together, a hub killed while a session ends)."""
    hub = start_testcluster_hub(
        hub_dir,
        lambda cat: cat["projects"]["demo"].update(gpu_hours=1, budget_period="month"),
        "--admin",
        "ops",
        "--db-url",
        create_database(postgres_url),
    )
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=alice"], check=False)


@pytest.fixture
def extend_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The test cluster's catalogue, its A100s extendable once by one hour."""
    hub = start_testcluster_hub(
        hub_dir,
        lambda cat: cat["sites"]["testcluster"]["resources"]["a100"].update(
            max_extensions=1, extend_step_hours=1
        ),
        "--admin",
        "ops",
    )
    try:
        yield hub
    finally:
        stop_hub(hub)


#: Seconds, so the culling test takes one minute: GPUs idle 20 s → stop, no activity 30 s →
#: stop, warned 8 s before.
CULL_POLICY = {"gpu_idle_minutes": 20 / 60, "idle_minutes": 0.5, "warn_minutes": 8 / 60}


@pytest.fixture
def cull_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The test cluster with CULL_POLICY, its sessions reading injected GPU samples."""
    with hub_with_policy(hub_dir, CULL_POLICY) as hub:
        yield hub


@pytest.fixture
def ws_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """A hub for workshops: project course (ingrid's), instructors ingrid and ivar, guest
    accounts, the course repository; jobs and reservations removed after."""

    def course_project(cat: dict) -> None:
        # ingrid may charge the course; ivar, another instructor, may not.
        cat["projects"]["course"] = {
            "title": "ML course",
            "slurm_account": "course",
            "members": ["ingrid"],
        }
        # Above this, a workshop waits for an admin (test_workshop_attacks).
        cat["workshops"] = {
            "max_seats": 10,
            "max_gpus_per_seat": 1,
            "max_hours": 4,
            "max_active_per_instructor": 3,
        }
        cat["guest_accounts"] = {"prefix": "guest", "count": len(GUESTS)}
        # Sessions report every 2 s (the report interval follows the shortest warning).
        cat["sites"]["testcluster"]["culling"] = {"warn_minutes": 0.1}

    course_repository()
    hub = start_testcluster_hub(hub_dir, course_project, "--admin", "ops", config=GUEST_CHECK)
    with hub.api() as api:
        for name in ("ingrid", "ivar"):
            api.post(f"/users/{name}")
        resp = api.post("/groups/instructors/users", json={"users": ["ingrid", "ivar"]})
        assert resp.is_success, resp.text
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in (*STUDENTS, *GUESTS):
            subprocess.run(["scancel", f"--user={user}"], check=False)
        for name in (RESERVATION, "naic-ws-tomorrow", "naic-ws-guests", "naic-ws-from-page"):
            subprocess.run(["scontrol", "delete", f"ReservationName={name}"], capture_output=True)


@pytest.fixture
def remote_hub(request, slurm_cluster, login_node, ssh_keys, hub_dir: Path) -> Iterator[Hub]:
    """A hub with the site `remote`; `known_hosts` comes from the test's parameter."""
    known_hosts = getattr(ssh_keys, request.param)
    hub = start_testcluster_hub(hub_dir, remote_site(login_node, ssh_keys, known_hosts))
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=bob", "--name=naic-bob"], check=False)


SUDOERS = Path("/etc/sudoers.d/naic-svc-test")
# The rule an operator writes: sbatch and scancel as the cluster's users, keeping the
# session's JUPYTERHUB_* variables (SETENV), nothing else.
RULE = f"{SERVICE} ALL=(alice,bob) NOPASSWD:SETENV: /usr/bin/sbatch, /usr/bin/scancel\n"


@pytest.fixture
def service_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """The test cluster's catalogue, the hub running as SERVICE and submitting through sudo."""
    if shutil.which("sudo") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "sudo"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    created = False
    try:
        pwd.getpwnam(SERVICE)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", SERVICE], check=True
        )
        created = True
    SUDOERS.write_text(RULE)
    SUDOERS.chmod(0o440)
    subprocess.run(["visudo", "-cf", str(SUDOERS)], check=True, capture_output=True)
    cat = testcluster_catalogue()
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    data = hub_dir / "data"
    data.mkdir()
    shutil.chown(data, SERVICE, SERVICE)
    shutil.chown(hub_dir, SERVICE, SERVICE)
    hub = start_hub(data, "--catalogue", str(hub_dir / "catalogue.yaml"), run_as=SERVICE)
    try:
        yield hub
    finally:
        stop_hub(hub)
        SUDOERS.unlink(missing_ok=True)
        if created:
            subprocess.run(["userdel", SERVICE], check=False)


@pytest.fixture
def idp_hub(slurm_cluster, hub_dir: Path, oidc_provider: Provider) -> Iterator[Hub]:
    """The test cluster's catalogue with an `identity:`; project demo has no members."""
    oidc_provider.set_user("alice-sub", eduPersonPrincipalName="alice@uio.no")
    oidc_provider.set_user("boss-sub", eduPersonPrincipalName="boss@uio.no")
    port = free_port_base()
    client_id, secret = oidc_provider.register(f"http://127.0.0.1:{port}/hub/oauth_callback")
    cat = testcluster_catalogue()
    cat["projects"]["demo"]["members"] = []
    cat["identity"] = {
        "title": "Test IdP",
        "issuer": oidc_provider.issuer,
        "identity_claim": "eduPersonPrincipalName",
        "domains": ["uio.no"],
    }
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAIC_OIDC_CLIENT_ID", client_id)
        mp.setenv("NAIC_OIDC_CLIENT_SECRET", secret)
        hub = start_hub(
            hub_dir / "data",
            "--catalogue",
            str(hub_dir / "catalogue.yaml"),
            "--admin",
            "boss@uio.no",
            port=port,
        )
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=alice"], check=False)


# --- node pools of cloud VMs --------------------------------------------------------------


def stop_pool_hub(hub: Hub, cloud_vms: CloudVMs) -> None:
    """Stop a node-pool hub and leave the VMs as a fresh pool: sshd up, no sessions left."""
    stop_hub(hub)
    for vm in cloud_vms:
        vm.start_sshd()  # a test may have stopped one
        vm.run(["pkill", "-u", "alice", "-f", "jupyterhub-singleuser"], check=False)
    # The test VMs share this machine's /run; a real VM's empties when it boots.
    cloud_vms.vm1.run(["rm", "-rf", "/run/naic-hub"])


@pytest.fixture
def cloud_hub(slurm_cluster, ssh_keys: SshKeys, cloud_vms: CloudVMs, hub_dir: Path):
    """The cloud pool of two VMs (test_cloud_nodes): sessions wait when it is full."""
    hub = start_pool_hub(hub_dir, ssh_keys, cloud_vms)
    try:
        yield hub
    finally:
        stop_pool_hub(hub, cloud_vms)


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port on loopback that accepts connections and never says a word (a login node
    that hangs): its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


@pytest.fixture
def federated_hub(
    slurm_cluster, ssh_keys: SshKeys, cloud_vms: CloudVMs, hub_dir, silent_host: int
) -> Iterator[Hub]:
    """Three sites for one request (test_federation): the multi-host Slurm site `cluster`
    (node1, node2), the cloud pool, and a remote centre whose login node never answers;
    alice's jobs cancelled after. The test cluster's own node offers CPUs only here."""

    def edit(cat: dict) -> None:
        pool = cloud_site(ssh_keys, cloud_vms, when_full="wait", known_hosts=ssh_keys.known_hosts)
        remote = copy.deepcopy(cat["sites"]["testcluster"])
        remote.update(title="Remote centre",
                      submit={"host": "127.0.0.1", "port": silent_host, "via": "ssh"},
                      ssh={"user": "root", "identity_file": str(ssh_keys.private_key),
                           "known_hosts": str(ssh_keys.known_hosts)})  # fmt: skip
        cat["sites"].update(cloud=pool, remote=remote)
        del cat["sites"]["testcluster"]["resources"]["a100"]
        cluster_site(cat)

    # Jobs on node1/node2 reach the hub on the cluster network; a queued session looks for
    # a sooner site every 3 s rather than every 30 s.
    addr = slurm_cluster.cluster_addr
    config = "c.Router.move_check_s = 3\n"
    hub = start_testcluster_hub(hub_dir, edit, "--hub-ip", addr, config=config)
    try:
        yield hub
    finally:
        stop_pool_hub(hub, cloud_vms)
        subprocess.run(["scancel", "--user=alice"], check=False)


#: Sessions report activity every 2 s instead of every 5 minutes, so a report is soon due.
ACTIVITY = 'c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "2"}\n'


@pytest.fixture
def pool_hub(slurm_cluster, ssh_keys: SshKeys, cloud_vms: CloudVMs, hub_dir: Path):
    """The same pool, its sessions reporting activity every 2 s (test_node_pool_boundaries)."""
    site = cloud_site(ssh_keys, cloud_vms, when_full="wait", known_hosts=ssh_keys.known_hosts)
    hub = start_testcluster_hub(
        hub_dir, lambda cat: cat["sites"].update(cloud=site), config=ACTIVITY
    )
    try:
        yield hub
    finally:
        stop_pool_hub(hub, cloud_vms)


# --- hubs whose login is the OIDC provider ------------------------------------------------


@contextlib.contextmanager
def var_tmp_folder(prefix: str) -> Iterator[Path]:
    """A world-traversable folder under /var/tmp (user accounts reach their homes in it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder for the hubs of one test (test_identity_boundaries)."""
    with var_tmp_folder("naic-names-") as path:
        yield path


@pytest.fixture(scope="module")
def oidc_base() -> Iterator[Path]:
    """A folder for the hubs of one module (test_oidc_login's oidc_hub and relay_hub)."""
    with var_tmp_folder("naic-oidc-") as path:
        yield path


MEMBERS = [
    "ola@uio.no",
    "per@uio.no",
    "per@ntnu.no",
    "Ola.Nordmann@uio.no",
    "stig@uio.no",
]


@pytest.fixture(scope="module")
def oidc_hub(oidc_base: Path, module_oidc_provider: Provider) -> Iterator[OidcHub]:
    """A hub whose login is the provider itself; project nn1234k lists MEMBERS."""
    (oidc_base / "direct").mkdir()
    h = start_oidc_hub(oidc_base / "direct", module_oidc_provider, members=MEMBERS)
    try:
        yield h
    finally:
        stop_hub(h.hub)


@pytest.fixture(scope="module")
def relay(module_oidc_provider: Provider) -> Iterator[Relay]:
    """A relay between hub and provider that can change one thing about the ID token."""
    r = Relay(module_oidc_provider).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def relay_hub(oidc_base: Path, module_oidc_provider: Provider, relay: Relay) -> Iterator[OidcHub]:
    """A hub whose issuer is the relay's URL (the provider seen through the relay)."""
    (oidc_base / "relay").mkdir()
    members = ["eva@uio.no", "iss@uio.no", "aud@uio.no", "exp@uio.no", "sig@uio.no"]
    h = start_oidc_hub(oidc_base / "relay", module_oidc_provider, issuer=relay.url, members=members)
    relay.other_client = module_oidc_provider.register(
        h.hub.url.rstrip("/") + "/hub/oauth_callback"
    )
    try:
        yield h
    finally:
        stop_hub(h.hub)


@pytest.fixture(scope="module")
def access_hub(module_oidc_provider: Provider) -> Iterator[OidcHub]:
    """Admin boss (boss@uio.no); ola@uio.no is in nn1234k; nobody is in nn5678k."""
    base = Path(tempfile.mkdtemp(prefix="naic-access-", dir="/var/tmp"))
    base.chmod(0o755)
    for sub, ident in [
        ("boss-sub", "boss@uio.no"),
        ("ola-sub", "ola@uio.no"),
        ("kari-sub", "kari@ntnu.no"),
        ("lars-sub", "lars@uib.no"),
        ("mona-sub", "mona@uit.no"),
    ]:
        module_oidc_provider.set_user(sub, eduPersonPrincipalName=ident)
    h = start_oidc_hub(
        base,
        module_oidc_provider,
        members=["ola@uio.no"],
        identity={"domains": ["uio.no", "ntnu.no", "uib.no", "uit.no"]},
    )
    try:
        yield h
    finally:
        stop_hub(h.hub)
        shutil.rmtree(base, ignore_errors=True)


# --- Slurm jobs and folders ---------------------------------------------------------------


@pytest.fixture
def full_gpu_node(slurm_cluster) -> Iterator[list[str]]:
    """bob's sleep jobs on every GPU of the node, plus one more waiting for them."""
    ids = []
    try:
        for _ in range(slurm_cluster.gpu_count + 1):
            out = subprocess.run(
                ["sbatch", "--parsable", "--uid=bob", "--gid=bob", "--partition=accel",
                 "--gres=gpu:a100:1", "--time=10", "--output=/dev/null", "--wrap=sleep 600"],
                capture_output=True, text=True, check=True, cwd="/tmp",
            ).stdout  # fmt: skip
            ids.append(out.strip().split(";")[0])
        deadline = time.monotonic() + 30
        while True:
            states = squeue(f"--jobs={','.join(ids)}", "--format=%T")
            if states.split().count("RUNNING") >= 1 and "PENDING" in states:
                break
            assert time.monotonic() < deadline, f"bob's jobs did not start: {states}"
            time.sleep(0.5)
        yield ids
    finally:
        if ids:
            subprocess.run(["scancel", *ids], check=False)


@pytest.fixture
def blockers() -> Iterator[list[str]]:
    """bob's jobs a test holds nodes with (`block`), cancelled after it."""
    jobs: list[str] = []
    yield jobs
    if jobs:
        subprocess.run(["scancel", *jobs], check=False)
        deadline = time.monotonic() + 30
        while squeue(f"--name={BLOCKER}", "--format=%i").strip():
            assert time.monotonic() < deadline, "bob's blocking jobs did not end"
            time.sleep(0.3)


@pytest.fixture
def full_nodes(slurm_cluster, blockers: list[str]) -> list[str]:
    """The multi-host site full: bob's jobs hold node1 and node2, and one more of his waits
    for a GPU there, so a new job is behind it. Their ids (cancelled after the test)."""
    blockers += [block(node) for node in slurm_cluster.nodes]
    waiting = subprocess.run(
        ["sbatch", "--parsable", "--uid=bob", "--gid=bob", "--partition=nodes",
         "--gres=gpu:a100:1", "--time=10", f"--job-name={BLOCKER}", "--output=/dev/null",
         "--wrap=sleep 600"], capture_output=True, text=True, check=True, cwd="/tmp",
    ).stdout.strip().split(";")[0]  # fmt: skip
    blockers.append(waiting)
    return blockers


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the test users can write job output into.

    Not pytest's tmp_path: its parent /tmp/pytest-of-root is 0700, so alice could not
    reach it.
    """
    path = Path(tempfile.mkdtemp(prefix="naic-tests-", dir="/var/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workdir():
    """A temporary folder alice owns: a Dask session's working folder (test_dask_*)."""
    with tempfile.TemporaryDirectory(prefix="naic-dask-") as path:
        os.chown(path, *uid_gid("alice"))
        yield path


@pytest.fixture
def cleanup_reservations() -> Iterator[None]:
    """After the test: the workshop reservations the workshop tests make deleted, and the
    guest accounts' jobs cancelled (test_workshop_guests, test_workshop_attacks)."""
    yield
    for name in (
        *("passes", "passes-down", "first", "second", "once"),
        *("guess", "leak", "theirs", "big"),
    ):
        subprocess.run(
            ["scontrol", "delete", f"ReservationName=naic-ws-{name}"], capture_output=True
        )
    for user in GUESTS:
        subprocess.run(["scancel", f"--user={user}"], check=False)


# --- the Ansible deployments --------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """naic_hub applied to this machine into /var/tmp/naic-ansible-*/ (service manager none)."""
    if os.geteuid() != 0:
        pytest.fail("the naic_hub role is applied for real: run this test as root (CI does)")
    base = Path(tempfile.mkdtemp(prefix="naic-ansible-", dir="/var/tmp"))
    # Accounts pass through to their homes in the data dir, the proxy's account to the proxy.
    base.chmod(0o755)
    user = f"_naic-t{secrets.token_hex(3)}"
    accounts_before = {p.pw_name for p in pwd.getpwall()}
    groups_before = {g.gr_name for g in grp.getgrall()}
    try:
        wheel = build_wheel(base / "release")
        play_dir = base / "ansible"
        play_dir.mkdir()
        # Stands in for /etc/logrotate.d, which Debian's logrotate package creates.
        (base / "logrotate.d").mkdir()
        port = free_port_base()
        write_play(
            play_dir,
            base,
            user=user,
            wheel=wheel,
            port=port,
            naic_hub_admins=["boss"],
            naic_hub_catalogue_src=str(REPO / "examples" / "catalogue.yaml"),
        )
        started = time.monotonic()
        first = run_playbook(play_dir, "-i", "hosts.yml", "play.yml")
        elapsed = time.monotonic() - started
        assert first.returncode == 0, first.stdout + first.stderr
        print(f"naic_hub role, first run: {elapsed:.0f} s; {recap_line(first)}")
        yield Deployment(base, port, user, first, elapsed)
    finally:
        for p in pwd.getpwall():
            if p.pw_name == user and p.pw_name not in accounts_before:
                subprocess.run(["userdel", p.pw_name], check=False, capture_output=True)
        for g in grp.getgrall():
            if g.gr_name == user and g.gr_name not in groups_before:
                subprocess.run(["groupdel", g.gr_name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


DEPLOYED_START_TIMEOUT_S = 120  # the role just ran pip and npm on these two cores


@pytest.fixture(scope="module")
def deployed_hub(module_oidc_provider: Provider) -> Iterator[DeployedHub]:
    """naic_hub applied with an OIDC catalogue (defaults for everything about the login),
    then the hub started from the role's start command."""
    if os.geteuid() != 0:
        pytest.fail("the naic_hub role is applied for real: run this test as root (CI does)")
    base = Path(tempfile.mkdtemp(prefix="naic-ansible-oidc-", dir="/var/tmp"))
    base.chmod(0o755)
    user = f"_naic-t{secrets.token_hex(3)}"
    accounts_before = {p.pw_name for p in pwd.getpwall()}
    groups_before = {g.gr_name for g in grp.getgrall()}
    hub = None
    try:
        wheel = build_wheel(base / "release")
        play_dir = base / "ansible"
        play_dir.mkdir()
        (base / "logrotate.d").mkdir()
        port = free_port_base()
        client_id, client_secret = module_oidc_provider.register(
            f"http://127.0.0.1:{port}/hub/oauth_callback"
        )
        catalogue = base / "catalogue.yaml"
        catalogue.write_text(oidc_catalogue(module_oidc_provider.issuer, ["ola@uio.no"]))
        write_play(
            play_dir,
            base,
            user=user,
            wheel=wheel,
            port=port,
            naic_hub_admins=["boss@uio.no"],
            naic_hub_catalogue_src=str(catalogue),
            naic_hub_secret_env={
                "NAIC_OIDC_CLIENT_ID": client_id,
                "NAIC_OIDC_CLIENT_SECRET": client_secret,
            },
        )
        started = time.monotonic()
        first = run_playbook(play_dir, "-i", "hosts.yml", "play.yml")
        assert first.returncode == 0, first.stdout + first.stderr
        print(f"naic_hub role with OIDC: {time.monotonic() - started:.0f} s; {recap_line(first)}")

        log = base / "hub.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(base / "opt" / "bin" / "naic-hub-start")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        hub = DeployedHub(base, f"http://127.0.0.1:{port}/", process, log)
        deadline = time.monotonic() + DEPLOYED_START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the hub exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the hub did not answer:\n{log.read_text()}"
            try:
                if httpx.get(hub.url + "hub/api", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield hub
    finally:
        if hub is not None:
            print("---- deployed hub log (last 60 lines) ----")
            print(*hub.log.read_text(errors="replace").splitlines()[-60:], sep="\n")
            stop_process_group(hub.process)
            proxy_pid_file = base / "data" / "jupyterhub-proxy.pid"
            if proxy_pid_file.exists():
                try:
                    os.kill(int(proxy_pid_file.read_text()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        for p in pwd.getpwall():
            if p.pw_name not in accounts_before and (
                p.pw_name == user or p.pw_name.startswith("naic-")
            ):
                subprocess.run(["userdel", p.pw_name], check=False, capture_output=True)
        for g in grp.getgrall():
            if g.gr_name == user and g.gr_name not in groups_before:
                subprocess.run(["groupdel", g.gr_name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
