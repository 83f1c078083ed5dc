"""Route a validated session request to its site's backend, and remember the choice.

A `wrapspawner.WrapSpawner` subclass, fixing what 1.0.1 gets wrong for us: it passes the
removed `db` argument, links *every* common trait parent → child (overwriting the child's
own defaults such as its `cmd`), forgets `orm_spawner` (so named servers lose their name),
and cannot restore its child class after a restart. Here the child gets exactly what it
needs, and the state holds the request, from which site and backend follow again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Any, Dict, Unicode, default
from wrapspawner import WrapSpawner

from naic.hub import catalogue
from naic.spawners.backend import StartFailed
from naic.spawners.form import fields_from_form, render_form
from naic.spawners.hooks import NoHooks, Session, SessionHooks
from naic.spawners.local import LocalSpawner
from naic.spawners.moving import START_TRAITS, Moves
from naic.spawners.nodes import NodeSpawner
from naic.spawners.request import (
    RequestError,
    SessionRequest,
    UserFacts,
    options_from_form,
    parse_request,
)
from naic.spawners.slurm import SlurmSpawner

BACKENDS: dict[str, type[Spawner]] = {
    "local": LocalSpawner,
    "slurm": SlurmSpawner,
    "nodes": NodeSpawner,
}
#: What a session's state held before it was one entry (hubs that ran older naic-hub).
_FLAT_STATE = ("usage_id", "hold_id", "extensions_used", "gpu_activity", "notices",
               "notebook_progress", "running_since")  # fmt: skip


class Router(Moves, WrapSpawner):
    catalogue_file = Unicode(
        help="""The service catalogue (validated when the hub starts).

        Example: c.Router.catalogue_file = "/etc/naic/catalogue.yaml"
        """,
    ).tag(config=True)

    child_options = Dict(
        help="""Extra traits per backend, e.g. {"slurm": {"status_max_age": 30}}.""",
    ).tag(config=True)

    hooks = Any(
        help="""What the hub does around a session (`naic.spawners.hooks.SessionHooks`):
        users' projects, budgets, the usage ledger. naic-hub's config sets
        `naic.hub.sessions.hooks.HubHooks`; the default charges and records nothing.

        Example: c.Router.hooks = HubHooks(ledger_url=..., catalogue_file=...)
        """,
    ).tag(config=True)

    @default("hooks")
    def _default_hooks(self) -> SessionHooks:
        return NoHooks()

    request = Any(None, allow_none=True, help="The SessionRequest of the current session.")
    session = Any(help="The current session's own facts (naic.spawners.hooks.Session).")
    last_end = Dict(help="How the last session ended: {'reason': words, 'at': UTC time}.")
    #: Why the next stop happens (the culler's reason); "stopped" when nobody said.
    stop_reason = ""
    _ended_at_poll = False  # poll found it ended and said why; the stop after keeps that

    @default("session")
    def _new_session(self) -> Session:
        return Session()

    @property
    def catalogue(self) -> catalogue.Catalogue:
        return catalogue.load_cached(self.catalogue_file)

    def user_facts(self, *, workshops: bool = False) -> UserFacts:
        return self.hooks.facts(self.user, workshops=workshops)

    @default("apply_user_options")
    def _default_apply(self):
        return Router._apply_request

    async def _apply_request(self, user_options: dict) -> None:
        """The only gate from user input to a backend: 400 with a sentence, or a request
        the hub admitted (what it may spend is held). An "any site" request becomes the
        option it chose (`naic.spawners.moving`)."""
        options, self.session.ask = dict(user_options or {}), {}
        if "any" in options:
            options = await self.resolve_any(options)
            self.user_options = self.orm_spawner.user_options = options
        req = self._parse(options)
        refusal = self.backend_class(req).refusal_now(self.catalogue, req)
        if refusal:  # a pool that refuses says so now, not after a spawn page
            raise web.HTTPError(409, refusal)
        now = datetime.now(UTC)
        self.session.hold_id = await self.hooks.admit(req, self.user.name, self.name, now)
        self._select(req)

    def _parse(self, options: dict) -> SessionRequest:
        try:
            facts = self.user_facts(workshops="workshop" in options)
            return parse_request(options, self.catalogue, facts)
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None

    def _select(self, req: SessionRequest) -> None:
        self.request = req
        self.child_class = self.backend_class(req)
        self.child_spawner = None

    def backend_class(self, req: SessionRequest) -> type[Spawner]:
        return BACKENDS[self.catalogue.sites[req.site].backend]

    @default("options_form")
    def _default_options_form(self):
        return Router._render_options_form

    def _render_options_form(self) -> str:
        """The catalogue's spawn form for this user (see naic.spawners.form)."""
        url = url_path_join(self.hub.base_url, "api/naic/estimate")
        anywhere = url_path_join(self.hub.base_url, "api/naic/options")
        facts = self.user_facts(workshops=True)
        return render_form(self.catalogue, facts, estimate_url=url, options_url=anywhere)

    def options_from_form(self, formdata: dict) -> dict:
        return options_from_form(fields_from_form(formdata))

    def options_from_query(self, query: dict) -> dict:
        """`GET /hub/spawn?…` starts a session without a form, so a link on any page could
        spend its visitor's GPU-hours: only a workshop's link (`?workshop=NAME`, whose
        preset the hub decides) may; anything else is shown the form."""
        if set(query) - {"workshop"}:
            raise web.HTTPError(
                400,
                "A link cannot start a session with chosen resources; check them on this form "
                "and press Start. Only a workshop's link (?workshop=NAME) starts one directly.",
            )
        return self.options_from_form(query)

    def backend_for(self, req: SessionRequest) -> Spawner:
        """A backend for `req` that is not (yet) running anything, e.g. to estimate."""
        extra = dict(self.child_options.get(self.catalogue.sites[req.site].backend, {}))
        extra.update(request=req, catalogue=self.catalogue, site=req.site)
        return BACKENDS[self.catalogue.sites[req.site].backend](
            user=self.user,
            orm_spawner=self.orm_spawner,
            hub=self.hub,
            authenticator=self.authenticator,
            config=self.config,
            _deprecated_db_session=self._deprecated_db_session,
            **extra,
        )

    def construct_child(self) -> Spawner:
        if self.child_spawner is None:
            if self.request is None:  # restored from a state without a request
                self._select(self._parse({}))
            self.child_spawner = self.child_for(self.request, self.child_state)
        return self.child_spawner

    def child_for(self, req: SessionRequest, state: dict | None = None) -> Spawner:
        """A backend to run `req`, with what JupyterHub gave the wrapper for this start."""
        child = self.backend_for(req)
        child.clear_state()  # it would otherwise see the wrapper's state
        if state:
            child.load_state(state)
        for name in START_TRAITS:  # clear_state dropped them
            if getattr(self, name, None):
                setattr(child, name, getattr(self, name))
        return child

    async def start(self):
        # A new session: drop any child restored from the previous one's state, keep what
        # was held for it and its notebooks' progress (the same notebooks).
        self.child_spawner = None
        self.child_state = {}
        old = self.session
        self.session = Session(hold_id=old.hold_id, notebook_progress=old.notebook_progress,
                               ask=old.ask)  # fmt: skip
        self._ended_at_poll = False
        began = time.monotonic()
        try:
            ip_port = await self.start_movable()
        except StartFailed as exc:  # its job is gone: keep why, for the home page
            at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            self.last_end = {"reason": f"it could not start: {exc.why}", "at": at}
            if exc.log:
                self.last_end.update(log=exc.log, where=exc.where, site=self.request.site)
            self.hooks.ended(self.session, None)
            self.session.hold_id = 0
            self.child_spawner = None  # nothing left to poll or stop
            raise
        except BaseException:
            self.hooks.ended(self.session, None)  # never started: its GPU-hours are free again
            self.session.hold_id = 0
            raise
        # Idle and age limits count from here, not from the request: a queue is not idling.
        self.session.running_since = datetime.now(UTC).isoformat()
        child = self.child_spawner
        self.hooks.started(
            self.request,
            self.session,
            user=self.user.name,
            server=self.name,
            job=str(getattr(child, "job_id", "") or ""),
            spawn_s=time.monotonic() - began,
            queued_s=child.queued_s,
        )
        return ip_port

    async def poll(self) -> int | None:
        if self.child_spawner is None:
            return 1
        status = await self.child_spawner.poll()
        if status is not None:
            self._ended(self.child_spawner.end_reason or "the server stopped")
            self._ended_at_poll = True
        elif self.session.usage_id:
            self.hooks.seen(self.session)
        return status

    async def stop(self, now: bool = False) -> None:
        await self.stop_moving()
        if self.child_spawner is not None:
            await self.child_spawner.stop(now)
            if not self._ended_at_poll:  # JupyterHub stops what poll found ended: keep why
                self._ended(self.stop_reason or "stopped")
        self.stop_reason, self._ended_at_poll = "", False

    def _ended(self, reason: str) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.last_end = {"reason": reason, "at": at}
        if self.request is not None:  # the home page links the site's help
            self.last_end["site"] = self.request.site
        ended_at = self.child_spawner.ended_at if self.child_spawner is not None else None
        self.hooks.ended(self.session, ended_at)
        self.session.usage_id = self.session.hold_id = 0

    def get_state(self) -> dict:
        state = Spawner.get_state(self)
        if self.last_end:
            state["last_end"] = self.last_end
        if self.session.saved():
            state["session"] = self.session.saved()
        if self.request is not None:
            state["request"] = self.request.model_dump()
        if self.child_spawner is not None:
            state["child_state"] = self.child_spawner.get_state()
        return state

    def load_state(self, state: dict) -> None:
        Spawner.load_state(self, state)
        self.last_end = state.get("last_end", {})
        self.session = Session.restored(
            state.get("session") or {k: state[k] for k in _FLAT_STATE if k in state}
        )
        if "request" in state:
            try:
                self._select(SessionRequest.model_validate(state["request"]))
            except (ValueError, KeyError):
                self.log.warning("Dropping a stored session request the catalogue no longer has")
                return
            self.child_state = state.get("child_state", {})
            self.construct_child()

    def clear_state(self) -> None:
        last_end = self.last_end  # outlives the session: the home page shows it
        super().clear_state()
        self.request = None
        self.session = Session(
            hold_id=self.session.hold_id, notebook_progress=self.session.notebook_progress
        )
        self.last_end = last_end
