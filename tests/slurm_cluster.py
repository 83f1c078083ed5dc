"""Pytest plugin: the Slurm test cluster as a session fixture.

``slurm_cluster`` runs ``tests/cluster/slurm-up`` once per session and yields the facts
tests need (node, partitions, GPUs, test users). If the cluster was already running
(a developer started it by hand), it is left running afterwards; otherwise the fixture
stops it with ``tests/cluster/slurm-down``.

Missing root is a failure, not a skip: CI runs these tests as root, and a silently
skipped cluster test would hide a broken harness. Imports nothing from ``naic``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_DIR = Path(__file__).resolve().parent / "cluster"
SLURM_UP = CLUSTER_DIR / "slurm-up"
SLURM_DOWN = CLUSTER_DIR / "slurm-down"
STUDENTS = tuple(f"student{i:02}" for i in range(1, 11))
GUESTS = ("guest01", "guest02", "guest03")
TEST_USERS = ("alice", "bob", *STUDENTS, *GUESTS)

# The compute nodes on hosts of their own (network namespaces) and the address on the
# cluster network where this machine (slurmctld, slurmdbd, a hub) is: keep in step with
# slurm-up.
NODES = ("node1", "node2")
CLUSTER_ADDR = "10.77.0.1"

# slurm-up may have to apt-get install the packages on a fresh CI machine.
SLURM_UP_TIMEOUT_S = 900
SLURM_DOWN_TIMEOUT_S = 120


@dataclass(frozen=True)
class SlurmCluster:
    """What tests may rely on about the running test cluster."""

    name: str
    node: str
    partitions: tuple[str, ...]
    default_partition: str
    gpu_type: str
    gpu_count: int
    users: tuple[str, ...]
    nodes: tuple[str, ...] = NODES  # in partition "nodes", 2 GPUs each
    cluster_addr: str = CLUSTER_ADDR


def _slurm_answers() -> bool:
    """True if a slurmctld answers ``scontrol ping`` (Slurm may not even be installed)."""
    try:
        result = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "is UP" in result.stdout


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout


def _read_facts() -> SlurmCluster:
    """Ask the running cluster rather than trusting what slurm-up meant to configure."""
    config = _output(["scontrol", "show", "config"])
    name = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.MULTILINE)
    sinfo = _output(["sinfo", "--noheader", "--format=%P %N"]).split()
    names = sinfo[0::2]
    node = sinfo[1]
    node_info = _output(["scontrol", "--oneliner", "show", "node", node])
    gres = re.search(r"\bGres=gpu:(\w+):(\d+)", node_info)
    if name is None or gres is None:
        pytest.fail(f"the test cluster does not look like slurm-up's: {node_info}")
    default = next(p.rstrip("*") for p in names if p.endswith("*"))
    return SlurmCluster(
        name=name.group(1),
        node=node,
        partitions=tuple(p.rstrip("*") for p in names),
        default_partition=default,
        gpu_type=gres.group(1),
        gpu_count=int(gres.group(2)),
        users=TEST_USERS,
    )


def _run_script(script: Path, timeout_s: int) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode()
        pytest.fail(f"{script} did not finish within {timeout_s} s. Its output:\n{output}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The running test cluster; started for this session if it was not up."""
    if os.geteuid() != 0:
        pytest.fail(
            "The Slurm integration tests must run as root: tests/cluster/slurm-up installs "
            "packages, creates the users alice and bob, and starts munged, slurmctld and "
            "slurmd. Run pytest as root, or deselect them with -m 'not slurm'."
        )
    already_running = _slurm_answers()
    result = _run_script(SLURM_UP, SLURM_UP_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(
            f"tests/cluster/slurm-up failed with exit status {result.returncode}. "
            f"Its output:\n{result.stdout}"
        )
    print(result.stdout, end="")  # shown with -s or on failure; says what it started
    try:
        yield _read_facts()
    finally:
        # A cluster a developer started by hand stays up for them.
        if not already_running:
            down = _run_script(SLURM_DOWN, SLURM_DOWN_TIMEOUT_S)
            if down.returncode != 0:
                pytest.fail(f"tests/cluster/slurm-down failed:\n{down.stdout}")
