"""Prometheus metrics of naic-hub, served with JupyterHub's own at `/hub/metrics`.

Counts that must survive a hub restart (sessions by site and state, GPU-hours) are computed
at scrape time from what the hub and the ledger know, not kept in counters that a restart
would zero. Durations are histograms observed as sessions start.

    naic_sessions{site, state}              sessions now: state queued|starting|running
    naic_spawn_duration_seconds{site}       request → server ready (histogram)
    naic_queue_wait_seconds{site}           submitted → running at the scheduler (histogram)
    naic_gpu_hours_allocated{project}       GPU-hours allocated this budget period (ledger)
    naic_gpu_hours_idle{project}            of those, GPU-hours the sessions reported idle
    naic_culls_total{site, reason}          sessions the culler stopped (gpu-idle|idle|max-age)
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Seconds: sessions start in seconds when a node is free, queues take minutes to hours.
_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, float("inf"))

SPAWN_DURATION = Histogram(
    "naic_spawn_duration_seconds",
    "Seconds from a session request until its server answered, by site",
    ["site"],
    buckets=_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "naic_queue_wait_seconds",
    "Seconds a session's job waited in the scheduler's queue, by site",
    ["site"],
    buckets=_BUCKETS,
)

CULLS = Counter(
    "naic_culls",
    "Sessions the culler stopped, by site and reason (gpu-idle, idle, max-age)",
    ["site", "reason"],
)


def session_state(spawner) -> str | None:
    """queued (the scheduler has not started it), starting, running, or None (no session)."""
    if spawner.ready:
        return "running"
    if spawner.pending == "spawn":
        child = getattr(spawner, "child_spawner", None)
        if child is not None and getattr(child, "state_ispending", lambda: False)():
            return "queued"
        return "starting"
    return None


def count_sessions(spawners: Iterable) -> collections.Counter[tuple[str, str]]:
    """Pure over spawner-like objects: {(site, state): n}."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for sp in spawners:
        state = session_state(sp)
        request = getattr(sp, "request", None)
        if state and request is not None:
            counts[(request.site, state)] += 1
    return counts


def gauge(name: str, doc: str, labels: list[str], values: Mapping) -> GaugeMetricFamily:
    """One gauge family: a sample per key of `values`, in key order. A key is the labels'
    values, a tuple of them or (with one label) the value itself."""
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


class NaicCollector(Collector):
    """Reads the hub's sessions and the ledger when Prometheus scrapes."""

    def __init__(
        self,
        spawners: Callable[[], Iterable],
        gpu_hours: Callable[[], dict],
        gpu_idle: Callable[[], dict] = dict,
    ):
        self.spawners, self.gpu_hours, self.gpu_idle = spawners, gpu_hours, gpu_idle

    def describe(self):
        # What registration asks for, so it does not call collect() before the hub runs.
        yield GaugeMetricFamily("naic_sessions", "", labels=["site", "state"])
        yield GaugeMetricFamily("naic_gpu_hours_allocated", "", labels=["project"])
        yield GaugeMetricFamily("naic_gpu_hours_idle", "", labels=["project"])

    def collect(self):
        yield gauge(
            "naic_sessions",
            "Sessions by site and state",
            ["site", "state"],
            count_sessions(self.spawners()),
        )
        yield gauge(
            "naic_gpu_hours_allocated",
            "GPU-hours allocated (GPUs x wall time) this budget period, by project",
            ["project"],
            self.gpu_hours(),
        )
        yield gauge(
            "naic_gpu_hours_idle",
            "GPU-hours this budget period that sessions reported their GPUs idle, by project",
            ["project"],
            self.gpu_idle(),
        )


_registered: NaicCollector | None = None


def register(cat_file: str, ledger_url: str) -> None:
    """Add the collector to the default registry, once per process (JupyterHub's registry)."""
    global _registered
    if _registered is not None:
        return
    from jupyterhub.app import JupyterHub

    from naic.hub import catalogue
    from naic.hub.usage import accounting

    def spawners() -> Iterable:
        if not JupyterHub.initialized():
            return
        for user in list(JupyterHub.instance().users.values()):
            yield from list(user.spawners.values())

    def gpu_hours() -> dict:
        cat = catalogue.load_cached(cat_file)
        ledger = accounting.ledger_for(ledger_url)
        now = datetime.now(UTC)
        return {p: accounting.used_this_period(ledger, cat, p, now) for p in cat.projects}

    def gpu_idle() -> dict:
        cat = catalogue.load_cached(cat_file)
        ledger = accounting.ledger_for(ledger_url)
        now = datetime.now(UTC)
        return {p: accounting.idle_this_period(ledger, cat, p, now) for p in cat.projects}

    _registered = NaicCollector(spawners, gpu_hours, gpu_idle)
    REGISTRY.register(_registered)
