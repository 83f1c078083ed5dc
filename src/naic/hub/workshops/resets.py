"""Temporary workshop accounts, handed out and reset: `POST …/workshops/{name}/accounts`,
and the hub's timer that resets every account whose workshop window has passed (its
cookies, tokens and sessions, its Slurm jobs, its home), also when the hub starts."""

from __future__ import annotations

import asyncio
import json
import logging

from jupyterhub import orm
from jupyterhub.utils import new_token, url_path_join
from tornado import web
from traitlets import Float
from traitlets.config import LoggingConfigurable

from naic.hub import catalogue
from naic.hub.catalogue import Catalogue
from naic.hub.workshops.base import (
    _WorkshopHandler,
    store_for,
)
from naic.hub.workshops.rules import (
    code_key,
    home_of,
    reset_argvs,
)
from naic.hub.workshops.store import Workshop, WorkshopStore
from naic.spawners.site import site_for


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


async def reset_guest(hub: HubSide, cat: Catalogue, site: str, username: str, reason: str) -> None:
    """Nothing of the account's last holder left: hub cookies, tokens and sessions, Slurm
    jobs, files in the home (where `site`'s Slurm commands run). Every step may be repeated;
    RuntimeError with the sentence why it could not finish (the next try goes on)."""
    hub.lock_out(username)  # first: nothing new can be started while the rest happens
    try:
        await hub.stop_sessions(username, reason)
        if site not in cat.sites:
            raise RuntimeError(f"the site {site} is no longer in the catalogue")
        where = site_for(cat, site)
        home = home_of(await where.call(["getent", "passwd", username]), username)
        kill, cancel, wipe = reset_argvs(username, home, root_here=where.root_at())
        await where.call(kill)
        await where.call(cancel)
        # A job's processes may write into the home until they are gone: wait for them.
        for _ in range(JOBS_GONE_S):
            if not (await where.call(["squeue", "-h", "-u", username, "-o", "%i"])).split():
                break
            await asyncio.sleep(1)
        else:
            raise RuntimeError(f"the jobs of {username} are still ending")
        await where.call(wipe)
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
        try:
            site = ws.site if ws else ""
            await reset_guest(hub, cat, site, due.username, f"the workshop {title} ended")
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
        hub, cat = HubSide(self), self.naic_catalogue
        due = {g.username: g for g in self.store.guests_due()}
        for username in chosen:
            try:
                last = due.get(username)
                if last is not None:
                    before = self.store.get(last.workshop)
                    site = before.site if before else ""
                    await reset_guest(hub, cat, site, username, "its workshop ended")
                    self.store.mark_reset(username, last.issued_at)
                await reset_guest(hub, cat, ws.site, username, "it was reset")
            except RuntimeError as exc:
                raise web.HTTPError(
                    503, f"{exc}; no account was issued. Please try again in a minute."
                ) from None
