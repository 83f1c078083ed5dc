"""The test cluster does what a user of a GPU Slurm cluster would check first.

Jobs are submitted as root for the test users (``sbatch --uid --gid``), the way the
hub submits them, and report back through an output file in a directory those users
can write.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

JOB_TIMEOUT_S = 120

REPORT_SCRIPT = """#!/bin/bash
echo "user=$(id -un)"
echo "group=$(id -gn)"
echo "cuda_visible_devices=${CUDA_VISIBLE_DEVICES-unset}"
echo "slurm_job_gpus=${SLURM_JOB_GPUS-unset}"
"""


def run_job_as(user: str, workdir: Path, *sbatch_args: str) -> dict[str, str]:
    """Submit REPORT_SCRIPT as `user`, wait for it to end, and return what it printed."""
    script = workdir / "report.sh"
    script.write_text(REPORT_SCRIPT)
    script.chmod(0o755)
    output = workdir / "report.out"
    name = f"naic-test-{uuid.uuid4().hex[:8]}"
    argv = [
        "sbatch",
        f"--uid={user}",
        f"--gid={user}",  # without it the job runs with group root
        f"--job-name={name}",
        f"--chdir={workdir}",
        f"--output={output}",
        "--time=00:02:00",
        "--wait",
        *sbatch_args,
        str(script),
    ]
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=JOB_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", f"--name={name}"], check=False, timeout=30)
        pytest.fail(f"job {name} did not finish within {JOB_TIMEOUT_S} s: {' '.join(argv)}")
    assert result.returncode == 0, f"sbatch failed: {result.stdout}{result.stderr}"
    assert output.exists(), f"the job wrote no output file {output}: {result.stdout}"
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_gpu_job_runs_as_the_user_with_one_gpu(slurm_cluster, shared_dir, user):
    assert user in slurm_cluster.users
    report = run_job_as(
        user,
        shared_dir,
        "--partition=accel",
        f"--gres=gpu:{slurm_cluster.gpu_type}:1",
    )

    assert report["user"] == user
    assert report["group"] == user
    assert re.fullmatch(r"\d", report["cuda_visible_devices"]), report
    assert report["slurm_job_gpus"] != "unset", report


def test_job_asking_two_gpus_gets_two_distinct_devices(slurm_cluster, shared_dir):
    report = run_job_as(
        "alice",
        shared_dir,
        "--partition=accel",
        f"--gres=gpu:{slurm_cluster.gpu_type}:2",
    )

    devices = report["cuda_visible_devices"].split(",")
    assert len(devices) == 2, report
    assert len(set(devices)) == 2, report
    assert all(re.fullmatch(r"\d", d) for d in devices), report
    assert len(report["slurm_job_gpus"].split(",")) == 2, report


def test_partitions_and_gpus_are_advertised(slurm_cluster):
    sinfo = subprocess.run(
        ["sinfo", "--noheader", "--format=%P %a"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    partitions = dict(line.split() for line in sinfo.splitlines())
    # "nodes" holds the two network-namespace nodes of the multi-host site.
    assert partitions == {"normal*": "up", "accel": "up", "nodes": "up"}

    node = subprocess.run(
        ["scontrol", "show", "node", slurm_cluster.node],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "Gres=gpu:a100:4" in node.split()
    assert slurm_cluster.gpu_count == 4


def test_accel_partition_gives_a_start_estimate(slurm_cluster):
    # Only a test: nothing is queued. sbatch reports the estimate on stderr.
    result = subprocess.run(
        [
            "sbatch",
            "--test-only",
            "--uid=alice",
            "--gid=alice",
            "--partition=accel",
            f"--gres=gpu:{slurm_cluster.gpu_type}:1",
            "--time=00:10:00",
            "--wrap=true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    answer = result.stdout + result.stderr
    assert result.returncode == 0, answer

    match = re.search(r"to start at (\S+)", answer)
    assert match, answer
    # An estimate far in the future (the 2150s) would mean infinite time limits.
    start = datetime.fromisoformat(match.group(1))
    assert start < datetime.now() + timedelta(hours=1), answer
    assert "in partition accel" in answer
