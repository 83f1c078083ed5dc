"""What the router asks of the hub around a session, and nothing more.

The spawners know the catalogue and this protocol; the hub provides the implementation
(`naic.hub.sessions.hooks.HubHooks`: projects, budgets, workshops, the usage ledger,
metrics) and the config wires it (`c.Router.hooks`). Without it (`NoHooks`) a user's
projects are their groups and nothing is charged or recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from naic.spawners.request import SessionRequest, UserFacts


@dataclass
class Session:
    """One server's session as the router keeps it: saved as one entry (`"session"`) of
    the spawner's state, so it survives hub restarts."""

    usage_id: int = 0  # its record in the usage ledger
    hold_id: int = 0  # the GPU-hours held for it (budget holds)
    extensions_used: int = 0
    gpu_activity: dict = field(default_factory=dict)  # last report: reported_at, busy_at
    notices: dict = field(default_factory=dict)  # the culler's warnings: kind → {text, …}
    notebook_progress: dict = field(default_factory=dict)  # a workshop's: name → [run, cells]
    material: dict = field(default_factory=dict)  # a workshop's: update, version pulled
    running_since: str = ""  # when its server answered (UTC ISO)
    ask: dict = field(default_factory=dict)  # an "any site" request's ask (federation.Ask)
    seen_alive: bool = False  # this hub process saw it running (not saved)
    seen_written: float = 0.0  # when (monotonic) its last heartbeat was written (not saved)

    def saved(self) -> dict:
        unsaved = ("seen_alive", "seen_written")
        return {k: v for k, v in self.__dict__.items() if v and k not in unsaved}

    @classmethod
    def restored(cls, data: dict) -> Session:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class SessionHooks(Protocol):
    def facts(self, user, *, workshops: bool = False) -> UserFacts:
        """What the request gate needs to know of `user` (a JupyterHub `User`): their
        identities, groups and projects; with `workshops`, the workshop sessions they may
        start now too (read only when a form shows them or a request names one)."""

    async def admit(self, request: SessionRequest, user: str, server: str, now: datetime) -> int:
        """Take (hold) what `request` may spend, or raise `web.HTTPError` (403) with the
        sentence why not; the id of what was held (0: nothing). Async: the budget may be a
        scheduler's figure (Slurm's accounting)."""

    async def estimate(
        self,
        user: str,
        request: SessionRequest,
        ask: Callable[[], Awaitable[dict]],
        stale_ok: bool = False,
    ) -> dict:
        """When `request` of `user` would start: `ask()` the site, or a fresh answer to the
        same question (the hub caches them, as the form and re-checks ask often); with
        `stale_ok` also an older one (only to show, never to decide where a session goes).
        `age_s`: seconds since the site gave the answer."""

    def budget_left(self, project: str) -> float | None:
        """The project's GPU-hours left this period (None: it has no budget), to compare
        options before a request is admitted."""

    def started(
        self, request: SessionRequest, session: Session, *, user: str, server: str, job: str,
        spawn_s: float, queued_s: float | None,
    ) -> None:  # fmt: skip
        """The server answers: record it (`session.usage_id`)."""

    def seen(self, session: Session) -> None:
        """A poll found the session alive."""

    def ended(self, session: Session, at: datetime | None) -> None:
        """It ended (`at`: when, if the backend knows; None: now, or when it was last seen
        if no hub saw it alive since); release what was held."""


class NoHooks:
    """A hub without projects' budgets or a ledger: facts from the user's groups alone."""

    def facts(self, user, *, workshops: bool = False) -> UserFacts:
        groups = frozenset(g.name for g in getattr(user, "groups", []) or [])
        return UserFacts(name=user.name, identities=frozenset({user.name}), groups=groups)

    async def admit(self, request: SessionRequest, user: str, server: str, now: datetime) -> int:
        return 0

    async def estimate(self, user: str, request: SessionRequest, ask, stale_ok=False) -> dict:
        return {**await ask(), "age_s": 0}

    def budget_left(self, project: str) -> float | None:
        return None

    def started(self, request, session, **kw) -> None:
        pass

    def seen(self, session: Session) -> None:
        pass

    def ended(self, session: Session, at: datetime | None) -> None:
        pass
