"""When would a session start, asked before starting it: Slurm's plan in a user's words.

The spawn form asks `GET /hub/api/naic/estimate` (naic.hub.sessions.estimate) as the user
changes their choices; the session's backend answers (`Backend.estimate`). For a Slurm site
the hub runs `sbatch --test-only` as the user with the batch script the session would have
(only its command is a harmless `true`), which makes Slurm plan the job without queueing
it, and counts the jobs already pending in the partition:

    {"start": "2026-11-27T04:32:00+00:00", "wait_s": 1200, "ahead": 3,
     "message": "Expected start in about 20 min, behind 3 jobs"}

A scheduler that does not answer is an error with a sentence, never a guess.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from naic.hub.catalogue import Catalogue
from naic.spawners.request import SessionRequest
from naic.spawners.script import parse_test_only, render_batch_script, test_only_argv
from naic.spawners.site import says_unreachable

#: How long sbatch and squeue may take before the scheduler counts as not answering.
LIMIT_S = 15.0
#: Estimates in flight at once, hub-wide: each one is two RPCs to slurmctld.
_SLOTS = asyncio.Semaphore(4)

Run = Callable[[list[str], str | None], Awaitable[tuple[int, str, str]]]

STARTS_NOW = "Starts now"


def start_message(wait_s: float, ahead: int) -> str:
    """Pure: a plain sentence for an expected wait and the jobs pending before it."""
    if wait_s < 60:
        return STARTS_NOW
    minutes = round(wait_s / 60)
    if minutes < 60:
        when = f"in about {minutes} min"
    elif minutes < 48 * 60:
        hours, rest = divmod(5 * round(minutes / 5), 60)  # no false precision past an hour
        when = f"in about {hours} h" + (f" {rest} min" if rest else "")
    else:
        when = f"in about {round(minutes / (24 * 60))} days"
    behind = f", behind {ahead} job{'s' if ahead != 1 else ''}" if ahead > 0 else ""
    return f"Expected start {when}{behind}"


def slurm_answer(start: datetime, now: datetime, ahead: int) -> dict:
    """Pure: the JSON answer from Slurm's expected start (naive local time, as Slurm
    prints it, like `now`) and the number of pending jobs in the partition."""
    wait_s = max(0, math.ceil((start - now).total_seconds()))
    return {
        "start": start.astimezone().isoformat(timespec="seconds"),
        "wait_s": wait_s,
        "ahead": ahead,
        "message": start_message(wait_s, ahead),
    }


class SlurmUnreachable(Exception):
    """The scheduler did not answer; `str()` is a sentence for the user."""


class SlurmRefused(Exception):
    """Slurm would not take this job; `str()` is a sentence for the user."""


async def estimate_slurm(
    req: SessionRequest,
    cat: Catalogue,
    *,
    user: str,
    group: str,
    as_root: bool,
    sudo: bool,
    run: Run,
    now: Callable[[], datetime] = datetime.now,
) -> dict:
    """Ask Slurm when `req` would start for `user`; raises SlurmUnreachable or SlurmRefused.
    `run(argv, stdin)` runs a command where the site's Slurm commands run (exit status 124:
    it did not answer)."""
    site = cat.sites[req.site]
    partition = site.resources[req.resource].partition or ""
    text = render_batch_script(
        req,
        cat,
        job_name=f"naic-estimate-{user}",
        command=["true"],
        workdir="/tmp",  # noqa: S108 - never used: --test-only runs nothing
        output="/dev/null",
    )
    argv = test_only_argv(as_root=as_root, user=user, group=group, sudo=sudo)
    pending = [
        "squeue",
        "--noheader",
        "--states=PENDING",
        f"--partition={partition}",
        "--format=%i",
    ]
    async with _SLOTS:
        (code, _, err), (qcode, qout, _) = await asyncio.gather(run(argv, text), run(pending, None))
    silent = (
        f"The scheduler at {site.title} is not answering right now, so there is no start "
        "estimate; try again in a minute."
    )
    if code != 0:
        if code == 124 or says_unreachable(err):
            raise SlurmUnreachable(silent)
        raise SlurmRefused(f"{site.title} would refuse this session: {_first_error(err)}.")
    if qcode != 0:
        raise SlurmUnreachable(silent)
    start = parse_test_only(err)
    if start is None:
        raise SlurmUnreachable(
            f"The scheduler at {site.title} gave no start estimate; try again in a minute."
        )
    ahead = sum(1 for line in qout.splitlines() if line.strip())
    return slurm_answer(start, now(), ahead)


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip().removeprefix("sbatch: error: ").strip()
        if line:
            return line.rstrip(".")[:200]
    return "it gave no reason"
