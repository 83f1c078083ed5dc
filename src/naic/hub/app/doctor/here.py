"""What `naic doctor` measures on the hub's own machine: who holds the hub's ports and its
proxy's socket, the modes of the secrets in the data dir, this machine's addresses, the
identity provider's documents, and a stand-in for the hub's API that test jobs can reach
while the hub is not running.

The hub's addresses (`naic.hub.app.config.build_config`): the proxy's public port `--port`
on 127.0.0.1, the hub's API on `--hub-ip` at `--port` + 81 (what compute nodes are given),
and the proxy's API on the Unix socket `<data-dir>/proxy/api.sock`: there is no proxy API
port. A leftover proxy shows as a configurable-http-proxy process holding the public port
or that socket.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from naic.hub.app.config import Settings
from naic.hub.app.doctor.findings import (
    PROXY,
    Finding,
    Holder,
    data_dir_finding,
    hub_ip_finding,
    idp_findings,
    port_finding,
    secret_findings,
)
from naic.hub.identity.oidc_setup import CRYPT_KEY_FILE

#: The secrets file the Ansible role writes (OIDC client, cookie secret, crypt key).
ANSIBLE_SECRETS = Path("/etc/naic-hub/secrets.env")
HUB_API_OFFSET = 81  # the hub's API port is --port + 81 (naic.hub.app.config)
ANY = ("", "0.0.0.0", "::")  # noqa: S104 - names of "every address", compared, not bound


def hub_api_url(hub_ip: str, port: int) -> str:
    """The hub API URL jobs are given: JupyterHub connects at `hub_ip`, or at this
    machine's host name when the hub listens on every address."""
    host = socket.gethostname() if hub_ip in ANY else hub_ip
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port + HUB_API_OFFSET}/hub/api"


def local_addresses() -> set[str]:
    """This machine's addresses (in its own network namespace)."""
    found = {"127.0.0.1", "::1"}
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                found.add(a.address.split("%", 1)[0])
    return found


def resolve(name: str) -> set[str]:
    """The addresses a node name or address stands for (empty: it does not resolve)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except (OSError, UnicodeError):
        return set()


# --- ports and processes -------------------------------------------------------------------


def bind_state(ip: str, port: int) -> str:
    """ "free", "taken", or "not-here" (this machine has no address `ip`). SO_REUSEADDR as
    the hub and the proxy set it, so connections in TIME_WAIT do not count."""
    ip = ip or "0.0.0.0"  # noqa: S104
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as exc:
            return "not-here" if exc.errno == errno.EADDRNOTAVAIL else "taken"
    return "free"


def socket_in_use(path: Path) -> bool:
    """Something answers on the Unix socket at `path`."""
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return []


def _is_proxy(cmd: list[str]) -> bool:
    return any(Path(arg).name == PROXY for arg in cmd[:2])


def _holder(pid: int) -> Holder:
    cmd = _cmdline(pid)
    name = Path(cmd[0]).name if cmd else ""
    return Holder(pid, name, _is_proxy(cmd))


def _proxy_with(flag: str, value: str) -> Holder | None:
    """A configurable-http-proxy whose command line says `flag value` (seen even when it
    belongs to another account, whose sockets psutil cannot map to a pid)."""
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if _is_proxy(cmd):
            for i, arg in enumerate(cmd[:-1]):
                if arg == flag and cmd[i + 1] == value:
                    return Holder(proc.info["pid"], Path(cmd[0]).name, True)
    return None


def _listeners(kind: str, match) -> list[int | None]:
    try:
        conns = psutil.net_connections(kind=kind)
    except (psutil.Error, OSError):
        return [None]
    return [c.pid for c in conns if match(c)]


def port_holder(port: int) -> Holder:
    """Who listens on TCP `port` (known to be taken)."""
    pids = _listeners("tcp", lambda c: c.status == psutil.CONN_LISTEN and c.laddr.port == port)
    for pid in pids:
        if pid is not None:
            return _holder(pid)
    return _proxy_with("--port", str(port)) or Holder(None)


def socket_holder(path: Path) -> Holder:
    """Who listens on the Unix socket at `path` (known to answer)."""
    for pid in _listeners("unix", lambda c: c.laddr == str(path)):
        if pid is not None:
            return _holder(pid)
    return _proxy_with("--api-socket", str(path)) or Holder(None)


def _pid_in(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def this_hub(s: Settings) -> tuple[int | None, set[int], int | None]:
    """(the running hub's pid, it and every process it started, the proxy pid file's
    live pid): from the pid files JupyterHub keeps in the data dir."""
    hub = _pid_in(s.data_dir / "jupyterhub.pid")
    if hub is not None and not any("jupyterhub" in a for a in _cmdline(hub)):
        hub = None  # a stale pid file naming some other process
    ours: set[int] = set()
    if hub is not None:
        ours = {hub}
        with contextlib.suppress(psutil.Error):
            ours |= {p.pid for p in psutil.Process(hub).children(recursive=True)}
    return hub, ours, _pid_in(s.data_dir / "jupyterhub-proxy.pid")


def port_findings(s: Settings, *, starting: bool = False) -> list[Finding]:
    """The proxy's public port, the hub's API port and the proxy's API socket."""
    hub, ours, proxy_pid = this_hub(s)
    kw = {"hub_pid": hub, "ours": ours, "proxy_pid_file": proxy_pid, "starting": starting}
    out = []
    for ip, port, what in (
        ("127.0.0.1", s.port, "the hub's public port"),
        (s.hub_ip, s.port + HUB_API_OFFSET, "the hub's API, which jobs reach"),
    ):
        state = bind_state(ip, port)
        if state == "not-here":
            out.append(hub_ip_finding(ip, port))
            continue
        holder = port_holder(port) if state == "taken" else None
        out.append(port_finding(f"port {port}", what, holder, **kw))
    sock = s.proxy_socket
    holder = socket_holder(sock) if socket_in_use(sock) else None
    out.append(port_finding(str(sock), "the proxy's API", holder, **kw))
    out.append(data_dir_finding(str(s.data_dir)))
    return out


# --- secrets -------------------------------------------------------------------------------


def secret_paths(s: Settings) -> list[tuple[Path, bool]]:
    """The hub's secrets: (path, is a folder)."""
    d = s.data_dir
    files = [
        s.password_file,
        s.admin_token_file,
        s.db_file,
        d / "jupyterhub_cookie_secret",
        d / CRYPT_KEY_FILE,
        ANSIBLE_SECRETS,
    ]
    return [(p, False) for p in files] + [(s.config_d, True), (s.proxy_socket.parent, True)]


def secret_modes(s: Settings) -> dict[str, tuple[int, bool]]:
    modes = {}
    for path, folder in secret_paths(s):
        with contextlib.suppress(OSError):
            modes[str(path)] = (path.stat().st_mode & 0o777, folder)
    return modes


def secrets_check(s: Settings) -> list[Finding]:
    return secret_findings(str(s.data_dir), secret_modes(s))


# --- the identity provider ----------------------------------------------------------------


def fetch_json(url: str, timeout: float = 10) -> dict[str, Any] | str:
    """A JSON document, or why there is none (a few words)."""
    if not url.startswith(("http://", "https://")):
        return f"{url} is not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - checked above
            doc = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, TimeoutError) as exc:
        return str(getattr(exc, "reason", None) or exc)
    except (ValueError, UnicodeDecodeError):
        return "not JSON"
    return doc if isinstance(doc, dict) else "not a JSON object"


def idp_check(issuer: str, timeout: float = 10) -> list[Finding]:
    discovery = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout)
    jwks = None
    if isinstance(discovery, dict) and discovery.get("jwks_uri"):
        jwks = fetch_json(str(discovery["jwks_uri"]), timeout)
    return idp_findings(issuer, discovery, jwks)


# --- a stand-in for the hub's API -----------------------------------------------------------


class _StandIn(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        stamp = time.time()
        body = b'{"naic_doctor": true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Naic-Doctor-Time", repr(stamp))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def stand_in(ip: str, port: int) -> Iterator[bool]:
    """While the hub is not running: answer on its API address, as it would, so that a
    test job tests the very address, port and firewall. Yields whether it listens."""
    ip = ip or "0.0.0.0"  # noqa: S104

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        daemon_threads = True

    try:
        server = Server((ip, port), _StandIn)
    except OSError:
        yield False
        return
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield True
    finally:
        server.shutdown()
        server.server_close()
