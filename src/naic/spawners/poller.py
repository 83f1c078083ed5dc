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

from naic.hub.catalogue import Site
from naic.spawners import ssh

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


async def run_argv(argv: list[str], limit_s: float = 20) -> tuple[int, str, str]:
    """Run a command without a shell; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} did not answer within {limit_s:g} s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def login_node(site: Site | None) -> ssh.Target | None:
    """Where a site's Slurm commands run: its login node for `submit.via: ssh`, else None
    (on the hub's machine)."""
    if site is None or site.submit is None or site.submit.via != "ssh" or site.ssh is None:
        return None
    return ssh.Target(site.submit.host, site.submit.port, site.ssh)


def ssh_runner(target: ssh.Target, limit_s: float = 20) -> Runner:
    """A `Runner` on `target` over the shared SSH connection; a login node that does not
    answer (or cannot be verified) is a failed command with `SSHError`'s sentence."""

    async def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            return await ssh.run(target, argv, timeout_s=limit_s)
        except ssh.SSHError as exc:
            return 255, "", str(exc)

    return run


class SlurmPoller:
    """Shared job-state snapshots for one site; time is injectable for tests."""

    def __init__(
        self,
        run: Runner = run_argv,
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


_POLLERS: dict[str, tuple[ssh.Target | None, SlurmPoller]] = {}


def poller_for(name: str, site: Site | None = None) -> SlurmPoller:
    """The process-wide poller of site `name` (the hub is one process); squeue runs where
    the catalogue's `site` says: on the hub's machine, or on the site's login node over SSH.
    A site whose login node changed (a reloaded catalogue) gets a new poller."""
    target = login_node(site)
    known = _POLLERS.get(name)
    if known is None or known[0] != target:
        poller = SlurmPoller() if target is None else SlurmPoller(ssh_runner(target))
        known = _POLLERS[name] = (target, poller)
    return known[1]
