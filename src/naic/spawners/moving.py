"""Sessions asked for "any site", and moving a queued one to where it starts sooner.

A mixin of the router (`naic.spawners.router.Router`), which keeps the session:

- `resolve_any(user_options)`: a request with `"any"` (the form's "any site" card, or
  REST) is compared across sites (`naic.spawners.federation.compare`) and becomes the
  soonest option's, or the one the user pinned (`"pick"`); the ask is kept with the session.
- While the session waits in a queue, its progress looks every `move_check_s` for another
  option of the same ask that starts much sooner (`move_offer`) and offers it: an event with
  a "Move there" button (`html_message`) and the option (`move`).
- `move_to("site:resource")` (`POST /hub/api/naic/move`) admits the new request, and the
  start in flight starts it there while the old job keeps its place. Only once the new
  session has started is the old job cancelled (and waited for until Slurm shows it gone);
  if the new one fails, the old one keeps waiting and the progress says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from html import escape

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Float, HasTraits

from naic.spawners.federation import (
    Ask,
    ask_dict,
    ask_from_options,
    ask_of,
    chosen,
    compare,
    matching,
    move_offer,
    user_options,
)
from naic.spawners.hooks import Session
from naic.spawners.request import SessionRequest

#: What JupyterHub gives the wrapper for a start, which every child it starts needs.
START_TRAITS = ("api_token", "oauth_client_id", "user_options", "cert_paths", "server")


class _OldStarted(Exception):
    """The waiting job started while a move was starting the new session."""


class Moves(HasTraits):
    move_check_s = Float(
        30.0,
        help="""While a session waits in a queue and its progress page is open, how often
        (seconds) the hub asks the other sites that offer the same request whether they
        could start it much sooner, and if so offers to move it there.

        Example: c.Router.move_check_s = 60
        """,
    ).tag(config=True)

    _move_asked: asyncio.Future | None = None  # set while a start may still move
    _moving: Spawner | None = None  # the new child while it starts
    _notes: list[str]

    # --- "any site" ---------------------------------------------------------------------

    async def resolve_any(self, options: dict) -> dict:
        """The `user_options` an "any site" request stands for; 400/409 with the sentence."""
        try:
            ask, pick = ask_from_options(options)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        result = await self.compare(ask)
        option = chosen(result, pick)
        self.session.ask = ask_dict(ask)
        return option["user_options"]

    async def compare(self, ask: Ask, exclude=()) -> dict:
        """`federation.compare` for this user, through the hub's estimate cache (one ask per
        site and request every few seconds, however many pages re-check)."""

        def estimate(req: SessionRequest):
            ask = lambda: self.backend_for(req).estimate(req)  # noqa: E731 - one line
            return self.hooks.estimate(self.user.name, req, ask)

        return await compare(self.catalogue, self.user_facts(), ask, estimate,
                             budget_left=self.hooks.budget_left, exclude=exclude)  # fmt: skip

    def _ask(self) -> Ask:
        saved = self.session.ask
        return Ask(**saved) if saved else ask_of(self.request, self.catalogue)

    # --- the offer ------------------------------------------------------------------------

    async def offer(self) -> tuple[dict | None, float | None]:
        """The option to offer the waiting session, or None (not queued, none sooner), and
        how long it waits here (None: unknown)."""
        child = self.child_spawner
        if child is None or self._moving is not None or self._move_asked is None:
            return None, None
        queued, wait_s = child.waiting()
        if not queued:
            return None, None
        site = self.request.site  # elsewhere: the same site's queue is one queue
        here = {(site, name) for name in self.catalogue.sites[site].resources}
        result = await self.compare(self._ask(), exclude=here)
        return move_offer(result, wait_s), wait_s

    def offer_event(self, option: dict, wait_s: float | None) -> dict:
        when = "now" if option.get("start") == "now" else option.get("message", "sooner")
        text = f"{option['title']} could start this session {when}."
        here = f" Here it waits about {wait_s / 60:.0f} min." if wait_s else ""
        text = " ".join([text + here, *option.get("differs", [])])
        to = f"{option['site']}:{option['resource']}"
        button = (
            f'<button type="button" class="btn btn-sm btn-primary ms-2 naic-move"'
            f' data-naic-move="{escape(to)}" data-naic-server="{escape(self.name)}">'
            "Move there</button>"
        )
        fields = ("site", "resource", "title", "start", "wait_s", "message", "differs")
        move = {k: option.get(k) for k in fields}
        return {"message": text, "html_message": escape(text) + button, "move": move}

    # --- moving ---------------------------------------------------------------------------

    async def move_to(self, to: str) -> str:
        """Admit the session's ask at `to` ("site:resource") and hand it to the start in
        flight; the sentence for the user. 400/403/409 with the sentence why not."""
        asked = self._move_asked
        if asked is None or asked.done() or self._moving is not None:
            raise web.HTTPError(409, "This session is not waiting in a queue, or already moving.")
        if not self.child_spawner.waiting()[0]:
            raise web.HTTPError(409, "This session is no longer waiting in a queue.")
        cat, ask = self.catalogue, self._ask()
        site, _, resource = to.partition(":")
        if (site, resource) not in matching(cat, ask) or site == self.request.site:
            raise web.HTTPError(400, f'"to": {to[:80]} does not offer what this session asks.')
        others = {pair for pair in matching(cat, ask) if pair != (site, resource)}
        found = await self.compare(ask, exclude=others)  # is it still sooner, now?
        if move_offer(found, self.child_spawner.waiting()[1]) is None:
            why = found["options"][0]["message"]
            raise web.HTTPError(409, f"{cat.sites[site].title} would not start it sooner: {why}")
        req = self._parse(user_options(cat, site, resource, ask))
        hold = await self.hooks.admit(req, self.user.name, self.name, datetime.now(UTC))
        if asked.done():  # the old job started while the new hold was taken
            self.hooks.ended(Session(hold_id=hold), None)
            raise web.HTTPError(409, "This session has just started, or is already moving.")
        asked.set_result((req, hold))
        old, new = cat.sites[self.request.site].title, cat.sites[site].title
        return f"Moving to {new}: the job at {old} keeps its place until it has started there."

    async def start_movable(self) -> tuple[str, int]:
        """Start the child; while it waits, a `move_to` may start another and win."""
        self._notes = []
        self.construct_child()
        first = asyncio.ensure_future(self.child_spawner.start())
        try:
            while True:
                self._move_asked = asyncio.get_running_loop().create_future()
                await asyncio.wait({first, self._move_asked}, return_when="FIRST_COMPLETED")
                if first.done():
                    if self._move_asked.done() and not self._move_asked.cancelled():
                        self.hooks.ended(Session(hold_id=self._move_asked.result()[1]), None)
                    return first.result()
                moved = await self._move(first, *self._move_asked.result())
                if moved is not None:
                    return moved
        finally:
            if self._move_asked is not None and not self._move_asked.done():
                self._move_asked.cancel()
            self._move_asked = None

    async def _move(self, first: asyncio.Future, req: SessionRequest, hold: int):
        """Start `req` beside the waiting job; on success cancel the old one and return the
        new server's address; on failure release `hold` and return None."""
        cat = self.catalogue
        old_title, title = cat.sites[self.request.site].title, cat.sites[req.site].title
        new = self.child_for(req)
        self._moving = new
        self._notes.append(f"Moving to {title}; the job at {old_title} keeps its place meanwhile.")
        began = time.monotonic()
        starting = asyncio.ensure_future(new.start())
        racing = {first, starting}
        try:
            while starting not in (await asyncio.wait(racing, return_when="FIRST_COMPLETED"))[0]:
                if first.exception() is None:  # the old job started first: it stays
                    raise _OldStarted
                racing = {starting}  # the old start failed: the new one it is
            ip_port = starting.result()
        except Exception as exc:  # whatever failed, or the old one started: it stays
            starting.cancel()
            self.hooks.ended(Session(hold_id=hold), None)
            with contextlib.suppress(BaseException):
                await starting
            with contextlib.suppress(Exception):
                await new.stop(now=True)
            if isinstance(exc, _OldStarted):
                self._notes.append(f"Started at {old_title} first; not moved to {title}.")
                return None
            why = getattr(exc, "why", None) or getattr(exc, "log_message", None) or str(exc)
            self._notes.append(f"Could not move to {title}: {why}. Still waiting at {old_title}.")
            self.log.warning("Moving %s to %s failed: %s", self._log_name, req.site, why)
            return None
        finally:
            self._moving = None
        old = self.child_spawner
        first.cancel()
        with contextlib.suppress(BaseException):
            await first
        await old.stop()  # cancel the old job and wait until its scheduler shows it gone
        self.hooks.ended(Session(hold_id=self.session.hold_id), None)
        self.session.hold_id = hold
        self._select(req)
        self.child_spawner = new
        self.user_options = self.orm_spawner.user_options = user_options(
            cat, req.site, req.resource, self._ask()
        )
        self.log.info("Moved %s from %s to %s in %.1f s", self._log_name, old.site, req.site,
                      time.monotonic() - began)  # fmt: skip
        self._notes.append(f"Moved to {title}; the job at {old_title} is cancelled.")
        return ip_port

    async def stop_moving(self) -> None:
        """A stop while a move starts: the new session must not outlive the request."""
        if self._moving is not None:
            with contextlib.suppress(Exception):
                await self._moving.stop(now=True)

    # --- progress -------------------------------------------------------------------------

    async def progress(self):
        """The child's events, the notes of a move, and an offer when one is found."""
        offered, next_check = None, time.monotonic() + min(self.move_check_s, 5.0)
        while self.child_spawner is not None:
            child = self.child_spawner
            events = child.progress().__aiter__()
            pending: asyncio.Future | None = None
            try:
                while self.child_spawner is child:
                    if pending is None:
                        pending = asyncio.ensure_future(anext(events))
                    done, _ = await asyncio.wait({pending}, timeout=1.0)
                    if done:
                        try:
                            event = pending.result()
                        except StopAsyncIteration:
                            break
                        pending = None
                        yield event
                    for note in self._take_notes():
                        yield {"message": note}
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + self.move_check_s
                        option, wait_s = await self.offer()
                        key = option and (option["site"], option["resource"], option["message"])
                        if option is not None and key != offered:
                            yield self.offer_event(option, wait_s)
                        offered = key
            finally:
                if pending is not None:
                    pending.cancel()
                with contextlib.suppress(BaseException):
                    await events.aclose()
            if self.child_spawner is child:
                break
        for note in self._take_notes():
            yield {"message": note}

    def _take_notes(self) -> list[str]:
        notes, self._notes = getattr(self, "_notes", []), []
        return notes
