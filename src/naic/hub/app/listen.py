"""Addresses on the hub's own machine that no other account can take over.

Sessions outlive the hub. While it restarts, its loopback TCP ports are free, and any
account on the machine could bind the hub's API port and collect the tokens that local
sessions send it (activity, token checks), then answer as the hub. A Unix socket in the
data dir cannot be squatted: only root may create or replace a file there (the folder is
0711), and when the hub is down the socket refuses connections instead of reaching a
stranger. So local sessions reach the hub at `<data-dir>/hub.sock` and the hub reaches
its proxy's API at `<data-dir>/proxy/api.sock` (configurable-http-proxy's `--api-socket`).

The hub keeps its TCP address as well, for the proxy's routes and for compute nodes on
other hosts (Slurm sites), which cannot reach a socket file on the hub's machine.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import socket
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task] = set()  # a task nobody references may be collected mid-way


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file nothing listens on any more (its process was killed): a new
    listener could not bind there. Only for folders no other account may write to."""
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            path.unlink(missing_ok=True)


def also_listen_on(socket_path: Path) -> None:
    """Serve the hub's API on `socket_path` too, from the moment the hub's HTTP server
    exists. Called while JupyterHub loads its config, which it does inside its running
    event loop; JupyterHub itself binds only one address (`hub_bind_url`)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not inside a starting hub (a config check): nothing to serve
        return
    task = loop.create_task(_add_socket_when_ready(socket_path))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _add_socket_when_ready(socket_path: Path, timeout_s: float = 300) -> None:
    from jupyterhub.app import JupyterHub
    from tornado.netutil import bind_unix_socket

    app = JupyterHub.instance()
    waited = 0.0
    while getattr(app, "http_server", None) is None:
        if waited > timeout_s:
            log.error("The hub's HTTP server never started; no socket at %s", socket_path)
            return
        await asyncio.sleep(0.05)
        waited += 0.05
    # 0666: any local account may connect (the API checks tokens); none may replace it.
    sock = bind_unix_socket(str(socket_path), mode=0o666)
    app.http_server.add_socket(sock)
    app.log.info("Hub API also listening on %s (for sessions on this machine)", socket_path)


def stop_proxy_at_exit(app: Any) -> None:
    """Stop the proxy `app` (the JupyterHub starting) started, if the hub's process exits
    before its start completed. JupyterHub stops its proxy on a shutdown, but not when its
    own start fails after the proxy's (its API port taken in between, say): that proxy
    would keep the public port, and keep answering 404, until killed by hand. Kept when the
    hub was told to leave it running (`cleanup_proxy = False`)."""
    started = getattr(app, "_start_future", None)  # JupyterHub's own "start done" future

    def stop() -> None:
        if started is not None and started.done() and not started.cancelled():
            return  # started: its shutdown stops the proxy
        process = getattr(getattr(app, "proxy", None), "proxy_process", None)
        if process is None or process.poll() is not None or not app.cleanup_proxy:
            return
        app.log.warning("The hub did not start: stopping its proxy (pid %i)", process.pid)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()

    atexit.register(stop)
