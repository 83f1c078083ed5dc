"""Workshop assignments over REST (the rules and store: naic.hub.workshops.assignments).

POST /hub/api/naic/workshops/{ws}/assignments   {"name": "a1", "archive": base64 zip}
     release (again: replace; submissions stay): the instructor, a co-instructor, an admin
GET  /hub/api/naic/workshops/{ws}/assignments   the staff: every assignment with who
     submitted when; a seated student: the released ones and their own `submitted_at`
GET  /hub/api/naic/workshops/{ws}/assignments/{a}   {"name", "released_at", "archive"}
     (the staff, a seated student)
PUT  /hub/api/naic/workshops/{ws}/assignments/{a}/submission   {"archive": base64 zip}
     a seated student, for themselves; GET: their own submission back
GET  /hub/api/naic/workshops/{ws}/assignments/{a}/submissions   the staff: every
     student's latest {"user", "submitted_at", "archive"}
GET  /hub/api/naic/workshops/{ws}/assignments/{a}/submissions/{user}   one of them: the
     staff, or that student

Who the caller is comes from the hub's own records (the workshop's instructor, its staff
groups, its seats), never from the request. The token must carry `custom:naic:assignments`
for the caller themselves (the user's own tokens, and every session's server token, carry
it: naic.hub.workshops.routes) or be an instructor's or admin's API token. Staff are the
instructor, co-instructors, TAs (to collect and grade) and admins; releasing needs the
instructor's rights (base._Workshops._mine). Every refusal is a sentence.
"""

from __future__ import annotations

import asyncio
import functools
import json

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import Scope
from tornado import web

from naic.hub.usage import accounting
from naic.hub.workshops import staff
from naic.hub.workshops.assignments import (
    MAX_PACKED,
    AssignmentStore,
    Submission,
    archive_refusal,
    decode_archive,
    encode_archive,
    name_refusal,
)
from naic.hub.workshops.base import SCOPE as WORKSHOPS_SCOPE
from naic.hub.workshops.base import _WorkshopHandler
from naic.hub.workshops.store import Workshop

SCOPE = "custom:naic:assignments"
_WS = r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/assignments"
_A = r"/([a-z][a-z0-9_-]{0,39})"
#: A base64 zip of MAX_PACKED bytes, with room for the JSON around it.
MAX_BODY = (MAX_PACKED + 2) // 3 * 4 + 64 * 1024


@functools.cache
def assignments_for(url: str) -> AssignmentStore:
    """One store (one connection pool) per database in this hub process."""
    return AssignmentStore(url)


def _at(value) -> str | None:
    return value.isoformat() if value is not None else None


def submission_json(s: Submission) -> dict:
    body = {"user": s.username, "submitted_at": _at(s.submitted_at), "size": s.size}
    if s.archive is not None:
        body["archive"] = encode_archive(s.archive)
    return body


def holds_for(parsed_scopes, me: str) -> bool:
    """Pure: whether a token's scopes (JupyterHub's parsed form) carry `custom:naic:assignments`
    for its owner `me`: unfiltered, for the user, or for one of the user's servers (a
    session's own token: `!server=me/NAME`). Another user's filter never counts."""
    got = parsed_scopes.get(SCOPE)
    if got == Scope.ALL:
        return True
    return bool(got) and (
        me in got.get("user", ()) or any(s.partition("/")[0] == me for s in got.get("server", ()))
    )


class _AssignmentHandler(_WorkshopHandler):
    async def prepare(self):
        # Archives are larger than the 64 KiB the other naic APIs take.
        size = len(self.request.body or b"")
        if size > MAX_BODY:
            raise web.HTTPError(
                413, f"The request has {size} bytes; an archive may be {MAX_PACKED // 10**6} MB."
            )
        result = APIHandler.prepare(self)
        if result is not None:
            await result

    @property
    def assignments(self) -> AssignmentStore:
        return assignments_for(self.settings["naic"]["ledger_url"])

    def _holds_scope(self) -> bool:
        return holds_for(self.parsed_scopes, self.current_user.name) or accounting.may(
            self, WORKSHOPS_SCOPE
        )

    def _caller(self, name: str) -> tuple[Workshop, str]:
        """The workshop and what the caller is in it: "staff" or "student"; or 403/404 with
        the sentence."""
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to see assignments.")
        ws = self.store.get(name)
        if ws is None:
            raise web.HTTPError(404, f"There is no workshop {name}.")
        if not self._holds_scope():
            raise web.HTTPError(
                403, "This token may not be used for assignments; use your own or your session's."
            )
        me = self.current_user.name
        if (
            ws.instructor == me
            or staff.role_of(self.db, ws.name, me) is not None
            or self.may_administer()
        ):
            return ws, "staff"
        if me in {s.username for s in self.store.seats(ws.name)}:
            return ws, "student"
        if me in staff.removed(self.db, ws.name):
            msg = f"You were removed from {ws.title}; its assignments are closed to you."
            raise web.HTTPError(403, msg)
        raise web.HTTPError(403, f"You are not a student of {ws.title}.")

    def _released(self, ws: Workshop, assignment: str):
        found = self.assignments.assignment(ws.name, assignment)
        if found is None:
            raise web.HTTPError(404, f"{ws.title} has no assignment {assignment} released.")
        return found

    async def _archive(self, value) -> bytes:
        """The checked zip from the body's base64 `archive`, or 400 with the sentence."""
        try:
            data = decode_archive(value)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        refusal = await asyncio.to_thread(archive_refusal, data)  # reads every member
        if refusal:
            raise web.HTTPError(400, refusal)
        return data


class AssignmentsHandler(_AssignmentHandler):
    async def post(self, name: str) -> None:
        ws = self._mine(name)  # the instructor, a co-instructor, an admin
        body = self.json_body()
        unknown = sorted(set(body) - {"name", "archive"})
        if unknown:
            msg = f'Send {{"name": ..., "archive": ...}}, not {unknown[0]!r:.40}.'
            raise web.HTTPError(400, msg)
        refusal = name_refusal(body.get("name"))
        if refusal:
            raise web.HTTPError(400, refusal)
        data = await self._archive(body.get("archive"))
        by = self.current_user.name
        released, replaced = self.assignments.release(ws.name, body["name"], data, by)
        self.log.info(
            "Workshop %s: %s %s assignment %s (%d bytes)",
            ws.name, by, "re-released" if replaced else "released", released.name, len(data),
        )  # fmt: skip
        self.set_status(200 if replaced else 201)
        self.finish(
            json.dumps(
                {
                    "name": released.name,
                    "released_at": _at(released.released_at),
                    "released_by": released.released_by,
                    "size": released.size,
                    "replaced": replaced,
                }
            )
        )

    def get(self, name: str) -> None:
        ws, role = self._caller(name)
        released = self.assignments.assignments(ws.name)
        if role == "student":
            me = self.current_user.name
            mine = {
                s.assignment: s for s in self.assignments.submissions(ws.name) if s.username == me
            }
            out = [
                {
                    "name": a.name,
                    "released_at": _at(a.released_at),
                    "submitted_at": _at(mine[a.name].submitted_at) if a.name in mine else None,
                }
                for a in released
            ]
            self.finish(json.dumps({"workshop": ws.name, "assignments": out}))
            return
        subs: dict[str, list[Submission]] = {}
        for s in self.assignments.submissions(ws.name):
            subs.setdefault(s.assignment, []).append(s)
        out = [
            {
                "name": a.name,
                "released_at": _at(a.released_at),
                "released_by": a.released_by,
                "size": a.size,
                "submissions": len(subs.get(a.name, [])),
                "submitted": [submission_json(s) for s in subs.get(a.name, [])],
            }
            for a in released
        ]
        students = len(self.store.seats(ws.name))
        self.finish(json.dumps({"workshop": ws.name, "students": students, "assignments": out}))


class AssignmentHandler(_AssignmentHandler):
    def get(self, name: str, assignment: str) -> None:
        ws, _ = self._caller(name)
        found = self._released(ws, assignment)
        data = self.assignments.archive(ws.name, assignment)
        body = {
            "name": found.name,
            "released_at": _at(found.released_at),
            "archive": encode_archive(data),
        }
        self.finish(json.dumps(body))


class SubmissionHandler(_AssignmentHandler):
    """A student's own submission: PUT to submit (again), GET to see what the hub has."""

    async def put(self, name: str, assignment: str) -> None:
        ws, _ = self._caller(name)
        me = self.current_user.name
        if me not in {s.username for s in self.store.seats(ws.name)}:
            raise web.HTTPError(403, f"Only the students of {ws.title} submit; the staff collect.")
        if ws.ended_at is not None:
            raise web.HTTPError(409, f"{ws.title} has ended; it takes no more submissions.")
        self._released(ws, assignment)
        body = self.json_body()
        if set(body) != {"archive"}:
            raise web.HTTPError(400, 'Send {"archive": the zip file in base64}, nothing else.')
        data = await self._archive(body["archive"])
        sub = self.assignments.submit(ws.name, assignment, me, data)
        self.log.info("Workshop %s: %s submitted %s (%d bytes)", ws.name, me, assignment, len(data))
        body = {k: v for k, v in submission_json(sub).items() if k != "archive"}
        self.finish(json.dumps({**body, "name": assignment}))

    def get(self, name: str, assignment: str) -> None:
        ws, _ = self._caller(name)
        self._released(ws, assignment)
        sub = self.assignments.submission(ws.name, assignment, self.current_user.name)
        if sub is None:
            raise web.HTTPError(404, f"You have not submitted {assignment} yet.")
        self.finish(json.dumps(submission_json(sub)))


class SubmissionsHandler(_AssignmentHandler):
    def get(self, name: str, assignment: str, user: str | None = None) -> None:
        ws, role = self._caller(name)
        if user is not None and role == "student":
            if user != self.current_user.name:
                raise web.HTTPError(403, "You may see only your own submission.")
        elif role != "staff":
            raise web.HTTPError(403, f"Only the staff of {ws.title} collect submissions.")
        self._released(ws, assignment)
        if user is not None:
            sub = self.assignments.submission(ws.name, assignment, user)
            if sub is None:
                raise web.HTTPError(404, f"{user} has not submitted {assignment}.")
            self.finish(json.dumps(submission_json(sub)))
            return
        subs = self.assignments.submissions(ws.name, assignment, archives=True)
        self.log.info(
            "Workshop %s: %s collected %d submissions of %s",
            ws.name, self.current_user.name, len(subs), assignment,
        )  # fmt: skip
        body = {"name": assignment, "submissions": [submission_json(s) for s in subs]}
        self.finish(json.dumps(body))


HANDLERS = [
    (_WS, AssignmentsHandler),
    (_WS + _A, AssignmentHandler),
    (_WS + _A + "/submission", SubmissionHandler),
    (_WS + _A + "/submissions", SubmissionsHandler),
    (_WS + _A + r"/submissions/([a-z0-9][a-z0-9._@-]{0,99})", SubmissionsHandler),
]
