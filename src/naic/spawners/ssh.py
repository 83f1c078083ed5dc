"""One kept-alive SSH connection per machine, for every session and poll that needs it.

The hub reaches remote login nodes and cloud VMs with asyncssh: one connection per (user,
host, port), opened at first use, multiplexing every command as a channel, and opened
again after it dropped. Host keys come only from the operator's `known_hosts` file (an
unknown or changed key is refused); the private key only from `identity_file`. Commands
are argv lists, quoted here with `shlex.join`: nothing a user typed is ever parsed by a
remote shell as more than one word.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from dataclasses import dataclass
from typing import Any

import asyncssh

from naic.hub.catalogue import SSH

log = logging.getLogger(__name__)


class SSHError(RuntimeError):
    """The machine cannot be reached, or refused us; `str()` says which, in one sentence."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    access: SSH

    @property
    def key(self) -> tuple:
        a = self.access
        return (a.user, self.host, self.port, a.identity_file, a.known_hosts)

    def __str__(self) -> str:
        return f"{self.access.user}@{self.host}:{self.port}"


#: Commands at once on one connection: OpenSSH's sshd refuses an 11th session channel
#: (`MaxSessions 10`), and a refused channel must not look like a machine that went away.
MAX_CHANNELS = 8

_connections: dict[tuple, asyncssh.SSHClientConnection] = {}
_locks: dict[tuple, asyncio.Lock] = {}
_channels: dict[tuple, asyncio.Semaphore] = {}


async def connect(target: Target, **options: Any) -> asyncssh.SSHClientConnection:
    """A new connection to `target` as its account, with its key, checked against the pinned
    host keys, within its connect timeout (the doctor's fresh check uses it too)."""
    a = target.access
    return await asyncio.wait_for(
        asyncssh.connect(
            target.host,
            port=target.port,
            username=a.user,
            client_keys=[a.identity_file],
            known_hosts=a.known_hosts,
            **options,
        ),
        a.connect_timeout_s,
    )


async def connection(target: Target) -> asyncssh.SSHClientConnection:
    """The shared connection to `target`, opened (again) when there is none."""
    key = target.key
    lock = _locks.setdefault(key, asyncio.Lock())
    async with lock:
        conn = _connections.get(key)
        if conn is not None and not conn.is_closed():
            return conn
        a = target.access
        try:
            conn = await connect(target, keepalive_interval=15, keepalive_count_max=3)
        except asyncssh.HostKeyNotVerifiable:
            raise SSHError(
                f"{target.host} offered a host key that is not in {a.known_hosts}; the hub "
                "does not connect to machines it cannot verify."
            ) from None
        except asyncssh.PermissionDenied:
            raise SSHError(f"{target} refused the hub's key ({a.identity_file}).") from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise SSHError(
                f"{target.host}:{target.port} does not answer ({exc or 'timeout'})."
            ) from None
        _connections[key] = conn
        return conn


def drop(target: Target) -> None:
    """Forget (and close) the connection, e.g. after the machine went away."""
    conn = _connections.pop(target.key, None)
    if conn is not None:
        conn.close()


async def run(
    target: Target, argv: list[str], *, stdin: str | None = None, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Run `argv` on `target`; (exit status, stdout, stderr). Raises SSHError when the
    machine does not answer."""
    async with _channels.setdefault(target.key, asyncio.Semaphore(MAX_CHANNELS)):
        conn = await connection(target)
        try:
            result = await asyncio.wait_for(
                conn.run(shlex.join(argv), input=stdin, check=False), timeout_s
            )
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            drop(target)
            raise SSHError(
                f"{target.host}:{target.port} stopped answering ({exc or 'timeout'})."
            ) from None
    code = result.exit_status if result.exit_status is not None else 255
    return code, str(result.stdout or ""), str(result.stderr or "")
