"""The `nodes` backend: sessions on a pool of machines (cloud GPU VMs) the hub reaches over SSH.

The catalogue lists the pool's hosts and their GPUs (`backend: nodes`, `hosts:`, `ssh:`).
The hub keeps the allocation: a session gets the first host (in catalogue order) with enough
free GPUs of its type, and `CUDA_VISIBLE_DEVICES` names exactly those. Everything goes over
one SSH connection per host (naic.spawners.ssh): the server is started as the user with its
environment on stdin (`naic.extensions.launch --detach`), and the proxy reaches the server
through a local port the hub forwards to it. No inbound port on the VMs but SSH.

A VM is shared by several users' sessions, so a session reaches the hub's API at a Unix
socket only its user (and root) can reach, never at a loopback port another user could
bind while the hub restarts and then collect tokens at and answer as the hub:
`/run/naic-hub/<user>/<server or "default">/hub.sock`, in a folder of its own that the
user owns with mode 0700 (inside root's 0755 `/run/naic-hub/<user>`), forwarded by SSH to
the hub's API (`JUPYTERHUB_API_URL=http+unix://…`). sshd creates the socket as the hub's
login account, so the hub makes the folder that account's while it forwards and hands
socket and folder to the user after. These steps run as root: the hub logs in as root, or
as an account that may `sudo -n` to root.

After a hub restart or a dropped SSH connection, each session's state says where it ran;
`poll` asks the host whether the process still runs, takes its GPUs back into the
allocation, and forwards both again: the session's hub socket (a stale one removed first)
and the same local port, so the proxy's route holds. A host that stops answering ends its
sessions with that reason and is left out of placement until it answers again. A full pool
queues the session with a progress message, or refuses it, as the site says (`when_full`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from urllib.parse import unquote, urlparse

import asyncssh
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Integer, List, Unicode

from naic.hub.catalogue import Catalogue, Site
from naic.spawners import ssh
from naic.spawners.backend import Backend
from naic.spawners.estimate import STARTS_NOW
from naic.spawners.pool import (
    ensure_health_checks,
    full_message,
    full_when_refused,
    place,
    pool_for,
)
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import hub_urls_on_socket, session_env
from naic.spawners.site import NoAccount, SystemAccount

#: Root's folder on each VM that holds the sessions' hub sockets (a tmpfs on real VMs).
SOCKET_ROOT = "/run/naic-hub"
#: A name kept as it is in a socket's path; others become a digest. Short enough that the
#: whole path fits a Unix socket address (at most 107 bytes).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,31}")
#: As root, before forwarding: root's folders, the session's folder the login account's
#: (sshd creates the socket as it), no stale socket (sshd does not replace one).
_PREPARE_SOCKET = """set -eu
sock=$1 login=$2
dir=${sock%/*}
user_dir=${dir%/*}
install -d -m 0755 -o root -g root "${user_dir%/*}" "$user_dir"
install -d -m 0700 -o "$login" "$dir"
rm -f "$sock"
"""
#: As root, after forwarding: socket and folder the user's, so only they (and root) connect.
_HAND_OVER_SOCKET = """set -eu
sock=$1 user=$2
chown -h "$user" "$sock"
chown "$user" "${sock%/*}"
"""
#: As root: give the session's GPU device files to `owner` with `mode` (its user's alone
#: while it runs; everyone's after).
_GPU_DEVICES = """set -eu
owner=$1 mode=$2
shift 2
for dev; do chown "$owner" "$dev"; chmod "$mode" "$dev"; done
"""
_REMOVE_SOCKET = """sock=$1
rm -f "$sock"
rmdir "${sock%/*}" 2>/dev/null || true
"""


def _digest(name: str) -> str:
    return "~" + hashlib.sha256(name.encode()).hexdigest()[:16]  # "~": no plain name's


def _path_name(name: str) -> str:
    return name if _PLAIN_NAME.fullmatch(name) and name not in (".", "..") else _digest(name)


def hub_socket_path(user: str, server: str, root: str = SOCKET_ROOT) -> str:
    """Pure: where a session's hub socket lives on its VM,
    `<root>/<user>/<server or "default">/hub.sock`; a name that is not a short plain file
    name (`..`, a slash, 33 characters or more), and a server named "default", appear as
    a digest of themselves instead."""
    folder = "default" if not server else _digest(server) if server == "default" else None
    return f"{root}/{_path_name(user)}/{folder or _path_name(server)}/hub.sock"


def gpu_device_files(pattern: str | None, gpu_ids: list[int]) -> list[str]:
    """Pure: the device files of these GPUs on a host whose catalogue entry names them
    (`gpu_devices: "/dev/nvidia{index}"`); none where it does not."""
    return [pattern.replace("{index}", str(i)) for i in gpu_ids] if pattern else []


def hub_destination(api_url: str) -> tuple[str, int] | str:
    """Pure: where the hub's end of a session's forward connects, as the hub sees its own
    API: (host, port), or a socket path for an `http+unix://` API."""
    url = urlparse(api_url)
    if url.scheme == "http+unix":
        return unquote(url.netloc)
    return url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)


def as_root(login: str, argv: list[str]) -> list[str]:
    """Pure: `argv` run as root on a VM the hub logs in to as `login`."""
    return argv if login == "root" else ["sudo", "-n", "--", *argv]


def socket_argv(login: str, script: str, *args: str) -> list[str]:
    """Pure: one of the socket scripts above, as root, with its arguments (never parsed by
    a shell as more than one word each)."""
    return as_root(login, ["sh", "-c", script, "sh", *args])


#: (user/server) → (connection, listener) forwarding a local port to that session's server.
_FORWARDS: dict[str, tuple[asyncssh.SSHClientConnection, asyncssh.SSHListener]] = {}
#: (user/server) → (connection, listener) forwarding that session's socket to the hub's API.
_HUB_FORWARDS: dict[str, tuple[asyncssh.SSHClientConnection, asyncssh.SSHListener]] = {}


def _forwarded(forwards: dict, key: str, conn: asyncssh.SSHClientConnection) -> bool:
    """Whether `key`'s forward exists on `conn` (one on an earlier connection is gone)."""
    known = forwards.get(key)
    return known is not None and known[0] is conn and not conn.is_closed()


def _close(forwards: dict, key: str) -> None:
    known = forwards.pop(key, None)
    if known is not None:
        known[1].close()


class NodeSpawner(Backend, Spawner):
    host = Unicode("", help="The pool host the session runs on.")
    gpu_ids = List(Integer(), help="The host's GPU indices the session holds.")
    pid = Integer(0, help="The launcher's process id on the host (its process group).")
    remote_port = Integer(0, help="The server's port on the host's loopback.")
    local_port = Integer(0, help="The hub's local port forwarded to the server.")
    _messages = List()

    @property
    def _site(self) -> Site:
        return self.catalogue.sites[self.site]

    @property
    def _key(self) -> str:
        return f"{self.user.name}/{self.name}"

    def _target(self) -> ssh.Target:
        return self.site_runtime.target(self.host)

    async def _run(self, argv: list[str], **kw):
        """`argv` on the session's host (`Site.run`)."""
        return await self.site_runtime.run(argv, host=self.host, **kw)

    def _kind(self, req: SessionRequest | None = None) -> str | None:
        res = self._site.resources[(req or self.request).resource]
        return res.gpu.type if res.gpu else None

    # --- the backend contract ----------------------------------------------------------

    @staticmethod
    def refusal_now(cat: Catalogue, req: SessionRequest) -> str | None:
        """A full pool whose site refuses rather than queues says so before a spawn page."""
        return full_when_refused(cat, req)

    async def estimate(self, req: SessionRequest) -> dict:
        """Now, if a host has the GPUs free; else who is waiting."""
        site, kind = self.catalogue.sites[req.site], self._kind(req)
        pool = pool_for(req.site)
        if place(site.hosts, kind, req.gpus, pool.taken(), set(pool.down)) is not None:
            return {"start": "now", "message": STARTS_NOW}
        message = full_message(site, kind, len(pool.queue))
        if site.when_full == "refuse":
            message = message.split(";")[0] + "; the hub takes no more until one is free."
        return {"start": None, "message": message}

    def state(self) -> dict:
        return {"backend": "nodes", "where": self.host, "job": str(self.pid or "")}

    # --- state ---------------------------------------------------------------------------

    def get_state(self) -> dict:
        state = super().get_state()
        if self.pid:
            state.update(
                host=self.host,
                gpu_ids=list(self.gpu_ids),
                pid=self.pid,
                remote_port=self.remote_port,
                local_port=self.local_port,
            )
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        if state.get("pid"):
            self.host, self.gpu_ids = state["host"], list(state.get("gpu_ids", []))
            self.pid, self.remote_port = state["pid"], state["remote_port"]
            self.local_port = state.get("local_port", 0)
            # The allocation as it was; poll confirms it with the host.
            pool_for(self.site).hold(self._key, self.host, self.gpu_ids)

    def clear_state(self) -> None:
        super().clear_state()
        self.host, self.gpu_ids, self.pid, self.remote_port, self.local_port = "", [], 0, 0, 0

    # --- start ------------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        self._messages.append(message)
        self.log.info("%s: %s", self._key, message)

    async def _place(self) -> tuple[str, list[int]]:
        pool, site = pool_for(self.site), self._site
        ensure_health_checks(self.catalogue, self.site)
        kind, n = self._kind(), self.request.gpus
        pool.queue.append(self._key)
        try:
            while True:
                placed = None
                if pool.queue[0] == self._key:  # first come, first served
                    placed = place(site.hosts, kind, n, pool.taken(), set(pool.down))
                if placed is not None:
                    pool.hold(self._key, *placed)
                    return placed
                if site.when_full == "refuse":
                    msg = full_message(site, kind, 0).split(";")[0]
                    raise web.HTTPError(409, f"{msg}; please try again later.")
                self._say(full_message(site, kind, pool.queue.index(self._key)))
                changed = pool.changed
                await changed.wait()
        finally:
            pool.queue.remove(self._key)
            pool.notify()  # the next in line may fit now

    async def start(self):
        self._messages = []
        host_name, gpus = await self._place()
        self.host, self.gpu_ids = host_name, gpus
        gpu_words = f" with GPU {', '.join(map(str, gpus))}" if gpus else ""
        self._say(f"Starting on {host_name}{gpu_words}")
        try:
            return await self._launch()
        except BaseException:
            self._forget()
            self.clear_state()
            raise

    async def _launch(self) -> tuple[str, int]:
        target = self._target()
        try:
            # Never a session with a system account's rights (root, daemons, the scheduler).
            try:
                home = (await self.site_runtime.account(self.user.name, host=self.host)).pw_dir
            except NoAccount:
                raise RuntimeError(f"{self.user.name} has no account on {self.host}.") from None
            except SystemAccount as exc:
                raise web.HTTPError(403, str(exc)) from None
            await self._give_gpus(target, self.user.name, "0600")
            await self._forward_hub(target)
            env = self._session_env(home)
            venv = self.catalogue.sites[self.site].session_env or (
                self.catalogue.environments[self.request.environment].prefix
            )
            python = f"{venv}/bin/python" if venv else "python3"
            log = f"{home}/.naic-session-{self.name or 'default'}.log"
            argv = [python, "-m", "naic.extensions.launch", "--detach", log]
            argv += ["--", "jupyterhub-singleuser", *self.get_args()]
            result = await self._run(
                argv, as_user=self.user.name, stdin=json.dumps(env), timeout=120
            )
            if not result.reached:
                raise ssh.SSHError(result.err)
            code, out, err = result.code, result.out, result.err
        except ssh.SSHError as exc:
            raise web.HTTPError(
                503,
                f"The hub cannot use {self.host} of {self._site.title}, so no session was "
                f"started: {exc}",
            ) from None
        if code != 0:
            raise RuntimeError(f"The session did not start on {self.host}: {err.strip()[-500:]}")
        started = json.loads(out.strip().splitlines()[-1])
        self.pid, self.remote_port = int(started["pid"]), int(started["port"])
        self.local_port = await self._forward_server(target, 0)
        self._say(f"Server started on {self.host}; connecting")
        return "127.0.0.1", self.local_port

    async def _give_gpus(self, target: ssh.Target, owner: str, mode: str) -> None:
        files = gpu_device_files(self._site.hosts[self.host].gpu_devices, self.gpu_ids)
        if files:
            await self._as_root(target, _GPU_DEVICES, owner, mode, *files)

    @property
    def _hub_socket(self) -> str:
        return hub_socket_path(self.user.name, self.name)

    def _session_env(self, home: str) -> dict[str, str]:
        env = self.get_env()
        env.update(hub_urls_on_socket(env, self._hub_socket))  # the hub as the VM sees it
        env["HOME"] = home
        env["USER"] = env["LOGNAME"] = self.user.name
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpu_ids)) if self.gpu_ids else ""
        env.update(session_env(self.request, self.catalogue, self.user.name, started_at=_now()))
        return {k: v for k, v in env.items() if k != "PATH"} | {
            "PATH": "/usr/local/bin:/usr/bin:/bin"
        }

    async def _as_root(self, target: ssh.Target, script: str, *args: str) -> None:
        result = await self._run(socket_argv(self._site.ssh.user, script, *args))
        if not result.reached:
            raise ssh.SSHError(result.err)
        if result.code != 0:
            raise RuntimeError(
                f"The hub could not prepare {self.host} for {self._key} as root (its hub "
                f"socket or GPU devices): {result.err.strip()[-300:]}"
            )

    async def _forward_hub(self, target: ssh.Target) -> None:
        """Forward the session's socket on the host to the hub's API, only its user's."""
        old = _HUB_FORWARDS.pop(self._key, None)
        if old is not None:
            old[1].close()
            if not old[0].is_closed():  # sshd must drop it before the path is bound again
                await asyncio.wait_for(old[1].wait_closed(), 10)
        sock, login = self._hub_socket, self._site.ssh.user
        await self._as_root(target, _PREPARE_SOCKET, sock, login)
        conn = await ssh.connection(target)
        dest = hub_destination(self.hub.api_url)
        try:
            if isinstance(dest, str):
                listener = await conn.forward_remote_path(sock, dest)
            else:
                listener = await conn.forward_remote_path_to_port(sock, *dest)
        except asyncssh.ChannelListenError as exc:
            raise RuntimeError(f"{self.host} refused to forward {sock} to the hub: {exc}") from None
        _HUB_FORWARDS[self._key] = (conn, listener)
        await self._as_root(target, _HAND_OVER_SOCKET, sock, self.user.name)

    async def _forward_server(self, target: ssh.Target, local_port: int) -> int:
        conn = await ssh.connection(target)
        _close(_FORWARDS, self._key)
        listener = await conn.forward_local_port(
            "127.0.0.1", local_port, "127.0.0.1", self.remote_port
        )
        _FORWARDS[self._key] = (conn, listener)
        return listener.get_port()

    async def _keep_forwards(self, target: ssh.Target) -> None:
        """Forward again what a restarted hub or a new SSH connection lacks."""
        conn = await ssh.connection(target)
        if not _forwarded(_HUB_FORWARDS, self._key, conn):
            try:
                await self._forward_hub(target)
            except RuntimeError as exc:  # the host answers: try again at the next poll
                self.log.warning("%s", exc)
        if not _forwarded(_FORWARDS, self._key, conn):
            # The same local port again, so the proxy's route holds.
            await self._forward_server(target, self.local_port)

    async def progress(self):
        sent = 0
        while True:
            while sent < len(self._messages):
                yield {"message": self._messages[sent]}
                sent += 1
            if self.pid or not self._spawn_pending:
                return
            await asyncio.sleep(0.5)

    # --- poll and stop ----------------------------------------------------------------------

    async def poll(self) -> int | None:
        if not self.pid:
            return 0
        ensure_health_checks(self.catalogue, self.site)  # also after a restart
        pool = pool_for(self.site)
        target = self._target()
        try:
            result = await self._run(["ps", "-p", str(self.pid), "-o", "pid="], timeout=20)
            if not result.reached:
                raise ssh.SSHError(result.err)
            code = result.code
            if code == 0:
                await self._keep_forwards(target)
        except (ssh.SSHError, OSError, asyncssh.Error) as exc:
            pool.down[self.host] = str(exc)
            self.end_reason = f"the cloud machine {self.host} stopped answering"
            self._forget()
            return 1
        if code == 0:
            pool.hold(self._key, self.host, self.gpu_ids)
            return None
        self.end_reason = f"the server on {self.host} ended"
        self._forget()
        return 1

    async def stop(self, now: bool = False) -> None:
        if not self.pid:
            return
        if self.host in pool_for(self.site).down:  # nothing to ask a machine that is gone
            self._forget()
            return
        target = self._target()
        me = self.user.name
        try:
            group = f"-{self.pid}"
            if not (await self._run(["kill", "-TERM", "--", group], as_user=me)).reached:
                raise ssh.SSHError(f"{self.host} does not answer")
            deadline = time.monotonic() + (0 if now else 10)
            while time.monotonic() < deadline:
                result = await self._run(["ps", "-p", str(self.pid), "-o", "pid="])
                if result.code != 0:
                    break
                await asyncio.sleep(0.5)
            else:
                await self._run(["kill", "-KILL", "--", group], as_user=me)
            self._forget()
            login, sock = self._site.ssh.user, self._hub_socket
            await self._run(socket_argv(login, _REMOVE_SOCKET, sock))
            await self._give_gpus(target, "root", "0666")
        except ssh.SSHError as exc:
            self.log.warning("Stopping %s on %s: %s", self._key, self.host, exc)
        self._forget()

    def _forget(self) -> None:
        _close(_FORWARDS, self._key)
        _close(_HUB_FORWARDS, self._key)
        pool_for(self.site).release(self._key)


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
