"""Pure: what `naic doctor` says about the hub's own machine, one `Finding` per check.

Each function takes what the runner measured (who holds a port, a file's mode, the nodes'
addresses, two clocks, the provider's answers) and returns the sentence an operator reads:
what is wrong and the fix, or what was found fine. No I/O here, so every sentence is tested
exactly (tests/unit/test_doctor.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

#: A node whose clock is further than this from the hub's is a problem (seconds).
CLOCK_LIMIT_S = 5.0
PROXY = "configurable-http-proxy"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report: `check` names what was looked at."""

    check: str
    ok: bool
    sentence: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'problem':8} {self.check}: {self.sentence}"


@dataclass(frozen=True)
class Holder:
    """A process that holds a port or socket; `pid` None: one this account cannot see."""

    pid: int | None
    name: str = ""
    is_proxy: bool = False


# --- ports and the proxy's socket ----------------------------------------------------------


def port_finding(
    where: str,
    what: str,
    holder: Holder | None,
    *,
    hub_pid: int | None = None,
    ours: Collection[int] = (),
    proxy_pid_file: int | None = None,
    starting: bool = False,
) -> Finding:
    """`where` ("port 8000", or a socket's path) is what the hub needs for `what`; `holder`
    holds it now (None: free). `ours`: the pids of this hub and its proxy while the hub runs
    (`hub_pid`); `proxy_pid_file`: the pid in the data dir's proxy pid file (JupyterHub
    stops that process itself when it starts). `starting`: said by `naic up`, for which
    a running hub is in the way, where `naic doctor` finds it fine."""
    check = "ports"
    if holder is None:
        return Finding(check, True, f"{where} ({what}) is free")
    if holder.pid is not None and holder.pid in ours and hub_pid is not None:
        if starting:
            return Finding(
                check,
                False,
                f"this hub is already running (pid {hub_pid}) and holds {where}: stop it "
                f"(kill {hub_pid}) before starting it again",
            )
        return Finding(check, True, f"{where} ({what}) is held by this hub (pid {hub_pid})")
    if holder.is_proxy and holder.pid is not None:
        if holder.pid == proxy_pid_file and hub_pid is None:
            return Finding(
                check,
                True,
                f"a {PROXY} from an earlier run (pid {holder.pid}) holds {where}; the hub "
                "stops it when it starts (its pid file names it)",
            )
        return Finding(
            check,
            False,
            f"a {PROXY} from an earlier run (pid {holder.pid}) holds {where}: stop it "
            f"(kill {holder.pid})",
        )
    by = f"{holder.name or 'a program'} (pid {holder.pid})"
    if holder.pid is None:
        by = "a program of another account (run `ss -ltnp` as root to see which)"
    return Finding(
        check,
        False,
        f"{where} ({what}) is taken by {by}: stop it, or start the hub with another --port",
    )


def hub_ip_finding(hub_ip: str, port: int) -> Finding:
    """The hub's API address is not one of this machine's (it cannot listen there)."""
    return Finding(
        "ports",
        False,
        f"--hub-ip {hub_ip} is not an address of this machine, so the hub cannot listen on "
        f"{hub_ip}:{port}: start it with --hub-ip <an address of this machine that the "
        "nodes reach>",
    )


def data_dir_finding(data_dir: str) -> Finding:
    """JupyterHub lowercases the host part of the proxy's `http+unix://` API address, which
    is the socket's path: a data dir with capitals puts the socket where nobody looks."""
    if data_dir != data_dir.lower():
        return Finding(
            "data dir",
            False,
            f"{data_dir} has capital letters, which JupyterHub lowercases in the address of "
            "the proxy's socket (the hub then never reaches its proxy): use a lower-case "
            "path for --data-dir",
        )
    return Finding("data dir", True, f"{data_dir} can hold the proxy's socket")


# --- secrets ------------------------------------------------------------------------------


def secret_findings(data_dir: str, modes: Mapping[str, tuple[int, bool]]) -> list[Finding]:
    """`modes`: path → (permission bits, is a folder) of each secret that exists. Group or
    other bits on any of them is a problem; otherwise one line says they are private."""
    out = []
    for path, (mode, folder) in sorted(modes.items()):
        if not mode & 0o077:
            continue
        who = "other accounts" if mode & 0o007 else "its group"
        fix = "chmod 700" if folder else "chmod 600"
        out.append(
            Finding("secrets", False, f"{path} is open to {who} (mode {mode:o}): {fix} {path}")
        )
    if not modes:
        out.append(
            Finding("secrets", True, f"no secrets in {data_dir} yet (the hub makes them 0600)")
        )
    elif not out:
        out.append(
            Finding("secrets", True, f"the hub's {len(modes)} secret files and folders are private")
        )
    return out


# --- where compute nodes reach the hub ---------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def address_finding(
    site: str,
    hub_api_url: str,
    nodes: Mapping[str, Collection[str]],
    local: Collection[str],
) -> Finding:
    """`nodes`: node name → its addresses (resolved); `local`: this machine's addresses. A
    hub API on loopback is a problem when a node is another host (an address neither
    loopback nor this machine's)."""
    check = f"{site}: hub address"
    host = urlparse(hub_api_url).hostname or ""
    if not nodes:
        return Finding(check, True, f"not checked: no nodes listed at {site}")
    if not is_loopback(host):
        return Finding(check, True, f"nodes are given {hub_api_url}")
    remote = sorted(
        name
        for name, addrs in nodes.items()
        if any(not is_loopback(a) and a not in local for a in addrs) or not addrs
    )
    if remote:
        return Finding(
            check,
            False,
            f"the hub listens on {host}, which compute nodes cannot reach "
            f"({', '.join(remote[:5])}{', …' if len(remote) > 5 else ''}): start it with "
            "--hub-ip <address the nodes reach>",
        )
    return Finding(check, True, f"every node of {site} is this machine, which reaches {host}")


# --- clocks --------------------------------------------------------------------------------


def hub_time_at(node_time: float, before: float, after: float, exact: float | None = None) -> float:
    """The hub's time when the node read `node_time`: `exact` when the hub stamped it (its
    answer to the node's request), else the nearest moment of [before, after], the hub's
    clock around the whole job; so an offset is never overstated."""
    if exact is not None:
        return exact
    return min(max(node_time, before), after)


def clock_finding(
    node: str, node_time: float, hub_time: float, limit_s: float = CLOCK_LIMIT_S
) -> Finding:
    check = f"{node}: clock"
    diff = node_time - hub_time
    if abs(diff) <= limit_s:
        return Finding(check, True, f"node {node}'s clock is within {abs(diff):.1f} s of the hub's")
    side = "ahead of" if diff > 0 else "behind"
    return Finding(
        check,
        False,
        f"node {node}'s clock is {abs(diff):.1f} s {side} the hub's: run chrony/ntp on it; "
        "tokens and estimates depend on it",
    )


# --- the identity provider ---------------------------------------------------------------


def idp_findings(
    issuer: str, discovery: dict[str, Any] | str, jwks: dict[str, Any] | str | None
) -> list[Finding]:
    """`discovery` and `jwks`: the provider's JSON documents, or why they could not be had
    (a string); `jwks` None when it was not fetched."""
    check = "identity provider"
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    if isinstance(discovery, str):
        return [
            Finding(
                check,
                False,
                f"the discovery document {url} does not answer ({discovery}): check "
                "identity.issuer in the catalogue and that this machine reaches the provider",
            )
        ]
    named = str(discovery.get("issuer", ""))
    if named.rstrip("/") != issuer.rstrip("/"):
        return [
            Finding(
                check,
                False,
                f"the identity provider at {issuer} calls itself {named or '(nothing)'}: set "
                "identity.issuer in the catalogue to exactly that",
            )
        ]
    jwks_uri = discovery.get("jwks_uri")
    if not jwks_uri:
        return [
            Finding(
                check,
                False,
                f"the discovery document {url} names no jwks_uri, so the hub cannot verify "
                "any login: fix the provider's configuration",
            )
        ]
    if isinstance(jwks, str) or jwks is None:
        return [
            Finding(
                check,
                False,
                f"the provider's keys at {jwks_uri} do not answer ({jwks or 'not fetched'}): "
                "check that this machine reaches the provider",
            )
        ]
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        return [
            Finding(
                check,
                False,
                f"the provider's key set {jwks_uri} has no keys, so the hub cannot verify any "
                "login: fix the provider's signing keys",
            )
        ]
    return [
        Finding(
            check,
            True,
            f"{issuer} answers as itself, with {len(keys)} signing key(s) at {jwks_uri}",
        )
    ]
