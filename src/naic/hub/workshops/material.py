"""Material updates during a workshop: the instructor presses "Update material", every
running session pulls, and the dashboard shows who has which version.

The hub never reaches into sessions: an update is a number kept in the workshop group's
properties (naic.hub.workshops.staff), handed to each workshop session in the answer to its
activity report (naic.hub.sessions.activity). A session whose last pull is older pulls with
nbgitpuller (a student's edits win; naic.extensions.launch.fetch_material) and says, in its
next report, which update and which commit it has.

POST /hub/api/naic/workshops/{name}/material   (instructor, co-instructor, admin)
     → {"number": 2, "at": "…Z", "by": "ingrid", "version": "3f2a9c1" | null}
GET  /hub/api/naic/workshops/{name}/material   (staff) the same, and each student's
     {"user", "update", "version", "error", "at"}
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm.attributes import flag_modified
from tornado import web

from naic.hub.workshops import staff
from naic.hub.workshops.base import _WorkshopHandler

#: Workshop sessions report at least this often, so an update reaches them within it.
REPORT_EVERY_S = 20.0
_VERSION = re.compile(r"[0-9a-f]{4,40}")
_USAGE = '`material` must be {"update": number, "version": commit or null, "error": text or null}.'


def parse_material(value: Any) -> dict | None:
    """Pure: a session's report of its material (None: it said nothing); ValueError for a
    400."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"update", "version", "error", "at"}:
        raise ValueError(_USAGE)
    update, version = value.get("update", 0), value.get("version")
    error, at = value.get("error"), value.get("at")
    if isinstance(update, bool) or not isinstance(update, int) or not 0 <= update <= 10**6:
        raise ValueError(_USAGE)
    if version is not None and not (isinstance(version, str) and _VERSION.fullmatch(version)):
        raise ValueError(_USAGE)
    for text in (error, at):
        if text is not None and not (isinstance(text, str) and len(text) <= 300):
            raise ValueError(_USAGE)
    return {"update": update, "version": version, "error": error, "at": at}


def update_of(db, workshop: str) -> dict:
    """The workshop's latest update request: {number, at, by, version}; number 0: none."""
    group = staff._group(db, staff.group_name(workshop), create=False)
    found = (group.properties or {}).get("material_update") if group else None
    return dict(found) if found else {"number": 0, "at": None, "by": None, "version": None}


def request_update(db, workshop: str, by: str, version: str | None) -> dict:
    """Record one more update (the group's properties); what sessions will pull."""
    group = staff._group(db, staff.group_name(workshop))
    props = dict(group.properties or {})
    entry = {
        "number": update_of(db, workshop)["number"] + 1,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "by": by,
        "version": version,
    }
    props["material_update"] = entry
    group.properties = props
    flag_modified(group, "properties")
    db.commit()
    return entry


async def head_of(material: str, timeout_s: float = 20.0) -> str | None:
    """The commit the material's default branch points at (short), or None where that
    cannot be told (a plain folder, a repository the hub may not read, no answer)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "ls-remote", "--", material, "HEAD",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (OSError, TimeoutError):
        return None
    sha = out.decode(errors="replace").split("\t", 1)[0].strip()
    return sha[:7] if proc.returncode == 0 and _VERSION.fullmatch(sha) else None


def version_words(update: dict, student: dict | None) -> str:
    """Pure: a student's material on the dashboard, against the latest update."""
    if not student:
        return "not reported yet"
    if student.get("error"):
        return f"update {student.get('update', 0)} failed: {student['error']}"
    got = student.get("version") or "?"
    if update["number"] and student.get("update", 0) < update["number"]:
        return f"{got}, update {update['number']} not pulled yet"
    if update.get("version") and student.get("version") and student["version"] != update["version"]:
        return f"{got} (the course is at {update['version']})"
    return f"{got}, up to date" if update["number"] else got


class MaterialHandler(_WorkshopHandler):
    def get(self, name: str) -> None:
        ws = self._mine(name, ta=True)
        students = []
        for seat in self.store.seats(ws.name):
            students.append({"user": seat.username, **self.material_of(ws.name, seat.username)})
        self.finish(json.dumps({**update_of(self.db, ws.name), "students": students}))

    async def post(self, name: str) -> None:
        self.finish(json.dumps(await ask_for_update(self, self._mine(name))))


async def ask_for_update(handler, ws) -> dict:
    """The API's and the dashboard's "Update material" (the caller may manage `ws`)."""
    if not ws.material:
        raise web.HTTPError(409, f"{ws.title} has no material to update.")
    if ws.ended_at is not None:
        raise web.HTTPError(409, f"{ws.title} has ended.")
    who = handler.current_user.name
    entry = request_update(handler.db, ws.name, who, await head_of(ws.material))
    handler.log.info(
        "Workshop %s: %s asks sessions to pull update %d (%s)",
        ws.name, who, entry["number"], entry["version"] or "version unknown",
    )  # fmt: skip
    return entry
