"""`GET /hub/api/naic/estimate`: when would this session start, asked before starting it.

The spawn form calls it as the user changes their choices. The options are the query
arguments (the same names as `user_options`) and go through `parse_request`, the one gate,
so a bad value gets the same 400 sentence as a bad spawn. The site's backend answers
(`Backend.estimate`: Slurm's `sbatch --test-only`, a pool's free GPUs, or "now"):

    {"start": "2026-11-27T04:32:00+00:00", "wait_s": 1200, "ahead": 3,
     "message": "Expected start in about 20 min, behind 3 jobs"}

A scheduler that does not answer gives 503 with a sentence, never a guess.

One user's answer for one request is reused for `FRESH_S` seconds, and an ask in flight is
shared (`AnswerCache`): the form asks on every change, each ask costs the site an
`sbatch --test-only` or more, and with hundreds of users those asks were what loaded the
hub's machine (benchmarks/hub_load.py). A failed ask is not kept. This endpoint (and only
it: comparing sites and moving a session ask afresh) also answers at once with an answer
up to `STALE_TIMES` × that old, asking the site again behind it, so that the form never
waits on the scheduler for a question it asked a minute ago; `age_s` says how old the
answer is, and the form says so. An operator changes the time with
`NAIC_ESTIMATE_FRESH_S` in the hub's environment (seconds; 0: never reused).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.spawners.request import RequestError, options_from_form, parse_request

#: Where the handler is mounted, below the hub's prefix (`/hub/`).
ESTIMATE_PATH = r"/api/naic/estimate"
#: How long an answer is reused by default: a queue moves little in that time.
FRESH_S = 10.0
#: The form also gets answers this many times `FRESH_S` old, at once (asked again behind).
STALE_TIMES = 6


@dataclass
class _Kept:
    """One key's newest good answer (`at`: when it was asked), and the ask in flight."""

    at: float = 0.0
    answer: Any = None
    known: bool = False
    asking: asyncio.Future | None = None


class AnswerCache:
    """Answers by key, fresh for `fresh_s`; callers of a key being asked wait for that ask.
    `stale_ok` callers also take an answer up to `stale_s` old, and the key is asked again
    behind them (Slurm's backfill itself re-plans only every 30 s by default)."""

    def __init__(
        self,
        fresh_s: float = FRESH_S,
        size: int = 5000,
        clock: Callable[[], float] = time.monotonic,
        stale_s: float | None = None,
    ) -> None:
        self.fresh_s, self.size, self.clock = fresh_s, size, clock
        self.stale_s = STALE_TIMES * fresh_s if stale_s is None else stale_s
        self._kept: dict[Hashable, _Kept] = {}

    async def get(
        self, key: Hashable, ask: Callable[[], Awaitable], *, stale_ok: bool = False
    ) -> tuple[Any, float]:
        """The answer for `key` and its age in seconds."""
        now = self.clock()
        kept = self._kept.get(key)
        if kept is None:
            if len(self._kept) >= self.size:
                self._forget_old(now)
            kept = self._kept[key] = _Kept()
        age = now - kept.at
        if kept.known and (age < self.fresh_s or (stale_ok and age < self.stale_s)):
            if age >= self.fresh_s:
                self._ask(kept, ask)  # behind this answer, for the next caller
            return kept.answer, age
        answer = await asyncio.shield(self._ask(kept, ask))
        return answer, 0.0

    def _ask(self, kept: _Kept, ask: Callable[[], Awaitable]) -> asyncio.Future:
        if kept.asking is None:
            asked_at, future = self.clock(), asyncio.ensure_future(ask())
            kept.asking = future

            def done(f: asyncio.Future) -> None:
                kept.asking = None
                if not f.cancelled() and f.exception() is None:  # a failure is not kept
                    kept.at, kept.answer, kept.known = asked_at, f.result(), True

            future.add_done_callback(done)
        return kept.asking

    def _forget_old(self, now: float) -> None:
        for key, kept in list(self._kept.items()):
            if kept.asking is None and now - kept.at >= max(self.fresh_s, self.stale_s):
                del self._kept[key]
        while len(self._kept) >= self.size:  # all fresh: the oldest go
            del self._kept[next(iter(self._kept))]


class EstimateHandler(APIHandler):
    """The endpoint; authenticated as the user whose session it would be."""

    async def get(self) -> None:
        # Not @web.authenticated: on a GET that redirects to the login page, and an API
        # answers with a status the form's script can read.
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Log in to see when a session would start.")
        if getattr(user, "kind", None) != "user":
            raise web.HTTPError(403, "Start estimates are for users, not services.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(
                403, "This token may not start servers, so it gets no start estimates."
            )
        spawner = user.spawner
        if not hasattr(spawner, "backend_for"):
            raise web.HTTPError(404, "This hub's spawner has no service catalogue to estimate.")
        query = {
            key: [v.decode("utf-8", errors="replace") for v in values]
            for key, values in self.request.query_arguments.items()
        }
        options = options_from_form(query)
        try:
            facts = spawner.user_facts(workshops="workshop" in options)
            req = parse_request(options, spawner.catalogue, facts)
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        ask = lambda: spawner.backend_for(req).estimate(req)  # noqa: E731 - one line
        answer = await spawner.hooks.estimate(user.name, req, ask, stale_ok=True)
        self.finish(json.dumps(answer))


_ANSWERS: AnswerCache | None = None


def shared_answers(env: Mapping[str, str] = os.environ) -> AnswerCache:
    """The hub process's one cache: the estimate's, the options' and a queued session's
    re-checks (`HubHooks.estimate`); `NAIC_ESTIMATE_FRESH_S` read when it is first used."""
    global _ANSWERS
    if _ANSWERS is None:
        _ANSWERS = AnswerCache(float(env.get("NAIC_ESTIMATE_FRESH_S") or FRESH_S))
    return _ANSWERS
