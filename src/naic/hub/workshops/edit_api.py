"""Editing a workshop after it was made, over REST (the rules: naic.hub.workshops.edits).

    PATCH  /hub/api/naic/workshops/{name}   {"seats": N, "start": T, "end": T} (any of
                                            them) → the workshop, with "message"
    DELETE /hub/api/naic/workshops/{name}/students/{student}   remove a student: their
                                            session stopped, their seat freed

The instructor, a co-instructor or an admin. An edit is checked as create checks (the
window, the policy, the project's budget for raised seats, the cluster's nodes), then the
Slurm reservation is updated, then the database: when Slurm refuses, nothing is stored,
and the answer says why with one sentence naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from pydantic import ValidationError
from tornado import web

from naic.hub.usage import accounting
from naic.hub.workshops import staff
from naic.hub.workshops.api import WorkshopHandler, _reservation, spec_of
from naic.hub.workshops.base import _WorkshopHandler, first_error, slurm, workshop_json
from naic.hub.workshops.budget import seats_budget
from naic.hub.workshops.edits import (
    WorkshopEdit,
    busy_sentence,
    edit_refusal,
    edit_sentence,
    policy_refusal,
    removal_sentence,
    replace_argvs,
    replaces_cores,
    reservation_update_argv,
)
from naic.hub.workshops.rules import (
    Reservation,
    WorkshopSpec,
    approval_reasons,
    awaiting_sentence,
)
from naic.hub.workshops.store import Workshop, WorkshopStore


async def edit_workshop(handler, store: WorkshopStore, ws: Workshop, body) -> tuple[Workshop, str]:
    """Change the seats and window of `ws` (the caller may manage it); (the workshop as
    stored now, the sentence what changed), or HTTPError with the sentence why not, and
    nothing half-changed."""
    now = datetime.now(UTC)
    if ws.ended_at is not None or ws.ends_at <= now:
        raise web.HTTPError(409, f"The workshop {ws.title} is over; it can no longer be edited.")
    if not isinstance(body, dict) or not body:
        raise web.HTTPError(400, "Say what to change: `seats`, `start` or `end`.")
    try:
        edit = WorkshopEdit.model_validate(body)
        old = spec_of(ws)
        new = edit.apply(old)
    except ValidationError as exc:
        raise web.HTTPError(400, first_error(exc)) from None
    if new == old:
        return ws, edit_sentence(ws.title, old, new)
    refusal = edit_refusal(
        title=ws.title, old=old, new=new, seated=len(store.seats(ws.name)), now=now
    )
    if refusal:
        raise web.HTTPError(400, refusal)
    cat = handler.naic_catalogue
    if not accounting.may(handler, "admin:users"):
        refusal = policy_refusal(old, new, cat.workshops)
        if refusal and ws.awaiting_approval is None:
            raise web.HTTPError(403, refusal)
    if new.seats > old.seats:  # every seat's GPU-hours, as create counts them
        try:
            fits, sentence = await seats_budget(cat, handler.naic_ledger, new, now)
        except RuntimeError as exc:
            msg = f"The budget of project {new.project} cannot be checked now: {exc}"
            raise web.HTTPError(503, msg) from None
        if not fits:
            raise web.HTTPError(403, f"`seats`: {sentence}")
    undo = await change_reservation(handler, store, ws, old, new, now)
    try:
        edited = store.edit(ws.name, seats=new.seats, starts_at=new.start, ends_at=new.end)
    except Exception:
        for argv in undo:  # the reservation back as it was, as the stored workshop is
            try:
                await slurm(cat, ws.site, argv)
            except RuntimeError as exc:
                handler.log.error("Workshop %s: reservation not put back: %s", ws.name, exc)
        raise
    if ws.awaiting_approval is not None:
        # The admin approves what is asked now.
        reasons = approval_reasons(new, cat.workshops, active=0)
        if reasons:
            store.set_awaiting(ws.name, awaiting_sentence(reasons))
            edited = store.get(ws.name)
    sentence = edit_sentence(ws.title, old, new)
    handler.log.info("Workshop %s edited by %s: %s", ws.name, handler.current_user.name, sentence)
    return edited, sentence


async def change_reservation(
    handler, store: WorkshopStore, ws: Workshop, old: WorkshopSpec, new: WorkshopSpec, now
) -> list[list[str]]:
    """Slurm's reservation of `ws` taken from `old` to `new`: updated, or for more cores
    replaced (naic.hub.workshops.edits.replaces_cores); the commands that undo it. HTTPError
    409 with the sentence when Slurm refuses, and the reservation as it was."""
    cat = handler.naic_catalogue
    if not ws.reservation or ws.awaiting_approval is not None:
        return []
    if new.seats != old.seats:  # 409 when the cluster cannot hold it
        now_r, then_r = await _reservation(new, cat), await _reservation(old, cat)
        if not ws.project:  # a reservation by users: the seated students stay in it
            users = ("root", *(s.username for s in store.seats(ws.name)))
            now_r = dataclasses.replace(now_r, users=users)
            then_r = dataclasses.replace(then_r, users=users)
    else:
        now_r = then_r = Reservation(ws.reservation, None, 0, 0, (), ())
    if replaces_cores(now_r, old, new):
        # Slurm takes no start in the past for a new reservation: from now on, then.
        (delete, create), back = replace_argvs(
            now_r, new.model_copy(update={"start": max(new.start, now)}),
            then_r, old.model_copy(update={"start": max(old.start, now)}),
        )  # fmt: skip
        try:
            await slurm(cat, ws.site, delete)
        except RuntimeError as exc:
            raise web.HTTPError(409, busy_sentence(ws.title, exc)) from None
        try:
            await slurm(cat, ws.site, create)
        except RuntimeError as exc:
            try:
                await slurm(cat, ws.site, back)
            except RuntimeError as again:
                handler.log.error("Workshop %s: reservation not put back: %s", ws.name, again)
            raise web.HTTPError(409, f"{REFUSED} ({exc}); nothing was changed.") from None
        return [delete, back]
    argv = reservation_update_argv(now_r, old, new)
    if argv is None:
        return []
    try:
        await slurm(cat, ws.site, argv)
    except RuntimeError as exc:
        raise web.HTTPError(409, f"{REFUSED} ({exc}); nothing was changed.") from None
    return [reservation_update_argv(then_r, new, old)]


REFUSED = "Slurm did not change the workshop's reservation"


async def remove_student(handler, store: WorkshopStore, ws: Workshop, student: str) -> str:
    """Take `student` out of `ws`: recorded first (they cannot join again), their seat and
    group membership gone (they cannot start the session), their session stopped, and for
    a reservation by users, they leave it. The sentence what was done."""
    if student not in {s.username for s in store.seats(ws.name)}:
        raise web.HTTPError(404, f"{student} is not a student of {ws.title}.")
    by = handler.current_user.name
    staff.mark_removed(handler.db, ws.name, student, by)
    store.leave(ws.name, student)
    staff.unseat(handler.db, ws.name, student)
    stopped = False
    user = handler.find_user(student)
    if user is not None and ws.name in user.orm_user.orm_spawners:
        sp = user.spawners[ws.name]
        if sp.active:
            sp.stop_reason = f"removed from the workshop {ws.title} by {by}"
            try:
                await handler.stop_single_user(user, ws.name)
                stopped = True
            except Exception as exc:  # the seat is gone: the session cannot start again
                handler.log.warning("Workshop %s: stopping %s failed: %s", ws.name, student, exc)
    if ws.reservation and not ws.project and ws.ended_at is None:
        argv = ["scontrol", "update", f"ReservationName={ws.reservation}", f"Users-={student}"]
        try:
            await slurm(handler.naic_catalogue, ws.site, [*argv, "Flags=IGNORE_JOBS"])
        except RuntimeError as exc:
            handler.log.warning("Could not take %s out of %s: %s", student, ws.reservation, exc)
    handler.log.info("Workshop %s: %s removed by %s", ws.name, student, by)
    return removal_sentence(ws.title, student, stopped=stopped)


class EditableWorkshopHandler(WorkshopHandler):
    """`/hub/api/naic/workshops/{name}`: GET and DELETE (naic.hub.workshops.api), PATCH."""

    async def patch(self, name: str) -> None:
        ws = self._mine(name)
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            msg = 'The body must be JSON, e.g. {"seats": 12, "end": "2027-01-20T17:00Z"}.'
            raise web.HTTPError(400, msg) from None
        ws, sentence = await edit_workshop(self, self.store, ws, body)
        self.finish(json.dumps({**workshop_json(ws, self.hub.base_url), "message": sentence}))


class StudentHandler(_WorkshopHandler):
    """`DELETE /hub/api/naic/workshops/{name}/students/{student}`."""

    async def delete(self, name: str, student: str) -> None:
        ws = self._mine(name)
        sentence = await remove_student(self, self.store, ws, student)
        body = {**workshop_json(self.store.get(name), self.hub.base_url), "message": sentence}
        self.finish(json.dumps(body))
