"""The workshop pages: a workshop account's login, the join page, and the instructors'
dashboard (`/hub/naic/workshops[/{name}]`), over the same rules as the REST API."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from naic.hub.workshops import material, staff, staff_api
from naic.hub.workshops.api import approve, create_workshop, redeem
from naic.hub.workshops.assignment_api import assignments_for
from naic.hub.workshops.base import (
    _Workshops,
    workshop_json,
)
from naic.hub.workshops.check import try_as_student
from naic.hub.workshops.edit_api import edit_workshop, remove_student
from naic.hub.workshops.rules import (
    FAILURE_WINDOW_S,
    FAILURES_PER_ACCOUNT,
    FAILURES_PER_PEER,
    Failures,
    new_code,
    real_peer,
)
from naic.hub.workshops.store import Workshop

_guest_failures_by_account = Failures(FAILURES_PER_ACCOUNT, FAILURE_WINDOW_S)
_guest_failures_by_peer = Failures(FAILURES_PER_PEER, FAILURE_WINDOW_S)
TOO_MANY_FOR_ACCOUNT = (
    "Too many wrong passwords for this workshop account; wait ten minutes and try again, "
    "or ask the instructor for a new account."
)
TOO_MANY_FROM_PEER = "Too many wrong workshop passwords from your address; wait ten minutes."


class GuestLoginPage(_Workshops, BaseHandler):
    """`/hub/naic/workshops/login`: a workshop account and its one-time password; the
    workshop's session starts at once."""

    async def get(self) -> None:
        await self._page()

    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip().lower()
        password = self.get_body_argument("password", "")
        peer = self.real_peer()
        now = time.monotonic()
        # Counted before the (slow) check, so parallel guesses cannot pass together; a
        # success gives both back: only failures use up the budget.
        if not _guest_failures_by_account.take(username, now):
            self.set_status(429)
            await self._page(username, TOO_MANY_FOR_ACCOUNT)
            return
        if not _guest_failures_by_peer.take(peer, now):
            _guest_failures_by_account.forgive(username, now)
            self.set_status(429)
            await self._page(username, TOO_MANY_FROM_PEER)
            return
        try:
            # scrypt takes tens of milliseconds: off the event loop, the hub keeps serving.
            workshop = await asyncio.to_thread(self.store.guest_login, username, password)
        except ValueError as exc:
            self.log.warning("Workshop login refused for %s from %s", username, peer)
            self.set_status(403)
            await self._page(username, str(exc))
            return
        _guest_failures_by_account.forgive(username, now)
        _guest_failures_by_peer.forgive(peer, now)
        user = self.user_from_username(username)
        self.set_login_cookie(user)
        spawn = url_path_join(self.hub.base_url, "spawn", user.escaped_name, workshop)
        self.redirect(f"{spawn}?workshop={workshop}")

    def real_peer(self) -> str:
        """The client's address as this hub's own proxy saw it: not `remote_ip`, which the
        hub (`xheaders=True`) takes from `X-Real-Ip`, a header any client may send."""
        address = getattr(self.request.connection.context, "address", None)
        socket_peer = address[0] if isinstance(address, tuple) and address else ""
        return real_peer(socket_peer, self.request.headers.get("X-Forwarded-For"))

    async def _page(self, username: str = "", error: str = "") -> None:
        html = await self.render_template("workshop-login.html", username=username, error=error)
        self.finish(html)


class JoinPage(_Workshops, BaseHandler):
    """`/hub/naic/workshops/join[?code=…]`: enter the code, press Join, land in the session."""

    @web.authenticated
    async def get(self) -> None:
        await self._page(code=self.get_argument("code", ""))

    @web.authenticated
    async def post(self) -> None:
        code = self.get_body_argument("code", "")
        user = self.current_user
        try:
            ws = await redeem(self, self.store, user.name, code)
        except web.HTTPError as exc:
            self.set_status(exc.status_code)
            await self._page(code=code, error=exc.log_message)
            return
        # The preset session, in one step: JupyterHub spawns from query arguments.
        spawn = url_path_join(self.hub.base_url, "spawn", user.escaped_name, ws.name)
        self.redirect(f"{spawn}?workshop={ws.name}")

    async def _page(self, code: str, error: str = "") -> None:
        html = await self.render_template("workshop-join.html", code=code, error=error)
        self.finish(html)


#: The instructor page's create form (the spec's fields, as text).
FORM_FIELDS = (
    "name",
    "title",
    "seats",
    "start",
    "end",
    "resource",
    "gpus",
    "hours",
    "material",
    "project",
    "environment",
    "shared",
)


class DashboardPage(_Workshops, BaseHandler):
    """`/hub/naic/workshops` (my workshops) and `/hub/naic/workshops/{name}` (who joined,
    whose session is queued, running or ended; stop one, stop all, end the workshop)."""

    def _check(self, name: str | None) -> Workshop | None:
        """The same check as the API's (`_Workshops._mine`)."""
        if name is None:
            self._instructor()
            return None
        return self._mine(name)

    @web.authenticated
    async def get(self, name: str | None = None) -> None:
        # TAs look too (naic.hub.workshops.staff); every change below is the managers'.
        ws = self._check(name) if name is None else self._mine(name, ta=True)
        await (self._list() if ws is None else self._show(ws))

    async def _show(self, ws: Workshop, code: str = "", notice: str = "", error: str = "") -> None:
        """The dashboard; `code` only right after it was made (the hub keeps its hash);
        `notice`, `error`: what the last edit did, or why it was refused."""
        students = []
        update = material.update_of(self.db, ws.name)
        for seat in self.store.seats(ws.name):
            state, progress = self.student_session(ws, seat.username)
            pulled = material.version_words(update, self.material_of(ws.name, seat.username))
            students.append(
                {"seat": seat, "state": state, "progress": progress, "material": pulled}
            )
        join = workshop_json(ws, self.hub.base_url, code)["join_url"]
        html = await self.render_template(
            "workshop.html",
            ws=ws,
            students=students,
            code=code,
            join_url=join,
            now=datetime.now(UTC),
            staff={r: staff.members(self.db, ws.name, r) for r in staff.ROLES},
            access=staff.access_log(self.db, ws.name)[:50],
            is_ta=staff.role_of(self.db, ws.name, self.current_user.name) == "ta",
            open_base=url_path_join(self.hub.base_url, f"naic/workshops/{ws.name}/open"),
            notice=notice,
            error=error,
            update=update,
            update_every=int(material.REPORT_EVERY_S),
            assignments=self._assignments(ws),
        )
        self.finish(html)

    def _assignments(self, ws: Workshop) -> list[dict]:
        """Each released assignment and who submitted it (naic.hub.workshops.assignments)."""
        store = assignments_for(self.settings["naic"]["ledger_url"])
        handed = store.submissions(ws.name)
        return [
            {"a": a, "submitted": sorted(s.username for s in handed if s.assignment == a.name)}
            for a in store.assignments(ws.name)
        ]

    @web.authenticated
    async def post(self, name: str | None = None) -> None:
        ws = self._check(name)
        if ws is None:
            await self._create()
            return
        verb = self.get_body_argument("staff_action", "")
        if verb in ("add", "remove"):
            who = self.get_body_argument("staff_user", "").strip().lower()
            role = self.get_body_argument("staff_role", "ta")
            change = {role: [who]}
            staff_api.change_staff(
                self, ws.name, *((change, None) if verb == "add" else (None, change))
            )
            self.redirect(url_path_join(self.hub.base_url, f"naic/workshops/{ws.name}"))
            return
        if self.get_body_argument("approve", ""):
            if not self.may_administer():
                raise web.HTTPError(403, "Only admins approve workshops.")
            await approve(self, self.store, ws.name)
            self.redirect(url_path_join(self.hub.base_url, f"naic/workshops/{ws.name}"))
            return
        if self.get_body_argument("try", ""):
            try_as_student(self, ws)  # the same rule as the API's
            me = self.current_user.escaped_name
            spawn = url_path_join(self.hub.base_url, "spawn", me, ws.name)
            self.redirect(f"{spawn}?workshop={ws.name}")
            return
        if self.get_body_argument("edit", "") or self.get_body_argument("remove", ""):
            await self._edit(ws)
            return
        if self.get_body_argument("update_material", ""):
            try:
                entry = await material.ask_for_update(self, ws)
            except web.HTTPError as exc:
                self.set_status(exc.status_code)
                await self._show(ws, error=exc.log_message)
                return
            sentence = f"Update {entry['number']} asked: running sessions pull it within "
            await self._show(ws, notice=f"{sentence}{int(material.REPORT_EVERY_S)} s.")
            return
        if self.get_body_argument("new_code", ""):
            code = new_code()
            self.store.set_code(ws.name, code)
            self.log.info("Workshop %s: new join code made by %s", ws.name, self.current_user.name)
            await self._show(ws, code=code)
            return
        who = self.get_body_argument("stop", "")
        targets = [s.username for s in self.store.seats(ws.name)] if who == "*" else [who]
        stops = []
        for username in targets:
            if username not in {s.username for s in self.store.seats(ws.name)}:
                raise web.HTTPError(400, f"{username} is not a student of {ws.title}.")
            user = self.find_user(username)
            if user is not None and ws.name in user.orm_user.orm_spawners:
                sp = user.spawners[ws.name]
                if sp.active:
                    sp.stop_reason = f"stopped by the instructor of {ws.title}"
                    stops.append(self.stop_single_user(user, ws.name))
        await asyncio.gather(*stops, return_exceptions=True)
        self.redirect(url_path_join(self.hub.base_url, f"naic/workshops/{ws.name}"))

    async def _edit(self, ws: Workshop) -> None:
        """The Edit form (seats, start and end in UTC, as the create form) or a student's
        Remove button: the API's rules, and its sentence on the page."""
        try:
            student = self.get_body_argument("remove", "")
            if student:
                sentence = await remove_student(self, self.store, ws, student)
            else:
                shown = {"seats": str(ws.seats), "start": f"{ws.starts_at:%Y-%m-%dT%H:%M}",
                         "end": f"{ws.ends_at:%Y-%m-%dT%H:%M}"}  # fmt: skip
                body = {}
                for key, was in shown.items():  # only what the instructor changed
                    value = self.get_body_argument(key, "").strip()
                    if value and value != was:
                        body[key] = value if key == "seats" else f"{value}+00:00"
                ws, sentence = await edit_workshop(
                    self, self.store, ws, body or {"seats": ws.seats}
                )
        except web.HTTPError as exc:
            self.set_status(exc.status_code)
            await self._show(self.store.get(ws.name), error=exc.log_message)
            return
        await self._show(self.store.get(ws.name), notice=sentence)

    async def _list(self, form: dict | None = None, error: str = "") -> None:
        mine = None if self.may_administer() else self.current_user.name
        cat = self.naic_catalogue
        resources = [
            f"{s}:{r}"
            for s, site in cat.sites.items()
            if site.backend == "slurm"
            for r in site.resources
        ]
        html = await self.render_template(
            "workshops.html",
            workshops=self.store.list(mine),
            now=datetime.now(UTC),
            resources=resources,
            projects=list(cat.projects),
            environments=list(cat.environments),
            form=form or {},
            error=error,
        )
        self.finish(html)

    async def _create(self) -> None:
        """The page's form: the same fields as the CLI; times in UTC."""
        form = {k: self.get_body_argument(k, "").strip() for k in FORM_FIELDS}
        body = {k: v for k, v in form.items() if v != ""}
        for key in ("start", "end"):
            if key in body and not body[key].endswith(("Z", "+00:00")):
                body[key] += "+00:00"  # the form says UTC
        try:
            ws, code = await create_workshop(self, self.store, body)
        except web.HTTPError as exc:
            self.set_status(exc.status_code)
            await self._list(form, exc.log_message)
            return
        # Shown here, this once: the hub keeps only the code's hash.
        await self._show(ws, code=code)
