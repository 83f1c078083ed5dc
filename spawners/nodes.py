"""The `nodes` backend: sessions on a pool of machines (cloud GPU VMs) the hub reaches over SSH.

The catalogue lists the pool's hosts and their GPUs (`backend: nodes`, `hosts:`, `ssh:`).
The hub keeps the allocation: a session gets the first host (in catalogue order) with enough
free GPUs of its type, and `CUDA_VISIBLE_DEVICES` names exactly those. Everything goes over
one SSH connection per host (naic.spawners.ssh): the server is started as the user with its
environment on stdin (`naic.extensions.launch --detach`), the hub's API reaches the server
through a port forwarded back to the host's loopback (the same port number as the hub's
API), and the proxy reaches the server through a local port the hub forwards to it. No
inbound port on the VMs but SSH.

After a hub restart, each session's state says where it ran; `poll` asks the host whether
the process still runs, takes its GPUs back into the allocation and forwards the same
local port again. A host that stops answering ends its sessions with that reason and is
left out of placement until it answers again. A full pool queues the session with a
progress message, or refuses it, as the site says (`when_full`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse, urlunparse

import asyncssh
from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Any, Integer, List, Unicode

from naic.hub.catalogue import Catalogue, Host, Site
from naic.spawners import ssh
from naic.spawners.session_env import session_env

#: Seconds between health checks of a pool's hosts.
HEALTH_EVERY_S = 10.0
#: Accounts below this uid are the system's (root, daemons): sessions never run as them.
MIN_UID = 1000


def place(
    hosts: dict[str, Host],
    kind: str | None,
    n: int,
    taken: dict[str, set[int]],
    down: set[str],
) -> tuple[str, list[int]] | None:
    """Pure: the first host (catalogue order) that is up and has `n` free GPUs of `kind`,
    with the lowest free indices; None when the pool is full. CPU-only sessions (`n == 0`)
    go to the first host that is up."""
    for name, host in hosts.items():
        if name in down:
            continue
        if n == 0:
            return name, []
        have = host.gpus.get(kind or "", 0)
        free = [i for i in range(have) if i not in taken.get(name, set())]
        if len(free) >= n:
            return name, free[:n]
    return None


def full_message(site: Site, kind: str | None, waiting_ahead: int) -> str:
    """Pure: what a queued session's progress says."""
    total = sum(h.gpus.get(kind or "", 0) for h in site.hosts.values())
    gpu = (kind or "").upper()
    head = f"All {total} {gpu} GPUs of {site.title} are in use"
    if waiting_ahead == 0:
        return f"{head}; you are next."
    ahead = "session is" if waiting_ahead == 1 else "sessions are"
    return f"{head}; {waiting_ahead} {ahead} ahead of you."


def full_when_refused(cat: Catalogue, req) -> str | None:
    """The sentence for a request to a full pool whose site refuses rather than queues."""
    site = cat.sites[req.site]
    if site.backend != "nodes" or site.when_full != "refuse":
        return None
    res = site.resources[req.resource]
    kind = res.gpu.type if res.gpu else None
    pool = pool_for(req.site)
    if place(site.hosts, kind, req.gpus, pool.taken(), set(pool.down)) is not None:
        return None
    return full_message(site, kind, 0).split(";")[0] + "; please try again later."


@dataclass
class Pool:
    """One site's allocation in this hub process: who holds which GPU of which host."""

    site: str
    held: dict[str, tuple[str, list[int]]] = field(default_factory=dict)  # key → (host, gpus)
    down: dict[str, str] = field(default_factory=dict)  # host → why
    queue: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    health: asyncio.Task | None = None

    def taken(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for host, gpus in self.held.values():
            out.setdefault(host, set()).update(gpus)
        return out

    def hold(self, key: str, host: str, gpus: list[int]) -> None:
        self.held[key] = (host, list(gpus))

    def release(self, key: str) -> None:
        if self.held.pop(key, None) is not None:
            self.notify()

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


_POOLS: dict[str, Pool] = {}
#: (user/server) → the listener forwarding a local port to that session's server.
_FORWARDS: dict[str, asyncssh.SSHListener] = {}
#: host key → (connection, listener) forwarding the host's loopback to the hub's API.
_HUB_FORWARDS: dict[tuple, tuple] = {}


def pool_for(site: str) -> Pool:
    return _POOLS.setdefault(site, Pool(site))


class NodeSpawner(Spawner):
    request = Any(None, allow_none=True, help="The validated SessionRequest (set by the router).")
    catalogue = Any(None, allow_none=True, help="The loaded Catalogue (set by the router).")
    site = Unicode(help="The catalogue site this spawner starts sessions at.")

    host = Unicode("", help="The pool host the session runs on.")
    gpu_ids = List(Integer(), help="The host's GPU indices the session holds.")
    pid = Integer(0, help="The launcher's process id on the host (its process group).")
    remote_port = Integer(0, help="The server's port on the host's loopback.")
    local_port = Integer(0, help="The hub's local port forwarded to the server.")
    end_reason = Unicode("", help="Why the session ended, in words for the user.")
    _messages = List()

    @property
    def _site(self) -> Site:
        return self.catalogue.sites[self.site]

    @property
    def _key(self) -> str:
        return f"{self.user.name}/{self.name}"

    def _target(self, host: str | None = None) -> ssh.Target:
        h = self._site.hosts[host or self.host]
        return ssh.Target(h.address, h.port, self._site.ssh)

    def _as_user(self) -> list[str]:
        if self._site.ssh.user == "root":
            return ["runuser", "-u", self.user.name, "--"]
        return ["sudo", "-n", "-u", self.user.name, "--"]

    def _kind(self) -> str | None:
        res = self._site.resources[self.request.resource]
        return res.gpu.type if res.gpu else None

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
        self._ensure_health_checks()
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
            pool_for(self.site).release(self._key)
            self.clear_state()
            raise

    async def _launch(self) -> tuple[str, int]:
        target = self._target()
        try:
            hub_port = await self._forward_hub(target)
            code, out, err = await ssh.run(target, ["getent", "passwd", self.user.name])
            if code != 0:
                raise RuntimeError(f"{self.user.name} has no account on {self.host}.")
            fields = out.strip().split(":")
            if len(fields) != 7 or not fields[2].isdigit() or int(fields[2]) < MIN_UID:
                # Never a session with a system account's rights (root, daemons).
                raise web.HTTPError(
                    403,
                    f"{self.user.name!r} on {self.host} is a system account, not a user's; "
                    "the hub starts no session as it.",
                )
            home = fields[5]
            env = self._session_env(hub_port, home)
            venv = self.catalogue.environments[self.request.environment].venv
            python = f"{venv}/bin/python" if venv else "python3"
            log = f"{home}/.naic-session-{self.name or 'default'}.log"
            argv = [*self._as_user(), python, "-m", "naic.extensions.launch", "--detach", log]
            argv += ["--", "jupyterhub-singleuser", *self.get_args()]
            code, out, err = await ssh.run(target, argv, stdin=json.dumps(env), timeout_s=120)
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

    def _session_env(self, hub_port: int, home: str) -> dict[str, str]:
        env = self.get_env()
        for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if env.get(name):  # the hub's API as the host sees it: its forwarded loopback
                url = urlparse(env[name])
                env[name] = urlunparse(url._replace(netloc=f"127.0.0.1:{hub_port}"))
        env["HOME"] = home
        env["USER"] = env["LOGNAME"] = self.user.name
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpu_ids)) if self.gpu_ids else ""
        env.update(session_env(self.request, self.catalogue, self.user.name, started_at=_now()))
        return {k: v for k, v in env.items() if k != "PATH"} | {
            "PATH": "/usr/local/bin:/usr/bin:/bin"
        }

    async def _forward_hub(self, target: ssh.Target) -> int:
        """The host's loopback port that reaches the hub's API (one per connection)."""
        api = urlparse(self.hub.api_url)
        port = api.port or 80
        conn = await ssh.connection(target)
        known = _HUB_FORWARDS.get(target.key)
        if known is None or known[0] is not conn:  # new, or the connection was opened again
            listener = await conn.forward_remote_port("127.0.0.1", port, api.hostname, port)
            _HUB_FORWARDS[target.key] = (conn, listener)
        return port

    async def _forward_server(self, target: ssh.Target, local_port: int) -> int:
        conn = await ssh.connection(target)
        old = _FORWARDS.pop(self._key, None)
        if old is not None:
            old.close()
        listener = await conn.forward_local_port(
            "127.0.0.1", local_port, "127.0.0.1", self.remote_port
        )
        _FORWARDS[self._key] = listener
        return listener.get_port()

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
        self._ensure_health_checks()  # also after a restart, before any new start
        pool = pool_for(self.site)
        target = self._target()
        try:
            code, _, _ = await ssh.run(
                target, ["ps", "-p", str(self.pid), "-o", "pid="], timeout_s=20
            )
            if code == 0 and self._key not in _FORWARDS:
                # A restarted hub: the same local port again, so the proxy's route holds.
                await self._forward_server(target, self.local_port)
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
        try:
            group = f"-{self.pid}"
            await ssh.run(target, [*self._as_user(), "kill", "-TERM", "--", group])
            deadline = time.monotonic() + (0 if now else 10)
            while time.monotonic() < deadline:
                code, _, _ = await ssh.run(target, ["ps", "-p", str(self.pid), "-o", "pid="])
                if code != 0:
                    break
                await asyncio.sleep(0.5)
            else:
                await ssh.run(target, [*self._as_user(), "kill", "-KILL", "--", group])
        except ssh.SSHError as exc:
            self.log.warning("Stopping %s on %s: %s", self._key, self.host, exc)
        self._forget()

    def _forget(self) -> None:
        listener = _FORWARDS.pop(self._key, None)
        if listener is not None:
            listener.close()
        pool_for(self.site).release(self._key)

    # --- health ---------------------------------------------------------------------------

    def _ensure_health_checks(self) -> None:
        pool = pool_for(self.site)
        if pool.health is None or pool.health.done():
            pool.health = asyncio.ensure_future(_health_loop(self.catalogue, self.site))


async def _check_host(site: Site, name: str) -> str | None:
    h = site.hosts[name]
    target = ssh.Target(h.address, h.port, site.ssh)
    try:
        code, _, err = await ssh.run(target, ["true"], timeout_s=site.ssh.connect_timeout_s)
    except ssh.SSHError as exc:
        return str(exc)
    return None if code == 0 else f"`true` failed: {err.strip()}"


async def _health_loop(cat: Catalogue, site_name: str) -> None:
    """Every HEALTH_EVERY_S: a host that answers is back in placement, one that does not
    is out of it (its sessions end at their next poll)."""
    site, pool = cat.sites[site_name], pool_for(site_name)
    while True:
        for name in site.hosts:
            why = await _check_host(site, name)
            if why is None and name in pool.down:
                pool.down.pop(name)
                pool.notify()
            elif why is not None:
                pool.down[name] = why
                ssh.drop(ssh.Target(site.hosts[name].address, site.hosts[name].port, site.ssh))
        await asyncio.sleep(HEALTH_EVERY_S)


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
