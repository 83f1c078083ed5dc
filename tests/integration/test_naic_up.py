"""`naic up` as a user meets it: a real hub, proxy and JupyterLab on loopback."""

from __future__ import annotations

import http.client
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import NAIC, Hub, free_port_base, log_in, start_hub, stop_hub
from tests.oidc_provider import Provider, oidc_catalogue

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _xsrf(client: httpx.Client, path: str = "/hub/") -> dict[str, str]:
    """The header a browser's JavaScript sends with cookie-authenticated API calls."""
    return {"X-XSRFToken": client.cookies.get("_xsrf", path=path) or ""}


def wait_ready(client: httpx.Client, name: str, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        model = client.get(f"/hub/api/users/{name}", headers=_xsrf(client)).json()
        server = model["servers"].get("")
        if server and server["ready"]:
            return server
        time.sleep(0.5)
    pytest.fail(f"{name}'s session was not ready after {timeout_s} s")


def test_api_answers_with_the_jupyterhub_version(naic_hub: Hub) -> None:
    resp = httpx.get(naic_hub.url + "hub/api")
    assert resp.status_code == 200
    assert resp.json()["version"].startswith("6.")


def test_the_proxy_keeps_an_idle_connection_through_a_clients_pause(naic_hub: Hub) -> None:
    """A script polling every few seconds reuses its connection; the proxy must not close it
    at 5 s (its default), or a request sent as it closes fails with "connection reset"."""
    conn = http.client.HTTPConnection("127.0.0.1", int(naic_hub.url.rstrip("/").split(":")[-1]))
    try:
        conn.request("GET", "/hub/api")
        assert conn.getresponse().read() and conn.sock is not None
        sock = conn.sock
        time.sleep(7)
        sock.setblocking(False)
        try:
            closed = sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            closed = False  # nothing to read, and still open
        sock.setblocking(True)
        assert not closed, "the proxy closed an idle connection within 7 s"
        conn.request("GET", "/hub/api")
        assert conn.getresponse().status == 200 and conn.sock is sock  # the same connection
    finally:
        conn.close()


def test_student_logs_in_starts_jupyterlab_stops_and_logs_out(naic_hub: Hub) -> None:
    client, resp = log_in(naic_hub, "student1", naic_hub.password)
    assert resp.status_code == 302, resp.text
    home = client.get("/hub/home")
    assert home.status_code == 200
    assert "naic-projects" not in home.text  # the embedded default has no projects to show

    # "Start My Server" opens the catalogue's form; the student picks the small resource.
    spawn = client.get("/hub/spawn", follow_redirects=True)
    assert spawn.status_code == 200
    assert "Small: 1 CPU, 2 GB" in spawn.text and "Medium: 2 CPUs, 4 GB" in spawn.text
    action = re.search(r'action="([^"]+)"', spawn.text).group(1).replace("&amp;", "&")
    started = client.post(action, data={"resource_choice": "local:small"})
    assert started.status_code == 302, started.text
    server = wait_ready(client, "student1")
    assert server["user_options"] == {"site": "local", "resource": "small"}
    assert server["url"] == "/user/student1/"

    # Through the proxy, with the OAuth hand-shake a browser does; then lab's own API calls.
    lab = client.get("/user/student1/lab", follow_redirects=True)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    user_xsrf = _xsrf(client, "/user/student1/")
    status = client.get("/user/student1/api/status", headers=user_xsrf)
    assert status.status_code == 200
    assert "started" in status.json()

    # The onboarding material is in the new home, next to nothing of anybody else's.
    files = client.get("/user/student1/api/contents", headers=user_xsrf).json()
    names = {f["name"] for f in files["content"]}
    assert "00-start-here.ipynb" in names
    home = naic_hub.data_dir / "users" / "student1"
    owner = pwd.getpwuid(home.stat().st_uid).pw_name
    expected = "naic-student1" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert owner == expected
    assert home.stat().st_mode & 0o077 == 0, "a home must be private to its owner"

    stop = client.delete("/hub/api/users/student1/server", headers=_xsrf(client))
    assert stop.status_code in (202, 204)
    deadline = time.monotonic() + 60
    while client.get("/hub/api/users/student1", headers=_xsrf(client)).json()["servers"]:
        assert time.monotonic() < deadline, "the session did not stop within 60 s"
        time.sleep(0.5)
    gone = client.get("/user/student1/api/status", headers={"Accept": "application/json"})
    assert gone.status_code != 200

    client.get("/hub/logout", follow_redirects=True)
    after = client.get("/hub/home")
    assert after.status_code == 302 and "/hub/login" in after.headers["location"]


def test_edited_material_survives_a_restart_of_the_session(naic_hub: Hub) -> None:
    api = naic_hub.api()
    api.post("/users/student2")
    assert api.post("/users/student2/server").status_code in (201, 202)
    deadline = time.monotonic() + 90
    while not (api.get("/users/student2").json()["servers"].get("") or {}).get("ready"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    notebook = naic_hub.data_dir / "users" / "student2" / "00-start-here.ipynb"
    assert notebook.exists()
    notebook.write_text('{"edited": true}')
    assert api.delete("/users/student2/server").status_code in (202, 204)
    while api.get("/users/student2").json()["servers"]:
        time.sleep(0.5)
    assert api.post("/users/student2/server").status_code in (201, 202)
    assert notebook.read_text() == '{"edited": true}'


def test_wrong_password_is_refused(naic_hub: Hub) -> None:
    _, resp = log_in(naic_hub, "student1", "password")
    assert resp.status_code == 403
    assert "Invalid username or password" in resp.text


def test_admin_token_is_private_and_has_admin_rights(naic_hub: Hub) -> None:
    token_file = naic_hub.data_dir / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    users = naic_hub.api().get("/users")
    assert users.status_code == 200
    assert "boss" in {u["name"] for u in users.json() if u["admin"]}


def test_operator_config_d_is_loaded(hub_dir: Path) -> None:
    config_d = hub_dir / "data" / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "10-banner.py").write_text(
        'c.JupyterHub.template_vars = {"announcement_login": "Workshop at nine"}\n'
    )
    hub = start_hub(hub_dir / "data")
    try:
        assert "Workshop at nine" in httpx.get(hub.url + "hub/login").text
    finally:
        stop_hub(hub)


BROKEN = (
    "name: x\nsites:\n  saga:\n    title: Saga\n    backend: slurm\n    resources:\n"
    "      a100: {title: A100, partition: accel, gpu: {type: a100, max: 0}, max_hours: 1}\n"
)


def test_a_broken_catalogue_stops_naic_up_with_the_field_path(hub_dir: Path) -> None:
    bad = hub_dir / "bad.yaml"
    bad.write_text(BROKEN)
    result = subprocess.run(
        [NAIC, "up", "--catalogue", str(bad), "--data-dir", str(hub_dir / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{bad}: sites.saga.resources.a100.gpu.max: must be ≥ 1 (got 0)" in result.stderr


def test_a_broken_catalogue_stops_plain_jupyterhub_with_the_same_message(hub_dir: Path) -> None:
    bad = hub_dir / "bad.yaml"
    bad.write_text(BROKEN)
    check = subprocess.run([NAIC, "catalogue", "check", str(bad)], capture_output=True, text=True)
    env = {**os.environ, "NAIC_CATALOGUE": str(bad), "NAIC_DATA_DIR": str(hub_dir / "data")}
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    result = subprocess.run(
        [jupyterhub, "-f", str(REPO / "hub" / "jupyterhub_config.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=hub_dir,
    )
    assert result.returncode != 0
    assert check.stderr.strip() in result.stderr


def test_a_hub_that_cannot_bind_its_api_port_leaves_no_proxy_behind(hub_dir: Path) -> None:
    """JupyterHub starts its proxy, then binds its API port: when that port was taken in
    between (`naic up` checks it first; plain jupyterhub does not), the hub exits, and the
    proxy it started must not keep the public port."""
    port = free_port_base()
    data = hub_dir / "data"
    env = {**os.environ, "NAIC_DATA_DIR": str(data), "NAIC_PORT": str(port)}
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port + 81))
        squatter.listen()
        argv = [jupyterhub, "-f", str(REPO / "hub" / "jupyterhub_config.py")]
        # A file, not a pipe: a proxy left behind would hold a pipe open after the hub exits.
        with (hub_dir / "hub.log").open("w") as log:
            proc = subprocess.run(argv, env=env, cwd=hub_dir, stdout=log, stderr=log, timeout=90)
    out = (hub_dir / "hub.log").read_text()
    # No proxy of this data dir runs (any found is this test's own, and is stopped first).
    mine = str(data).encode()
    left = {
        cmd.parent.name: line
        for cmd in Path("/proc").glob("[0-9]*/cmdline")
        if mine in (line := _read(cmd))
    }
    for pid in left:
        os.kill(int(pid), signal.SIGKILL)
    assert left == {}, out
    assert proc.returncode != 0, out
    assert f"Failed to bind hub to http://127.0.0.1:{port + 81}/hub/" in out
    assert "The hub did not start: stopping its proxy (pid " in out
    with socket.socket() as s:  # the public port is free again
        s.bind(("127.0.0.1", port))


def test_a_hub_started_in_the_background_stops_at_once(hub_dir: Path) -> None:
    """A shell's background job (`naic up &`, nohup) starts with SIGINT ignored, and so
    would what the hub starts. The hub stops its services and sessions with SIGINT and waits
    30 s before SIGTERM: neither a session's stop nor the hub's may take those 30 s."""
    port = free_port_base()
    argv = [NAIC, "up", "--port", str(port), "--data-dir", str(hub_dir / "data")]
    with (hub_dir / "hub.log").open("w") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        log_file, deadline = hub_dir / "hub.log", time.monotonic() + 60
        while "Hub API also listening on" not in log_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.3)
        hub = Hub(f"http://127.0.0.1:{port}/", hub_dir / "data", proc, log_file)
        with hub.api() as api:  # a session, stopped by its user's request
            api.post("/users", json={"usernames": ["kari"]})
            started = api.post("/users/kari/server", json={"site": "local", "resource": "small"})
            assert started.status_code in (201, 202), started.text
            while not api.get("/users/kari").json()["servers"].get("", {}).get("ready"):
                assert time.monotonic() < deadline + 60, "the session did not start"
                time.sleep(0.5)
            stopping = time.monotonic()
            api.delete("/users/kari/server")
            while api.get("/users/kari").json()["servers"]:
                time.sleep(0.2)
            session_took = time.monotonic() - stopping
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - stopping
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = (hub_dir / "hub.log").read_text()
    assert session_took < 10, f"the session took {session_took:.1f} s to stop:\n{out}"
    assert took < 10, f"the hub took {took:.1f} s to stop:\n{out}"
    assert "...done" in out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended while we looked
        return b""


# --- the dev login over a catalogue's institutional login -----------------------------------

DEV_LOGIN_SETTING = 'c.JupyterHub.authenticator_class = "naic-dev"\n'


def dev_login_refusal(cat: Path, data_dir: Path) -> str:
    """The sentence an operator reads when jupyterhub_config.d/ brings back the dev login."""
    return (
        f"naic-hub: the catalogue {cat} logs in through its identity provider, but "
        f"{data_dir / 'jupyterhub_config.d'} sets the shared-password dev login (naic-dev) "
        "instead; remove that setting (Ansible: leave naic_hub_authenticator_class empty), or "
        "start with `naic up --dev-login` (plain jupyterhub: NAIC_DEV_LOGIN=1) to use the dev "
        "login on purpose."
    )


def identity_setup(hub_dir: Path, issuer: str) -> tuple[Path, dict[str, str]]:
    """A catalogue with `identity:` at `issuer`, the dev login set in jupyterhub_config.d/,
    and the OAuth client's variables (so that only the login choice can stop the hub)."""
    cat = hub_dir / "catalogue.yaml"
    cat.write_text(oidc_catalogue(issuer, ["ola@uio.no"]))
    config_d = hub_dir / "data" / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "50-ansible.py").write_text(DEV_LOGIN_SETTING)
    env = {
        **os.environ,
        "NAIC_OIDC_CLIENT_ID": "naic-hub",
        "NAIC_OIDC_CLIENT_SECRET": "not-a-real-secret",
    }
    env.pop("NAIC_DEV_LOGIN", None)
    return cat, env


def run_until_exit(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run a hub that should refuse to start; one that starts anyway is stopped and fails."""
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the hub stops the proxy it started
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"the hub started with the dev login over an identity provider:\n{out}")
    return proc.returncode, out


def test_naic_up_refuses_the_dev_login_over_the_catalogues_identity(
    hub_dir: Path, module_oidc_provider: Provider
) -> None:
    cat, env = identity_setup(hub_dir, module_oidc_provider.issuer)
    argv = [NAIC, "up", "--catalogue", str(cat), "--data-dir", str(hub_dir / "data")]
    argv += ["--port", str(free_port_base())]
    rc, out = run_until_exit(argv, env, hub_dir)
    assert rc != 0
    assert dev_login_refusal(cat, hub_dir / "data") in out.splitlines(), out


def test_plain_jupyterhub_refuses_the_dev_login_over_the_catalogues_identity(
    hub_dir: Path, module_oidc_provider: Provider
) -> None:
    cat, env = identity_setup(hub_dir, module_oidc_provider.issuer)
    env |= {
        "NAIC_CATALOGUE": str(cat),
        "NAIC_DATA_DIR": str(hub_dir / "data"),
        "NAIC_PORT": str(free_port_base()),
    }
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    argv = [jupyterhub, "-f", str(REPO / "hub" / "jupyterhub_config.py")]
    rc, out = run_until_exit(argv, env, hub_dir)
    assert rc != 0
    assert dev_login_refusal(cat, hub_dir / "data") in out.splitlines(), out


def test_naic_up_dev_login_uses_the_dev_login_on_purpose(
    hub_dir: Path, module_oidc_provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--dev-login` is the operator's explicit choice: the shared password works, the
    provider's login is not offered (and its client need not be set up yet)."""
    cat = hub_dir / "catalogue.yaml"
    cat.write_text(oidc_catalogue(module_oidc_provider.issuer, ["ola@uio.no"]))
    monkeypatch.delenv("NAIC_OIDC_CLIENT_ID", raising=False)
    monkeypatch.delenv("NAIC_OIDC_CLIENT_SECRET", raising=False)
    hub = start_hub(hub_dir / "data", "--catalogue", str(cat), "--dev-login")
    try:
        assert "Test IdP" not in httpx.get(hub.url + "hub/login").text
        client, resp = log_in(hub, "student1", hub.password)
        assert resp.status_code == 302, resp.text
        assert client.get("/hub/api/user").json()["name"] == "student1"
    finally:
        stop_hub(hub)
