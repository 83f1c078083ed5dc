"""The naic_hub role with a catalogue whose `identity:` is a real OIDC provider.

The role is applied as in test_ansible.py (`connection: local`, service manager `none`,
everything under one throw-away folder in /var/tmp), with no login settings in the inventory
beyond the catalogue and the OAuth client's id and secret. The hub the role deployed is
started with the command the role left. The attacker is a stranger who knows (or reads in a
leaked log) the dev login's shared password: it must not get them in; the catalogue's
institutional login must.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.hub_process import free_port_base
from tests.integration.test_ansible import (
    build_wheel,
    recap_line,
    run_playbook,
    stop_process_group,
    write_play,
)
from tests.oidc_provider import Provider, oidc_catalogue, oidc_log_in

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120  # the role just ran pip and npm on these two cores


@dataclass
class DeployedHub:
    base: Path
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    def admin_api(self) -> httpx.Client:
        token = (self.data / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=self.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
        )

    def user_names(self) -> set[str]:
        with self.admin_api() as api:
            return {u["name"] for u in api.get("/users").json()}


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
        deadline = time.monotonic() + START_TIMEOUT_S
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


def test_the_dev_login_password_does_not_let_a_stranger_in(deployed_hub: DeployedHub) -> None:
    password_file = deployed_hub.data / "dev-password"
    # A leaked dev password, or a guess when the hub keeps none.
    password = password_file.read_text().strip() if password_file.exists() else "naic"
    client = httpx.Client(base_url=deployed_hub.url, timeout=30)
    page = client.get("/hub/login")
    found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    xsrf = found.group(1) if found else client.cookies.get("_xsrf") or ""
    client.post("/hub/login", data={"username": "stranger", "password": password, "_xsrf": xsrf})
    assert client.get("/hub/api/user").status_code == 403  # not logged in
    assert "stranger" not in deployed_hub.user_names()


def test_a_project_member_logs_in_through_the_catalogues_provider(
    deployed_hub: DeployedHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("ola-sub", eduPersonPrincipalName="ola@uio.no")
    client, landed = oidc_log_in(deployed_hub.url, "ola-sub")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    assert client.get("/hub/api/user").json()["name"] == "ola"
