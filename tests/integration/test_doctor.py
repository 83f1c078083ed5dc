"""`naic doctor` against what runs here without the Slurm cluster: a leftover
configurable-http-proxy, a running hub, the real OIDC provider, secrets' modes, a real sshd
as a login node, and the test job's own code against the doctor's stand-in and a real hub.
(The Slurm sites' checks on the cluster: test_doctor_site.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from naic.hub import catalogue
from naic.hub.app.doctor import at_sites, here
from naic.hub.app.doctor.findings import Finding
from naic.hub.app.doctor.site_findings import REPORT
from naic.spawners.site import Result, Site
from tests.hub_process import NAIC, Hub, free_port_base
from tests.oidc_provider import Provider, oidc_catalogue
from tests.sshd import Sshd, SshKeys

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NAIC, "doctor", *args], capture_output=True, text=True, timeout=120, env=env
    )


def naic_up(port: int, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NAIC, "up", "--port", str(port), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- a leftover proxy ----------------------------------------------------------------------


@pytest.fixture
def leftover_proxy(hub_dir: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """A configurable-http-proxy as an earlier run of the hub leaves it (killed with -9, its
    pid file gone): on the hub's port and its data dir's API socket, with another token."""
    assert PROXY.exists(), f"{PROXY} is missing: run `make setup`"
    port = free_port_base()
    data = hub_dir / "data"
    (data / "proxy").mkdir(parents=True, mode=0o700)
    sock = data / "proxy" / "api.sock"
    proc = subprocess.Popen(
        [str(PROXY), "--ip", "127.0.0.1", "--port", str(port), "--api-socket", str(sock)],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "a-token-of-an-earlier-run"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            if here.socket_in_use(sock):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the leftover proxy did not start")
        yield proc, port, data
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_doctor_and_naic_up_name_a_leftover_proxy_and_how_to_stop_it(leftover_proxy) -> None:
    proc, port, data = leftover_proxy
    pid = proc.pid
    result = doctor("--quick", "--port", str(port), "--data-dir", str(data))
    assert result.returncode == 1, result.stdout + result.stderr
    sentence = f"a configurable-http-proxy from an earlier run (pid {pid}) holds"
    assert f"problem  ports: {sentence} port {port}: stop it (kill {pid})\n" in result.stdout
    sock = data / "proxy" / "api.sock"
    assert f"problem  ports: {sentence} {sock}: stop it (kill {pid})\n" in result.stdout
    assert result.stdout.rstrip().endswith("naic doctor: 2 problem(s) in 5 check(s)")

    # naic up refuses with the sentence, at once, instead of a 403 traceback from the proxy.
    up = naic_up(port, data)
    assert up.returncode == 1
    assert up.stderr == f"naic up: {sentence} port {port}: stop it (kill {pid}).\n"
    assert "Traceback" not in up.stdout + up.stderr
    assert proc.poll() is None  # nothing was done to it

    # The operator follows the sentence; then the doctor finds the ports free.
    os.kill(pid, signal.SIGTERM)
    proc.wait(timeout=10)
    result = doctor("--quick", "--port", str(port), "--data-dir", str(data))
    assert result.returncode == 0, result.stdout
    assert f"ok       ports: port {port} (the hub's public port) is free\n" in result.stdout


# --- a running hub ---------------------------------------------------------------------------


def test_a_running_hub_holds_its_ports_and_a_second_naic_up_is_refused(naic_hub: Hub) -> None:
    port = int(naic_hub.url.rstrip("/").rpartition(":")[2])
    pid = naic_hub.process.pid  # naic up became jupyterhub (exec)
    assert (naic_hub.data_dir / "jupyterhub.pid").read_text().strip() == str(pid)
    result = doctor("--port", str(port), "--data-dir", str(naic_hub.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    for where, what in [
        (f"port {port}", "the hub's public port"),
        (f"port {port + 81}", "the hub's API, which jobs reach"),
        (str(naic_hub.data_dir / "proxy" / "api.sock"), "the proxy's API"),
    ]:
        assert (
            f"ok       ports: {where} ({what}) is held by this hub (pid {pid})\n" in result.stdout
        )
    # dev-password, admin-token, the database, the cookie secret; config.d and the proxy's folder
    assert "ok       secrets: the hub's 6 secret files and folders are private\n" in result.stdout

    up = naic_up(port, naic_hub.data_dir)
    assert up.returncode == 1
    assert up.stderr == (
        f"naic up: this hub is already running (pid {pid}) and holds port {port}: stop it "
        f"(kill {pid}) before starting it again.\n"
    )
    assert naic_hub.process.poll() is None


class LocalJob:
    """A site whose `srun` runs its command right here: the test job's own code, without
    Slurm. `skew` moves the node's clock in its report."""

    login_node = None

    def __init__(self, skew: float = 0.0) -> None:
        self.skew = skew

    async def run(self, argv: list[str], *, as_user=None, timeout: float = 60, **kw) -> Result:  # noqa: ASYNC109 - Site.run's signature
        command = argv[argv.index("python3") :]
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        text = out.decode()
        if self.skew and REPORT in text:
            report = json.loads(text.split(REPORT, 1)[1])
            report["t0"] += self.skew
            report["t1"] += self.skew
            text = REPORT + json.dumps(report) + "\n"
        return Result(proc.returncode or 0, text, err.decode())


def job(site: LocalJob, url: str, address_ok: bool = True) -> list[Finding]:
    return asyncio.run(
        at_sites.test_job("tc", site, None, url, test_user=None, address_ok=address_ok)
    )


def test_the_test_job_reaches_a_running_hub_and_reads_its_clock(naic_hub: Hub) -> None:
    port = int(naic_hub.url.rstrip("/").rpartition(":")[2])
    url = f"http://127.0.0.1:{port + 81}/hub/api"
    reach, clock = job(LocalJob(), url)
    assert reach.ok and reach.sentence.startswith(f"a job on node {os.uname().nodename} reached")
    assert clock.ok, clock.sentence  # from the hub's Date header


def test_the_test_job_against_the_doctors_stand_in() -> None:
    port = free_port_base()
    url = f"http://127.0.0.1:{port}/hub/api"
    node = os.uname().nodename
    with here.stand_in("127.0.0.1", port) as listening:
        assert listening
        reach, clock = job(LocalJob(), url)
        assert reach == Finding(
            "tc: test job", True, f"a job on node {node} reached the hub at {url}/ (HTTP 200)"
        )
        assert clock.ok and clock.check == f"{node}: clock"
        # A node 30 s ahead, against the stand-in's exact stamp.
        _, clock = job(LocalJob(skew=30.0), url)
        assert not clock.ok
        assert clock.sentence.startswith(f"node {node}'s clock is 3")
        assert clock.sentence.endswith(
            " s ahead of the hub's: run chrony/ntp on it; tokens and estimates depend on it"
        )
    # Nothing listens any more: the job says so, with the fix.
    [reach, clock] = job(LocalJob(), url)
    assert not reach.ok
    assert reach.sentence.startswith(f"a job on node {node} cannot reach the hub at {url}/ (")
    assert "Connection refused" in reach.sentence
    assert clock.ok  # no stamp: bounded by the hub's clock around the job
    # When the hub's address is already known to be out of reach, that one sentence suffices.
    assert [f.check for f in job(LocalJob(), url, address_ok=False)] == [f"{node}: clock"]


# --- the identity provider -------------------------------------------------------------------


def test_the_identity_provider_answers_as_configured_or_not(
    oidc_provider: Provider, hub_dir: Path
) -> None:
    port = str(free_port_base())
    good = hub_dir / "good.yaml"
    good.write_text(oidc_catalogue(oidc_provider.issuer, []))
    data = str(hub_dir / "data")
    result = doctor("--catalogue", str(good), "--port", port, "--data-dir", data)
    assert result.returncode == 0, result.stdout + result.stderr
    iss = oidc_provider.issuer
    assert f"...      asking the identity provider {iss}\n" in result.stdout
    jwks = httpx.get(f"{iss}/.well-known/openid-configuration").json()["jwks_uri"]
    assert (
        f"ok       identity provider: {iss} answers as itself, with 1 signing key(s) at {jwks}\n"
    ) in result.stdout

    wrong = hub_dir / "wrong.yaml"
    wrong.write_text(oidc_catalogue(iss + "/realms/other", []))
    result = doctor("--catalogue", str(wrong), "--port", port, "--data-dir", data)
    assert result.returncode == 1
    assert (
        f"problem  identity provider: the discovery document {iss}/realms/other/.well-known/"
        "openid-configuration does not answer (HTTP 404): check identity.issuer in the "
        "catalogue and that this machine reaches the provider\n"
    ) in result.stdout

    # Quick (naic up's part): no network to the provider.
    result = doctor("--catalogue", str(wrong), "--port", port, "--data-dir", data, "--quick")
    assert result.returncode == 0 and "identity provider" not in result.stdout


# --- secrets -----------------------------------------------------------------------------------


def test_secrets_open_to_others_are_named_with_their_chmod(hub_dir: Path) -> None:
    data = hub_dir / "data"
    data.mkdir(mode=0o711)
    (data / "admin-token").write_text("t\n")
    (data / "admin-token").chmod(0o644)
    (data / "jupyterhub_cookie_secret").write_text("c\n")
    (data / "jupyterhub_cookie_secret").chmod(0o640)
    (data / "dev-password").write_text("p\n")
    (data / "dev-password").chmod(0o600)
    args = ["--quick", "--port", str(free_port_base()), "--data-dir", str(data)]
    result = doctor(*args)
    assert result.returncode == 1
    token, cookie = data / "admin-token", data / "jupyterhub_cookie_secret"
    assert (
        f"problem  secrets: {token} is open to other accounts (mode 644): chmod 600 {token}\n"
        f"problem  secrets: {cookie} is open to its group (mode 640): chmod 600 {cookie}\n"
    ) in result.stdout
    token.chmod(0o600)
    cookie.chmod(0o600)
    result = doctor(*args)
    assert result.returncode == 0, result.stdout
    assert "ok       secrets: the hub's 3 secret files and folders are private\n" in result.stdout


# --- SSH host keys of a login node -------------------------------------------------------------


def _remote(keys: SshKeys, node: Sshd, known_hosts: Path) -> Site:
    text = yaml.safe_dump(
        {
            "name": "doctor",
            "sites": {
                "remote": {
                    "title": "Remote",
                    "backend": "slurm",
                    "submit": {"host": node.address, "port": node.port, "via": "ssh"},
                    "ssh": {
                        "user": "root",
                        "identity_file": str(keys.private_key),
                        "known_hosts": str(known_hosts),
                    },
                    "resources": {"cpu": {"title": "CPU", "partition": "normal", "max_hours": 1}},
                }
            },
            "environments": {"python": {"title": "Python 3", "venv": "/opt/naic/envs/base"}},
        }
    )
    path = keys.directory / f"doctor-{known_hosts.name}.yaml"
    path.write_text(text)
    return Site("remote", catalogue.load(path).sites["remote"])


def test_the_login_nodes_host_key_pinned_changed_missing(
    ssh_keys: SshKeys, login_node: Sshd
) -> None:
    name = f"[{login_node.address}]:{login_node.port}"

    def sentence(known_hosts: Path) -> tuple[bool, str]:
        site = _remote(ssh_keys, login_node, known_hosts)
        [f] = asyncio.run(at_sites.host_key_findings("remote", site))
        assert f.check == "remote: ssh host key"
        return f.ok, f.sentence

    kh = ssh_keys.known_hosts
    assert sentence(kh) == (True, f"{name} offers the key pinned in {kh}")
    wrong = ssh_keys.wrong_known_hosts
    ok, text = sentence(wrong)
    assert not ok and text.startswith(
        f"{name} offers a host key other than the one pinned in {wrong}: if the machine was "
        f"reinstalled, replace its line there (ssh-keygen -R '{name}' -f {wrong}"
    )
    empty = ssh_keys.directory / "empty_known_hosts"
    empty.write_text("")
    ok, text = sentence(empty)
    assert not ok and text.startswith(f"{empty} has no key for {name}: add it (ssh-keyscan -p")
    missing = ssh_keys.directory / "missing_known_hosts"
    ok, text = sentence(missing)
    assert not ok and text.startswith(f"{missing} does not exist: pin {name}'s host key there")
