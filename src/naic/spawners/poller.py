"""One `squeue` for all sessions of a site.

batchspawner runs one `squeue` per session every poll, and every 0.5 s while a session
starts; Slurm asks clients not to call it in loops. Here every session asks the site's
`SlurmPoller`, which answers from a snapshot younger than `max_age` or, if none, runs one
query that all waiting sessions share. A failed query makes every job "unknown" (never
"gone"): a slurmctld outage must not look like the end of everybody's session, and neither
must a login node (`submit.via: ssh`) that stopped answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: `%i|%T|%r|%N|%S|%P|%u|%e`: id, state, reason, nodes, expected start, partition, user, end
#: (the time limit's end while it runs, the real end once it ended).
SQUEUE_ARGV = [
    "squeue",
    "--noheader",
    "--states=all",
    "--sort=-p,i",
    "--format=%i|%T|%r|%N|%S|%P|%u|%e",
]

Runner = Callable[[list[str]], Awaitable[tuple[int, str, str]]]


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str  # PENDING, RUNNING, COMPLETING, TIMEOUT, CANCELLED, ...
    reason: str  # why pending (Resources, Priority, ...) or why it ended
    node: str
    start: str  # Slurm's expected (pending) or actual start, or "N/A"
    partition: str
    user: str
    position: int = 0  # 1-based among pending jobs of its partition; 0 when not pending
    end: str = ""  # Slurm's end time (local time, ISO without zone), or "N/A"


class Unreachable(Exception):
    """squeue failed: the controller is down or not answering."""


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Pure: squeue's output (sorted by priority) → jobs by id, with queue positions."""
    jobs: dict[str, JobInfo] = {}
    waiting: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 8:
            continue
        job_id, state, reason, node, start, partition, user, end = parts
        position = 0
        if state == "PENDING":
            position = waiting[partition] = waiting.get(partition, 0) + 1
        jobs[job_id] = JobInfo(job_id, state, reason, node, start, partition, user, position, end)
    return jobs


class SlurmPoller:
    """Shared job-state snapshots for one site (`naic.spawners.site.Site.poller`, whose
    `run` runs squeue where the site's Slurm commands run); time is injectable for tests."""

    def __init__(
        self,
        run: Runner,
        *,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = run
        self.max_age = max_age
        self.clock = clock
        self.queries = 0  # squeue calls made, for tests and benchmarks
        self._jobs: dict[str, JobInfo] = {}
        self._taken_at = float("-inf")
        self._error: str | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        self.queries += 1
        started = self.clock()
        code, out, err = await self.run(SQUEUE_ARGV)
        self._taken_at = started  # the snapshot is as old as the moment squeue was asked
        if code != 0:
            self._error = err.strip() or f"squeue exited with {code}"
            return
        self._error = None
        self._jobs = parse_squeue(out)

    def _stale(self, asked: float, max_age: float, since: float | None) -> bool:
        # Measured from when the caller asked, so max_age=0 means "one snapshot taken after
        # I asked", not "newer than now", which no finished query can ever be.
        too_old = self._taken_at < asked - max_age
        return too_old or (since is not None and self._taken_at < since)

    async def job(
        self, job_id: str, max_age: float | None = None, since: float | None = None
    ) -> JobInfo | None:
        """The job's state, or None if Slurm no longer knows it; raises `Unreachable`.

        `since` (a `clock()` value) asks for a snapshot taken after it, e.g. after the job's
        submission, so a fresh but older snapshot cannot report a new job as gone.
        """
        age = self.max_age if max_age is None else max_age
        asked = self.clock()
        while self._stale(asked, age, since):
            if self._inflight is None or self._inflight.done():
                self._inflight = asyncio.ensure_future(self._refresh())
            await asyncio.shield(self._inflight)
            if self._error is not None:
                break
        if self._error is not None:
            raise Unreachable(self._error)
        return self._jobs.get(job_id)
