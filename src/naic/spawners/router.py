"""Route a validated session request to its site's backend, and remember the choice.

A `wrapspawner.WrapSpawner` subclass, fixing what 1.0.1 gets wrong for us: it passes the
removed `db` argument, links *every* common trait parent → child (overwriting the child's
own defaults such as its `cmd`), forgets `orm_spawner` (so named servers lose their name),
and cannot restore its child class after a restart. Here the child gets exactly what it
needs, and the state holds the request, from which site and backend follow again.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Any, Dict, Integer, Unicode, default
from wrapspawner import WrapSpawner

from naic.hub import catalogue
from naic.hub.usage import accounting, metrics
from naic.hub.usage.ledger import Ledger
from naic.hub.workshops import api as workshop_api
from naic.spawners.form import fields_from_form, render_form
from naic.spawners.local import LocalSpawner
from naic.spawners.nodes import NodeSpawner, full_when_refused
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


class Router(WrapSpawner):
    catalogue_file = Unicode(
        help="""The service catalogue (validated when the hub starts).

        Example: c.Router.catalogue_file = "/etc/naic/catalogue.yaml"
        """,
    ).tag(config=True)

    child_options = Dict(
        help="""Extra traits per backend, e.g. {"slurm": {"status_max_age": 30}}.""",
    ).tag(config=True)

    ledger_url = Unicode(
        "",
        help="""Database of the GPU-hour ledger (the hub's own db_url); empty: no budgets.

        Example: c.Router.ledger_url = "sqlite:////var/lib/naic-hub/jupyterhub.sqlite"
        """,
    ).tag(config=True)

    request = Any(None, allow_none=True, help="The SessionRequest of the current session.")
    last_end = Dict(help="How the last session ended: {'reason': words, 'at': UTC time}.")
    usage_id = Integer(0, help="The current session's record in the usage ledger.")
    hold_id = Integer(0, help="The GPU-hours held for the current session (budget holds).")
    extensions_used = Integer(0, help="How often the current session was extended.")
    gpu_activity = Dict(help="The session's last GPU report: reported_at, busy_at (UTC ISO).")
    notices = Dict(help="The culler's warnings to this session: {kind: {text, deadline, at}}.")
    notebook_progress = Dict(help="A workshop session's notebooks: {name: [run, code cells]}.")
    running_since = Unicode("", help="When the current session's server answered (UTC ISO).")
    #: Why the next stop happens (the culler's reason); "stopped" when nobody said.
    stop_reason = ""
    _seen_alive = False  # this hub process saw the session running
    _ended_at_poll = False  # poll found it ended and said why; the stop after keeps that

    @property
    def catalogue(self) -> catalogue.Catalogue:
        return catalogue.load_cached(self.catalogue_file)

    @property
    def ledger(self) -> Ledger | None:
        return accounting.ledger_for(self.ledger_url) if self.ledger_url else None

    def user_facts(self) -> UserFacts:
        if self.ledger is not None:
            facts = accounting.user_facts(self.user, self.ledger)
            seats = workshop_api.presets_for(self.ledger_url, self.user.name, datetime.now(UTC))
            return dataclasses.replace(facts, workshops=seats)
        groups = frozenset(g.name for g in getattr(self.user, "groups", []) or [])
        return UserFacts(name=self.user.name, identities=frozenset({self.user.name}), groups=groups)

    @default("apply_user_options")
    def _default_apply(self):
        return Router._apply_request

    def _apply_request(self, user_options: dict) -> None:
        """The only gate from user input to a backend: 400 with a sentence, or a request."""
        try:
            req = parse_request(user_options or {}, self.catalogue, self.user_facts())
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        full = full_when_refused(self.catalogue, req)
        if full:  # a pool that refuses says so now, not after a spawn page
            raise web.HTTPError(409, full)
        if self.ledger is not None:
            now = datetime.now(UTC)
            hold, refusal = accounting.budget_hold(
                self.catalogue, self.ledger, req, self.user.name, self.name, now
            )
            if refusal:
                raise web.HTTPError(403, refusal)
            self.hold_id = hold or 0
        self._select(req)

    def _select(self, req: SessionRequest) -> None:
        self.request = req
        site = self.catalogue.sites[req.site]
        self.child_class = BACKENDS[site.backend]
        self.child_spawner = None

    @default("options_form")
    def _default_options_form(self):
        return Router._render_options_form

    def _render_options_form(self) -> str:
        """The catalogue's spawn form for this user (see naic.spawners.form)."""
        url = url_path_join(self.hub.base_url, "api/naic/estimate")
        return render_form(self.catalogue, self.user_facts(), estimate_url=url)

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

    def construct_child(self) -> Spawner:
        if self.child_spawner is None:
            if self.request is None:  # e.g. started with no options at all
                self._apply_request({})
            extra = dict(
                self.child_options.get(self.catalogue.sites[self.request.site].backend, {})
            )
            extra.update(request=self.request, catalogue=self.catalogue)
            if self.child_class in (SlurmSpawner, NodeSpawner):
                extra.update(site=self.request.site)
            child = self.child_class(
                user=self.user,
                orm_spawner=self.orm_spawner,
                hub=self.hub,
                authenticator=self.authenticator,
                config=self.config,
                _deprecated_db_session=self._deprecated_db_session,
                **extra,
            )
            child.clear_state()  # it would otherwise see the wrapper's state
            if self.child_state:
                child.load_state(self.child_state)
            # What JupyterHub gave the wrapper for this start (clear_state would drop it).
            for name in ("api_token", "oauth_client_id", "user_options", "cert_paths", "server"):
                if getattr(self, name, None):
                    setattr(child, name, getattr(self, name))
            self.child_spawner = child
        return self.child_spawner

    async def start(self):
        # A new session: drop any child restored from the previous one's state.
        self.child_spawner = None
        self.child_state = {}
        self.usage_id = 0
        self.extensions_used = 0
        self.gpu_activity, self.notices = {}, {}  # progress stays: the same notebooks
        self._ended_at_poll = False
        began = time.monotonic()
        try:
            ip_port = await super().start()
        except BaseException:
            self._release_hold()  # it never started: its GPU-hours are free again
            raise
        # Idle and age limits count from here, not from the request: a queue is not idling.
        self.running_since = datetime.now(UTC).isoformat()
        metrics.SPAWN_DURATION.labels(self.request.site).observe(time.monotonic() - began)
        self._record_start()
        return ip_port

    async def poll(self) -> int | None:
        if self.child_spawner is None:
            return 1
        status = await self.child_spawner.poll()
        if status is not None:
            reason = getattr(self.child_spawner, "end_reason", "") or "the server stopped"
            self._ended(reason)
            self._ended_at_poll = True
        elif self.usage_id and self.ledger is not None:
            self.ledger.session_seen(self.usage_id)
            self._seen_alive = True
        return status

    async def stop(self, now: bool = False) -> None:
        if self.child_spawner is not None:
            await self.child_spawner.stop(now)
            if not self._ended_at_poll:  # JupyterHub stops what poll found ended: keep why
                self._ended(self.stop_reason or "stopped")
        self.stop_reason, self._ended_at_poll = "", False

    def _ended(self, reason: str) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.last_end = {"reason": reason, "at": at}
        self._record_end()

    # --- usage ledger ------------------------------------------------------------------

    def _record_start(self) -> None:
        if self.ledger is None or self.request is None:
            return
        req = self.request
        self.usage_id = self.ledger.session_started(
            user=self.user.name,
            server=self.name,
            project=req.project,
            site=req.site,
            gpus=req.gpus,
            job_id=str(getattr(self.child_spawner, "job_id", "") or ""),
        )
        if self.hold_id:
            self.ledger.link_hold(self.hold_id, self.usage_id)
        self._seen_alive = True

    def _record_end(self) -> None:
        """Close the usage record: at the scheduler's end time when it still knows it; else
        now, if this hub saw the session alive; else (it ended while the hub was down) at the
        last time a hub saw it running, which never charges time nobody observed."""
        self._release_hold()
        if not self.usage_id or self.ledger is None:
            return
        at = getattr(self.child_spawner, "ended_at", None)
        if at is None and not self._seen_alive:
            rec = next((s for s in self.ledger.open_sessions() if s.id == self.usage_id), None)
            at = rec.last_seen if rec else None
        self.ledger.session_ended(self.usage_id, at)
        self.usage_id = 0

    def _release_hold(self) -> None:
        if self.hold_id and self.ledger is not None:
            self.ledger.release_hold(self.hold_id)
        self.hold_id = 0

    def get_state(self) -> dict:
        state = Spawner.get_state(self)
        if self.hold_id:
            state["hold_id"] = self.hold_id
        if self.last_end:
            state["last_end"] = self.last_end
        if self.usage_id:
            state["usage_id"] = self.usage_id
        if self.extensions_used:
            state["extensions_used"] = self.extensions_used
        if self.gpu_activity:
            state["gpu_activity"] = self.gpu_activity
        if self.notices:
            state["notices"] = self.notices
        if self.notebook_progress:
            state["notebook_progress"] = self.notebook_progress
        if self.running_since:
            state["running_since"] = self.running_since
        if self.request is not None:
            state["request"] = self.request.model_dump()
        if self.child_spawner is not None:
            state["child_state"] = self.child_spawner.get_state()
        return state

    def load_state(self, state: dict) -> None:
        Spawner.load_state(self, state)
        self.last_end = state.get("last_end", {})
        self.usage_id = state.get("usage_id", 0)
        self.hold_id = state.get("hold_id", 0)
        self.extensions_used = state.get("extensions_used", 0)
        self.gpu_activity = state.get("gpu_activity", {})
        self.notices = state.get("notices", {})
        self.notebook_progress = state.get("notebook_progress", {})
        self.running_since = state.get("running_since", "")
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
        self.usage_id = 0
        self.extensions_used = 0
        self.gpu_activity, self.notices = {}, {}
        self.running_since = ""
        self.last_end = last_end

    async def progress(self):
        if self.child_spawner is None:
            return
        async for event in self.child_spawner.progress():
            yield event
