"""Server extension: the session's facts as JSON under the server's own URL.

    GET {base_url}naic/api/session   facts, time left (naic.extensions.session)
    GET {base_url}naic/api/gpus      the latest GPU sample (sampler started at first call)
    GET {base_url}naic/api/storage   usage against quota per storage area
    GET {base_url}naic/api/notices   what the session warns about now (its end is near, the
                                     hub's culler will stop it), for JupyterLab's toasts
    POST {base_url}naic/api/extend   ask the hub for more time (the session's own token)
    GET {base_url}naic/api/workshop/archive   a workshop's folder as a zip (naic.extensions.archive)

Authenticated like the rest of the server (a token or the hub's login cookie), and
authorized on the resource `naic`, which an Authorizer can allow or deny like `kernels`.
The launcher loads it into every session (`--ServerApp.jpserver_extensions`); a plain
`jupyter server` can enable it the same way.

Loading adds the routes and, in a hub's session, starts the activity reporter's thread
(naic.extensions.reporter), which reports GPU use after start-up; NVML, `du`, `squeue` and the
sources (naic.extensions.session, naic.extensions.sources.*) are reached there or at the first
request, so start-up pays nothing for them.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

#: The authorization resource of these endpoints (as `kernels`, `contents` are for theirs).
AUTH_RESOURCE = "naic"
#: Seconds between GPU samples once someone asked for them.
GPU_INTERVAL_S = 5.0
#: Seconds the session's facts (one `squeue` call) are reused by the notices endpoint.
FACTS_TTL_S = 30.0


class NaicState:
    """The sources the handlers share, made at first use (one per server)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._sampler: Any = None
        self._storage: Any = None
        self._hub: Any = None
        self.reporter: Any = None
        self._facts: tuple[float, Any] | None = None

    def hub(self) -> Any:
        with self._lock:
            if self._hub is None:
                from naic.extensions.sources.hubclient import HubSource

                self._hub = HubSource()
            return self._hub

    def recent_facts(self, fresh: bool = False) -> Any:
        """The session's facts, asked of the scheduler at most every FACTS_TTL_S."""
        now = time.monotonic()
        if fresh or self._facts is None or now - self._facts[0] > FACTS_TTL_S:
            self._facts = (now, self.session().facts())
        return self._facts[1]

    def start_reporter(self) -> None:
        """In a hub's session: report GPU use (GPU sessions only) and fetch notices."""
        from naic.extensions.launch import workshop_material
        from naic.extensions.reporter import ActivityReporter
        from naic.extensions.session import SessionFacts

        gpus = SessionFacts.from_env(ask_scheduler=False).gpus
        sampler = self.sampler() if gpus else None
        if sampler is not None:
            sampler.start()
        workshop = workshop_material(dict(os.environ))
        home = Path(os.environ.get("HOME") or Path.cwd())
        self.reporter = ActivityReporter(
            self.hub(),
            sampler,
            workshop_dir=home / workshop[0] if workshop else None,
            material=workshop[1] if workshop else None,
        )
        self.reporter.start()

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                from naic.extensions.session import EnvSessionSource

                self._session = EnvSessionSource()
            return self._session

    def sampler(self) -> Any:
        with self._lock:
            if self._sampler is None:
                from naic.extensions.sources.gpu import GPUSampler, gpu_source

                self._sampler = GPUSampler(gpu_source(), interval_s=GPU_INTERVAL_S)
            return self._sampler

    def storage(self) -> Any:
        facts = self.session().facts()
        with self._lock:
            if self._storage is None:
                from naic.extensions.sources.storage import LocalStorageSource

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


class NoticesHandler(NaicHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from naic.extensions.session import session_notices

        facts = await asyncio.to_thread(self.naic.recent_facts)
        hub = self.naic.hub()
        can_extend = await asyncio.to_thread(lambda: bool(hub.api) and hub.can_extend)
        reporter = self.naic.reporter
        notices = session_notices(
            facts,
            reporter.notices if reporter else [],
            datetime.now(UTC),
            can_extend=can_extend,
        )
        poll = min(30.0, reporter.interval_s) if reporter else 30.0
        self.answer({"notices": notices, "poll_s": poll})


class ExtendHandler(NaicHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        from naic.extensions.sources.hubclient import HubError

        try:
            got = await asyncio.to_thread(self.naic.hub().extend)
        except HubError as exc:
            self.set_status(403)
            self.answer({"message": str(exc)})
            return
        await asyncio.to_thread(self.naic.recent_facts, True)
        if got.ends_at is None:
            message = "The session was extended."
        else:
            message = f"Extended: the session now ends at {got.ends_at.astimezone(UTC):%H:%M UTC}."
        if got.extensions_left == 0:
            message += " That was the last extension this resource allows."
        self.answer(
            {
                "message": message,
                "ends_at": got.ends_at.isoformat() if got.ends_at else None,
                "extensions_left": got.extensions_left,
            }
        )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "naic.extensions.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from naic.extensions.archive import WorkshopArchiveHandler

    web_app = serverapp.web_app
    base = web_app.settings["base_url"]
    web_app.settings["naic_state"] = NaicState()
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "naic/api/session"), SessionHandler),
            (url_path_join(base, "naic/api/gpus"), GPUHandler),
            (url_path_join(base, "naic/api/storage"), StorageHandler),
            (url_path_join(base, "naic/api/notices"), NoticesHandler),
            (url_path_join(base, "naic/api/extend"), ExtendHandler),
            (url_path_join(base, "naic/api/workshop/archive"), WorkshopArchiveHandler),
        ],
    )
    state = web_app.settings["naic_state"]
    env = os.environ
    if (
        env.get("JUPYTERHUB_API_URL")
        and env.get("JUPYTERHUB_API_TOKEN")
        and env.get("NAIC_SESSION")
    ):
        state.start_reporter()
    serverapp.log.info("naic-hub session endpoints at %snaic/api/", base)
