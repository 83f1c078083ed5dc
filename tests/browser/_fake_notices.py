"""A stand-in for the session's notices endpoints, loaded into a real `jupyter lab`.

    GET  {base_url}naic/api/notices   the "notices" answer of the script file
    POST {base_url}naic/api/extend    the "extend" answer: {"status": ..., "message": ...}

The test writes the script (a JSON file named by $NAIC_FAKE_NOTICES) and the server reads it
at every request, so a test changes what the server says without restarting it. A
"notices_status" other than 200 answers that status instead, as an older server would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

SCRIPT_ENV = "NAIC_FAKE_NOTICES"


def script() -> dict[str, Any]:
    return json.loads(Path(os.environ[SCRIPT_ENV]).read_text())


class NoticesHandler(APIHandler):
    @web.authenticated
    def get(self) -> None:
        answer = script()
        status = answer.get("notices_status", 200)
        if status != 200:
            raise web.HTTPError(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer["notices"]))


class ExtendHandler(APIHandler):
    # APIHandler checks the _xsrf cookie against X-XSRFToken on POST, as the real one does.
    @web.authenticated
    def post(self) -> None:
        extend = script()["extend"]
        self.set_status(extend["status"])
        self.finish(json.dumps({"message": extend["message"]}))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "naic/api/notices"), NoticesHandler),
            (url_path_join(base, "naic/api/extend"), ExtendHandler),
        ],
    )
