"""`/hub/metrics` on a real hub and cluster: parsed with prometheus_client's parser, moving as
a GPU session starts and stops."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import scrape, user_token, value, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_metrics_move_as_a_gpu_session_starts_and_stops(slurm_hub: Hub) -> None:
    before = scrape(slurm_hub)
    assert value(before, "naic_sessions", site="testcluster", state="running") == 0
    spawns = value(before, "naic_spawn_duration_seconds_count", site="testcluster")

    token = user_token(slurm_hub, "alice")
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    options = {"site": "testcluster", "resource": "a100", "gpus": 2, "hours": 0.5}
    assert api.post("/users/alice/server", json={"user_options": options}).is_success
    wait_ready(api, "alice")
    time.sleep(3)

    during = scrape(slurm_hub)
    assert value(during, "naic_sessions", site="testcluster", state="running") == 1
    assert value(during, "naic_spawn_duration_seconds_count", site="testcluster") == spawns + 1
    assert value(during, "naic_queue_wait_seconds_count", site="testcluster") >= 1
    allocated = value(during, "naic_gpu_hours_allocated", project="demo")
    assert allocated > 0  # 2 GPUs for a few seconds, counted while it runs

    assert api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while api.get("/users/alice").json()["servers"]:
        assert time.monotonic() < deadline, "the session did not stop"
        time.sleep(0.5)
    after = scrape(slurm_hub)
    assert value(after, "naic_sessions", site="testcluster", state="running") == 0
    assert value(after, "naic_gpu_hours_allocated", project="demo") >= allocated
