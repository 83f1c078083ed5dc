"""`naic doctor` on the Slurm test cluster: the scheduler, slurmdbd, the hub's address
against the nodes', a test job per partition that reaches the hub's API, and a node's clock.

Needs the multi-host cluster of tests/cluster/slurm-up: slurmctld and slurmdbd on this
machine at `slurm_cluster.cluster_addr` (10.77.0.1), node `hostname -s` at 127.0.0.1
(partitions normal, accel) and node1, node2 on hosts of their own (partition nodes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from naic.hub import catalogue
from naic.hub.app.doctor import here
from naic.hub.app.doctor.findings import clock_finding
from naic.hub.app.doctor.site_findings import job_argv, parse_report
from naic.spawners.site import site_for
from tests.hub_process import NAIC, free_port_base, start_hub, stop_hub
from tests.integration.helpers import testcluster_catalogue as cluster_catalogue
from tests.slurm_cluster import SLURM_UP, SlurmCluster

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "catalogue-testcluster.yaml"
SLURMDBD_PID = Path("/var/lib/naic-slurm/run/slurmdbd.pid")


def doctor(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([NAIC, "doctor", *args], capture_output=True, text=True, timeout=600)
    print(result.stdout, result.stderr, sep="\n")  # shown when the test fails
    return result


def multi_host(path: Path) -> Path:
    """The test cluster's catalogue plus a resource on partition `nodes` (node1, node2:
    hosts of their own, which reach this machine only at the cluster address)."""
    cat = cluster_catalogue()
    cat["sites"]["testcluster"]["resources"]["node-cpu"] = {
        "title": "CPU on a compute node",
        "partition": "nodes",
        "cpus": {"default": 1, "max": 4},
        "memory_gb": {"default": 1, "max": 8},
        "max_hours": 4,
    }
    path.write_text(yaml.safe_dump(cat))
    return path


def stop_slurmdbd() -> None:
    """SIGTERM to slurmdbd (its pid file), then wait until it has gone."""
    pid = int(SLURMDBD_PID.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"slurmdbd (pid {pid}) did not stop within 20 s")


def start_slurmdbd() -> None:
    """tests/cluster/slurm-up starts what is not running (and waits until it answers)."""
    subprocess.run([str(SLURM_UP)], check=True, capture_output=True, timeout=900)


@pytest.fixture
def slurmdbd_stopped(slurm_cluster: SlurmCluster) -> Iterator[None]:
    stop_slurmdbd()
    try:
        yield
    finally:
        start_slurmdbd()


def test_doctor_passes_with_a_running_hub_on_the_cluster_address(
    slurm_cluster: SlurmCluster, hub_dir: Path
) -> None:
    addr = slurm_cluster.cluster_addr
    cat = hub_dir / "catalogue.yaml"
    cat.write_text(yaml.safe_dump(cluster_catalogue()))
    hub = start_hub(hub_dir / "data", "--catalogue", str(cat), "--hub-ip", addr)
    try:
        port = int(hub.url.rstrip("/").rpartition(":")[2])
        api = f"http://{addr}:{port + 81}/hub/api"
        result = doctor(
            "--catalogue", str(EXAMPLE), "--port", str(port), "--hub-ip", addr,
            "--data-dir", str(hub.data_dir), "--test-user", "alice",
        )  # fmt: skip
    finally:
        stop_hub(hub)
    assert result.returncode == 0
    out = result.stdout
    assert f"jobs get {api}\n" in out
    assert "ok       testcluster: scheduler: slurmctld at " in out
    assert f"ok       testcluster: slurmdbd: slurmdbd at {addr} answers\n" in out
    assert f"ok       testcluster: hub address: nodes are given {api}\n" in out
    for partition in ("normal", "accel"):
        assert f"...      testcluster: running a test job in partition {partition} " in out
    assert out.count(f"reached the hub at {api}/ (HTTP ") == 2
    assert out.count("'s clock is within ") == 2
    assert out.rstrip().splitlines()[-1].startswith("naic doctor: all ")


def test_doctor_passes_on_the_example_with_its_stand_in_on_the_cluster_address(
    slurm_cluster: SlurmCluster, hub_dir: Path
) -> None:
    """No hub running: the doctor answers on the hub's API address for the test jobs."""
    addr = slurm_cluster.cluster_addr
    port = free_port_base()
    data = str(hub_dir / "data")
    result = doctor(
        "--catalogue", str(multi_host(hub_dir / "cat.yaml")), "--port", str(port),
        "--hub-ip", addr, "--data-dir", data,
    )  # fmt: skip
    assert result.returncode == 0
    api = f"http://{addr}:{port + 81}/hub/api"
    assert f"the hub is not running: answering on {addr}:{port + 81} for the test jobs" in (
        result.stdout
    )
    # One job per partition, node1 or node2 among them, each reaching the stand-in.
    assert result.stdout.count(f"reached the hub at {api}/ (HTTP 200)") == 3
    assert any(f"a job on node {n} reached" in result.stdout for n in slurm_cluster.nodes)


def test_a_hub_on_loopback_is_out_of_reach_of_the_compute_nodes(
    slurm_cluster: SlurmCluster, hub_dir: Path
) -> None:
    cat = multi_host(hub_dir / "cat.yaml")
    port = str(free_port_base())
    data = str(hub_dir / "data")
    nodes = ", ".join(sorted(slurm_cluster.nodes))
    line = (
        "problem  testcluster: hub address: the hub listens on 127.0.0.1, which compute nodes "
        f"cannot reach ({nodes}): start it with --hub-ip <address the nodes reach>\n"
    )
    quick = doctor("--catalogue", str(cat), "--port", port, "--data-dir", data, "--quick")
    assert quick.returncode == 1 and line in quick.stdout
    full = doctor("--catalogue", str(cat), "--port", port, "--data-dir", data)
    assert full.returncode == 1 and line in full.stdout
    # The job on node1/node2 is not reported twice for the same cause; its clock still is.
    assert "cannot reach the hub at" not in full.stdout

    # naic up starts, with the sentence as a warning.
    hub = start_hub(hub_dir / "data", "--catalogue", str(cat))
    try:
        assert f"naic up: warning: {line[9:]}" in hub.log_text()
    finally:
        stop_hub(hub)


def test_a_stopped_slurmdbd_is_named_with_its_host(
    slurm_cluster: SlurmCluster, hub_dir: Path, slurmdbd_stopped: None
) -> None:
    addr = slurm_cluster.cluster_addr
    result = doctor(
        "--catalogue", str(EXAMPLE), "--port", str(free_port_base()), "--hub-ip", addr,
        "--data-dir", str(hub_dir / "data"),
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        f"problem  testcluster: slurmdbd: slurmdbd at {addr} does not answer: start it "
        f"(`systemctl start slurmdbd` on {addr}) or check AccountingStorageHost in slurm.conf\n"
    ) in result.stdout
    assert "ok       testcluster: scheduler: " in result.stdout  # slurmctld still answers


def test_a_nodes_clock_from_its_test_job(slurm_cluster: SlurmCluster, hub_dir: Path) -> None:
    """The job's own clock reading on node1/node2 against the stand-in's stamp; then the
    same reading with a skew injected, as a node with a wrong clock would report it."""
    cat = catalogue.load(multi_host(hub_dir / "cat.yaml"))
    site = site_for(cat, "testcluster")
    port = free_port_base()
    url = f"http://{slurm_cluster.cluster_addr}:{port}/hub/api"
    with here.stand_in(slurm_cluster.cluster_addr, port) as listening:
        assert listening
        r = asyncio.run(site.run(job_argv("nodes", url), as_user="alice", timeout=150))
    report = parse_report(r.out)
    assert report is not None, r.out + r.err
    node = report["node"]
    assert node in slurm_cluster.nodes and report["status"] == 200
    node_time = (report["t0"] + report["t1"]) / 2
    hub_time = float(report["stamp"])
    assert clock_finding(node, node_time, hub_time).ok  # the nodes share this machine's clock
    skewed = clock_finding(node, node_time + 42.0, hub_time)
    assert not skewed.ok
    assert skewed.sentence == (
        f"node {node}'s clock is {node_time + 42.0 - hub_time:.1f} s ahead of the hub's: run "
        "chrony/ntp on it; tokens and estimates depend on it"
    )
