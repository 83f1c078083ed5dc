"""A node pool's allocation and health, in this hub process: which session holds which GPU
of which host, who waits, and which hosts answer (naic.spawners.nodes starts sessions on it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from naic.hub.catalogue import Catalogue, Host, Site
from naic.spawners import ssh
from naic.spawners.site import site_for

#: Seconds between health checks of a pool's hosts.
HEALTH_EVERY_S = 10.0


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


def pool_for(site: str) -> Pool:
    return _POOLS.setdefault(site, Pool(site))


async def _check_host(cat: Catalogue, site_name: str, name: str) -> str | None:
    site = site_for(cat, site_name)
    result = await site.run(["true"], host=name, timeout=site.spec.ssh.connect_timeout_s)
    if not result.reached:
        return result.err
    return None if result.code == 0 else f"`true` failed: {result.err.strip()}"


def ensure_health_checks(cat: Catalogue, site_name: str) -> None:
    """Start the site's health loop, unless it runs (also after a restart)."""
    pool = pool_for(site_name)
    if pool.health is None or pool.health.done():
        pool.health = asyncio.ensure_future(_health_loop(cat, site_name))


async def _health_loop(cat: Catalogue, site_name: str) -> None:
    """Every HEALTH_EVERY_S: a host that answers is back in placement, one that does not
    is out of it (its sessions end at their next poll)."""
    site, pool = cat.sites[site_name], pool_for(site_name)
    while True:
        for name in site.hosts:
            why = await _check_host(cat, site_name, name)
            if why is None and name in pool.down:
                pool.down.pop(name)
                pool.notify()
            elif why is not None:
                pool.down[name] = why
                ssh.drop(site_for(cat, site_name).target(name))
        await asyncio.sleep(HEALTH_EVERY_S)
