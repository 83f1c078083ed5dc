"""Big copies as Slurm jobs (`naic-data stage NAME --job`): the session looks the dataset up
at the hub, then submits a job that copies by explicit paths (`naic-data copy`), so the job
needs no hub token and never gets one (`--export=NONE`, as batch jobs). It runs on the
site's transfer partition (the catalogue's `transfer_partition`, else the session's), is
charged to the session's Slurm account, and writes its progress lines into its log, which
`naic-data job JOBID` and the staging widget follow.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

LOG = ".naic-stage-{job}.log"
PROGRESS = re.compile(r"^copied [\d.]+ of [\d.]+ MB.*$", re.M)
DONE = re.compile(r"^(all \d+ files match.*|no manifest to check against.*)$", re.M)
FAILED = re.compile(r"^naic-data copy: (.*)$", re.M)


class JobError(Exception):
    pass


def session() -> dict:
    return json.loads(os.environ.get("NAIC_SESSION") or "{}")


def job_argv(
    source: str, target: Path, *, name: str, manifest: str | None, facts: dict, hours: float,
    python: str = sys.executable,
) -> list[str]:  # fmt: skip
    """Pure: the `sbatch` of a staging job."""
    if facts.get("backend") != "slurm":
        raise JobError("a staging job needs a Slurm session; copy here without --job instead.")
    if not 0 < hours <= 48:
        raise JobError("--hours must be more than 0 and at most 48.")
    command = [python, "-m", "naic.extensions.data", "copy", source, str(target), "--dataset", name]
    if manifest:
        command += ["--manifest", manifest]
    partition = facts.get("transfer_partition") or facts.get("partition")
    minutes = max(1, round(hours * 60))
    return [
        "sbatch", "--parsable", "--job-name=naic-stage", f"--time={minutes}",
        "--cpus-per-task=2", "--mem=2G", "--export=NONE",
        f"--output={Path.home() / LOG.format(job='%j')}", f"--chdir={Path.home()}",
        *([f"--partition={partition}"] if partition else []),
        *([f"--account={facts['slurm_account']}"] if facts.get("slurm_account") else []),
        "--wrap", f"exec {shlex.join(command)}",
    ]  # fmt: skip


def submit(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise JobError(f"Slurm did not take the job: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip().split(";")[0]


def state_of(job_id: str) -> str:
    """Slurm's state of the job: squeue while it is known there, then sacct."""
    for argv in (["squeue", "-h", "-j", job_id, "-o", "%T"],
                 ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"]):  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.split()
        if out:
            return out[0].split()[0].rstrip("+")
    return "UNKNOWN"


def job_words(state: str, log: str) -> tuple[str, bool]:
    """Pure: (what the job is doing, in words; whether it is over) from Slurm's state and
    its log."""
    progress = PROGRESS.findall(log)
    done, failed = DONE.search(log), FAILED.search(log)
    if state in ("PENDING", "CONFIGURING"):
        return "queued", False
    if state == "RUNNING":
        return (progress[-1] if progress else "started"), False
    if state == "COMPLETED" and done:
        return f"done: {done.group(1)}", True
    if failed:
        return f"failed: {failed.group(1)}", True
    if state == "TIMEOUT":
        return "stopped at its time limit; run it again to resume", True
    if state.startswith("CANCELLED"):
        return "cancelled; run it again to resume", True
    return f"ended ({state.lower()})", state not in ("UNKNOWN",)


def follow(job_id: str) -> tuple[str, bool]:
    log = Path.home() / LOG.format(job=job_id)
    text = log.read_text(errors="replace") if log.exists() else ""
    return job_words(state_of(job_id), text)
