"""Workshops over REST, for `naic workshop …` and the hub's pages.

    POST   /hub/api/naic/workshops             create (instructors, admins): spec JSON →
                                               201 {name, code, join_url, reservation, …}
    GET    /hub/api/naic/workshops             the caller's workshops (admins: all)
    GET    /hub/api/naic/workshops/{name}      one, with its students and their sessions
    DELETE /hub/api/naic/workshops/{name}      end it: stop every session, release the
                                               reservation; answers the report (CSV)
    POST   /hub/api/naic/workshops/join        {"code": …}: take a seat (any logged-in user)
    POST   /hub/api/naic/workshops/{name}/accounts  {"count": N}: temporary accounts
    POST   /hub/api/naic/workshops/{name}/code  a new join code (the old one stops working)
    POST   /hub/api/naic/workshops/{name}/approve  (admins) reserve one above the policy
    PATCH  /hub/api/naic/workshops/{name}      edit seats and window; DELETE …/students/{user}
                                               removes a student (naic.hub.workshops.edit_api)

Join codes are shown once, when made: the database keeps only their keyed hash (the key
comes from the hub's cookie secret, which is not in the database), so a copy of it gives no
code. Joining takes the student's own login, not a session's token (`JOIN_SCOPE`).

Temporary accounts (the catalogue's `guest_accounts`) pass from person to person: each is
reset when its window passes, with nobody acting (a timer in the hub, `watch_guest_windows`,
which also looks at its start, so a window that passed while the hub was down counts), and
again right before it is issued: the hub forgets its cookies, tokens and shares and stops its
sessions, Slurm kills and cancels its jobs, and its home is emptied down to /etc/skel.

Instructors hold `custom:naic:workshops` (the `instructor` role, group `instructors`) and
manage only their own workshops; admins manage all. A student's workshop session is the
named server `{workshop}`, started with `{"workshop": name}` as its only option: the preset
and the reservation come from here (naic.spawners.request), never from the student.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
from datetime import UTC, datetime

from pydantic import ValidationError
from tornado import web

from naic.hub.catalogue import Catalogue
from naic.hub.usage import accounting
from naic.hub.workshops import ending, staff, staff_api
from naic.hub.workshops.base import (
    _WorkshopHandler,
    first_error,
    slurm,
    workshop_json,
)
from naic.hub.workshops.budget import seats_budget
from naic.hub.workshops.edits import removed_refusal
from naic.hub.workshops.resets import HubSide, reset_due_guests
from naic.hub.workshops.rules import (
    Reservation,
    WorkshopSpec,
    approval_reasons,
    awaiting_sentence,
    catalogue_problems,
    new_code,
    normalise_code,
    project_refusal,
    reservation_argv,
    reservation_for,
)
from naic.hub.workshops.store import Workshop, WorkshopExists, WorkshopStore
from naic.spawners.request import projects_of

#: What joining takes: the user's own login (a cookie, or a token they made, which inherits
#: it). `self` holds it; a server's token (the `server` role) never does, and a credential
#: that may make the user's tokens is the whole user anyway.
JOIN_SCOPE = "tokens"
#: Redemption attempts per user in RATE_WINDOW_S, right or wrong: guessing stays hopeless.
RATE_LIMIT = 10
RATE_WINDOW_S = 600
_attempts: collections.defaultdict[str, collections.deque] = collections.defaultdict(
    collections.deque
)


def rate_limited(user: str, now: float | None = None) -> bool:
    """True when `user` has used up their redemption attempts (and counts this one)."""
    now = time.monotonic() if now is None else now
    seen = _attempts[user]
    while seen and now - seen[0] > RATE_WINDOW_S:
        seen.popleft()
    if len(seen) >= RATE_LIMIT:
        return True
    seen.append(now)
    return False


class WorkshopsHandler(_WorkshopHandler):
    def get(self) -> None:
        self._instructor()
        mine = None if accounting.may(self, "admin:users") else self.current_user.name
        base = self.hub.base_url
        self.finish(json.dumps([workshop_json(w, base) for w in self.store.list(mine)]))

    async def post(self) -> None:
        self._instructor()
        body = self.json_body()
        # {"staff": {"co-instructor": [...], "ta": [...]}} (naic.hub.workshops.staff)
        team = body.pop("staff", None) if isinstance(body, dict) else None
        if team is not None and not isinstance(team, dict):
            raise web.HTTPError(400, '`staff` must map "co-instructor" and "ta" to user names.')
        ws, code = await create_workshop(self, self.store, body)
        out = workshop_json(ws, self.hub.base_url, code)
        if team:
            out["staff"] = staff_api.change_staff(self, ws.name, team, None)
        self.set_status(202 if ws.awaiting_approval else 201)
        self.finish(json.dumps(out))


async def _nodes(partition: str | None, cat: Catalogue, site: str) -> int:
    argv = ["sinfo", "-h", "-o", "%D"] + (["-p", partition] if partition else [])
    try:
        out = await slurm(cat, site, argv)
    except RuntimeError as exc:
        raise ValueError(f"Slurm does not answer: {exc}") from None
    return sum(int(x) for x in out.split() if x.isdigit())


async def create_workshop(handler, store: WorkshopStore, body: dict) -> tuple[Workshop, str]:
    """Validate, store, reserve; (the workshop, its join code, shown this once), or HTTPError
    with one sentence, and nothing half-created. Above the catalogue's `workshops` policy it
    is kept awaiting an admin's approval, with no reservation yet."""
    try:
        spec = WorkshopSpec.model_validate(body)
    except ValidationError as exc:
        raise web.HTTPError(400, first_error(exc)) from None
    cat = handler.naic_catalogue
    problems = catalogue_problems(spec, cat)
    if problems:
        raise web.HTTPError(400, " ".join(problems))
    if spec.end <= datetime.now(UTC):
        raise web.HTTPError(400, "`end` is in the past; a workshop must end in the future.")
    instructor = handler.current_user
    admin = accounting.may(handler, "admin:users")
    mine = [] if admin else projects_of(cat, accounting.user_facts(instructor, handler.naic_ledger))
    refusal = project_refusal(spec.project, mine, admin=admin)
    if refusal:
        raise web.HTTPError(403, refusal)
    try:  # every seat's GPU-hours must fit the project's budget (naic.hub.workshops.budget)
        fits, sentence = await seats_budget(cat, handler.naic_ledger, spec, datetime.now(UTC))
    except RuntimeError as exc:
        msg = f"The budget of project {spec.project} cannot be checked now: {exc}"
        raise web.HTTPError(503, msg) from None
    if not fits:
        raise web.HTTPError(403, sentence)
    # Is the cluster able to hold it at all (said now, also to one who will wait)?
    await _reservation(spec, cat)
    reasons = (
        []
        if admin
        else approval_reasons(spec, cat.workshops, active=len(store.active_of(instructor.name)))
    )
    code = new_code()
    try:
        store.create(
            spec,
            instructor=instructor.name,
            code=code,
            awaiting_approval=awaiting_sentence(reasons) if reasons else None,
        )
    except WorkshopExists as exc:
        raise web.HTTPError(409, str(exc)) from None
    if reasons:
        handler.log.info(
            "Workshop %s by %s awaits approval: %s", spec.name, instructor.name, reasons
        )
        return store.get(spec.name), code
    try:
        await reserve(spec, cat, store)
    except web.HTTPError:
        store.delete(spec.name)  # nothing half-created
        raise
    ws = store.get(spec.name)
    handler.log.info("Workshop %s created by %s", ws.name, ws.instructor)
    return ws, code


async def _reservation(spec: WorkshopSpec, cat: Catalogue) -> Reservation:
    res = cat.sites[spec.site].resources[spec.resource_name]
    try:
        nodes = await _nodes(res.partition, cat, spec.site)
        reservation = reservation_for(spec, cat, users=(), nodes_in_partition=nodes)
    except ValueError as exc:
        raise web.HTTPError(409, str(exc)) from None
    if not reservation.accounts:
        # Without a project's account to name, Slurm needs a user that surely exists;
        # students are added as they join (root may run anything anyway).
        reservation = dataclasses.replace(reservation, users=("root",))
    return reservation


async def reserve(spec: WorkshopSpec, cat: Catalogue, store: WorkshopStore) -> None:
    """Slurm's reservation for the workshop's window, recorded; HTTPError 409 if Slurm says no."""
    reservation = await _reservation(spec, cat)
    try:
        await slurm(cat, spec.site, reservation_argv(reservation, spec.start, spec.end))
    except RuntimeError as exc:
        raise web.HTTPError(409, f"Slurm could not reserve the workshop's window: {exc}") from None
    store.set_reservation(spec.name, reservation.name)


def spec_of(ws: Workshop) -> WorkshopSpec:
    """The spec a stored workshop was made from (for its reservation)."""
    return WorkshopSpec(
        name=ws.name,
        title=ws.title,
        seats=ws.seats,
        start=ws.starts_at,
        end=ws.ends_at,
        resource=f"{ws.site}:{ws.resource}",
        gpus=ws.gpus,
        hours=ws.hours,
        material=ws.material,
        project=ws.project,
        environment=ws.environment,
        shared=ws.shared,
    )


class ApproveHandler(_WorkshopHandler):
    """`POST /hub/api/naic/workshops/{name}/approve` (admins): a workshop above the
    catalogue's policy is reserved and opens to its students."""

    async def post(self, name: str) -> None:
        if self.current_user is None or not accounting.may(self, "admin:users"):
            raise web.HTTPError(403, "Only admins approve workshops.")
        ws = await approve(self, self.store, name)
        self.finish(json.dumps(workshop_json(ws, self.hub.base_url)))


async def approve(handler, store: WorkshopStore, name: str) -> Workshop:
    ws = store.get(name)
    if ws is None:
        raise web.HTTPError(404, f"There is no workshop {name}.")
    if ws.awaiting_approval is None:
        raise web.HTTPError(409, f"The workshop {ws.title} does not await approval.")
    if ws.ended_at is not None or ws.ends_at <= datetime.now(UTC):
        raise web.HTTPError(409, f"The workshop {ws.title} is over; there is nothing to approve.")
    await reserve(spec_of(ws), handler.naic_catalogue, store)
    handler.log.info("Workshop %s approved by %s", name, handler.current_user.name)
    return store.approve(name, handler.current_user.name)


class CodeHandler(_WorkshopHandler):
    """`POST /hub/api/naic/workshops/{name}/code`: a new join code (the old one stops
    working). The hub keeps only codes' hashes, so this is how a lost code is replaced."""

    def post(self, name: str) -> None:
        ws = self._mine(name)
        if ws.ended_at is not None:
            raise web.HTTPError(409, f"The workshop {ws.title} has ended.")
        code = new_code()
        self.store.set_code(ws.name, code)
        self.log.info("Workshop %s: new join code made by %s", name, self.current_user.name)
        self.finish(json.dumps(workshop_json(self.store.get(name), self.hub.base_url, code)))


class WorkshopHandler(_WorkshopHandler):
    def get(self, name: str) -> None:
        ws = self._mine(name)
        body = workshop_json(ws, self.hub.base_url)
        body["students"] = []
        for seat in self.store.seats(name):
            state, progress = self.student_session(ws, seat.username)
            body["students"].append(
                {
                    "user": seat.username,
                    "seat": seat.seat,
                    "session": state,
                    "notebooks": progress,
                    "material": self.material_of(name, seat.username),
                }
            )
        self.finish(json.dumps(body))

    async def delete(self, name: str) -> None:
        ws = self._mine(name)
        stops = []
        for seat in self.store.seats(name):
            user = self.find_user(seat.username)
            if user is not None and name in user.orm_user.orm_spawners:
                sp = user.spawners[name]
                if sp.active:
                    sp.stop_reason = f"the workshop {ws.title} ended"
                    stops.append(self.stop_single_user(user, name))
        await asyncio.gather(*stops, return_exceptions=True)
        if ws.reservation:
            try:
                argv = ["scontrol", "delete", f"ReservationName={ws.reservation}"]
                await slurm(self.naic_catalogue, ws.site, argv)
            except RuntimeError as exc:
                # Gone already (Slurm 22.05 says "Requested reservation is invalid").
                if not any(
                    w in str(exc) for w in ("Invalid reservation", "reservation is invalid")
                ):
                    msg = f"Slurm did not release the reservation: {exc}"
                    raise web.HTTPError(503, msg) from None
        ws = self.store.end(name)
        if self.store.expire_guests(name):
            await reset_due_guests(HubSide(self), self.store, self.naic_catalogue, self.log)
        self.log.info("Workshop %s ended by %s", name, self.current_user.name)
        report = ending.report_csv(self, ws)
        self.finish(json.dumps({**workshop_json(ws, self.hub.base_url), "report": report}))


async def redeem(handler, store: WorkshopStore, user: str, code: str) -> Workshop:
    """Take a seat with a join code, or HTTPError with the sentence why not."""
    if not accounting.may(handler, JOIN_SCOPE, user=user):
        # A session's own token (JUPYTERHUB_API_TOKEN, readable by any code in the session,
        # a shared notebook's too) lacks it: a seat charges GPU-hours, so only the person.
        raise web.HTTPError(
            403,
            "Joining a workshop needs your own login (the hub's page, or a token you made); a "
            "session's own token may not join workshops.",
        )
    if rate_limited(user):
        raise web.HTTPError(
            429, "Too many attempts with workshop codes; wait ten minutes and try again."
        )
    ws = store.by_code(normalise_code(code))
    if ws is None:
        raise web.HTTPError(404, "That code belongs to no workshop; check it and try again.")
    if user in staff.removed(handler.db, ws.name):  # naic.hub.workshops.edit_api
        raise web.HTTPError(403, removed_refusal(ws.title))
    try:
        store.join(ws.name, user)
    except ValueError as exc:
        raise web.HTTPError(403, str(exc)) from None
    staff.seat(handler.db, ws.name, user)  # the workshop's group (naic.hub.workshops.staff)
    if ws.reservation and not ws.project:  # a reservation by users: this one may use it
        # IGNORE_JOBS: Slurm refuses any change to a reservation whose nodes run other jobs.
        argv = ["scontrol", "update", f"ReservationName={ws.reservation}", f"Users+={user}"]
        try:
            await slurm(handler.naic_catalogue, ws.site, [*argv, "Flags=IGNORE_JOBS"])
        except RuntimeError as exc:
            store.leave(ws.name, user)  # a seat without the reservation is no seat
            staff.unseat(handler.db, ws.name, user)
            handler.log.warning("Could not add %s to %s: %s", user, ws.reservation, exc)
            raise web.HTTPError(
                503,
                f"The scheduler did not let you into the workshop's reservation ({exc}); "
                "please try again in a minute.",
            ) from None
    return ws


class JoinHandler(_WorkshopHandler):
    async def post(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Log in first, then enter the workshop's code.")
        user = self.current_user.name
        ws = await redeem(self, self.store, user, str(self.json_body().get("code", "")))
        seat = next(s for s in self.store.seats(ws.name) if s.username == user)
        self.finish(
            json.dumps(
                {
                    "workshop": ws.name,
                    "title": ws.title,
                    "seat": seat.seat,
                    "server": ws.name,
                    "user_options": {"workshop": ws.name},
                }
            )
        )
