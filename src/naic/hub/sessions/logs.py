"""`GET /hub/naic/sessions/log[?server=NAME]`: the last lines of the job log of the user's
session that could not start (the home page links it).

The log's path is the one the hub kept (`last_end` in the router's state), never one from
the request; it is read as the user, where the session's site runs its commands, because it
lies in their home and may be a link they made to something only the hub could read.
"""

from __future__ import annotations

from jupyterhub.handlers import BaseHandler
from tornado import web

from naic.hub import catalogue
from naic.spawners.site import site_for

LOG_PATH = r"/naic/sessions/log"
#: Lines shown: enough for a traceback, not a whole day of a server's output.
TAIL_LINES = 200


class SessionLogHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        user = self.current_user
        name = self.get_argument("server", "")
        if name not in user.orm_user.orm_spawners:
            raise web.HTTPError(404, f"You have no server named {name!r}.")
        last = getattr(user.spawners[name], "last_end", None) or {}
        log, site_name = last.get("log"), last.get("site")
        if not log or not site_name:
            raise web.HTTPError(404, "There is no log of a session that could not start.")
        cat = catalogue.load_cached(self.settings["naic"]["catalogue_file"])
        if site_name not in cat.sites:
            raise web.HTTPError(404, f"The site {site_name!r} is no longer in the catalogue.")
        site = site_for(cat, site_name)
        result = await site.run(["tail", "-n", str(TAIL_LINES), log], as_user=user.name)
        if result.code != 0:
            raise web.HTTPError(
                404, f"The log {log} cannot be read any more: {result.err.strip()[:200]}"
            )
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{log} at {site.title}, its last {TAIL_LINES} lines:\n\n{result.out}")
