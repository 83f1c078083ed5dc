"""What every backend provides: the contract between the router (and the hub's handlers)
and the `local`, `slurm` and `nodes` spawners.

A backend is a JupyterHub `Spawner` the router (`naic.spawners.router`) constructs for one
session, giving it:

- `request`: the validated `SessionRequest` (the only user input it ever sees);
- `catalogue` and `site`: the loaded catalogue and the site's name; `site_runtime` is the
  `naic.spawners.site.Site` through which every command at the site runs.

It provides, besides JupyterHub's `start`/`poll`/`stop`/`progress`/`get_state`:

- `async estimate(req) -> dict`: when a session like `req` would start, asked before
  starting it (`{"start", "message", …}`, see `naic.spawners.estimate`); raises
  `web.HTTPError` with a sentence (403 no account, 400 the site would refuse, 503 it does
  not answer). Called on a fresh backend, never on the one running a session.
- `extendable`: None if the session's time can be extended, else the sentence why not;
  `async time_limit() -> (minutes, end)`, `async extend(hours)` and
  `async reservation_end(name)` for one that can (raising `web.HTTPError`).
- `end_reason`: why the session ended, in words a user reads ("time limit reached");
  `ended_at`: when it ended, if the backend knows better than "now"; `queued_s`: how long
  the last start waited for resources (None: it did not queue).
- `waiting() -> (bool, seconds | None)`: whether the start waits in a queue, and for about
  how much longer (None: the scheduler does not say); the router offers a move meanwhile.
- `state() -> dict`: what the session is doing now, for pages and the API
  (`{"backend", "where", "job"}`).

Defaults below are those of a backend whose sessions start at once and cannot be extended.
"""

from __future__ import annotations

from datetime import datetime

from tornado import web
from traitlets import Any, HasTraits, Unicode

from naic.spawners.estimate import STARTS_NOW
from naic.spawners.request import SessionRequest
from naic.spawners.site import Site, site_for


class StartFailed(web.HTTPError):
    """A session that ended before its server answered, and why: the progress page and the
    REST error say it, the router keeps it for the home page (`last_end`)."""

    def __init__(self, why: str, log: str = "", where: str = "") -> None:
        self.why, self.log, self.where = why, log, where
        at = f" Its log is {log}" + (f" at {where}" if where else "") + "." if log else ""
        super().__init__(500, "The session could not start: %s.%s", why, at)


class Backend(HasTraits):
    """Mix into a `Spawner` (first): the traits the router sets and the contract's defaults."""

    request = Any(None, allow_none=True, help="The validated SessionRequest (set by the router).")
    catalogue = Any(None, allow_none=True, help="The loaded Catalogue (set by the router).")
    site = Unicode("", help="Catalogue name of the site this session runs at (set by the router).")
    end_reason = Unicode("", help="Why the last session ended, in words for the user.")

    @property
    def site_runtime(self) -> Site:
        return site_for(self.catalogue, self.site)

    @property
    def ended_at(self) -> datetime | None:
        return None

    queued_s: float | None = None

    @staticmethod
    def refusal_now(cat, req: SessionRequest) -> str | None:
        """A sentence refusing `req` before any spawn page opens (e.g. a full pool that
        does not queue); None: go ahead."""
        return None

    async def estimate(self, req: SessionRequest) -> dict:
        return {"start": "now", "message": STARTS_NOW}

    @property
    def extendable(self) -> str | None:
        title = self.catalogue.sites[self.site].title if self.catalogue else self.site
        return f"Only sessions on a Slurm site can be extended; this one runs on {title}."

    async def time_limit(self) -> tuple[int | None, datetime | None]:
        raise web.HTTPError(409, self.extendable)

    async def extend(self, hours: float) -> None:
        raise web.HTTPError(409, self.extendable)

    async def reservation_end(self, name: str) -> datetime | None:
        return None

    def waiting(self) -> tuple[bool, float | None]:
        return False, None

    def state(self) -> dict:
        return {"backend": type(self).__name__, "where": "", "job": ""}
