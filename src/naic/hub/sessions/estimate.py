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
hub's machine (benchmarks/hub_load.py). A failed ask is not kept. An operator changes the
time with `NAIC_ESTIMATE_FRESH_S` in the hub's environment (seconds; 0: never reused).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.spawners.request import RequestError, options_from_form, parse_request

#: Where the handler is mounted, below the hub's prefix (`/hub/`).
ESTIMATE_PATH = r"/api/naic/estimate"
#: How long an answer is reused by default: a queue moves little in that time.
FRESH_S = 10.0


class AnswerCache:
    """Answers by key, fresh for `fresh_s`; callers of a key being asked wait for that ask."""

    def __init__(
        self,
        fresh_s: float = FRESH_S,
        size: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s, self.size, self.clock = fresh_s, size, clock
        self._asks: dict[Hashable, tuple[float, asyncio.Future]] = {}

    async def get(self, key: Hashable, ask: Callable[[], Awaitable]):
        now = self.clock()
        kept = self._asks.get(key)
        if kept is None or (kept[1].done() and now - kept[0] >= self.fresh_s):
            if len(self._asks) >= self.size:
                self._forget_old(now)
            kept = (now, asyncio.ensure_future(ask()))
            self._asks[key] = kept
            kept[1].add_done_callback(lambda f: self._drop_failed(key, f))
        return await asyncio.shield(kept[1])

    def _drop_failed(self, key: Hashable, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            if self._asks.get(key, (0, None))[1] is future:
                del self._asks[key]

    def _forget_old(self, now: float) -> None:
        for key, (at, future) in list(self._asks.items()):
            if future.done() and now - at >= self.fresh_s:
                del self._asks[key]
        while len(self._asks) >= self.size:  # all fresh: the oldest go
            del self._asks[next(iter(self._asks))]


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
        answer = await spawner.hooks.estimate(user.name, req, ask)
        self.finish(json.dumps(answer))


_ANSWERS: AnswerCache | None = None


def shared_answers(env: Mapping[str, str] = os.environ) -> AnswerCache:
    """The hub process's one cache: the estimate's, the options' and a queued session's
    re-checks (`HubHooks.estimate`); `NAIC_ESTIMATE_FRESH_S` read when it is first used."""
    global _ANSWERS
    if _ANSWERS is None:
        _ANSWERS = AnswerCache(float(env.get("NAIC_ESTIMATE_FRESH_S") or FRESH_S))
    return _ANSWERS
