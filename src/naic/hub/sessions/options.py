"""`GET /hub/api/naic/options`: one request, every site that could run it, soonest first;
`POST /hub/api/naic/move`: move a queued session to where it starts sooner.

    GET /hub/api/naic/options?gpus=2&gpu_memory_gb=40&hours=4[&gpu_model=A100]
                             [&project=nn1234k][&environment=pytorch]

answers `naic.spawners.federation.compare`'s comparison for the logged-in user (see
there). The estimates are the estimate API's, from the same cache (`hooks.estimate`).

    POST /hub/api/naic/move  {"server": "", "to": "cloud:l40s"}

moves the user's session that waits in a queue to another option of the same ask (the
progress page offers it, `naic.spawners.router`): 202 and a sentence; the old job is
cancelled only once the new session has started, which the progress page follows.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.spawners.federation import parse_ask

OPTIONS_PATH = r"/api/naic/options"
MOVE_PATH = r"/api/naic/move"


def starter(handler: APIHandler, doing: str):
    """The logged-in user, if their login or token may start servers (what comparing and
    moving are about); 403 with the sentence otherwise."""
    user = handler.current_user
    if user is None or getattr(user, "kind", None) != "user":
        raise web.HTTPError(403, f"Log in as a user to {doing}.")
    if not has_scope(f"servers!user={user.name}", handler.parsed_scopes, db=handler.db):
        raise web.HTTPError(403, f"This token may not start servers, so it may not {doing}.")
    return user


class OptionsHandler(APIHandler):
    """The endpoint; for the logged-in user (or their token), as the estimate is."""

    async def get(self) -> None:
        spawner = starter(self, "compare where a session would start").spawner
        if not hasattr(spawner, "compare"):
            raise web.HTTPError(404, "This hub's spawner has no service catalogue to compare.")
        query = {k: self.get_argument(k) for k in self.request.query_arguments}
        try:
            ask = parse_ask(query)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.finish(json.dumps(await spawner.compare(ask)))


class MoveHandler(APIHandler):
    """Move the caller's own queued session; nobody else's (the user is the token's)."""

    async def post(self) -> None:
        user = starter(self, "move a session")
        try:
            body = json.loads(self.request.body or b"{}")
            server, to = body.get("server", ""), body["to"]
            if not isinstance(server, str) or not isinstance(to, str):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            raise web.HTTPError(
                400, 'Send {"server": NAME, "to": "site:resource"}: which session, and where.'
            ) from None
        spawner = user.spawners.get(server) if server in user.orm_user.orm_spawners else None
        if spawner is None or spawner.pending != "spawn" or not hasattr(spawner, "move_to"):
            raise web.HTTPError(409, "That session is not waiting to start; nothing to move.")
        sentence = await spawner.move_to(to)
        self.set_status(202)
        self.finish(json.dumps({"message": sentence}))


HANDLERS = [(OPTIONS_PATH, OptionsHandler), (MOVE_PATH, MoveHandler)]
