"""What Slurm prints, read, and what its states mean in words a user reads. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tornado import web

from naic.spawners.site import says_unreachable

#: Slurm states after which the job will never run again, in words a user reads.
END_REASONS = {
    "COMPLETED": "the session ended",
    "CANCELLED": "cancelled",
    "TIMEOUT": "time limit reached",
    "PREEMPTED": "preempted by a higher-priority job",
    "OUT_OF_MEMORY": "out of memory",
    "NODE_FAIL": "node failure",
    "FAILED": "the server failed to start or crashed",
    "BOOT_FAIL": "node failure",
    "DEADLINE": "time limit reached",
}
#: Pending reasons from squeue, in words.
WAITING_FOR = {
    "Resources": "free GPUs or CPUs",
    "Priority": "jobs with higher priority",
    "ReqNodeNotAvail": "a node that is not available",
    "Reservation": "its reservation to begin",
    "None": "the scheduler",
}


SACCT_ARGS = ["--noheader", "--allocations", "--parsable2", "--format=State,End", "--jobs"]


def end_reason_from_sacct(out: str) -> str:
    """Pure: words for the first state sacct prints ("CANCELLED by 1001" → "cancelled")."""
    words = out.split("|")[0].split()
    return END_REASONS.get(words[0], "") if words else ""


def end_from_sacct(out: str) -> datetime | None:
    """Pure: when the job ended, from `SACCT_ARGS`' first line (None: running, or unknown)."""
    fields = out.splitlines()[0].split("|") if out.strip() else []
    return time_from_slurm(fields[1]) if len(fields) > 1 else None


def job_name(user: str, server: str) -> str:
    """`naic-<user>[-<server>]`; server names are the user's own words, so keep safe letters."""
    name = f"naic-{user}" + (f"-{server}" if server else "")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64]


def dask_job_name(job_id: str) -> str:
    """Name of a session's Dask worker jobs (as `naic.extensions.dask` submits them)."""
    return f"naic-dask-{job_id}"


def minutes_from_slurm(text: str) -> int | None:
    """Pure: a Slurm duration (`30:00`, `1:30:00`, `2-00:00:00`, `45`) in whole minutes;
    None for UNLIMITED, N/A or anything else."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        h, mins, secs = a, b or 0, c or 0
    elif c is not None:  # hours:minutes:seconds
        h, mins, secs = a, b, c
    elif b is not None:  # minutes:seconds
        h, mins, secs = 0, a, b
    else:  # minutes
        h, mins, secs = 0, a, 0
    return (days or 0) * 1440 + h * 60 + mins + (1 if secs else 0)


def time_from_slurm(text: str) -> datetime | None:
    """Pure: Slurm's time without a zone (the cluster's local time) in UTC; None for N/A."""
    try:
        return datetime.fromisoformat(text.strip()).astimezone(UTC)
    except ValueError:
        return None


def reservation_end(text: str) -> datetime | None:
    """Pure: the `EndTime=` of `scontrol show reservation NAME`, in UTC."""
    m = re.search(r"\bEndTime=(\S+)", text)
    return time_from_slurm(m.group(1)) if m else None


#: How a session's job log names its batch script's own refusals (`fail` in the script).
FAIL_PREFIX = "naic-hub: "


#: What slurmstepd writes into a job's log when it kills the job for its memory (sampling,
#: OverMemoryKill) or the kernel's OOM killer struck in its cgroup.
_MEMORY_KILLED = re.compile(r"Exceeded job memory limit|exceeded memory limit|oom[-_ ]kill", re.I)


def reason_from_log(text: str) -> str:
    """Pure: an end reason the job's log tells and its state does not (a FAILED job that
    slurmstepd killed for its memory is "out of memory"); "" when the log tells none."""
    return END_REASONS["OUT_OF_MEMORY"] if _MEMORY_KILLED.search(text) else ""


def failure_from_log(text: str) -> str:
    """Pure: why a session's job ended before its server answered, from its log's last
    lines: the script's own sentence (`naic-hub: …`) if it gave one, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith(FAIL_PREFIX)]
    if ours:
        return ours[-1].removeprefix(FAIL_PREFIX).rstrip(".")[:300]
    return lines[-1][:300] if lines else ""


def submit_error(site_title: str, message: str) -> web.HTTPError:
    """A failed sbatch as the sentence the student reads (503: try later; 400: won't fit)."""
    if says_unreachable(message):
        return web.HTTPError(
            503,
            f"The scheduler at {site_title} is not answering, so no session can be queued "
            "right now; running sessions are not affected. Please try again in a few minutes.",
        )
    detail = message.split("error:")[-1].strip().rstrip(".")
    return web.HTTPError(400, f"{site_title} refused the session: {detail}.")


def login_node_error(site_title: str, exc: Exception) -> web.HTTPError:
    """A login node the hub cannot use, as the sentence the student reads (503: try later)."""
    return web.HTTPError(
        503,
        f"The hub cannot use the login node of {site_title}, so no session was queued: {exc} "
        "Please try again later, and tell the hub's operators if it lasts.",
    )
