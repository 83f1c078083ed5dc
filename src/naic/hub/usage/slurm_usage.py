"""GPU-hours from Slurm's accounting, for sites with `accounting: slurm`.

There, a project's usage is what slurmdbd recorded for its Slurm account: every job charged
to it counts, whether the hub submitted it or someone ran `sbatch -A` by hand: GPUs × elapsed
time from the job records (`sacct`), exact to the second. (`sshare`'s GrpTRESRaw is Slurm's
decayed running total, sampled at the decay thread's ticks; on Slurm 22.05 it showed no
gres/gpu usage at all for these jobs, so it is not the source.) The hub's ledger
keeps counting what Slurm does not see (node pools, local sessions).

Read with one `sacct` per site and budget period for all the catalogue's accounts, through
the site (here or on its login node), and kept for `MAX_AGE_S`: pages and spawns do not
each ask slurmdbd, and a spawn is admitted on a figure at most that old. While the hub runs,
`keep_fresh` reads them again every half of that, so pages never wait for slurmdbd.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from naic.hub import catalogue
from naic.hub.usage.budget import period_start
from naic.spawners.site import site_for
from naic.spawners.slurm_text import time_from_slurm

log = logging.getLogger(__name__)

#: Jobs since then when a budget never resets ("never"): before any site ran these.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: How old a figure pages and spawns accept, in seconds.
MAX_AGE_S = 30.0
GPUS = re.compile(r"(?:^|,)gres/gpu=(\d+)(?:,|$)")

#: GPU-hours per account, per user.
Figures = dict[str, dict[str, float]]


def sacct_argv(accounts: Iterable[str], since: datetime) -> list[str]:
    """Pure: every allocation charged to `accounts` that ran after `since` (all users)."""
    start = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S")  # sacct takes local time
    return [
        "sacct", "--noheader", "--parsable2", "--allocations", "--allusers",
        f"--accounts={','.join(sorted(accounts))}", f"--starttime={start}", "--endtime=now",
        "--format=Account,User,AllocTRES,Start,End",
    ]  # fmt: skip


def gpu_hours_from_sacct(text: str, since: datetime, now: datetime) -> Figures:
    """Pure: GPU-hours per account and user from `sacct_argv`'s output, counting only time
    after `since` (a job begun before it counts from `since`); a running job (End
    `Unknown`) counts to `now`, a job that never started not at all."""
    used: Figures = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        account, user, tres, start_text, end_text = parts
        gpus = GPUS.search(tres)
        start = time_from_slurm(start_text)
        if gpus is None or start is None:
            continue
        end = time_from_slurm(end_text) or now
        seconds = (min(end, now) - max(start, since)).total_seconds()
        if seconds > 0:
            users = used.setdefault(account, {})
            users[user] = users.get(user, 0.0) + int(gpus.group(1)) * seconds / 3600
    return used


def accounted_sites(cat: catalogue.Catalogue) -> frozenset[str]:
    """The sites whose usage comes from Slurm's accounting rather than the hub's ledger."""
    return frozenset(n for n, s in cat.sites.items() if s.accounting == "slurm")


def slurm_account(cat: catalogue.Catalogue, project: str) -> str:
    return cat.projects[project].slurm_account or project


def accounts_for(cat: catalogue.Catalogue, period: str) -> frozenset[str]:
    """The Slurm accounts of the projects whose budgets have `period` (one sacct for all)."""
    return frozenset(
        slurm_account(cat, name) for name, p in cat.projects.items() if p.budget_period == period
    )


class SlurmUsage:
    """Per site and period start: the figures of all the catalogue's accounts, cached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._figures: dict[tuple, tuple[float, frozenset[str], Figures]] = {}
        self._locks: dict[tuple, asyncio.Lock] = {}

    def cached(self, site: str, account: str, since: datetime | None) -> dict[str, float]:
        """The last figure read for `account`, however old (empty: never read)."""
        got = self._figures.get((site, since or EPOCH))
        return {} if got is None else got[2].get(account, {})

    async def read(
        self, cat: catalogue.Catalogue, site: str, period: str, now: datetime,
        max_age_s: float = MAX_AGE_S,
    ) -> Figures:  # fmt: skip
        """All accounts' GPU-hours at `site` this `period`, at most `max_age_s` old.
        RuntimeError (with Slurm's words) when slurmdbd does not answer: a budget is
        never guessed."""
        since = period_start(period, now) or EPOCH
        accounts = accounts_for(cat, period)
        key = (site, since)
        async with self._locks.setdefault(key, asyncio.Lock()):
            got = self._figures.get(key)
            if got is not None and self._clock() - got[0] <= max_age_s and accounts <= got[1]:
                return got[2]
            out = await site_for(cat, site).call(sacct_argv(accounts, since), timeout=30)
            figures = gpu_hours_from_sacct(out, since, now)
            self._figures[key] = (self._clock(), accounts, figures)
            return figures

    async def refresh(self, cat: catalogue.Catalogue, now: datetime) -> None:
        """Read every site's figures for every budget period in use (errors are logged)."""
        for site in sorted(accounted_sites(cat)):
            for period in sorted({p.budget_period for p in cat.projects.values()}):
                try:
                    await self.read(cat, site, period, now, max_age_s=0)
                except RuntimeError as exc:
                    log.warning("Slurm's accounting at %s did not answer: %s", site, exc)


#: The hub process's reader (one hub, one cache).
SLURM_USAGE = SlurmUsage()
_tasks: set[asyncio.Task] = set()


def keep_fresh(catalogue_file: str) -> None:
    """From the hub's config: while the hub runs, read Slurm's figures every half of
    `MAX_AGE_S` (only where a site has `accounting: slurm`). Does nothing outside a running
    event loop (a config loaded by a test or a tool)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return

    async def loop() -> None:
        while True:
            cat = catalogue.load_cached(catalogue_file)
            if accounted_sites(cat):
                await SLURM_USAGE.refresh(cat, datetime.now(UTC))
            await asyncio.sleep(MAX_AGE_S / 2)

    task = asyncio.ensure_future(loop())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
