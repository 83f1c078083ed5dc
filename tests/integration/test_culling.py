"""GPU-aware culling on the real test cluster: real sessions report their GPUs to the hub, the
hub's culler service warns and then stops the idle one, and keeps the busy one although no
browser ever touched it. The GPU samples are the one injected thing (`NAIC_GPU_SAMPLES`: the
fake A100s have no NVML); everything else is the product as it runs."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import (
    client,
    ready,
    scrape,
    set_gpu_use,
    start,
    value,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: An hour: its end is further off than the "30 minutes left" notice.
A100 = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 1, "project": "demo"}


def notices(c: httpx.Client, user: str, server: str = "") -> list[dict]:
    named = f"/servers/{server}" if server else ""
    resp = c.get(f"/hub/api/naic/users/{user}{named}/activity")
    if resp.status_code == 404:  # stopped
        return []
    resp.raise_for_status()
    return resp.json()["notices"]


def test_an_idle_gpu_session_is_warned_then_stopped_and_a_busy_one_is_kept(cull_hub: Hub) -> None:
    set_gpu_use("alice", 0)
    set_gpu_use("bob", 85)
    alice, bob = client(cull_hub, "alice"), client(cull_hub, "bob")
    start(alice, "alice", A100)
    start(bob, "bob", A100, server="train")  # a named session: the other API paths
    wait_until(
        lambda: ready(alice, "alice") and ready(bob, "bob", "train"), 120, "both sessions ready"
    )
    began = time.monotonic()

    # The warning reaches the hub, and the session itself (what JupyterLab's toast reads).
    wait_until(lambda: notices(alice, "alice"), 40, "a GPU-idle warning for alice")
    (warning,) = notices(alice, "alice")
    assert warning["kind"] == "gpu-idle"
    assert warning["text"].startswith("This session's GPU is not in use (limit 20 seconds)")

    def inside() -> list[str]:
        resp = alice.get("/user/alice/naic/api/notices")
        assert resp.status_code == 200, resp.text[:300]
        return [n["kind"] for n in resp.json()["notices"]]

    wait_until(lambda: inside() == ["gpu-idle"], 10, "the session's own notices endpoint")

    # Then the culler stops it, and says why on alice's home page.
    wait_until(lambda: not ready(alice, "alice"), 60, "alice's idle session stopped")
    wait_until(lambda: not alice.get("/hub/api/users/alice").json()["servers"], 60, "cleanup")

    def alice_jobs() -> str:
        out = subprocess.run(
            ["squeue", "-h", "-u", "alice", "-t", "PENDING,RUNNING", "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    wait_until(lambda: alice_jobs() == "", 30, "alice's job gone from Slurm")
    web, _ = log_in(cull_hub, "alice", cull_hub.password)
    home = web.get("/hub/home").text
    assert "stopped by the hub because its GPU was not used for 20 seconds" in home, home[:3000]

    # bob's GPU is busy: past the idle limit (no browser ever), with no warning, still running.
    wait_until(lambda: time.monotonic() - began > 45, 60, "bob past every limit")
    assert ready(bob, "bob", "train")
    assert notices(bob, "bob", "train") == []

    samples = scrape(cull_hub)
    assert value(samples, "naic_culls_total", site="testcluster", reason="gpu-idle") == 1
    assert value(samples, "naic_culls_total", site="testcluster", reason="idle") == 0
    assert value(samples, "naic_gpu_hours_idle", project="demo") > 0  # alice's idle A100

    # Now bob stops using it: warned, and the warning goes when the GPU is busy again.
    set_gpu_use("bob", 0)
    wait_until(lambda: notices(bob, "bob", "train"), 40, "a GPU-idle warning for bob")
    set_gpu_use("bob", 60)
    wait_until(lambda: not notices(bob, "bob", "train"), 30, "bob's warning taken back")
    assert ready(bob, "bob", "train")
    bob.delete("/hub/api/users/bob/servers/train")


def test_only_the_culler_reads_all_sessions_and_sessions_report_only_for_themselves(
    cull_hub: Hub,
) -> None:
    alice, bob = client(cull_hub, "alice"), client(cull_hub, "bob")
    assert alice.get("/hub/api/naic/sessions").status_code == 403
    set_gpu_use("alice", 50)
    start(alice, "alice", A100)
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")
    try:
        spoof = bob.post("/hub/api/naic/users/alice/activity", json={})
        assert spoof.status_code == 403
        assert spoof.json()["message"] == "A session reports only for itself."
        bad = alice.post("/hub/api/naic/users/alice/activity", json={"gpus": "all idle"})
        assert bad.status_code == 400
        assert "`gpus` must be a list" in bad.json()["message"]
        cull = alice.post("/hub/api/naic/users/alice/cull", json={"kind": "idle", "reason": "mine"})
        assert cull.status_code == 403
        assert ready(alice, "alice")
    finally:
        alice.delete("/hub/api/users/alice/server")
