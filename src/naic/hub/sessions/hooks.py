"""The hub's side of a session (`naic.spawners.hooks.SessionHooks`): who the user is in
projects and workshops, what a session may spend, and its record in the usage ledger.

The config sets `c.Router.hooks = HubHooks(catalogue_file, ledger_url)`; the router calls
it and knows nothing of budgets, workshops or the ledger.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

from tornado import web

from naic.hub import catalogue
from naic.hub.sessions.estimate import shared_answers
from naic.hub.usage import accounting, metrics
from naic.hub.usage.ledger import Ledger
from naic.hub.workshops.base import presets_for
from naic.spawners.hooks import Session
from naic.spawners.request import SessionRequest, UserFacts

#: How often a running session's heartbeat (`last_seen`) is written to the ledger.
SEEN_EVERY_S = 60.0


@dataclasses.dataclass(frozen=True)
class HubHooks:
    catalogue_file: str
    ledger_url: str

    @property
    def ledger(self) -> Ledger:
        return accounting.ledger_for(self.ledger_url)

    def facts(self, user, *, workshops: bool = False) -> UserFacts:
        facts = accounting.user_facts(user, self.ledger)
        if not workshops:  # a plain spawn reads no workshop table
            return facts
        seats = presets_for(self.ledger_url, user.name, datetime.now(UTC))
        return dataclasses.replace(facts, workshops=seats)

    async def admit(self, request: SessionRequest, user: str, server: str, now: datetime) -> int:
        cat = catalogue.load_cached(self.catalogue_file)
        hold, refusal = await accounting.budget_hold(cat, self.ledger, request, user, server, now)
        if refusal:
            raise web.HTTPError(403, refusal)
        return hold or 0

    async def estimate(self, user: str, request: SessionRequest, ask, stale_ok=False) -> dict:
        key = (user, request.model_dump_json())
        answer, age = await shared_answers().get(key, ask, stale_ok=stale_ok)
        return {**answer, "age_s": round(age)}

    def budget_left(self, project: str) -> float | None:
        cat = catalogue.load_cached(self.catalogue_file)
        total = cat.projects[project].gpu_hours
        if total is None:
            return None
        now = datetime.now(UTC)
        return max(0.0, total - accounting.used_this_period(self.ledger, cat, project, now))

    def started(
        self, request: SessionRequest, session: Session, *, user: str, server: str, job: str,
        spawn_s: float, queued_s: float | None,
    ) -> None:  # fmt: skip
        metrics.SPAWN_DURATION.labels(request.site).observe(spawn_s)
        if queued_s is not None:
            metrics.QUEUE_WAIT.labels(request.site).observe(queued_s)
        session.usage_id = self.ledger.session_started(
            user=user,
            server=server,
            project=request.project,
            site=request.site,
            gpus=request.gpus,
            job_id=job,
        )
        if session.hold_id:
            self.ledger.link_hold(session.hold_id, session.usage_id)
        session.seen_alive, session.seen_written = True, time.monotonic()  # last_seen: now

    def seen(self, session: Session) -> None:
        """A heartbeat in the ledger at most every `SEEN_EVERY_S` per session: every poll of
        hundreds of sessions was a write (benchmarks/hub_load.py); only a hub that died
        reads it back, and then charges up to that much less."""
        now = time.monotonic()
        if not session.seen_alive or now - session.seen_written >= SEEN_EVERY_S:
            self.ledger.session_seen(session.usage_id)
            session.seen_written = now
        session.seen_alive = True

    def ended(self, session: Session, at: datetime | None) -> None:
        """Close the usage record: at the scheduler's end time when it still knows it; else
        now, if this hub saw the session alive; else (it ended while the hub was down) at the
        last time a hub saw it running, which never charges time nobody observed."""
        if session.hold_id:
            self.ledger.release_hold(session.hold_id)
        if not session.usage_id:
            return
        if at is None and not session.seen_alive:
            rec = next((s for s in self.ledger.open_sessions() if s.id == session.usage_id), None)
            at = rec.last_seen if rec else None
        self.ledger.session_ended(session.usage_id, at)
