"""What every workshop handler and page shares: the store, who may manage a workshop (one
check for the API and the pages alike), the JSON a workshop is shown as, and where a
workshop's Slurm commands run.

Instructors hold `custom:naic:workshops` (the `instructor` role, group `instructors`) and
manage only their own workshops; admins (`admin:users`) manage all.
"""

from __future__ import annotations

import functools
from datetime import datetime

from jupyterhub.apihandlers import APIHandler
from jupyterhub.utils import url_path_join
from pydantic import ValidationError
from tornado import web

from naic.hub.catalogue import Catalogue
from naic.hub.usage import accounting, metrics
from naic.hub.workshops import staff
from naic.hub.workshops.rules import code_key
from naic.hub.workshops.store import Workshop, WorkshopStore
from naic.spawners.request import WorkshopPreset
from naic.spawners.site import site_for

SCOPE = "custom:naic:workshops"


@functools.cache
def store_for(url: str, code_key: bytes | None = None) -> WorkshopStore:
    """One store (one connection pool) per database (and key for join codes) in this hub
    process."""
    return WorkshopStore(url, code_key=code_key)


def presets_for(url: str, user: str, now: datetime) -> tuple[WorkshopPreset, ...]:
    """The workshop sessions `user` may start now (naic.spawners.request's UserFacts): a
    seat's while its window is open; and for an instructor, before the window opens, their
    own workshop's preset ("try as a student"), outside the reservation, which holds nothing
    yet (naic.hub.workshops.check)."""
    out = []
    for ws in store_for(url).open_seats_of(user):
        left_h = (ws.ends_at - now).total_seconds() / 3600
        out.append(preset_of(ws, max(min(ws.hours, left_h), 1 / 60), ws.reservation))
    seated = {p.name for p in out}
    for ws in store_for(url).active_of(user):
        if ws.name not in seated and now < ws.starts_at and ws.awaiting_approval is None:
            out.append(preset_of(ws, ws.hours, None))
    return tuple(out)


def preset_of(ws: Workshop, hours: float, reservation: str | None) -> WorkshopPreset:
    return WorkshopPreset(
        name=ws.name,
        title=ws.title,
        site=ws.site,
        resource=ws.resource,
        gpus=ws.gpus,
        hours=hours,
        project=ws.project,
        reservation=reservation,
        material=ws.material,
        environment=ws.environment,
        shared=ws.shared,
    )


def first_error(exc: ValidationError) -> str:
    """One sentence from pydantic's first error, naming the field."""
    e = exc.errors()[0]
    field = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    return f"`{field}`: {msg}." if field else f"{msg[0].upper()}{msg[1:]}."


def workshop_json(ws: Workshop, base_url: str, code: str | None = None) -> dict:
    """`code` only where it was just made: the hub keeps only its hash."""
    join = f"naic/workshops/join?code={code}" if code else "naic/workshops/join"
    return {
        "name": ws.name,
        "title": ws.title,
        "instructor": ws.instructor,
        "seats": ws.seats,
        "start": ws.starts_at.isoformat(),
        "end": ws.ends_at.isoformat(),
        "resource": f"{ws.site}:{ws.resource}",
        "gpus": ws.gpus,
        "hours": ws.hours,
        "project": ws.project,
        "material": ws.material,
        "environment": ws.environment,
        "shared": ws.shared,
        "code": code,
        "join_url": url_path_join(base_url, join),
        "reservation": ws.reservation,
        "ended": ws.ended_at.isoformat() if ws.ended_at else None,
        "state": state_of(ws),
        "approval": ws.awaiting_approval,
    }


def state_of(ws: Workshop) -> str:
    if ws.ended_at is not None:
        return "ended"
    return "awaiting approval" if ws.awaiting_approval else "active"


class _Workshops(accounting._NaicHandlerMixin):
    """What every workshop handler and page shares: the store, and where students stand."""

    @property
    def store(self) -> WorkshopStore:
        # The cookie secret lives in the hub's data dir (or its environment), never in the
        # database: a copy of the database cannot test guesses of a code offline.
        key = code_key(self.settings["cookie_secret"])
        return store_for(self.settings["naic"]["ledger_url"], key)

    def student_session(self, ws: Workshop, username: str) -> tuple[str, dict]:
        """(queued, starting, running, or how it ended; notebook progress) of a student's
        workshop session."""
        user = self.find_user(username)
        if user is None or ws.name not in user.orm_user.orm_spawners:
            return "not started", {}
        sp = user.spawners[ws.name]
        state = metrics.session_state(sp) or (sp.last_end or {}).get("reason", "ended")
        return state, sp.session.notebook_progress if hasattr(sp, "session") else {}

    def material_of(self, workshop: str, username: str) -> dict:
        """What the student's workshop session last said of its material (naic.hub.workshops.
        material): {update, version, error, at}; {} before it said."""
        user = self.find_user(username)
        if user is None or workshop not in user.orm_user.orm_spawners:
            return {}
        sp = user.spawners[workshop]
        return dict(sp.session.material) if hasattr(sp, "session") else {}

    def may_administer(self) -> bool:
        return accounting.may(self, "admin:users")

    def _instructor(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to manage workshops.")
        if not accounting.may(self, SCOPE):
            raise web.HTTPError(403, "Only instructors and admins manage workshops.")

    def _mine(self, name: str, *, ta: bool = False) -> Workshop:
        """The workshop `name`, if the caller may manage it (or 403/404 with the sentence):
        its instructor, a co-instructor, an admin; with `ta`, its TAs too (to look)."""
        if self.current_user is not None:
            role = staff.role_of(self.db, name, self.current_user.name)
            if role == "co-instructor" or (ta and role == "ta"):
                ws = self.store.get(name)
                if ws is not None:
                    return ws
        self._instructor()
        ws = self.store.get(name)
        if ws is None:
            raise web.HTTPError(404, f"There is no workshop {name}.")
        if ws.instructor != self.current_user.name and not self.may_administer():
            raise web.HTTPError(403, "You manage only your own workshops.")
        return ws


class _WorkshopHandler(_Workshops, APIHandler):
    pass


async def slurm(cat: Catalogue, site: str, argv: list[str]) -> str:
    """An operator's Slurm command, as the hub, where the workshop's site runs them (here,
    or its login node over SSH); RuntimeError with Slurm's words."""
    if site not in cat.sites:
        raise RuntimeError(f"the site {site} is no longer in the catalogue")
    return await site_for(cat, site).call(argv)
