"""What `naic doctor` asks a catalogue site, through the one way the hub runs commands there
(`naic.spawners.site.Site.run`: here, or over SSH on the login node).

For a Slurm site, in order, each step only when the one before it passed: the login node's
pinned host key (`submit.via: ssh`), the scheduler (`scontrol ping`), the accounting daemon
(`scontrol show config`, `sacctmgr -n show cluster`), the nodes' addresses (`sinfo`) against
the hub API URL jobs are given, then one test job per partition of the catalogue (`srun`, a
few seconds) that opens that URL and reads the node's clock. `site_checks` yields progress
(a string) and findings as it goes.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import AsyncIterator, Collection
from email.utils import parsedate_to_datetime

import asyncssh

from naic.hub.app.doctor import here
from naic.hub.app.doctor.findings import Finding, address_finding, clock_finding, hub_time_at
from naic.hub.app.doctor.site_findings import (
    config_value,
    first_line,
    host_key_finding,
    job_argv,
    job_failed_finding,
    parse_report,
    parse_sinfo,
    ping_finding,
    reach_finding,
    slurmdbd_finding,
)
from naic.spawners import ssh
from naic.spawners.site import Site

COMMAND_TIMEOUT_S = 30
JOB_TIMEOUT_S = 150  # --immediate=60 to get a node, then a few seconds


def pinned_state(target: ssh.Target) -> tuple[str, str] | None:
    """Before connecting: (state, detail) when the files already say what is wrong (no
    known_hosts, no key pinned for the host, no private key), else None."""
    a = target.access
    if not os.path.isfile(a.known_hosts):
        return "no-file", ""
    try:
        known = asyncssh.read_known_hosts(a.known_hosts)
    except (OSError, ValueError, asyncssh.Error):
        return "unpinned", ""
    pinned = False
    for addr in here.resolve(target.host) or {target.host}:
        keys, cas, *_ = asyncssh.match_known_hosts(known, target.host, addr, target.port)
        pinned = pinned or bool(keys or cas)
    if not pinned:
        return "unpinned", ""
    if not os.path.isfile(a.identity_file):
        return "no-key", a.identity_file
    return None


async def host_key_state(target: ssh.Target) -> tuple[str, str]:
    """(state, detail) for `host_key_finding`: the host's key against the pinned ones."""
    if (known := pinned_state(target)) is not None:
        return known
    a = target.access
    try:
        conn = await ssh.connect(target)  # a fresh one: the host key is checked now
    except asyncssh.HostKeyNotVerifiable:
        return "changed", ""
    except asyncssh.PermissionDenied:
        return "refused", a.identity_file
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return "unreachable", str(exc) or "no answer"
    conn.close()
    return "ok", ""


async def host_key_findings(name: str, site: Site) -> list[Finding]:
    """The login node of `submit.via: ssh`, or every host of a node pool."""
    targets = [site.login_node] if site.spec.backend == "slurm" else []
    if site.spec.backend == "nodes":
        targets = [site.target(h) for h in site.spec.hosts or {}]
    out = []
    for t in targets:
        if t is not None:
            state, detail = await host_key_state(t)
            out.append(host_key_finding(name, t.host, t.port, t.access.known_hosts, state, detail))
    return out


def partitions(site: Site) -> list[str | None]:
    """The partitions the catalogue's resources use (None: the default one), in order."""
    seen: list[str | None] = []
    for res in site.spec.resources.values():
        if res.partition not in seen:
            seen.append(res.partition)
    return seen


async def node_addresses(
    site: Site, limit_s: float = COMMAND_TIMEOUT_S
) -> dict[str, set[str]] | str:
    """Node name → its addresses, for the catalogue's partitions; or why there are none."""
    parts = partitions(site)
    argv = ["sinfo", "-h", "-N", "-o", "%N %o"]
    if None not in parts:
        argv += ["-p", ",".join(p for p in parts if p)]
    r = await site.run(argv, timeout=limit_s)
    if not r.reached or r.code:
        return first_line(r.err) or first_line(r.out) or f"exit status {r.code}"
    return {node: here.resolve(addr) for node, addr in parse_sinfo(r.out).items()}


async def address_check(
    name: str, site: Site, hub_url: str, local: Collection[str], limit_s: float = COMMAND_TIMEOUT_S
) -> Finding:
    nodes = await node_addresses(site, limit_s)
    if isinstance(nodes, str):
        return Finding(f"{name}: hub address", True, f"not checked: sinfo failed ({nodes})")
    return address_finding(name, hub_url, nodes, local)


def _stamp(report: dict) -> tuple[float, float] | None:
    """The hub's own time when it answered the job: exact from the doctor's stand-in, else
    within the second of the HTTP Date header."""
    if report.get("stamp"):
        try:
            t = float(report["stamp"])
        except ValueError:
            return None
        return t, t
    if report.get("date"):
        try:
            t = parsedate_to_datetime(str(report["date"])).timestamp()
        except (TypeError, ValueError):
            return None
        return t, t + 1.0
    return None


async def test_job(
    name: str,
    site: Site,
    partition: str | None,
    hub_url: str,
    *,
    test_user: str | None,
    address_ok: bool,
) -> list[Finding]:
    """One job in `partition`: does it reach `hub_url`, and is its node's clock right?"""
    before = time.time()
    r = await site.run(job_argv(partition, hub_url), as_user=test_user, timeout=JOB_TIMEOUT_S)
    after = time.time()
    report = parse_report(r.out)
    if report is None:
        who = test_user or (site.login_node.access.user if site.login_node else getpass.getuser())
        return [job_failed_finding(name, partition, who, r.code, r.out, r.err)]
    out = []
    if report.get("status") is not None or address_ok:
        out.append(reach_finding(name, report, hub_url))
    node = str(report.get("node") or "?")
    try:
        t0, t1 = float(report["t0"]), float(report["t1"])
    except (KeyError, TypeError, ValueError):
        return out
    stamp = _stamp(report)
    if stamp is not None:
        out.append(clock_finding(node, (t0 + t1) / 2, hub_time_at((t0 + t1) / 2, *stamp)))
    else:
        out.append(clock_finding(node, t0, hub_time_at(t0, before, after)))
    return out


async def site_checks(
    name: str,
    site: Site,
    hub_url: str,
    local: Collection[str],
    *,
    test_user: str | None = None,
) -> AsyncIterator[str | Finding]:
    """Every check of one site, each yielded as it is done (a string: what runs now)."""
    if site.spec.backend == "nodes" or site.login_node is not None:
        yield f"{name}: checking SSH host keys"
        keys = await host_key_findings(name, site)
        for f in keys:
            yield f
        if not all(f.ok for f in keys) or site.spec.backend != "slurm":
            return
    if site.spec.backend != "slurm":
        return
    yield f"{name}: asking the scheduler (scontrol ping)"
    r = await site.run(["scontrol", "ping"], timeout=COMMAND_TIMEOUT_S)
    ping = ping_finding(name, r.code, r.out, r.err)
    yield ping
    if not ping.ok:
        return
    yield f"{name}: asking the accounting daemon (sacctmgr)"
    conf = await site.run(["scontrol", "show", "config"], timeout=COMMAND_TIMEOUT_S)
    kind = config_value(conf.out, "AccountingStorageType")
    host = config_value(conf.out, "AccountingStorageHost")
    code, err = 0, ""
    if kind and "slurmdbd" in kind:
        dbd = await site.run(["sacctmgr", "-n", "show", "cluster"], timeout=COMMAND_TIMEOUT_S)
        code, err = dbd.code, dbd.err
    yield slurmdbd_finding(name, kind, host, code, err)
    address = await address_check(name, site, hub_url, local)
    yield address
    for partition in partitions(site):
        where = f"partition {partition}" if partition else "the default partition"
        yield f"{name}: running a test job in {where} (a few seconds; up to a minute for a node)"
        for f in await test_job(
            name, site, partition, hub_url, test_user=test_user, address_ok=address.ok
        ):
            yield f
