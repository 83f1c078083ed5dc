"""The `local` backend: each user's server as a process on the hub's own machine.

As root, every hub user runs as their own unprivileged account (`naic-<name>`, created on
first spawn, TLJH-style), never as root. As an ordinary user, `naic up` is a one-person dev
hub: every server runs as that same OS user, which isolates nobody.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode, default

from naic.spawners.backend import Backend
from naic.spawners.session_env import hub_urls_on_socket, session_env


class LocalSpawner(Backend, LocalProcessSpawner):
    home_root = Unicode(
        help="""Folder that holds one home directory per hub user (`<home_root>/<name>`).

        Example: c.LocalSpawner.home_root = "/var/lib/naic-hub/users"
        """,
    ).tag(config=True)

    account_prefix = Unicode(
        "naic-",
        help="""Prefix of the OS account each user runs as when the hub runs as root.

        Accounts are created on first spawn with `useradd --system`. Example: "jupyter-".
        """,
    ).tag(config=True)

    hub_socket = Unicode(
        "",
        help="""Unix socket at which sessions on this machine reach the hub's API (empty:
        JupyterHub's own `hub.api_url`). naic-hub sets `<data-dir>/hub.sock`, which no other
        account can take over while the hub restarts, unlike a loopback port.

        Example: c.LocalSpawner.hub_socket = "/var/lib/naic-hub/hub.sock"
        """,
    ).tag(config=True)

    material_dir = Unicode(
        "",
        help="""Folder copied into a user's home at every start; files the user already has
        (edited or not) are never overwritten. Example: "/opt/naic/notebooks".
        """,
    ).tag(config=True)

    @property
    def home(self) -> Path:
        if not self.home_root:
            raise RuntimeError("LocalSpawner.home_root is not configured")
        return Path(self.home_root) / self.user.name

    @property
    def account(self) -> str:
        if os.geteuid() == 0:
            return self.account_prefix + self.user.name
        return pwd.getpwuid(os.geteuid()).pw_name

    def _ensure_account(self) -> pwd.struct_passwd:
        """As root: the user's own account and a private home it owns."""
        try:
            entry = pwd.getpwnam(self.account)
        except KeyError:
            self.log.info("Creating account %s for hub user %s", self.account, self.user.name)
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    str(self.home),
                    "--shell",
                    "/bin/bash",
                    self.account,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            entry = pwd.getpwnam(self.account)
        self.home.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.home, entry.pw_uid, entry.pw_gid)
        return entry

    async def start(self):
        if os.geteuid() == 0:
            self._ensure_account()
        else:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return await super().start()

    def make_preexec_fn(self, name: str):
        home = str(self.home)
        if os.geteuid() == 0:
            drop = set_user_setuid(self.account, chdir=False)

            def preexec() -> None:
                drop()
                os.chdir(home)

            return preexec
        return lambda: os.chdir(home)

    def user_env(self, env: dict) -> dict:
        env.update(USER=self.account, HOME=str(self.home), SHELL="/bin/bash")
        if self.hub_socket:  # every hub URL the session gets, on that socket
            env.update(hub_urls_on_socket(env, self.hub_socket))
        if self.request is not None and self.catalogue is not None:  # the session's own facts
            now = datetime.now(UTC)
            env.update(
                session_env(
                    self.request,
                    self.catalogue,
                    self.user.name,
                    started_at=now,
                    home=str(self.home),
                )
            )
        return env

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # The launcher copies the material as the user, then runs the server.
        singleuser = str(Path(sys.executable).parent / "jupyterhub-singleuser")
        cmd = [sys.executable, "-m", "naic.extensions.launch"]
        if self.material_dir:
            cmd += ["--material", self.material_dir]
        return [*cmd, "--", singleuser]

    async def move_certs(self, paths):
        return paths
