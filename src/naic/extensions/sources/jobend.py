"""When the scheduler ends a job: Slurm's time limit as it stands now (`squeue`).

A job's real end can differ from the one asked for (an operator extends it, the job started
later than the spawner thought); `naic.extensions.session` asks here inside a Slurm job.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from naic.extensions.sources.commands import Runner, run_argv


class JobEndSource(Protocol):
    """When the scheduler will end a job (its time limit, as it stands now)."""

    def end_time(self, job_id: str) -> datetime | None: ...


_SLURM_NO_TIME = {"", "N/A", "NONE", "Unknown", "UNLIMITED"}
_JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?")


def parse_squeue_end(text: str, tz: tzinfo | None = None) -> datetime | None:
    """`squeue -h -o %e` prints a time without a zone (the local time of the machine squeue
    runs on, which is this one), or N/A; `tz` overrides the local zone (for tests)."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if first in _SLURM_NO_TIME:
        return None
    try:
        naive = datetime.fromisoformat(first)
    except ValueError:
        return None
    local = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
    return local.astimezone(UTC)


class SqueueJobEnd:
    """Asks `squeue` for a job's end time, at most once a minute (Slurm asks clients not
    to poll it in loops; an extension changes the end rarely)."""

    def __init__(
        self,
        run: Runner = run_argv,
        *,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._run, self._max_age, self._clock = run, max_age_s, clock
        self._cache: dict[str, tuple[float, datetime | None]] = {}

    def end_time(self, job_id: str) -> datetime | None:
        if not _JOB_ID.fullmatch(job_id):
            return None
        hit = self._cache.get(job_id)
        if hit is not None and self._clock() - hit[0] < self._max_age:
            return hit[1]
        try:
            end = parse_squeue_end(self._run(["squeue", "-h", "-j", job_id, "-o", "%e"], 10))
        except (OSError, subprocess.SubprocessError):
            end = None  # no squeue here, or the controller does not answer: the request's end
        self._cache[job_id] = (self._clock(), end)
        return end


class FixedJobEnd:
    """Fake: the scheduler says the job ends at `end` (None: it does not know)."""

    def __init__(self, end: datetime | None):
        self.end, self.asked = end, []

    def end_time(self, job_id: str) -> datetime | None:
        self.asked.append(job_id)
        return self.end
