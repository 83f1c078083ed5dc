"""Access requests: asking for a project, and an admin's decision, as hub pages.

- `/hub/naic/access` (logged in): my requests and their outcomes, and a form to ask for a
  project I am not in.
- `/hub/naic/access/ask` (not logged in): the form offered to someone whom the identity
  provider vouched for but who has no project here. They are not logged in, so the form
  is bound to their verified identity by a cookie the hub signs at the end of the login
  (`remember_asker`), valid for `ASK_MAX_AGE_S`. Once the request is pending they may log
  in and follow it on the page above.
- `/hub/naic/admin/access` (admins): pending requests with approve/decline and a note, and
  past decisions. Approving grants the project at once (the ledger's `granted_projects`).

Every form carries JupyterHub's `_xsrf` token, which the hub checks on every POST.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from naic.hub import catalogue
from naic.hub.usage import accounting
from naic.hub.usage.ledger import MAX_REASON, IdentityTaken, Ledger
from naic.spawners.request import projects_of

ACCESS_PATH = r"/naic/access"
ASK_PATH = r"/naic/access/ask"
ADMIN_ACCESS_PATH = r"/naic/admin/access"

ASK_COOKIE = "naic-access-ask"
#: How long after the login the ask-for-access form may be sent.
ASK_MAX_AGE_S = 30 * 60
MAX_NOTE = 500
#: Past decisions shown on the admin page.
PAST_SHOWN = 100


def ledger(settings: dict[str, Any]) -> Ledger:
    """The hub's ledger (the hub's own database, as `naic.hub.app.config` wires it)."""
    return accounting.ledger_for(settings["naic"]["ledger_url"])


def catalogue_of(settings: dict[str, Any]) -> catalogue.Catalogue:
    return catalogue.load_cached(settings["naic"]["catalogue_file"])


# --- the signed ask-for-access cookie --------------------------------------------------------


def remember_asker(handler: BaseHandler, identity: str, username: str) -> None:
    """Bind the ask form to a verified identity without logging anyone in."""
    value = json.dumps({"identity": identity, "username": username, "t": int(time.time())})
    handler._set_cookie(
        ASK_COOKIE,
        value,
        encrypted=True,
        path=handler.hub.base_url,
        expires_days=None,
        max_age=ASK_MAX_AGE_S,
    )


def asker(handler: BaseHandler, now: float | None = None) -> tuple[str, str] | None:
    """(identity, username) from a valid, fresh ask cookie; None otherwise."""
    raw = handler.get_secure_cookie(ASK_COOKIE, max_age_days=1)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        identity, username, issued = data["identity"], data["username"], float(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    now = time.time() if now is None else now
    if not 0 <= now - issued <= ASK_MAX_AGE_S:
        return None
    return str(identity), str(username)


def _projects(cat: catalogue.Catalogue, names) -> list[dict[str, str]]:
    return [{"name": n, "title": cat.projects[n].title} for n in names if n in cat.projects]


def _form_fields(handler: BaseHandler) -> tuple[str, str]:
    project = handler.get_body_argument("project", "").strip()[:60]
    reason = handler.get_body_argument("reason", "")
    return project, reason


def _check_project(cat: catalogue.Catalogue, project: str) -> None:
    if not project:
        raise ValueError("Please choose the project you need.")
    if project not in cat.projects:
        raise ValueError(f"There is no project {project!r} on this hub; choose one from the list.")


async def render_ask_page(
    handler: BaseHandler,
    identity: str,
    username: str,
    *,
    status: int,
    error: str = "",
    project: str = "",
    reason: str = "",
) -> None:
    """The page for someone the provider vouched for who has no project on this hub."""
    cat = catalogue_of(handler.settings)
    handler.set_status(status)
    html = await handler.render_template(
        "naic-ask-access.html",
        identity=identity,
        username=username,
        projects=_projects(cat, cat.projects),
        action=url_path_join(handler.hub.base_url, "naic/access/ask"),
        error=error,
        chosen=project,
        reason=reason,
        max_reason=MAX_REASON,
    )
    handler.finish(html)


class AskHandler(BaseHandler):
    """`/hub/naic/access/ask`: ask for a project before having one (not logged in)."""

    def _asker_or_refuse(self) -> tuple[str, str]:
        who = asker(self)
        if who is None:
            raise web.HTTPError(
                403,
                "This form belongs to a login that is over or too old. Log in again: if you "
                "have no project yet, the hub offers the form again.",
            )
        return who

    async def get(self) -> None:
        identity, username = self._asker_or_refuse()
        await render_ask_page(self, identity, username, status=200)

    async def post(self) -> None:
        identity, username = self._asker_or_refuse()
        project, reason = _form_fields(self)
        cat = catalogue_of(self.settings)
        book = ledger(self.settings)
        try:
            _check_project(cat, project)
            book.bind_identity(username, identity)
            request = book.request_access(username, project, reason, identity=identity)
        except IdentityTaken:
            raise web.HTTPError(
                403,
                f"Your identity {identity} cannot use the user name {username!r}: that name, or "
                "your identity, is already bound to another account on this hub. Ask the "
                "hub's operators to sort out your user name.",
            ) from None
        except ValueError as exc:
            await render_ask_page(
                self,
                identity,
                username,
                status=400,
                error=str(exc),
                project=project,
                reason=reason,
            )
            return
        self.log.info(
            "Access request %s: %s (%s) asks for %s", request.id, username, identity, project
        )
        self.clear_cookie(ASK_COOKIE, path=self.hub.base_url)
        html = await self.render_template(
            "naic-ask-pending.html",
            identity=identity,
            username=username,
            project={"name": project, "title": cat.projects[project].title},
            again_url=url_path_join(self.hub.base_url, "login")
            + "?next="
            + url_path_join(self.hub.base_url, "naic/access"),
        )
        self.finish(html)


class AccessHandler(BaseHandler):
    """`/hub/naic/access`: my access requests, and a form to ask for another project."""

    async def _render(self, status: int = 200, **extra: Any) -> None:
        user = self.current_user
        cat = catalogue_of(self.settings)
        book = ledger(self.settings)
        mine = projects_of(cat, accounting.user_facts(user, book))
        requests = book.requests(user=user.name)
        pending = {r.project for r in requests if r.state == "pending"}
        granted = book.granted_projects(user.name)
        offer = [p for p in cat.projects if p not in set(mine) | pending | granted]
        self.set_status(status)
        html = await self.render_template(
            "naic-access.html",
            mine=_projects(cat, dict.fromkeys([*mine, *sorted(granted)])),
            requests=requests,
            titles={n: p.title for n, p in cat.projects.items()},
            offer=_projects(cat, offer),
            max_reason=MAX_REASON,
            **{"error": "", "done": "", "chosen": "", "reason": "", **extra},
        )
        self.finish(html)

    @web.authenticated
    async def get(self) -> None:
        await self._render()

    @web.authenticated
    async def post(self) -> None:
        user = self.current_user
        project, reason = _form_fields(self)
        cat = catalogue_of(self.settings)
        book = ledger(self.settings)
        try:
            _check_project(cat, project)
            if project in projects_of(cat, accounting.user_facts(user, book)):
                raise ValueError(f"You are already in project {project}.")
            request = book.request_access(
                user.name, project, reason, identity=book.identity_of(user.name)
            )
        except ValueError as exc:
            await self._render(400, error=str(exc), chosen=project, reason=reason)
            return
        self.log.info("Access request %s: %s asks for %s", request.id, user.name, project)
        await self._render(
            done=f"You asked for project {project}; the request is pending until an "
            "administrator decides. This page shows the outcome."
        )


class AdminAccessHandler(BaseHandler):
    """`/hub/naic/admin/access`: decide pending requests; see past decisions (admins only)."""

    def _admin(self):
        user = self.current_user
        if not user.admin:
            raise web.HTTPError(403, "Only the hub's administrators decide access requests.")
        return user

    async def _render(self, status: int = 200, **extra: Any) -> None:
        book = ledger(self.settings)
        cat = catalogue_of(self.settings)
        pending = sorted(book.requests(state="pending"), key=lambda r: (r.created_at, r.id))
        past = [r for r in book.requests() if r.state != "pending"][:PAST_SHOWN]
        self.set_status(status)
        html = await self.render_template(
            "naic-admin-access.html",
            pending=pending,
            past=past,
            titles={n: p.title for n, p in cat.projects.items()},
            max_note=MAX_NOTE,
            **{"error": "", "done": "", **extra},
        )
        self.finish(html)

    @web.authenticated
    async def get(self) -> None:
        self._admin()
        await self._render()

    @web.authenticated
    async def post(self) -> None:
        admin = self._admin()
        action = self.get_body_argument("action", "")
        note = self.get_body_argument("note", "").strip()
        try:
            request_id = int(self.get_body_argument("request_id", ""))
        except ValueError:
            await self._render(400, error="The form named no access request; reload the page.")
            return
        if action not in ("approve", "decline"):
            await self._render(400, error="Choose Approve or Decline.")
            return
        if len(note) > MAX_NOTE:
            await self._render(
                400, error=f"Please keep the note to {MAX_NOTE} characters; it has {len(note)}."
            )
            return
        try:
            r = ledger(self.settings).decide(
                request_id, approve=action == "approve", by=admin.name, note=note
            )
        except ValueError as exc:
            await self._render(409, error=str(exc))
            return
        self.log.info(
            "Access request %s (%s for %s) %s by %s", r.id, r.user, r.project, r.state, admin.name
        )
        await self._render(done=f"{r.user}'s request for project {r.project} is {r.state}.")


HANDLERS = [
    (ACCESS_PATH, AccessHandler),
    (ASK_PATH, AskHandler),
    (ADMIN_ACCESS_PATH, AdminAccessHandler),
]
