"""Metrics computed at scrape time: sessions by site and state, GPU-hours by project."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from naic.hub.usage.metrics import NaicCollector, count_sessions


def spawner(site: str | None, *, ready=False, pending=None, queued=False):
    child = SimpleNamespace(state_ispending=lambda: queued)
    request = SimpleNamespace(site=site) if site else None
    return SimpleNamespace(ready=ready, pending=pending, request=request, child_spawner=child)


SPAWNERS = [
    spawner("saga", ready=True),
    spawner("saga", ready=True),
    spawner("saga", pending="spawn", queued=True),
    spawner("local", pending="spawn"),
    spawner("saga"),  # stopped: not counted
    spawner(None, ready=True),  # no request (e.g. restored without one): not counted
]


def test_sessions_are_counted_by_site_and_state() -> None:
    assert count_sessions(SPAWNERS) == {
        ("saga", "running"): 2,
        ("saga", "queued"): 1,
        ("local", "starting"): 1,
    }


def test_the_collector_exposes_what_prometheus_parses() -> None:
    registry = CollectorRegistry()
    registry.register(
        NaicCollector(
            lambda: SPAWNERS, lambda: {"nn1234k": 12.5, "demo": 0.0}, lambda: {"nn1234k": 4.25}
        )
    )
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    sessions = {
        (s.labels["site"], s.labels["state"]): s.value for s in families["naic_sessions"].samples
    }
    assert sessions == {("local", "starting"): 1, ("saga", "queued"): 1, ("saga", "running"): 2}
    hours = {s.labels["project"]: s.value for s in families["naic_gpu_hours_allocated"].samples}
    assert hours == {"demo": 0.0, "nn1234k": 12.5}
    idle = {s.labels["project"]: s.value for s in families["naic_gpu_hours_idle"].samples}
    assert idle == {"nn1234k": 4.25}
