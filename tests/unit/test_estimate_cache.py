"""The start estimate's answer cache: one ask per user and request while fresh, shared while
in flight, asked again when stale, and a failure never kept."""

from __future__ import annotations

import asyncio

import pytest
from tornado import web

from naic.hub.sessions.estimate import AnswerCache


class Site:
    """Counts asks; each takes a moment, as `sbatch --test-only` does."""

    def __init__(self, fail: bool = False) -> None:
        self.asks, self.fail = 0, fail

    async def ask(self) -> dict:
        self.asks += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise web.HTTPError(503, "Slurm did not answer")
        return {"wait_s": 60 * self.asks}


def test_answers_are_reused_while_fresh_and_shared_while_asked() -> None:
    now = [100.0]
    cache, site = AnswerCache(fresh_s=20, clock=lambda: now[0]), Site()

    async def run() -> list:
        together = await asyncio.gather(*(cache.get("alice", site.ask) for _ in range(5)))
        now[0] += 19
        again = await cache.get("alice", site.ask)
        other = await cache.get("bob", site.ask)  # another user: asked for themselves
        now[0] += 1
        stale = await cache.get("alice", site.ask)
        return [*together, again, other, stale]

    answers = asyncio.run(run())
    assert answers[:6] == [{"wait_s": 60}] * 6
    assert answers[6] == {"wait_s": 120}
    assert answers[7] == {"wait_s": 180}
    assert site.asks == 3


def test_a_failed_ask_is_not_kept() -> None:
    cache, site = AnswerCache(fresh_s=20, clock=lambda: 0.0), Site(fail=True)

    async def run() -> None:
        for _ in range(2):
            with pytest.raises(web.HTTPError, match="503"):
                await cache.get("alice", site.ask)

    asyncio.run(run())
    assert site.asks == 2


def test_the_cache_stays_within_its_size() -> None:
    now = [0.0]
    cache, site = AnswerCache(fresh_s=20, size=3, clock=lambda: now[0]), Site()

    async def run() -> None:
        for user in ("a", "b", "c", "d", "e"):
            await cache.get(user, site.ask)
            now[0] += 1

    asyncio.run(run())
    assert len(cache._asks) <= 3
