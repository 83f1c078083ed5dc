"""The hub's garbage collector: long-lived objects kept out of its frequent full passes.

CPython's full (generation 2) collection walks every container object the process tracks.
A started hub tracks hundreds of thousands, nearly all long-lived (modules, classes, the ORM's
mappings, the catalogue, users and their spawners, JupyterHub's scope caches), and each full
pass blocked the event loop for 150-200 ms on a 2-core VM, every 10-60 s under load: every
request in flight waited, and those pauses made most of the hub's p99
(benchmarks/README.md#hub-under-load).

`gc.freeze()` moves every object tracked at that moment to a generation no pass walks, so
the automatic full passes walk only what is newer. Frozen objects are not freed if they
become garbage in a reference cycle, so the freeze is renewed every `REFREEZE_S`: unfreeze,
one full collection that frees cyclic garbage of any age, then freeze what is still alive.
That is one pause of the old length per interval instead of several a minute.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

#: Seconds between renewals of the freeze (each: one full collection of everything).
REFREEZE_S = 600
_tasks: set[asyncio.Task] = set()  # a task nobody references may be collected mid-way


def freeze_after_start(app: Any) -> None:
    """Once `app` (the JupyterHub starting) has started, freeze what it holds, and renew
    the freeze every `REFREEZE_S`. Outside a starting hub (a config check), nothing."""
    started = getattr(app, "_start_future", None)  # JupyterHub's own "start done" future
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # config loaded outside the hub's event loop
        return
    if started is None:
        return
    task = loop.create_task(_keep_frozen(app, started))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def refreeze() -> int:
    """Unfreeze, collect everything (garbage of any age is freed, not frozen), freeze what
    is left; returns how many objects are frozen now."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _keep_frozen(app: Any, started: asyncio.Future) -> None:
    try:
        await asyncio.shield(started)
    except Exception:  # a failed start is JupyterHub's to report
        return
    app.log.info("Start-up done: %i objects kept out of the collector's full passes", refreeze())
    while True:
        await asyncio.sleep(REFREEZE_S)
        app.log.debug("%i objects kept out of the collector's full passes", refreeze())
