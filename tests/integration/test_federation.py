"""One request, the site that starts it soonest (#22): alice asks for one GPU with 40 GB
for an hour, not for a site. The hub compares the multi-host Slurm site (compute nodes
node1 and node2, each its own host, A100 40 GB), the cloud pool (two VMs over SSH, L40S
48 GB) and a remote centre whose login node accepts the connection and never answers; the
default is whichever starts first, and an "any site" request lands there. A session
pinned to the full Slurm site is offered the pool when a GPU there frees, and moves."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import (
    client,
    ready,
    server_path,
    squeue,
    start,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

ASK = {"gpus": "1", "gpu_memory_gb": "40", "hours": "1"}
TIMEOUT_S = 8  # naic.spawners.federation.ASK_TIMEOUT_S


def options(c: httpx.Client) -> tuple[dict, float]:
    started = time.monotonic()
    resp = c.get("/hub/api/naic/options", params=ASK, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json(), time.monotonic() - started


def by_site(answer: dict) -> dict[str, dict]:
    return {o["site"]: o for o in answer["options"]}


def test_any_site_starts_where_it_is_soonest_and_a_hanging_site_is_no_answer(
    federated_hub: Hub, full_nodes: list[str]
) -> None:
    alice = client(federated_hub, "alice")

    # The Slurm node is full, the pool free: the pool is offered first, Slurm after it
    # with its queue, and the remote centre as "no answer" within the time-out.
    answer, took = options(alice)
    assert took < TIMEOUT_S + 5, took
    sites = by_site(answer)
    assert set(sites) == {"cloud", "cluster", "remote"}
    assert (sites["cloud"]["answer"], sites["cloud"]["start"]) == ("yes", "now")
    assert sites["cluster"]["answer"] == "yes"
    assert sites["cluster"]["wait_s"] >= 60 and "behind" in sites["cluster"]["message"]
    assert sites["remote"]["answer"] == "no answer"
    assert sites["remote"]["message"] == f"Remote centre did not answer within {TIMEOUT_S} s."
    assert sites["cloud"]["gpu"] == {"model": "NVIDIA L40S", "memory_gb": 48}
    assert sites["cluster"]["gpu"] == {"model": "NVIDIA A100", "memory_gb": 40}
    chosen = answer["options"][answer["default"]]
    assert chosen["site"] == "cloud"
    start(alice, "alice", {"any": True, **ASK})  # as the form's "any site" card sends it
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session on the pool")
    server = alice.get("/hub/api/users/alice").json()["servers"][""]
    assert server["user_options"] == chosen["user_options"]  # where "any" went, for the page
    assert squeue("--user=alice", "--format=%i", "--noheader").strip() == ""  # none on Slurm

    # The pool full (alice's three more sessions) and the Slurm nodes free: Slurm first.
    for name in ("p2", "p3", "p4"):
        start(alice, "alice", chosen["user_options"], server=name)
    for name in ("p2", "p3", "p4"):
        wait_until(lambda n=name: ready(alice, "alice", n), 120, f"pool session {name}")
    subprocess.run(["scancel", *full_nodes], check=True)
    wait_until(lambda: not squeue("--user=bob", "--format=%i", "--noheader").strip(), 60,
               "bob's jobs gone")  # fmt: skip
    answer, _ = options(alice)
    sites = by_site(answer)
    assert sites["cloud"]["answer"] == "yes" and sites["cloud"]["start"] is None
    assert "in use" in sites["cloud"]["message"]
    chosen = answer["options"][answer["default"]]
    assert chosen["site"] == "cluster", answer
    start(alice, "alice", {"any": True, **ASK}, server="any")
    wait_until(lambda: ready(alice, "alice", "any"), 150, "alice's session on Slurm")
    server = alice.get("/hub/api/users/alice").json()["servers"]["any"]
    assert server["user_options"]["site"] == "cluster"
    assert squeue("--user=alice", "--format=%N", "--noheader").strip() in ("node1", "node2")


def first_offer(c: httpx.Client, server: str, timeout_s: float) -> tuple[dict, list[str]]:
    """The first progress event of alice's `server` that offers a move, and the messages
    before it (what her spawn page shows)."""
    url = f"/hub/api/users/alice/servers/{server}/progress"
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    with c.stream("GET", url, timeout=httpx.Timeout(10, read=timeout_s)) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if "move" in event:
                    return event, seen
                seen.append(event.get("message", ""))
            if time.monotonic() > deadline:
                break
    pytest.fail(f"no offer to move within {timeout_s} s; the page showed {seen}")


def test_a_queued_session_is_offered_a_freed_pool_gpu_and_moves_there_leaving_no_job(
    federated_hub: Hub, full_nodes: list[str]
) -> None:
    alice = client(federated_hub, "alice")
    two = {"site": "cloud", "resource": "l40s", "gpus": 2, "hours": 1}
    for name in ("p1", "p2"):  # the pool full: two VMs of two GPUs
        start(alice, "alice", two, server=name)
    for name in ("p1", "p2"):
        wait_until(lambda n=name: ready(alice, "alice", n), 120, f"pool session {name}")
    pinned = {"site": "cluster", "resource": "gpu", "gpus": 1, "hours": 1}
    start(alice, "alice", pinned, server="q")
    wait_until(lambda: "PENDING" in squeue("--user=alice", "--format=%T"), 60, "alice queued")
    job = squeue("--user=alice", "--format=%i").strip()

    # Nothing sooner while the pool is full; then p2 ends and a pool GPU is free.
    resp = alice.post("/hub/api/naic/move", json={"server": "q", "to": "cloud:l40s"})
    assert resp.status_code == 409, resp.text
    assert resp.json()["message"].startswith("Cloud pool would not start it sooner: ")
    resp = alice.post("/hub/api/naic/move", json={"server": "q", "to": "testcluster:cpu"})
    assert resp.status_code == 400  # no GPU there: not what this session asks for
    assert resp.json()["message"] == '"to": testcluster:cpu does not offer what this session asks.'
    resp = alice.post("/hub/api/naic/move", json={"server": "q"})
    assert resp.status_code == 400 and "which session, and where" in resp.json()["message"]
    assert alice.delete(server_path("alice", "p2")).status_code in (202, 204)
    wait_until(lambda: not ready(alice, "alice", "p2"), 60, "p2 stopped")
    offer, before = first_offer(alice, "q", 60)
    assert any("Queued at cluster" in m for m in before), before
    assert offer["move"]["site"] == "cloud" and offer["move"]["start"] == "now", offer
    assert offer["message"].startswith("NVIDIA L40S (declared) at Cloud pool could start"), offer
    assert 'data-naic-move="cloud:l40s"' in offer["html_message"]

    # bob cannot move alice's session; alice can, in one request.
    bob = client(federated_hub, "bob")
    moved = bob.post("/hub/api/naic/move", json={"server": "q", "to": "cloud:l40s"})
    assert moved.status_code == 409  # bob has no session "q" waiting: his own are all he reaches
    assert squeue(f"--jobs={job}", "--format=%T").strip() == "PENDING"
    moved = alice.post("/hub/api/naic/move", json={"server": "q", "to": "cloud:l40s"})
    assert moved.status_code == 202, moved.text
    assert "Moving to Cloud pool" in moved.json()["message"]
    wait_until(lambda: ready(alice, "alice", "q"), 120, "alice's moved session")
    server = alice.get("/hub/api/users/alice").json()["servers"]["q"]
    assert server["user_options"]["site"] == "cloud"
    assert squeue("--user=alice", "--format=%i").strip() == ""  # the old job is gone
    assert alice.get("/user/alice/q/api/status").status_code == 200
    log = federated_hub.log_text()
    assert "Moved alice:q from cluster to cloud" in log, log[-3000:]


def test_bad_asks_get_400_with_the_sentence(federated_hub: Hub) -> None:
    alice = client(federated_hub, "alice")
    resp = alice.get("/hub/api/naic/options", params={"gpus": "lots"})
    assert resp.status_code == 400
    assert resp.json()["message"] == '"gpus" must be a whole number from 1 to 64.'
    anonymous = httpx.get(federated_hub.url + "hub/api/naic/options", params=ASK)
    assert anonymous.status_code == 403
