"""The hub's side of idle handling: sessions report GPU activity, the culler reads and acts.

Sessions (their server's own token, `users:activity!user`, which every server token has):

    POST …/activity  {"gpus": [{"index": 0, "utilization_pct": 0.0}, …], "window_s": 60}
                     (a CPU-only session sends {}); answers the session's notices and how
                     often to report: {"notices": [...], "report_every_s": 60}
    GET  …/activity  the same answer without reporting (the session panel asks it)

The culler service (`custom:naic:cull`, see naic.hub.sessions.culler):

    GET    /hub/api/naic/sessions                 running sessions, their policy, activity
    PUT    …/notices/{kind}  {"text", "deadline"}  a warning the session shows
    DELETE …/notices/{kind}                        activity came back
    POST   …/cull  {"kind", "reason"}              stop the session; the reason is what the
                                                   user reads on the hub's home page

`…` is `/hub/api/naic/users/{name}/servers/{server}` (or `/hub/api/naic/users/{name}` for
the default server). Reports are trusted as far as their author: a user can send "busy"
for their own session with their own server's token, as they could keep a kernel busy.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from jupyterhub.apihandlers import APIHandler
from tornado import web

from naic.hub import catalogue
from naic.hub.sessions.culler import REASONS
from naic.hub.usage import accounting, metrics
from naic.hub.workshops import ending, material
from naic.hub.workshops.base import store_for

SCOPE = "custom:naic:cull"
MAX_GPUS = 64
MAX_TEXT = 500
MAX_NOTEBOOKS = 100


def report_every_s(policy: catalogue.Culling) -> float:
    """Pure: how often sessions report, so that a warning is never more than a third late."""
    shortest = min(x * 60 for x in (policy.warn_minutes, policy.gpu_idle_minutes) if x is not None)
    return float(min(60.0, max(1.0, shortest / 3)))


def check_every_s(cat: catalogue.Catalogue) -> float:
    """Pure: how often the culler looks (the shortest of any site's report intervals)."""
    return min(report_every_s(s.culling) for s in cat.sites.values())


def parse_report(body: bytes) -> tuple[list[float | None], float, dict[str, list[int]] | None]:
    """Pure: (utilisation per GPU, window in seconds, workshop progress or None) of a report;
    ValueError for a 400."""
    usage = 'Send {"gpus": [{"index": 0, "utilization_pct": 0-100}, …], "window_s": seconds}'
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ValueError(f"{usage}; the body is not JSON.") from None
    if not isinstance(data, dict) or set(data) - {"gpus", "window_s", "progress", "material"}:
        raise ValueError(f"{usage}.")
    progress = _progress(data.get("progress"))
    gpus = data.get("gpus") or []
    if not isinstance(gpus, list) or len(gpus) > MAX_GPUS:
        raise ValueError(f"{usage}; `gpus` must be a list of at most {MAX_GPUS}.")
    utils: list[float | None] = []
    for g in gpus:
        u = g.get("utilization_pct") if isinstance(g, dict) else "?"
        if u is not None and (
            isinstance(u, bool) or not isinstance(u, int | float) or not 0 <= u <= 100
        ):
            raise ValueError(f"{usage}; utilization_pct must be a number from 0 to 100.")
        utils.append(None if u is None else float(u))
    window = data.get("window_s", 0) if gpus else 0
    if (
        isinstance(window, bool)
        or not isinstance(window, int | float)
        or not (math.isfinite(window) and 0 <= window <= 24 * 3600)
    ):
        raise ValueError(f"{usage}; window_s must be seconds, from 0 to 86400.")
    return utils, float(window), progress


def _progress(value: Any) -> dict[str, list[int]] | None:
    """A workshop session's notebooks: {"01-intro.ipynb": [cells run, code cells], …}."""
    if value is None:
        return None
    ok = isinstance(value, dict) and len(value) <= MAX_NOTEBOOKS
    ok = ok and all(
        isinstance(k, str)
        and len(k) <= 200
        and isinstance(v, list)
        and len(v) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**5 for n in v)
        for k, v in value.items()
    )
    if not ok:
        raise ValueError(
            f"`progress` must map at most {MAX_NOTEBOOKS} notebook names to [cells run, cells]."
        )
    return {k: list(v) for k, v in sorted(value.items())}


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat() if t else None


def _utc(naive: datetime | None) -> datetime | None:
    """JupyterHub's ORM keeps naive UTC datetimes."""
    return naive.replace(tzinfo=UTC) if naive and naive.tzinfo is None else naive


class _SessionHandler(accounting._NaicHandlerMixin, APIHandler):
    def _router(self, user_name: str, server_name: str):
        user = self.find_user(user_name)
        named = f" named {server_name!r}" if server_name else ""
        if user is None or server_name not in user.orm_user.orm_spawners:
            raise web.HTTPError(404, f"{user_name} has no running session{named}.")
        router = user.spawners[server_name]
        if not router.active or getattr(router, "request", None) is None:
            raise web.HTTPError(404, f"{user_name} has no running session{named}.")
        return user, router

    def _policy(self, router) -> catalogue.Culling:
        return router.catalogue.sites[router.request.site].culling

    def _save(self, router) -> None:
        router.orm_spawner.state = router.get_state()
        self.db.commit()

    def _must(self, scope: str, user_name: str, server_name: str) -> None:
        # Checked here, not with @needs_scope: custom scopes exist only once the hub loaded
        # its config, after this module was imported.
        if self.current_user is None:
            raise web.HTTPError(403, "Send the session's token.")
        if scope == SCOPE:
            if not accounting.may(self, SCOPE):
                raise web.HTTPError(403, "Only the culler acts on other people's sessions.")
        elif not (accounting.may(self, scope, user=user_name) or accounting.may(self, SCOPE)):
            raise web.HTTPError(403, "A session reports only for itself.")


class ActivityHandler(_SessionHandler):
    """A session's GPU report (POST) and its notices (GET and POST)."""

    def get(self, user_name: str, server_name: str = "") -> None:
        self._must("users:activity", user_name, server_name)
        _, router = self._router(user_name, server_name)
        self._answer(router)

    def post(self, user_name: str, server_name: str = "") -> None:
        self._must("users:activity", user_name, server_name)
        try:
            utils, window, progress = parse_report(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        _, router = self._router(user_name, server_name)
        if progress is not None and progress != router.session.notebook_progress:
            router.session.notebook_progress = progress
            self._save(router)
        if router.request.workshop:
            try:
                pulled = material.parse_material(json.loads(self.request.body).get("material"))
            except ValueError as exc:
                raise web.HTTPError(400, str(exc)) from None
            if pulled is not None and pulled != router.session.material:
                router.session.material = pulled
                self._save(router)
        if utils:
            self._record(router, utils, window)
        self._answer(router)

    def _record(self, router, utils: list[float | None], window: float) -> None:
        now = datetime.now(UTC)
        threshold = self._policy(router).gpu_busy_percent
        # Unknown utilisation (MIG) cannot be called idle.
        busy = sum(1 for u in utils if u is None or u > threshold)
        act = router.session.gpu_activity
        since = router.session.running_since
        started = (
            datetime.fromisoformat(since) if since else _utc(router.orm_spawner.started) or now
        )
        last = datetime.fromisoformat(act["reported_at"]) if act.get("reported_at") else started
        # A report covers at most the time since the last one: resending one cannot inflate.
        window = min(window, max((now - max(last, started)).total_seconds(), 0.0))
        router.session.gpu_activity = {
            "reported_at": _iso(now),
            "busy_at": _iso(now) if busy else act.get("busy_at"),
            "utilization_pct": utils,
        }
        if router.session.usage_id:
            self.naic_ledger.gpu_use_reported(
                router.session.usage_id,
                busy_gpu_s=busy * window,
                idle_gpu_s=(len(utils) - busy) * window,
            )
        self._save(router)

    def _answer(self, router) -> None:
        notices = [
            {"id": kind, "kind": kind, "level": "warning", **n}
            for kind, n in sorted(router.session.notices.items())
        ]
        body = {"notices": notices, "report_every_s": report_every_s(self._policy(router))}
        if router.request.workshop:  # the material update to pull (0: none yet), the end
            body["material_update"] = material.update_of(self.db, router.request.workshop)["number"]
            body["report_every_s"] = min(body["report_every_s"], material.REPORT_EVERY_S)
            body["notices"] += self._workshop_end(router)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def _workshop_end(self, router) -> list[dict]:
        """The workshop's end notice, in its last hour (naic.hub.workshops.ending)."""
        store = store_for(self.settings["naic"]["ledger_url"])
        ws = store.get(router.request.workshop)
        if ws is None:
            return []
        notice = ending.end_notice(
            title=ws.title,
            name=ws.name,
            ends_at=ws.ends_at,
            guest=router.user.name in store.guests(ws.name),
            now=datetime.now(UTC),
            session_url=router.server.base_url if router.server else "",
        )
        return [notice] if notice else []


class SessionsHandler(_SessionHandler):
    """`GET /hub/api/naic/sessions`: what the culler decides on."""

    def get(self) -> None:
        self._must(SCOPE, "", "")
        out = []
        for user in list(self.users.values()):
            for name, router in list(user.spawners.items()):
                req = getattr(router, "request", None)
                if not router.ready or req is None:
                    continue
                site = router.catalogue.sites[req.site]
                p = site.culling
                act = router.session.gpu_activity
                notices = [{"kind": k, **n} for k, n in router.session.notices.items()]
                out.append(
                    {
                        "user": user.name,
                        "server": name,
                        "site": req.site,
                        "site_title": site.title,
                        "gpus": req.gpus,
                        "started_at": router.session.running_since
                        or _iso(_utc(router.orm_spawner.started)),
                        "last_activity": _iso(_utc(router.orm_spawner.last_activity)),
                        "gpu_reported_at": act.get("reported_at"),
                        "gpu_busy_at": act.get("busy_at"),
                        "policy": {
                            "idle_s": p.idle_minutes and p.idle_minutes * 60,
                            "gpu_idle_s": p.gpu_idle_minutes and p.gpu_idle_minutes * 60,
                            "max_age_s": p.max_age_hours and p.max_age_hours * 3600,
                            "warn_s": p.warn_minutes * 60,
                        },
                        "notices": notices,
                    }
                )
        check = check_every_s(self.naic_catalogue)
        self.finish(json.dumps({"sessions": out, "check_every_s": check}))


class NoticeHandler(_SessionHandler):
    """The culler's warnings, kept in the session's state until it ends or is active again."""

    def put(self, user_name: str, *where: str) -> None:
        server_name, kind = where if len(where) == 2 else ("", where[0])
        self._must(SCOPE, user_name, server_name)
        if kind not in REASONS:
            raise web.HTTPError(404, f"A notice is one of {', '.join(REASONS)}.")
        data = self.json_body()
        text, deadline = data.get("text"), data.get("deadline")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise web.HTTPError(400, f"`text` must be a sentence of at most {MAX_TEXT} characters.")
        try:
            deadline = datetime.fromisoformat(deadline).astimezone(UTC)
        except (TypeError, ValueError):
            raise web.HTTPError(400, "`deadline` must be an ISO 8601 time.") from None
        _, router = self._router(user_name, server_name)
        at = _iso(datetime.now(UTC))
        router.session.notices = {
            **router.session.notices,
            kind: {"text": text, "deadline": _iso(deadline), "at": at},
        }
        self._save(router)
        self.set_status(204)
        self.finish()

    def delete(self, user_name: str, *where: str) -> None:
        server_name, kind = where if len(where) == 2 else ("", where[0])
        self._must(SCOPE, user_name, server_name)
        _, router = self._router(user_name, server_name)
        if kind in router.session.notices:
            router.session.notices = {k: n for k, n in router.session.notices.items() if k != kind}
            self._save(router)
        self.set_status(204)
        self.finish()


class CullHandler(_SessionHandler):
    """Stop a session for a reason the user will read."""

    async def post(self, user_name: str, server_name: str = "") -> None:
        self._must(SCOPE, user_name, server_name)
        data = self.json_body()
        kind, reason = data.get("kind"), data.get("reason")
        if kind not in REASONS:
            raise web.HTTPError(400, f"`kind` must be one of {', '.join(REASONS)}.")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_TEXT:
            raise web.HTTPError(
                400, f"`reason` must be a sentence of at most {MAX_TEXT} characters."
            )
        user, router = self._router(user_name, server_name)
        router.stop_reason = reason.strip()
        metrics.CULLS.labels(router.request.site, kind).inc()
        self.log.info("Culling %s/%s (%s): %s", user_name, server_name, kind, reason)
        await self.stop_single_user(user, server_name)
        self.set_status(202)
        self.finish(json.dumps({"stopping": True, "reason": reason.strip()}))


_NAMED, _DEFAULT = r"/api/naic/users/([^/]+)/servers/([^/]+)", r"/api/naic/users/([^/]+)"
HANDLERS = [(r"/api/naic/sessions", SessionsHandler)]
for _base in (_NAMED, _DEFAULT):
    HANDLERS += [
        (_base + "/activity", ActivityHandler),
        (_base + r"/notices/([a-z-]+)", NoticeHandler),
        (_base + "/cull", CullHandler),
    ]
