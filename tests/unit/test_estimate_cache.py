"""The start estimate's answer cache: one ask per user and request while fresh, shared while
in flight, asked again when stale, and a failure never kept; the form's stale answers come at
once, with their age, while the site is asked again behind them."""

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
    assert answers[:5] == [({"wait_s": 60}, 0.0)] * 5
    assert answers[5] == ({"wait_s": 60}, 19.0)
    assert answers[6] == ({"wait_s": 120}, 0.0)
    assert answers[7] == ({"wait_s": 180}, 0.0)
    assert site.asks == 3


def test_the_form_gets_a_stale_answer_at_once_and_the_next_one_is_fresh() -> None:
    now = [0.0]
    cache, site = AnswerCache(fresh_s=10, clock=lambda: now[0]), Site()
    assert cache.stale_s == 60

    async def run() -> list:
        first = await cache.get("alice", site.ask, stale_ok=True)
        now[0] = 30
        stale = await cache.get("alice", site.ask, stale_ok=True)  # asks again behind it
        also = await cache.get("alice", site.ask, stale_ok=True)  # shares that ask
        await asyncio.sleep(0.05)
        fresh = await cache.get("alice", site.ask, stale_ok=True)
        now[0] = 30 + 61
        too_old = await cache.get("alice", site.ask, stale_ok=True)  # waits for a new one
        return [first, stale, also, fresh, too_old]

    answers = asyncio.run(run())
    assert answers == [
        ({"wait_s": 60}, 0.0),
        ({"wait_s": 60}, 30.0),
        ({"wait_s": 60}, 30.0),
        ({"wait_s": 120}, 0.0),
        ({"wait_s": 180}, 0.0),
    ]
    assert site.asks == 3


def test_deciding_callers_never_get_a_stale_answer() -> None:
    now = [0.0]
    cache, site = AnswerCache(fresh_s=10, clock=lambda: now[0]), Site()

    async def run() -> list:
        await cache.get("alice", site.ask)
        now[0] = 30
        return [await cache.get("alice", site.ask)]

    assert asyncio.run(run()) == [({"wait_s": 120}, 0.0)]


def test_a_failed_refresh_keeps_the_last_good_answer_until_it_is_too_old() -> None:
    now = [0.0]
    cache, site = AnswerCache(fresh_s=10, clock=lambda: now[0]), Site()

    async def run() -> None:
        await cache.get("alice", site.ask, stale_ok=True)
        site.fail, now[0] = True, 30
        assert await cache.get("alice", site.ask, stale_ok=True) == ({"wait_s": 60}, 30.0)
        await asyncio.sleep(0.05)  # the refresh behind it failed, quietly
        assert await cache.get("alice", site.ask, stale_ok=True) == ({"wait_s": 60}, 30.0)
        now[0] = 61
        with pytest.raises(web.HTTPError, match="503"):
            await cache.get("alice", site.ask, stale_ok=True)

    asyncio.run(run())


def test_no_reuse_means_no_stale_answers_either() -> None:
    cache, site = AnswerCache(fresh_s=0, clock=lambda: 0.0), Site()

    async def run() -> list:
        return [await cache.get("alice", site.ask, stale_ok=True) for _ in range(2)]

    assert [a for a, _ in asyncio.run(run())] == [{"wait_s": 60}, {"wait_s": 120}]


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
    assert len(cache._kept) <= 3
