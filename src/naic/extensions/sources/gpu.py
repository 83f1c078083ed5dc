"""The session's GPUs: one sample of each (NVML, a file, or a fake), and the sampler that
takes them every few seconds for the GPU monitor, the server extension and the reporter.

Standard library only at import: `pynvml` is imported at the first sample.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("naic.extensions")

#: NVML counts memory in bytes; samples say MB (binary, as nvidia-smi's MiB).
MB = 2**20


@dataclass(frozen=True)
class GPUSample:
    """One GPU at one moment. `index` is the GPU's number inside this session (as CUDA
    numbers them: 0, 1, …); utilisation is None where the GPU does not report it (MIG)."""

    index: int
    name: str
    utilization_pct: float | None
    memory_used_mb: float
    memory_total_mb: float

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "utilization_pct": self.utilization_pct,
            "memory_used_mb": round(self.memory_used_mb, 1),
            "memory_total_mb": round(self.memory_total_mb, 1),
        }


class GPUSource(Protocol):
    def sample(self) -> list[GPUSample]:
        """The session's GPUs now; an empty list means this session has none."""
        ...


def visible_devices(environ: Mapping[str, str]) -> list[str] | None:
    """The session's GPUs from `CUDA_VISIBLE_DEVICES`: None = all, [] = none.

    As CUDA reads it: indices or `GPU-`/`MIG-` UUIDs, comma-separated; the list ends at the
    first entry that is neither (so "-1" or "" hides every GPU)."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    out = []
    for item in (v.strip() for v in value.split(",")):
        if not (item.isdigit() or item.startswith(("GPU-", "MIG-"))):
            break
        out.append(item)
    return out


class NVMLSource:
    """GPU samples from NVML (`pynvml`, package nvidia-ml-py), only the session's GPUs.

    No NVML library, no driver, or devices NVML does not know (Slurm's fake GPUs on a
    test cluster) all give an empty list: "no GPU in this session"."""

    def __init__(self, environ: Mapping[str, str] | None = None, nvml: Any = None):
        self._environ = os.environ if environ is None else environ
        self._nvml = nvml
        self._ready: bool | None = None  # None: not tried yet; False: no NVML here
        self._lock = threading.Lock()

    def _init(self) -> Any:
        with self._lock:
            if self._ready is None:
                if self._nvml is None:
                    try:
                        import pynvml  # nvidia-ml-py; a ctypes binding, loaded when needed
                    except ImportError:
                        self._ready = False
                        return None
                    self._nvml = pynvml
                try:
                    self._nvml.nvmlInit()
                    self._ready = True
                except self._nvml.NVMLError as exc:
                    log.info("No GPU samples: NVML is not usable here (%s)", exc)
                    self._ready = False
            return self._nvml if self._ready else None

    def _handles(self, nvml: Any) -> list[Any]:
        wanted = visible_devices(self._environ)
        if wanted is None:
            wanted = [str(i) for i in range(nvml.nvmlDeviceGetCount())]
        handles = []
        for item in wanted:
            try:
                if item.isdigit():
                    handles.append(nvml.nvmlDeviceGetHandleByIndex(int(item)))
                else:
                    handles.append(nvml.nvmlDeviceGetHandleByUUID(item))
            except nvml.NVMLError:
                continue  # e.g. a fake GPU that only the scheduler knows
        return handles

    def sample(self) -> list[GPUSample]:
        nvml = self._init()
        if nvml is None:
            return []
        try:
            handles = self._handles(nvml)
        except nvml.NVMLError:
            return []
        out = []
        for handle in handles:
            try:
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            except nvml.NVMLError:
                continue
            try:
                util: float | None = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except nvml.NVMLError:  # NotSupported on MIG instances
                util = None
            out.append(
                GPUSample(
                    index=len(out),
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    utilization_pct=util,
                    memory_used_mb=memory.used / MB,
                    memory_total_mb=memory.total / MB,
                )
            )
        return out


class FakeGPUSource:
    """Fake: plays back a list of samples per call (the last one repeats)."""

    def __init__(self, *frames: list[GPUSample]):
        self._frames = list(frames) or [[]]
        self.calls = 0

    def sample(self) -> list[GPUSample]:
        frame = self._frames[min(self.calls, len(self._frames) - 1)]
        self.calls += 1
        return list(frame)


class FileGPUSource:
    """GPU samples read from a JSON file at each call: a list of GPUSample fields, e.g.
    `[{"name": "A100", "utilization_pct": 0, "memory_used_mb": 1, "memory_total_mb": 40960}]`.

    The one stand-in for hardware this project allows: tests (and demos on GPU-less machines)
    set `NAIC_GPU_SAMPLES` to such a file and change it while a real session runs. A missing
    or unreadable file reads as "no GPU"."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def sample(self) -> list[GPUSample]:
        try:
            rows = json.loads(self.path.read_text())
            return [
                GPUSample(
                    index=i,
                    name=str(r.get("name", "GPU")),
                    utilization_pct=r.get("utilization_pct"),
                    memory_used_mb=float(r.get("memory_used_mb", 0)),
                    memory_total_mb=float(r.get("memory_total_mb", 0)),
                )
                for i, r in enumerate(rows)
            ]
        except (OSError, ValueError, TypeError, AttributeError):
            return []


def gpu_source(environ: Mapping[str, str] | None = None) -> GPUSource:
    """The session's GPUs: NVML, or the file `NAIC_GPU_SAMPLES` names (see FileGPUSource)."""
    env = os.environ if environ is None else environ
    path = env.get("NAIC_GPU_SAMPLES")
    return FileGPUSource(path) if path else NVMLSource(env)


@dataclass(frozen=True)
class Reading:
    """One sample of all the session's GPUs, at `at` (seconds, the sampler's clock)."""

    at: float
    gpus: tuple[GPUSample, ...]


class GPUSampler:
    """Samples a GPUSource every `interval_s` seconds into a ring buffer, in a thread.

    UI-free: the GPU monitor widget, the server extension and the GPU idle culler all read
    the same readings. Reads are thread-safe; `sample_once` lets tests (with an injected
    clock) take readings without a thread. Listeners are called with each new Reading."""

    def __init__(
        self,
        source: GPUSource,
        *,
        interval_s: float = 5.0,
        keep: int = 720,
        clock: Callable[[], float] = time.time,
    ):
        self.source, self.interval_s, self.clock = source, interval_s, clock
        self._readings: deque[Reading] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Reading], None]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def sample_once(self) -> Reading:
        try:
            gpus = tuple(self.source.sample())
        except Exception:  # a sampler that dies silently is worse than one missed sample
            log.exception("GPU sample failed")
            gpus = ()
        reading = Reading(self.clock(), gpus)
        with self._lock:
            self._readings.append(reading)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(reading)
            except Exception:
                log.exception("A GPU sample listener failed")
        return reading

    def readings(self) -> list[Reading]:
        with self._lock:
            return list(self._readings)

    def latest(self) -> Reading | None:
        with self._lock:
            return self._readings[-1] if self._readings else None

    def since(self, t: float) -> list[Reading]:
        """Readings taken at or after `t` (the sampler's clock), oldest first."""
        with self._lock:
            return [r for r in self._readings if r.at >= t]

    def subscribe(self, listener: Callable[[Reading], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Reading], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="naic-gpu-sampler", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.sample_once()
            stop.wait(self.interval_s)
