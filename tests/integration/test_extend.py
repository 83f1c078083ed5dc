"""Extending a running session on the real test cluster: the hub raises the Slurm time limit
as operator, within the catalogue's policy, for the session's owner (or the session itself)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import (
    client,
    ready,
    server_token,
    start,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

A100 = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}
LOCAL = {"site": "local", "resource": "cpu-small", "hours": 0.5}
GPU_EXTEND = "/hub/api/naic/users/alice/servers/gpu/extend"


def squeue(job_id: str, fmt: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", fmt], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def job_of(name: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-n", name, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    )
    ids = out.stdout.split()
    assert len(ids) == 1, ids
    return ids[0]


def test_a_session_is_extended_once_by_the_hub_then_refused(extend_hub: Hub) -> None:
    alice, bob = client(extend_hub, "alice"), client(extend_hub, "bob")
    start(alice, "alice", A100, server="gpu")
    wait_until(lambda: ready(alice, "alice", "gpu"), 120, "alice's A100 session ready")
    job = job_of("naic-alice-gpu")
    try:
        assert squeue(job, "%l") == "30:00"

        # Only the owner, her session and admins may extend it.
        refused = bob.post(GPU_EXTEND, json={})
        assert refused.status_code == 403
        assert refused.json()["message"] == "You may extend only your own sessions."
        bad = alice.post(GPU_EXTEND, json={"hours": "lots"})
        assert bad.status_code == 400
        assert bad.json()["message"] == (
            'Send nothing, or {"hours": h} with a positive number of hours; you sent "lots".'
        )
        offer = alice.get(GPU_EXTEND).json()
        assert (offer["offered"], offer["extensions_left"], offer["hours_total"]) == (True, 1, 0.5)

        # The session itself asks, with its own token (the SessionPanel's way).
        session = httpx.Client(
            base_url=extend_hub.url,
            headers={"Authorization": f"token {server_token(job)}"},
            timeout=30,
        )
        resp = session.post(GPU_EXTEND)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert squeue(job, "%l") == "1:30:00"
        slurm_end = datetime.fromisoformat(squeue(job, "%e")).astimezone(UTC)
        assert datetime.fromisoformat(body["ends_at"]) == slurm_end
        assert (body["hours_total"], body["extensions_left"]) == (1.5, 0)

        again = alice.post(GPU_EXTEND, json={"hours": 1})
        assert again.status_code == 403
        assert again.json()["message"] == (
            "This resource allows at most 1 extension; you have used 1."
        )
        assert squeue(job, "%l") == "1:30:00"
        assert alice.get(GPU_EXTEND).json()["extensions_left"] == 0
    finally:
        alice.delete("/hub/api/users/alice/servers/gpu")
        subprocess.run(["scancel", job], check=False)


def test_only_running_slurm_sessions_can_be_extended(extend_hub: Hub) -> None:
    alice, bob = client(extend_hub, "alice"), client(extend_hub, "bob")
    none = bob.post("/hub/api/naic/users/bob/extend")
    assert none.status_code == 404
    assert none.json()["message"] == "bob has no running session."

    start(alice, "alice", LOCAL)
    wait_until(lambda: ready(alice, "alice"), 60, "alice's local session ready")
    local = alice.post("/hub/api/naic/users/alice/extend", json={"hours": 1})
    assert local.status_code == 409
    assert local.json()["message"] == (
        "Only sessions on a Slurm site can be extended; this one runs on This machine."
    )
    alice.delete("/hub/api/users/alice/server")
