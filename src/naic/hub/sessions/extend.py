"""Extending a running session: more time, within the site's policy, in one click.

`POST /hub/api/naic/users/{name}/servers/{server}/extend` (or `…/users/{name}/extend` for
the default server), body optional `{"hours": h}` (default: the resource's
`extend_step_hours`). The hub raises the job's Slurm time limit itself, as an operator
(users may only lower their own limits), then re-reads the limit and end from Slurm:

    {"ends_at": "2026-11-27T11:30:00+00:00", "hours_total": 1.5, "extensions_left": 0}

Or one sentence: 400 a bad body, 403 not allowed (who asks, the catalogue's policy, the
project's GPU-hour budget, the end of the session's reservation), 404 no running session,
409 not a Slurm session, 503 the scheduler does not answer. `GET` on the same path answers
what a POST would start from (`offered`, `ends_at`, `hours_total`, `extensions_left`); the
session panel asks it once to decide whether to show "Ask for more time".

Who may: the user's own token, the session's own server token (`custom:naic:extend!server`
in the `server` role), and admins.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from jupyterhub.apihandlers import APIHandler
from tornado import web

from naic.hub.usage import accounting
from naic.hub.usage.ledger import budget_refusal, period_start
from naic.hub.usage.slurm_usage import accounted_sites
from naic.spawners.site import says_unreachable

#: Where the handlers are mounted, below the hub's prefix (`/hub/`).
EXTEND_PATH = r"/api/naic/users/([^/]+)/servers/([^/]*)/extend"
DEFAULT_EXTEND_PATH = r"/api/naic/users/([^/]+)/extend"
SCOPE = "custom:naic:extend"
#: One extension at a time per session: two clicks must not both pass the policy.
_LOCKS: collections.defaultdict[tuple[str, str], asyncio.Lock] = collections.defaultdict(
    asyncio.Lock
)


def _hours(h: float) -> str:
    return f"{round(h, 2):g}"


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def extension_refusal(
    *,
    resource_title: str,
    max_extensions: int,
    used: int,
    max_hours: float,
    hours_total: float,
    asked: float,
    reservation: str | None = None,
    reservation_ends: datetime | None = None,
    new_end: datetime | None = None,
    budget: str | None = None,
) -> str | None:
    """Pure: None if the session may get `asked` more hours, else the one sentence why not.

    `hours_total` is the job's time limit now (as Slurm says), `used` the extensions it had,
    `new_end` when it would end if extended, `budget` the project's budget refusal (if any).
    The checks run in the order a student can do something about them."""
    if max_extensions <= 0:
        return (
            f"Sessions on {resource_title} cannot be extended; save your work and start a new "
            "session when this one ends."
        )
    if used >= max_extensions:
        noun = "extension" if max_extensions == 1 else "extensions"
        return f"This resource allows at most {max_extensions} {noun}; you have used {used}."
    if hours_total + asked > max_hours + 1e-9:
        return (
            f"Sessions on {resource_title} may last at most {_hours(max_hours)} hours; "
            f"this one already has {_hours(hours_total)}."
        )
    if reservation is not None:
        if reservation_ends is None:
            return (
                f"This session runs in the reservation {reservation}, which the scheduler no "
                "longer knows, so it cannot be extended."
            )
        if new_end is None or new_end > reservation_ends:
            return (
                f"This session runs in the reservation {reservation}, which ends at "
                f"{_when(reservation_ends)}; it cannot be extended past that."
            )
    return budget


def asked_hours(body: bytes) -> float | None:
    """Pure: the hours a request body asks for (None: the resource's step); raises
    ValueError with the sentence for a 400."""
    usage = 'Send nothing, or {"hours": h} with a positive number of hours'
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError(f"{usage}; the body is not JSON.") from None
    if not isinstance(data, dict) or set(data) - {"hours"}:
        raise ValueError(f"{usage}; you sent {_brief(data)}.")
    hours = data.get("hours")
    if hours is None:
        return None
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not math.isfinite(hours)
        or hours <= 0
    ):
        raise ValueError(f"{usage}; you sent {_brief(hours)}.")
    return float(hours)


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ExtendHandler(accounting._NaicHandlerMixin, APIHandler):
    """GET: what an extension would start from; POST: extend the session."""

    async def get(self, user_name: str, server_name: str = "") -> None:
        router, child, res = self._session(user_name, server_name)
        limit, end = await self._limit(child)
        self.finish(
            json.dumps(
                {
                    "offered": res.max_extensions > 0,
                    "ends_at": end.isoformat() if end else None,
                    "hours_total": round(limit / 60, 4),
                    "extensions_left": max(res.max_extensions - router.session.extensions_used, 0),
                    "extend_step_hours": res.extend_step_hours,
                }
            )
        )

    async def post(self, user_name: str, server_name: str = "") -> None:
        self._allowed(user_name, server_name)
        try:
            hours = asked_hours(self.request.body or b"")
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        router, child, res = self._session(user_name, server_name)
        hours = res.extend_step_hours if hours is None else hours
        async with _LOCKS[(user_name, server_name)]:
            limit, end = await self._limit(child)
            now = datetime.now(UTC)
            req = router.request
            refusal = extension_refusal(
                resource_title=res.title,
                max_extensions=res.max_extensions,
                used=router.session.extensions_used,
                max_hours=res.max_hours,
                hours_total=limit / 60,
                asked=hours,
                reservation=req.reservation,
                reservation_ends=await self._reservation_end(child, req.reservation),
                new_end=end + timedelta(hours=hours) if end else None,
                budget=self._budget(router, end, hours, now),
            )
            if refusal:
                raise web.HTTPError(403, refusal)
            try:
                await child.extend(hours)
            except RuntimeError as exc:
                raise self._scheduler_error(child, exc) from None
            router.session.extensions_used += 1
            router.orm_spawner.state = router.get_state()
            self.db.commit()
            limit, end = await self._limit(child)
            if router.session.hold_id and req.gpus:
                self.naic_ledger.grow_hold(
                    router.session.hold_id,
                    req.gpus * hours,
                    (end or now) + timedelta(hours=accounting.HOLD_QUEUE_HOURS),
                )
        self.log.info(
            "Extended job %s of %s by %g h to %s min", child.job_id, user_name, hours, limit
        )
        self.finish(
            json.dumps(
                {
                    "ends_at": end.isoformat() if end else None,
                    "hours_total": round(limit / 60, 4),
                    "extensions_left": max(res.max_extensions - router.session.extensions_used, 0),
                }
            )
        )

    # --- the pieces ---------------------------------------------------------------------

    def _allowed(self, user_name: str, server_name: str) -> None:
        # Checked here, not with @needs_scope: custom scopes exist only once the hub loaded
        # its config, after this module was imported.
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to extend a session.")
        if not accounting.may(self, SCOPE, server=f"{user_name}/{server_name}"):
            raise web.HTTPError(403, "You may extend only your own sessions.")

    def _session(self, user_name: str, server_name: str):
        """The router, its backend and the resource of a running session (or 403/404/409)."""
        self._allowed(user_name, server_name)
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"There is no user {user_name!r} on this hub.")
        named = f" named {server_name!r}" if server_name else ""
        if server_name not in user.orm_user.orm_spawners:
            raise web.HTTPError(404, f"{user_name} has no running session{named}.")
        router = user.spawners[server_name]
        if not router.ready or getattr(router, "request", None) is None:
            raise web.HTTPError(404, f"{user_name} has no running session{named}.")
        req = router.request
        site = router.catalogue.sites[req.site]
        child = router.child_spawner
        if child is None or child.extendable:
            why = child.extendable if child is not None else None
            raise web.HTTPError(409, why or f"{user_name} has no running session{named}.")
        return router, child, site.resources[req.resource]

    async def _limit(self, child) -> tuple[int, datetime | None]:
        try:
            limit, end = await child.time_limit()
        except RuntimeError as exc:
            raise self._scheduler_error(child, exc) from None
        if limit is None:
            raise web.HTTPError(
                409, "The scheduler shows no time limit for this session, so it needs no more."
            )
        return limit, end

    async def _reservation_end(self, child, name: str | None) -> datetime | None:
        if name is None:
            return None
        try:
            return await child.reservation_end(name)  # None: no such reservation (any more)
        except RuntimeError as exc:
            raise self._scheduler_error(child, exc) from None

    def _budget(self, router, end: datetime | None, hours: float, now: datetime) -> str | None:
        """The project's budget must hold what the session may still use: its GPUs × (the
        time it has left + the extra hours); what it used so far is in the ledger already."""
        req, ledger = router.request, self.naic_ledger
        if req.project is None or req.gpus == 0:
            return None
        cat = router.catalogue
        project = cat.projects[req.project]
        if project.gpu_hours is None:
            return None
        left_h = max((end - now).total_seconds() / 3600, 0.0) if end else 0.0
        # Others' holds count; this session's own is replaced by what it may use if extended.
        used, held = ledger.committed(
            req.project,
            period_start(project.budget_period, now),
            without_hold=router.session.hold_id,
            not_at=accounted_sites(cat),
        )
        used += sum(accounting.cached_slurm_hours(cat, req.project, now).values())
        return budget_refusal(
            req.project,
            project.gpu_hours,
            used,
            req.gpus * (left_h + hours),
            project.budget_period,
            now,
            held,
        )

    @staticmethod
    def _scheduler_error(child, exc: RuntimeError) -> web.HTTPError:
        site = child.catalogue.sites[child.site].title if child.catalogue else child.site
        message = str(exc)
        if "Invalid job id" in message:
            return web.HTTPError(404, "The scheduler no longer knows this session; it ended.")
        if says_unreachable(message) or child.site_runtime.unreachable(exc):
            return web.HTTPError(
                503, f"The scheduler at {site} is not answering; please try again in a minute."
            )
        detail = message.split("error:")[-1].strip().rstrip(".")
        return web.HTTPError(503, f"The scheduler at {site} did not extend the session: {detail}.")


EXTEND_HANDLERS = [(EXTEND_PATH, ExtendHandler), (DEFAULT_EXTEND_PATH, ExtendHandler)]
