"""A site of several hosts: compute nodes node1 and node2, each a network namespace with its
own address and slurmd (tests/cluster/slurm-up), and a hub whose API listens on the cluster
network's address rather than on 127.0.0.1. Sessions, the estimate, a workshop reservation
and Dask workers are tested across the two nodes."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import (
    block,
    cluster_site,
    squeue,
    start_testcluster_hub,
    user_token,
    wait_ready,
)
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SESSION = {"site": "cluster", "resource": "gpu", "gpus": 1, "hours": 0.5}
RESERVATION = "naic-ws-two-nodes"


@pytest.fixture(scope="module")
def multi_hub(slurm_cluster) -> Iterator[Hub]:
    """`naic up --hub-ip` the cluster network's address, with the site `cluster`."""
    hub_dir = Path(tempfile.mkdtemp(prefix="naic-multi-host-", dir="/var/tmp"))
    hub_dir.chmod(0o755)  # jobs run as the test users and read the hub's venv and material
    hub = start_testcluster_hub(hub_dir, cluster_site, "--hub-ip", slurm_cluster.cluster_addr)
    with hub.api() as api:
        api.post("/users/ingrid")
        assert api.post("/groups/instructors/users", json={"users": ["ingrid"]}).is_success
    try:
        yield hub
    finally:
        stop_hub(hub)
        shutil.rmtree(hub_dir, ignore_errors=True)
        subprocess.run(["scancel", "--user=alice"], check=False)
        subprocess.run(["scontrol", "delete", f"ReservationName={RESERVATION}"],
                       capture_output=True, check=False)  # fmt: skip


def api_of(hub: Hub, name: str) -> httpx.Client:
    token = user_token(hub, name)
    return httpx.Client(
        base_url=hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=60
    )


def answers_from(netns: str, host: str, port: int) -> bool:
    """Whether a TCP connection from inside `netns` (a node's host) to host:port succeeds."""
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=3)"
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", probe], capture_output=True, check=False
    )
    return done.returncode == 0


def test_a_session_on_node2_answers_through_the_proxy_and_reaches_the_hub_on_the_network(
    multi_hub: Hub, slurm_cluster, blockers: list[str]
) -> None:
    blockers.append(block("node1"))
    token = user_token(multi_hub, "alice")
    api = httpx.Client(
        base_url=multi_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert api.post("/users/alice/server", json={"user_options": SESSION}).status_code in (201, 202)
    wait_ready(api, "alice")
    assert squeue("--user=alice", "--states=RUNNING", "--format=%N").strip() == "node2"

    code = "import os, socket; print(socket.gethostname(), os.environ['JUPYTERHUB_API_URL'])"
    host, api_url = asyncio.run(run_cell(multi_hub.url + "user/alice/", token, code)).split()
    assert host == "node2"
    hub_api = urlparse(api_url)
    assert hub_api.hostname == slurm_cluster.cluster_addr, api_url
    # The node's own loopback has no hub: the session could only have used the network.
    assert answers_from("naic-node2", slurm_cluster.cluster_addr, hub_api.port)
    assert not answers_from("naic-node2", "127.0.0.1", hub_api.port)

    assert api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while api.get("/users/alice").json()["servers"]:
        assert time.monotonic() < deadline, "the session did not stop"
        time.sleep(0.5)
    assert squeue("--user=alice", "--states=PENDING,RUNNING", "--format=%i") == ""


def test_the_estimate_counts_both_nodes(multi_hub: Hub, blockers: list[str]) -> None:
    api = api_of(multi_hub, "alice")
    params = {k: str(v) for k, v in SESSION.items()}
    blockers.append(block("node1"))
    one_free = api.get("/naic/estimate", params=params)
    assert one_free.status_code == 200, one_free.text
    assert one_free.json()["message"] == "Starts now", one_free.json()

    blockers.append(block("node2"))
    both_full = api.get("/naic/estimate", params=params).json()
    assert both_full["wait_s"] >= 60, both_full
    assert both_full["message"].startswith("Expected start in about"), both_full


def test_a_workshop_for_four_gpus_reserves_both_nodes(multi_hub: Hub) -> None:
    ingrid = api_of(multi_hub, "ingrid")
    start = datetime.now(UTC) + timedelta(hours=2)
    made = ingrid.post(
        "/naic/workshops",
        json={
            "name": "two-nodes",
            "seats": 4,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "resource": "cluster:gpu",
            "gpus": 1,
            "hours": 1,
            "project": "course",
        },
    )
    assert made.status_code == 201, made.text
    shown = subprocess.run(
        ["scontrol", "-o", "show", "reservation", RESERVATION], capture_output=True, text=True
    )
    assert "Nodes=node[1-2]" in shown.stdout, shown.stdout + shown.stderr
    assert "NodeCnt=2" in shown.stdout, shown.stdout


DASK_CELL = """
import socket
from distributed import Client
from naic.extensions.dask import slurm_cluster
# 12 cores a worker: two do not fit on one 16-core node beside the session.
cluster = slurm_cluster(cores=12)
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=150)
print(",".join(sorted(set(client.run(socket.gethostname).values()))))
client.close()
cluster.close()
"""


def test_dask_workers_on_both_nodes_reach_the_scheduler_in_the_session(multi_hub: Hub) -> None:
    token = user_token(multi_hub, "alice")
    api = httpx.Client(
        base_url=multi_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert api.post("/users/alice/server", json={"user_options": SESSION}).status_code in (201, 202)
    try:
        wait_ready(api, "alice")
        out = asyncio.run(run_cell(multi_hub.url + "user/alice/", token, DASK_CELL, timeout_s=200))
        assert out.strip().splitlines()[-1] == "node1,node2", out
    finally:
        api.delete("/users/alice/server")
        deadline = time.monotonic() + 60
        while squeue("--user=alice", "--states=PENDING,RUNNING", "--format=%i").strip():
            assert time.monotonic() < deadline, "alice's jobs did not end"
            time.sleep(0.5)


def test_the_hub_api_is_not_on_loopback(multi_hub: Hub, slurm_cluster) -> None:
    """What `ss` shows an operator: the hub's API on the cluster address only."""
    port = int(multi_hub.url.rsplit(":", 1)[1].strip("/")) + 81
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    with socket.create_connection((slurm_cluster.cluster_addr, port), timeout=3):
        pass
