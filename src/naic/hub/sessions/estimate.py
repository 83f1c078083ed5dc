"""`GET /hub/api/naic/estimate`: when would this session start, asked before starting it.

The spawn form calls it as the user changes their choices. The options are the query
arguments (the same names as `user_options`) and go through `parse_request`, the one gate,
so a bad value gets the same 400 sentence as a bad spawn. The site's backend answers
(`Backend.estimate`: Slurm's `sbatch --test-only`, a pool's free GPUs, or "now"):

    {"start": "2026-11-27T04:32:00+00:00", "wait_s": 1200, "ahead": 3,
     "message": "Expected start in about 20 min, behind 3 jobs"}

A scheduler that does not answer gives 503 with a sentence, never a guess.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.spawners.request import RequestError, options_from_form, parse_request

#: Where the handler is mounted, below the hub's prefix (`/hub/`).
ESTIMATE_PATH = r"/api/naic/estimate"


class EstimateHandler(APIHandler):
    """The endpoint; authenticated as the user whose session it would be."""

    async def get(self) -> None:
        # Not @web.authenticated: on a GET that redirects to the login page, and an API
        # answers with a status the form's script can read.
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Log in to see when a session would start.")
        if getattr(user, "kind", None) != "user":
            raise web.HTTPError(403, "Start estimates are for users, not services.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(
                403, "This token may not start servers, so it gets no start estimates."
            )
        spawner = user.spawner
        if not hasattr(spawner, "backend_for"):
            raise web.HTTPError(404, "This hub's spawner has no service catalogue to estimate.")
        query = {
            key: [v.decode("utf-8", errors="replace") for v in values]
            for key, values in self.request.query_arguments.items()
        }
        options = options_from_form(query)
        try:
            facts = spawner.user_facts(workshops="workshop" in options)
            req = parse_request(options, spawner.catalogue, facts)
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        answer = await spawner.backend_for(req).estimate(req)
        self.finish(json.dumps(answer))
