"""Tell the hub, from inside the session, whether its GPUs are in use; hear its warnings.

A thread in the single-user server (started by naic.extensions.server) posts, every
`report_every_s` seconds as the hub asks, the highest utilisation each GPU had since the last
report (a brief burst counts as use), with the server's own token. A session without GPUs
posts an empty report: nothing GPU-related, only the question "any notices for me?". The
hub's answer carries the culler's warnings, which the server's `naic/api/notices` shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from naic.extensions.sources import GPUSampler, HubClient, HubError, Reading

log = logging.getLogger(__name__)
#: Until the hub first answered.
FIRST_INTERVAL_S = 60.0


def summarize(readings: list[Reading]) -> list[float | None]:
    """Pure: per GPU, the highest utilisation over `readings` (None where a GPU never said,
    as MIG instances do not); [] when the readings hold no GPU."""
    out: list[float | None] = []
    for reading in readings:
        for g in reading.gpus:
            while len(out) <= g.index:
                out.append(None)
            if g.utilization_pct is not None:
                out[g.index] = max(out[g.index] or 0.0, g.utilization_pct)
    return out


class ActivityReporter:
    """Reports every `interval_s`; `report_once` is the unit tests' entry (any clock)."""

    def __init__(
        self,
        hub: HubClient,
        sampler: GPUSampler | None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.hub, self.sampler, self.clock = hub, sampler, clock
        self.interval_s = FIRST_INTERVAL_S
        self.notices: list[dict[str, Any]] = []
        self._last = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self) -> dict[str, Any]:
        """What the next report says (and moves the window on)."""
        now = self.clock()
        if self.sampler is None:
            return {}
        latest = self.sampler.latest()
        readings = self.sampler.since(self._last) or ([latest] if latest else [])
        utils = summarize(readings)
        window, self._last = max(now - self._last, 0.0), now
        if not utils:
            return {}
        gpus = [{"index": i, "utilization_pct": u} for i, u in enumerate(utils)]
        return {"gpus": gpus, "window_s": round(window, 3)}

    def report_once(self) -> None:
        answer = self.hub.activity(self.report())
        self.notices = answer["notices"]
        self.interval_s = max(1.0, float(answer["report_every_s"]))
        if self.sampler is not None:  # at least one sample per report
            self.sampler.interval_s = min(self.sampler.interval_s, self.interval_s)

    def start(self, first_after_s: float = 2.0) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(first_after_s,), name="naic-activity", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, wait: float) -> None:
        while not self._stop.wait(wait):
            try:
                self.report_once()
            except HubError as exc:  # the hub restarting, say: the next report catches up
                log.info("Activity report not taken: %s", exc)
            except Exception:
                log.exception("Activity report failed")
            wait = self.interval_s
