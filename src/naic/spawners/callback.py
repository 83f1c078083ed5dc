"""The job's port callback, without batchspawner 1.3.0's hole.

batchspawner's handler sets *every* attribute named in the JSON body on the spawner, so a
user holding their job's token could set `batch_query_cmd` and have the hub run it. Ours
accepts `{"port": <int>}` for the server whose token calls, and nothing else. It keeps the
URL (`/hub/api/batchspawner`) so the stock `batchspawner-singleuser` in the job still works.
Importing this module swaps the handlers; `naic.hub.app.config` imports it.
"""

from __future__ import annotations

import json

import batchspawner.api
from jupyterhub import apihandlers
from jupyterhub.apihandlers import APIHandler
from tornado import web


def parse_port_body(body: object) -> int:
    """Pure: the port from a callback body, or ValueError with the reason."""
    if not isinstance(body, dict) or set(body) != {"port"}:
        raise ValueError('the body must be exactly {"port": <integer>}')
    port = body["port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError("port must be an integer from 1 to 65535")
    return port


class PortCallbackHandler(APIHandler):
    @web.authenticated
    def post(self) -> None:
        token = self.get_auth_token()
        spawner = next(
            (s for s in self.current_user.spawners.values() if token and s.api_token == token),
            None,
        )
        if spawner is None:
            raise web.HTTPError(403, "Only a session's own server may report its port.")
        try:
            port = parse_port_body(self.get_json_body())
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        # The wrapper's child is the spawner whose start() waits for the port.
        target = getattr(spawner, "child_spawner", None) or spawner
        target.port = port
        self.set_status(201)
        self.finish(json.dumps({"message": "port recorded"}))


apihandlers.default_handlers[:] = [
    h for h in apihandlers.default_handlers if h[1] is not batchspawner.api.BatchSpawnerAPIHandler
]
apihandlers.default_handlers.append((r"/api/batchspawner", PortCallbackHandler))
