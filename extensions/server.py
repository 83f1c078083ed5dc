"""Server extension: the session's facts as JSON under the server's own URL.

    GET {base_url}naic/api/session   facts, time left (naic.extensions.session)
    GET {base_url}naic/api/gpus      the latest GPU sample (sampler started at first call)
    GET {base_url}naic/api/storage   usage against quota per storage area

Authenticated like the rest of the server (a token or the hub's login cookie), and
authorized on the resource `naic`, which an Authorizer can allow or deny like `kernels`.
The launcher loads it into every session (`--ServerApp.jpserver_extensions`); a plain
`jupyter server` can enable it the same way.

Loading adds three routes and nothing else: NVML, `du`, `squeue` and the sources module
are reached at the first request, so server start-up pays nothing for them.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import threading
from datetime import UTC, datetime
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

#: The authorization resource of these endpoints (as `kernels`, `contents` are for theirs).
AUTH_RESOURCE = "naic"
#: Seconds between GPU samples once someone asked for them.
GPU_INTERVAL_S = 5.0


class NaicState:
    """The sources the handlers share, made at first use (one per server)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._sampler: Any = None
        self._storage: Any = None

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                from naic.extensions.sources import EnvSessionSource

                self._session = EnvSessionSource()
            return self._session

    def sampler(self) -> Any:
        with self._lock:
            if self._sampler is None:
                from naic.extensions.sources import GPUSampler, NVMLSource

                self._sampler = GPUSampler(NVMLSource(), interval_s=GPU_INTERVAL_S)
            return self._sampler

    def storage(self) -> Any:
        facts = self.session().facts()
        with self._lock:
            if self._storage is None:
                from naic.extensions.sources import LocalStorageSource

                self._storage = LocalStorageSource(facts.storage, getpass.getuser())
            return self._storage


class NaicHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def naic(self) -> NaicState:
        return self.settings["naic_state"]

    def answer(self, body: dict[str, Any]) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


class SessionHandler(NaicHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        facts = await asyncio.to_thread(lambda: self.naic.session().facts())  # squeue may wait
        self.answer(facts.to_json(datetime.now(UTC)))


class GPUHandler(NaicHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        sampler = self.naic.sampler()
        reading = sampler.latest()
        if reading is None:
            reading = await asyncio.to_thread(sampler.sample_once)
        if reading.gpus and not sampler.running:
            sampler.start()  # keep sampling only where there is something to sample
        self.answer(
            {
                "gpus": [g.to_json() for g in reading.gpus],
                "sampled_at": datetime.fromtimestamp(reading.at, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "interval_s": sampler.interval_s,
                "message": "" if reading.gpus else "No GPU in this session.",
            }
        )


class StorageHandler(NaicHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        usages = await asyncio.to_thread(lambda: self.naic.storage().usage())  # du is slow
        self.answer({"storage": [u.to_json() for u in usages]})


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "naic.extensions.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = web_app.settings["base_url"]
    web_app.settings["naic_state"] = NaicState()
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "naic/api/session"), SessionHandler),
            (url_path_join(base, "naic/api/gpus"), GPUHandler),
            (url_path_join(base, "naic/api/storage"), StorageHandler),
        ],
    )
    serverapp.log.info("naic-hub session endpoints at %snaic/api/", base)
