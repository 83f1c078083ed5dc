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
import csv
import dataclasses
import functools
import io
import json
import logging
import os
import time
from datetime import UTC, datetime

from jupyterhub import orm
from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import new_token, url_path_join
from pydantic import ValidationError
from tornado import web
from traitlets import Float
from traitlets.config import LoggingConfigurable

from naic.hub import catalogue
from naic.hub.catalogue import Catalogue, Site
from naic.hub.usage import accounting, metrics
from naic.hub.workshops.rules import (
    FAILURE_WINDOW_S,
    FAILURES_PER_ACCOUNT,
    FAILURES_PER_PEER,
    Failures,
    Reservation,
    WorkshopSpec,
    approval_reasons,
    awaiting_sentence,
    catalogue_problems,
    code_key,
    home_of,
    new_code,
    normalise_code,
    project_refusal,
    real_peer,
    reservation_argv,
    reservation_for,
    reset_argvs,
)
from naic.hub.workshops.store import Workshop, WorkshopExists, WorkshopStore
from naic.spawners import ssh
from naic.spawners.poller import login_node
from naic.spawners.request import WorkshopPreset, projects_of

SCOPE = "custom:naic:workshops"
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
_guest_failures_by_account = Failures(FAILURES_PER_ACCOUNT, FAILURE_WINDOW_S)
_guest_failures_by_peer = Failures(FAILURES_PER_PEER, FAILURE_WINDOW_S)
TOO_MANY_FOR_ACCOUNT = (
    "Too many wrong passwords for this workshop account; wait ten minutes and try again, "
    "or ask the instructor for a new account."
)
TOO_MANY_FROM_PEER = "Too many wrong workshop passwords from your address; wait ten minutes."


@functools.cache
def store_for(url: str, code_key: bytes | None = None) -> WorkshopStore:
    """One store (one connection pool) per database (and key for join codes) in this hub
    process."""
    return WorkshopStore(url, code_key=code_key)


def presets_for(url: str, user: str, now: datetime) -> tuple[WorkshopPreset, ...]:
    """The workshop sessions `user` may start now (naic.spawners.request's UserFacts)."""
    out = []
    for ws in store_for(url).open_seats_of(user):
        left_h = (ws.ends_at - now).total_seconds() / 3600
        out.append(
            WorkshopPreset(
                name=ws.name,
                title=ws.title,
                site=ws.site,
                resource=ws.resource,
                gpus=ws.gpus,
                hours=max(min(ws.hours, left_h), 1 / 60),
                project=ws.project,
                reservation=ws.reservation,
                material=ws.material,
            )
        )
    return tuple(out)


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


async def run_slurm(argv: list[str], site: Site | None = None, timeout_s: float = 60) -> str:
    """An operator's Slurm command, as the hub (no shell), where the site's Slurm commands
    run (here, or its login node over SSH); RuntimeError with Slurm's words."""
    target = login_node(site)
    if target is not None:
        code, out, err = await ssh.run(target, argv, timeout_s=timeout_s)  # SSHError: Runtime
        if code:
            raise RuntimeError(err.strip() or out.strip())
        return out
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"{argv[0]} did not answer within {timeout_s:g} s") from None
    if proc.returncode:
        raise RuntimeError(err.decode().strip() or out.decode().strip())
    return out.decode()


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
        return state, getattr(sp, "notebook_progress", {})


class _WorkshopHandler(_Workshops, APIHandler):
    def _instructor(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to manage workshops.")
        if not accounting.may(self, SCOPE):
            raise web.HTTPError(403, "Only instructors and admins manage workshops.")

    def _mine(self, name: str) -> Workshop:
        self._instructor()
        ws = self.store.get(name)
        if ws is None:
            raise web.HTTPError(404, f"There is no workshop {name}.")
        if ws.instructor != self.current_user.name and not accounting.may(self, "admin:users"):
            raise web.HTTPError(403, "You manage only your own workshops.")
        return ws


class WorkshopsHandler(_WorkshopHandler):
    def get(self) -> None:
        self._instructor()
        mine = None if accounting.may(self, "admin:users") else self.current_user.name
        base = self.hub.base_url
        self.finish(json.dumps([workshop_json(w, base) for w in self.store.list(mine)]))

    async def post(self) -> None:
        self._instructor()
        ws, code = await create_workshop(self, self.store, self.json_body())
        self.set_status(202 if ws.awaiting_approval else 201)
        self.finish(json.dumps(workshop_json(ws, self.hub.base_url, code)))


async def _nodes(partition: str | None, site: Site) -> int:
    argv = ["sinfo", "-h", "-o", "%D"] + (["-p", partition] if partition else [])
    try:
        out = await run_slurm(argv, site)
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
        nodes = await _nodes(res.partition, cat.sites[spec.site])
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
        await run_slurm(reservation_argv(reservation, spec.start, spec.end), cat.sites[spec.site])
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
                {"user": seat.username, "seat": seat.seat, "session": state, "notebooks": progress}
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
                await run_slurm(
                    ["scontrol", "delete", f"ReservationName={ws.reservation}"],
                    self.naic_catalogue.sites.get(ws.site),
                )
            except RuntimeError as exc:
                if "Invalid reservation" not in str(exc):
                    msg = f"Slurm did not release the reservation: {exc}"
                    raise web.HTTPError(503, msg) from None
        ws = self.store.end(name)
        if self.store.expire_guests(name):
            await reset_due_guests(HubSide(self), self.store, self.naic_catalogue, self.log)
        self.log.info("Workshop %s ended by %s", name, self.current_user.name)
        self.finish(
            json.dumps({**workshop_json(ws, self.hub.base_url), "report": self._report(ws)})
        )

    def _report(self, ws: Workshop) -> str:
        """CSV: who, sessions, GPU-hours (from the ledger's records of workshop sessions)."""
        ledger = self.naic_ledger
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["user", "seat", "joined", "sessions", "gpu_hours"])
        for seat in self.store.seats(ws.name):
            runs = [
                s
                for s in ledger.sessions(user=seat.username, since=ws.starts_at)
                if s.server == ws.name and s.started_at < (ws.ended_at or ws.ends_at)
            ]
            hours = sum(s.gpu_hours for s in runs)
            joined = seat.joined_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([seat.username, seat.seat, joined, len(runs), f"{hours:.3f}"])
        return out.getvalue()


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
    try:
        store.join(ws.name, user)
    except ValueError as exc:
        raise web.HTTPError(403, str(exc)) from None
    if ws.reservation and not ws.project:  # a reservation by users: this one may use it
        # IGNORE_JOBS: Slurm refuses any change to a reservation whose nodes run other jobs.
        argv = ["scontrol", "update", f"ReservationName={ws.reservation}", f"Users+={user}"]
        try:
            await run_slurm([*argv, "Flags=IGNORE_JOBS"], handler.naic_catalogue.sites.get(ws.site))
        except RuntimeError as exc:
            store.leave(ws.name, user)  # a seat without the reservation is no seat
            handler.log.warning("Could not add %s to %s: %s", user, ws.reservation, exc)
            raise web.HTTPError(
                503,
                f"The scheduler did not let you into the workshop's reservation ({exc}); "
                "please try again in a minute.",
            ) from None
    return ws


class HubSide:
    """What resetting an account needs of the running hub: its database, users and proxy
    (a request handler's, or the hub application's for the timer)."""

    def __init__(self, owner) -> None:
        self.db, self.users, self.proxy = owner.db, owner.users, owner.proxy

    def lock_out(self, username: str) -> None:
        """Every cookie, token and share of the account stops working."""
        orm_user = orm.User.find(self.db, username)
        if orm_user is None:
            return
        orm_user.cookie_id = new_token()  # browsers' hub cookies no longer name anybody
        for token in list(orm_user.api_tokens):  # API and server OAuth tokens alike
            self.db.delete(token)
        for name in ("shares", "share_codes", "shared_with_me"):  # servers shared either way
            for share in list(getattr(orm_user, name, [])):
                self.db.delete(share)
        self.db.commit()

    async def stop_sessions(self, username: str, reason: str) -> None:
        orm_user = orm.User.find(self.db, username)
        if orm_user is None:
            return
        user = self.users[orm_user]
        for name in list(orm_user.orm_spawners):
            sp = user.spawners[name]
            if sp.pending:
                raise RuntimeError(f"a session of {username} is busy ({sp.pending}) just now")
            if sp.ready:
                sp.stop_reason = reason
                await self.proxy.delete_user(user, name)
                await user.stop(name)


async def reset_guest(hub: HubSide, site: Site | None, username: str, reason: str) -> None:
    """Nothing of the account's last holder left: hub cookies, tokens and sessions, Slurm
    jobs, files in the home (where `site`'s Slurm commands run). Every step may be repeated;
    RuntimeError with the sentence why it could not finish (the next try goes on)."""
    hub.lock_out(username)  # first: nothing new can be started while the rest happens
    try:
        await hub.stop_sessions(username, reason)
        root_here = login_node(site) is None and os.geteuid() == 0
        home = home_of(await run_slurm(["getent", "passwd", username], site), username)
        kill, cancel, wipe = reset_argvs(username, home, root_here=root_here)
        await run_slurm(kill, site)
        await run_slurm(cancel, site)
        # A job's processes may write into the home until they are gone: wait for them.
        for _ in range(JOBS_GONE_S):
            if not (await run_slurm(["squeue", "-h", "-u", username, "-o", "%i"], site)).split():
                break
            await asyncio.sleep(1)
        else:
            raise RuntimeError(f"the jobs of {username} are still ending")
        await run_slurm(wipe, site)
    except (RuntimeError, ValueError, OSError) as exc:  # OSError: a command is not there
        raise RuntimeError(f"The workshop account {username} could not be reset: {exc}") from None


#: How long a reset waits for the account's killed jobs to leave the queue.
JOBS_GONE_S = 30


async def reset_due_guests(
    hub: HubSide, store: WorkshopStore, cat: Catalogue, log: logging.Logger
) -> list[str]:
    """Reset every account whose window has passed and that was not reset since (where its
    workshop ran); the accounts reset. One that cannot be is tried again the next time."""
    done = []
    for due in store.guests_due():
        ws = store.get(due.workshop)
        title = ws.title if ws else due.workshop
        site = cat.sites.get(ws.site) if ws else None
        try:
            await reset_guest(hub, site, due.username, f"the workshop {title} ended")
        except RuntimeError as exc:
            log.warning("%s", exc)
            continue
        store.mark_reset(due.username, due.issued_at)
        log.info("Workshop account %s reset: the workshop %s is over", due.username, title)
        done.append(due.username)
    return done


class WorkshopGuests(LoggingConfigurable):
    """The hub's timer over temporary accounts (`watch_guest_windows`)."""

    check_interval = Float(
        60.0,
        help="""Seconds between the hub's looks for workshop accounts whose window has passed;
        each is locked out and reset at the next look (its sessions stopped, its cookies,
        tokens and Slurm jobs ended, its home emptied), and once when the hub starts.
        E.g. `c.WorkshopGuests.check_interval = 30`.""",
    ).tag(config=True)


_watching: set[asyncio.Task] = set()


def watch_guest_windows() -> None:
    """From the hub's config (naic.hub.app.config): once the hub has started, reset the accounts
    whose window passed, then look again every `WorkshopGuests.check_interval` seconds. Does
    nothing outside a starting hub (a config loaded by a test or a tool)."""
    from jupyterhub.app import JupyterHub

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    if not JupyterHub.initialized():
        return
    task = asyncio.ensure_future(_watch(JupyterHub.instance()))
    _watching.add(task)
    task.add_done_callback(_watching.discard)


async def _watch(app) -> None:
    started = getattr(app, "_start_future", None)  # set when the hub's start is done
    if started is not None:
        await started
    every = WorkshopGuests(parent=app).check_interval
    while True:
        try:
            settings = app.tornado_settings["naic"]
            # With the codes' key: the first round (at start) hashes codes kept in clear.
            key = code_key(app.tornado_settings["cookie_secret"])
            store = store_for(settings["ledger_url"], key)
            cat = catalogue.load_cached(settings["catalogue_file"])
            await reset_due_guests(HubSide(app), store, cat, app.log)
        except Exception:  # a round's trouble must not end the timer
            app.log.exception("Checking the workshop accounts' windows failed")
        await asyncio.sleep(every)


class AccountsHandler(_WorkshopHandler):
    """`POST /hub/api/naic/workshops/{name}/accounts {"count": N}`: temporary accounts."""

    async def post(self, name: str) -> None:
        ws = self._mine(name)
        pool = self.naic_catalogue.guest_accounts
        if pool is None:
            raise web.HTTPError(
                409,
                "This hub has no workshop accounts to hand out (the catalogue's "
                "`guest_accounts`); students log in with their institution's account.",
            )
        count = self.json_body().get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= ws.seats:
            raise web.HTTPError(400, f"`count` must be a whole number from 1 to {ws.seats}.")
        if ws.ended_at is not None:
            raise web.HTTPError(409, f"The workshop {ws.title} has ended.")
        if ws.awaiting_approval:
            raise web.HTTPError(
                409, f"The workshop {ws.title} awaits an admin's approval; ask again after it."
            )
        try:
            chosen = self.store.free_guests(pool.names, count)
        except ValueError as exc:
            raise web.HTTPError(409, str(exc)) from None
        await self._reset(ws, chosen)
        try:
            issued = self.store.issue_guests(name, chosen, len(chosen))
        except ValueError as exc:
            raise web.HTTPError(409, str(exc)) from None
        login = url_path_join(self.hub.base_url, "naic/workshops/login")
        self.log.info("Workshop %s: %d temporary accounts issued", name, len(issued))
        self.finish(
            json.dumps(
                {
                    "accounts": [{"username": u, "password": p} for u, p in issued],
                    "expires": ws.ends_at.isoformat(),
                    "login_url": login,
                }
            )
        )

    async def _reset(self, ws: Workshop, chosen: list[str]) -> None:
        """Reset the accounts before anybody gets them: where their last workshop ran (if
        that was not done yet) and where this one runs."""
        hub, sites = HubSide(self), self.naic_catalogue.sites
        due = {g.username: g for g in self.store.guests_due()}
        for username in chosen:
            try:
                last = due.get(username)
                if last is not None:
                    before = self.store.get(last.workshop)
                    site = sites.get(before.site) if before else None
                    await reset_guest(hub, site, username, "its workshop ended")
                    self.store.mark_reset(username, last.issued_at)
                await reset_guest(hub, sites.get(ws.site), username, "it was reset")
            except RuntimeError as exc:
                raise web.HTTPError(
                    503, f"{exc}; no account was issued. Please try again in a minute."
                ) from None


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
)


class DashboardPage(_Workshops, BaseHandler):
    """`/hub/naic/workshops` (my workshops) and `/hub/naic/workshops/{name}` (who joined,
    whose session is queued, running or ended; stop one, stop all, end the workshop)."""

    def _check(self, name: str | None) -> Workshop | None:
        if not accounting.may(self, SCOPE):
            raise web.HTTPError(403, "Only instructors and admins manage workshops.")
        if name is None:
            return None
        ws = self.store.get(name)
        if ws is None:
            raise web.HTTPError(404, f"There is no workshop {name}.")
        if ws.instructor != self.current_user.name and not self.current_user.admin:
            raise web.HTTPError(403, "You manage only your own workshops.")
        return ws

    @web.authenticated
    async def get(self, name: str | None = None) -> None:
        ws = self._check(name)
        if ws is None:
            await self._list()
            return
        students = []
        for seat in self.store.seats(ws.name):
            state, progress = self.student_session(ws, seat.username)
            students.append({"seat": seat, "state": state, "progress": progress})
        await self._show(ws, students)

    async def _show(self, ws: Workshop, students: list | None = None, code: str = "") -> None:
        """The dashboard; `code` only right after it was made (the hub keeps its hash)."""
        if students is None:
            students = []
            for seat in self.store.seats(ws.name):
                state, progress = self.student_session(ws, seat.username)
                students.append({"seat": seat, "state": state, "progress": progress})
        join = workshop_json(ws, self.hub.base_url, code)["join_url"]
        html = await self.render_template(
            "workshop.html",
            ws=ws,
            students=students,
            code=code,
            join_url=join,
            now=datetime.now(UTC),
        )
        self.finish(html)

    @web.authenticated
    async def post(self, name: str | None = None) -> None:
        ws = self._check(name)
        if ws is None:
            await self._create()
            return
        if self.get_body_argument("approve", ""):
            if not self.current_user.admin:
                raise web.HTTPError(403, "Only admins approve workshops.")
            await approve(self, self.store, ws.name)
            self.redirect(url_path_join(self.hub.base_url, f"naic/workshops/{ws.name}"))
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

    async def _list(self, form: dict | None = None, error: str = "") -> None:
        mine = None if self.current_user.admin else self.current_user.name
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


HANDLERS = [
    (r"/naic/workshops/join", JoinPage),
    (r"/naic/workshops/login", GuestLoginPage),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/accounts", AccountsHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/code", CodeHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})/approve", ApproveHandler),
    (r"/naic/workshops", DashboardPage),
    (r"/naic/workshops/([a-z][a-z0-9_-]{0,39})", DashboardPage),
    (r"/api/naic/workshops", WorkshopsHandler),
    (r"/api/naic/workshops/join", JoinHandler),
    (r"/api/naic/workshops/([a-z][a-z0-9_-]{0,39})", WorkshopHandler),
]
