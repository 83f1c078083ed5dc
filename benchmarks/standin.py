"""Stand-in sessions for the hub-load benchmark: hundreds of "servers" that cost nothing.

A session here goes through the hub's real spawn path — the REST call, naic's request
gate, admission and ledger (`Router`), the database, the proxy route, the hub's check that
the server answers — and only the last step, the process, is a stand-in: every session's
URL points at one small Tornado server (`python -m benchmarks.standin --port P`) that
answers any `/user/NAME/…` path. The server tokens the hub hands each session are written
to `$NAIC_BENCH_TOKENS/NAME` (0600), from where the load tool reports activity with them,
as a session does with its own token.

- `StandinSpawner`: naic-hub's local backend (`naic.spawners.local.LocalSpawner`) with
  `start`/`poll`/`stop` replaced; a `jupyterhub_config.d` file puts it in the router's
  `BACKENDS["local"]`, so the catalogue's `local` site starts stand-ins.
- `StockStandinSpawner`: the same for stock JupyterHub (`c.JupyterHub.spawner_class`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from jupyterhub.spawner import Spawner

from naic.spawners.local import LocalSpawner


def _tokens() -> Path:
    return Path(os.environ["NAIC_BENCH_TOKENS"])


class _Standin:
    """What both spawners are (first in their bases, so these win): the token kept for the
    load tool, the stand-in's address, and a "process" that runs until stopped."""

    _running = False

    async def start(self):
        path = _tokens() / self.user.name
        path.write_text(self.api_token)
        path.chmod(0o600)
        self._running = True
        return "127.0.0.1", int(os.environ["NAIC_BENCH_STANDIN_PORT"])

    async def poll(self):
        return None if self._running else 0

    async def stop(self, now: bool = False) -> None:
        self._running = False
        (_tokens() / self.user.name).unlink(missing_ok=True)


class StandinSpawner(_Standin, LocalSpawner):
    """naic-hub's local backend with a stand-in for its process."""


class StockStandinSpawner(_Standin, Spawner):
    """Stock JupyterHub's spawner with the same stand-in."""


def serve(port: int) -> None:
    """Answer every session's URL: `/user/NAME/api` as a Jupyter server does, else a page."""
    import asyncio

    from jupyterhub import __version__
    from tornado import web

    class Handler(web.RequestHandler):
        def set_default_headers(self) -> None:
            # As jupyterhub-singleuser does: the hub warns, per spawn, when it is missing.
            self.set_header("X-JupyterHub-Version", __version__)

    class Api(Handler):
        def get(self, name: str) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"version": "2.14.0"}))

    class Page(Handler):
        def get(self, path: str) -> None:
            self.finish("<!doctype html><title>stand-in</title>a stand-in session")

    async def main() -> None:
        app = web.Application([(r"/user/([^/]+)/api/?", Api), (r"/(.*)", Page)])
        app.listen(port, address="127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
