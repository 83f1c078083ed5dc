"""Tell the hub, from inside the session, whether its GPUs are in use; hear its warnings.

A thread in the single-user server (started by naic.extensions.server) posts, every
`report_every_s` seconds as the hub asks, the highest utilisation each GPU had since the last
report (a brief burst counts as use), with the server's own token. A session without GPUs
posts an empty report: nothing GPU-related, only the question "any notices for me?". A
workshop session adds how far the student got in the material's notebooks (code cells run,
as saved) and which update of the material it has; when the hub's answer names a newer
update (the instructor pressed "Update material"), it pulls it (a student's edits win) and
says so at once. The answer carries the culler's warnings, which `naic/api/notices` shows.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from naic.extensions.sources.gpu import GPUSampler, Reading
from naic.extensions.sources.hubclient import HubClient, HubError

log = logging.getLogger(__name__)
#: Until the hub first answered.
FIRST_INTERVAL_S = 60.0
#: Notebooks of a workshop's material counted for its instructor's dashboard.
MAX_NOTEBOOKS = 100


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


def notebook_progress(folder: Path, cache: dict | None = None) -> dict[str, list[int]]:
    """{notebook: [code cells run, code cells]} of the saved notebooks under `folder` (a
    workshop's material), re-read only when a file changed; at most MAX_NOTEBOOKS."""
    cache = {} if cache is None else cache
    out = {}
    paths = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    for path in paths[:MAX_NOTEBOOKS]:
        try:
            mtime = path.stat().st_mtime
            if cache.get(path, (None,))[0] != mtime:
                cells = [
                    c
                    for c in json.loads(path.read_text()).get("cells", [])
                    if c.get("cell_type") == "code"
                ]
                run = sum(1 for c in cells if c.get("execution_count") is not None)
                cache[path] = (mtime, [run, len(cells)])
        except (OSError, ValueError, AttributeError):
            continue
        out[str(path.relative_to(folder))] = cache[path][1]
    return out


def material_version(folder: Path) -> str | None:
    """The material's commit a workshop folder holds (short; the upstream's, which a
    student's own commits do not change), or None for a plain folder's copy."""
    for rev in ("@{upstream}", "HEAD"):
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "-q", rev],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()[:7]
    return None


class ActivityReporter:
    """Reports every `interval_s`; `report_once` is the unit tests' entry (any clock)."""

    def __init__(
        self,
        hub: HubClient,
        sampler: GPUSampler | None,
        *,
        clock: Callable[[], float] = time.time,
        workshop_dir: Path | None = None,
        material: str | None = None,
    ):
        self.hub, self.sampler, self.clock = hub, sampler, clock
        self.workshop_dir, self.material = workshop_dir, material
        self.pulled: dict[str, Any] | None = None  # the material update this session has
        self._progress_cache: dict = {}
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
        report = self.report()
        if self.workshop_dir is not None and self.workshop_dir.is_dir():
            report["progress"] = notebook_progress(self.workshop_dir, self._progress_cache)
            if self.material:
                if self.pulled is None:  # what the launcher brought
                    self.pulled = {"update": 0, "version": material_version(self.workshop_dir)}
                report["material"] = self.pulled
        answer = self.hub.activity(report)
        wanted = answer.get("material_update", 0)
        if self.pulled is not None and wanted > self.pulled["update"]:
            self.pull(wanted)
            answer = self.hub.activity({"material": self.pulled})  # the dashboard learns now
        self.notices = answer["notices"]
        self.interval_s = max(1.0, float(answer["report_every_s"]))
        if self.sampler is not None:  # at least one sample per report
            self.sampler.interval_s = min(self.sampler.interval_s, self.interval_s)

    def pull(self, update: int) -> None:
        """Bring the material's update `update` into the workshop folder (nbgitpuller: the
        student's edits win over the course's); a failure is reported, not retried until the
        instructor asks again."""
        from naic.extensions.launch import fetch_material

        error = None
        try:
            log.info("naic: %s", fetch_material(self.material, self.workshop_dir))
        except Exception as exc:  # a session keeps running on the material it has
            error = " ".join(str(exc).split())[:300] or type(exc).__name__
            log.warning("Material update %d not pulled: %s", update, error)
        self.pulled = {
            "update": update,
            "version": material_version(self.workshop_dir),
            "error": error,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
        }

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
