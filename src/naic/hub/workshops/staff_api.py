"""A workshop's staff over REST and the dashboard's "open" link (naic.hub.workshops.staff).

GET  /hub/api/naic/workshops/{name}/staff   {"co-instructor": [...], "ta": [...],
                                             "access": [{staff, student, server, at}]}
POST /hub/api/naic/workshops/{name}/staff   {"add": {"ta": ["per"]},
                                             "remove": {"co-instructor": ["kari"]}}
GET  /hub/naic/workshops/{name}/open/{student}   (staff) open the student's session
"""

from __future__ import annotations

import json
import re

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from naic.hub.workshops import staff
from naic.hub.workshops.base import _WorkshopHandler, _Workshops

_USER = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")


def _names(value, role: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _USER.fullmatch(v) for v in value
    ):
        raise web.HTTPError(400, f"`{role}` must be a list of hub user names.")
    return value


def change_staff(handler, name: str, add: dict | None, remove: dict | None) -> dict:
    """Apply {role: [users]} additions and removals; who is on the staff now."""
    for part in (add or {}, remove or {}):
        if not isinstance(part, dict) or set(part) - set(staff.ROLES):
            raise web.HTTPError(400, 'Staff roles are "co-instructor" and "ta".')
    for role in staff.ROLES:
        plus = _names((add or {}).get(role), role)
        minus = _names((remove or {}).get(role), role)
        if plus or minus:
            staff.set_members(handler.db, name, role, add=plus, remove=minus)
            handler.log.info(
                "Workshop %s: %s adds %s, removes %s as %s",
                name, handler.current_user.name, plus, minus, role,
            )  # fmt: skip
    return {role: staff.members(handler.db, name, role) for role in staff.ROLES}


class StaffHandler(_WorkshopHandler):
    def get(self, name: str) -> None:
        self._mine(name, ta=True)
        body = {role: staff.members(self.db, name, role) for role in staff.ROLES}
        body["access"] = staff.access_log(self.db, name)
        self.finish(json.dumps(body))

    def post(self, name: str) -> None:
        self._mine(name)  # the instructor, a co-instructor, an admin
        body = self.json_body() or {}
        self.finish(json.dumps(change_staff(self, name, body.get("add"), body.get("remove"))))


class OpenHandler(_Workshops, BaseHandler):
    """`/hub/naic/workshops/{name}/open/{student}`: the staff's way into a student's
    workshop session; every opening is logged and shown on the dashboard."""

    @web.authenticated
    def get(self, name: str, student: str) -> None:
        ws = self._mine(name, ta=True)
        if student not in {s.username for s in self.store.seats(ws.name)}:
            raise web.HTTPError(404, f"{student} is not a student of {ws.title}.")
        try:
            path = staff.grant(self.db, ws.name, student, self.current_user.name)
        except ValueError as exc:
            raise web.HTTPError(409, str(exc)) from None
        staff.log_access(self.db, ws.name, self.current_user.name, student)
        self.log.info(
            "Workshop %s: %s opened %s's session", ws.name, self.current_user.name, student
        )
        self.redirect(url_path_join(self.base_url, path))
