"""Where the session's numbers come from: the job's end, GPUs, storage, the hub.

Each source is a small interface (a Protocol), one real implementation, and the fake the
tests and demos use. Widgets and the server extension take a source in their constructor
and never reach for NVML, `du` or the hub themselves, so what they show is testable.
A source that cannot answer says so in words ("not available here", "budgets not
available yet") instead of raising into a notebook.

Standard library only at import: `pynvml` is imported at the first GPU sample.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from naic.extensions.session import JobEndSource, SessionFacts, StorageArea

log = logging.getLogger("naic.extensions")

#: Sizes are binary, as `du`, `lfs quota` and quota tools count them; the UI says "GB".
GB = 2**30
MB = 2**20

#: Runs argv with a timeout in seconds and returns stdout; raises on failure or timeout.
Runner = Callable[[Sequence[str], float], str]


def run_argv(argv: Sequence[str], timeout_s: float) -> str:
    """stdout, even after a non-zero exit when there is some: `du` exits 1 when it could
    not read a folder and still prints the total of what it could."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode and not proc.stdout.strip():
        raise OSError(f"{argv[0]} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


# --- the job's end (Slurm) ---------------------------------------------------------------

_SLURM_NO_TIME = {"", "N/A", "NONE", "Unknown", "UNLIMITED"}
_JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?")


def parse_squeue_end(text: str, tz: tzinfo | None = None) -> datetime | None:
    """`squeue -h -o %e` prints a time without a zone (the local time of the machine squeue
    runs on, which is this one), or N/A; `tz` overrides the local zone (for tests)."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if first in _SLURM_NO_TIME:
        return None
    try:
        naive = datetime.fromisoformat(first)
    except ValueError:
        return None
    local = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
    return local.astimezone(UTC)


class SqueueJobEnd:
    """Asks `squeue` for a job's end time, at most once a minute (Slurm asks clients not
    to poll it in loops; an extension changes the end rarely)."""

    def __init__(
        self,
        run: Runner = run_argv,
        *,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._run, self._max_age, self._clock = run, max_age_s, clock
        self._cache: dict[str, tuple[float, datetime | None]] = {}

    def end_time(self, job_id: str) -> datetime | None:
        if not _JOB_ID.fullmatch(job_id):
            return None
        hit = self._cache.get(job_id)
        if hit is not None and self._clock() - hit[0] < self._max_age:
            return hit[1]
        try:
            end = parse_squeue_end(self._run(["squeue", "-h", "-j", job_id, "-o", "%e"], 10))
        except (OSError, subprocess.SubprocessError):
            end = None  # no squeue here, or the controller does not answer: the request's end
        self._cache[job_id] = (self._clock(), end)
        return end


class FixedJobEnd:
    """Fake: the scheduler says the job ends at `end` (None: it does not know)."""

    def __init__(self, end: datetime | None):
        self.end, self.asked = end, []

    def end_time(self, job_id: str) -> datetime | None:
        self.asked.append(job_id)
        return self.end


class SessionSource(Protocol):
    def facts(self) -> SessionFacts: ...


class EnvSessionSource:
    """The facts of the session this process runs in (`NAIC_SESSION`, Slurm's end)."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, job_end: JobEndSource | None = None
    ):
        self._environ = os.environ if environ is None else environ
        self._job_end = job_end or SqueueJobEnd()

    def facts(self) -> SessionFacts:
        return SessionFacts.from_env(self._environ, job_end=self._job_end)


class FixedSessionSource:
    """Fake: always these facts."""

    def __init__(self, facts: SessionFacts):
        self._facts = facts

    def facts(self) -> SessionFacts:
        return self._facts


# --- GPUs ----------------------------------------------------------------------------------


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


# --- storage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageUsage:
    """How full one storage area is. `scope` says whose bytes `used_gb` counts: "area"
    (everything under the path, du), "user" (the user's quota, lfs) or "file system"
    (the whole file system the path lives on, df: for areas without a quota)."""

    area: StorageArea
    available: bool
    used_gb: float | None = None
    limit_gb: float | None = None
    scope: str = ""
    method: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.area.name,
            "title": self.area.title,
            "path": self.area.path,
            "available": self.available,
            "used_gb": None if self.used_gb is None else round(self.used_gb, 3),
            "limit_gb": None if self.limit_gb is None else round(self.limit_gb, 3),
            "scope": self.scope,
            "method": self.method,
            "note": self.note,
            "read_only": self.area.read_only,
            "purge_days": self.area.purge_days,
        }


class StorageSource(Protocol):
    def usage(self) -> list[StorageUsage]: ...


class Unavailable(Exception):
    """A measurement that cannot be made here; `str()` is the note a user reads."""


class DiskFree:
    """`df`: the file system's size and use (statvfs, no subprocess)."""

    name = "df"

    def measure(self, area: StorageArea, user: str, run: Runner) -> tuple[float, float, str]:
        total, used, _free = shutil.disk_usage(area.path)
        return used / GB, total / GB, "file system"


class DiskUsage:
    """`du -s`: what is stored under the area's path, against the catalogue's quota."""

    name = "du"

    def __init__(self, timeout_s: float = 30.0):
        self.timeout_s = timeout_s

    def measure(self, area: StorageArea, user: str, run: Runner) -> tuple[float, float | None, str]:
        try:
            out = run(["du", "-s", "-k", area.path], self.timeout_s)
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"counting took longer than {self.timeout_s:g} s; try again later"
            ) from None
        return int(out.split()[0]) * 1024 / GB, area.quota_gb, "area"


class LustreQuota:
    """`lfs quota -u USER PATH`: the user's bytes and limit on a Lustre file system."""

    name = "lfs"

    def __init__(self, timeout_s: float = 30.0):
        self.timeout_s = timeout_s

    def measure(self, area: StorageArea, user: str, run: Runner) -> tuple[float, float | None, str]:
        try:
            out = run(["lfs", "quota", "-u", user, area.path], self.timeout_s)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"lfs quota took longer than {self.timeout_s:g} s") from None
        quota = parse_lfs_quota(out)
        if quota is None:
            raise Unavailable("lfs quota printed nothing we understand")
        limit = quota.hard_kb or quota.soft_kb
        return (
            quota.used_kb * 1024 / GB,
            limit * 1024 / GB if limit else area.quota_gb,
            "user",
        )


@dataclass(frozen=True)
class LustreNumbers:
    used_kb: int
    soft_kb: int
    hard_kb: int


_UNITS = {"": 1, "k": 1, "m": 2**10, "g": 2**20, "t": 2**30, "p": 2**40}
_SIZE = re.compile(r"\[?([0-9]+(?:\.[0-9]+)?)([kKmMgGtTpP]?)\*?\]?")


def _kib(token: str) -> int | None:
    match = _SIZE.fullmatch(token)
    if match is None:
        return None
    return round(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_lfs_quota(text: str) -> LustreNumbers | None:
    """Block usage and limits (KiB) from `lfs quota -u USER PATH`, with or without `-h`.

    After the `Filesystem kbytes quota limit grace …` header comes the file system and
    its numbers, on one line or (a long path) on the next. Lustre marks an exceeded
    quota with `*` and an incomplete count with brackets; limits of 0 mean "none"."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == ["Filesystem"]:
            tokens = " ".join(lines[i + 1 : i + 3]).split()
            numbers = [_kib(t) for t in tokens[1:4]]
            if len(numbers) == 3 and None not in numbers:
                used, soft, hard = numbers
                return LustreNumbers(used, soft, hard)  # type: ignore[arg-type]
            return None
    return None


METHODS: dict[str, Callable[[], Any]] = {"df": DiskFree, "du": DiskUsage, "lfs": LustreQuota}


def methods_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`NAIC_STORAGE_METHODS="project=lfs,scratch=lfs"`: the operator's choice per area."""
    out = {}
    for item in environ.get("NAIC_STORAGE_METHODS", "").split(","):
        name, _, method = item.strip().partition("=")
        if name and method.strip() in METHODS:
            out[name.strip()] = method.strip()
    return out


class LocalStorageSource:
    """Usage of the session's storage areas, measured on this machine.

    The method per area: `methods` (or `NAIC_STORAGE_METHODS`) by area name; otherwise
    `du` where the catalogue gives a quota and `df` where it gives none. A path that does
    not exist here is "not available here". Results are kept `max_age_s` (du is slow)."""

    def __init__(
        self,
        areas: Iterable[StorageArea],
        user: str,
        *,
        methods: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        run: Runner = run_argv,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.areas = list(areas)
        self.user = user
        env = os.environ if environ is None else environ
        self.methods = dict(methods) if methods is not None else methods_from_env(env)
        self._run, self._max_age, self._clock = run, max_age_s, clock
        self._cache: dict[str, tuple[float, StorageUsage]] = {}

    def method_for(self, area: StorageArea) -> str:
        return self.methods.get(area.name) or ("du" if area.quota_gb else "df")

    def usage(self) -> list[StorageUsage]:
        return [self._one(area) for area in self.areas]

    def _one(self, area: StorageArea) -> StorageUsage:
        hit = self._cache.get(area.name)
        if hit is not None and self._clock() - hit[0] < self._max_age:
            return hit[1]
        result = self._measure(area)
        self._cache[area.name] = (self._clock(), result)
        return result

    def _measure(self, area: StorageArea) -> StorageUsage:
        method = self.method_for(area)
        if not os.path.isdir(area.path):
            return StorageUsage(area, False, method=method, note="not available here")
        try:
            used, limit, scope = METHODS[method]().measure(area, self.user, self._run)
        except Unavailable as exc:
            return StorageUsage(area, False, method=method, note=str(exc))
        except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
            log.warning("Storage %s (%s) could not be measured: %s", area.path, method, exc)
            return StorageUsage(area, False, method=method, note="could not be measured")
        return StorageUsage(area, True, used, limit, scope, method)


class FakeStorageSource:
    def __init__(self, usages: list[StorageUsage]):
        self.usages = usages

    def usage(self) -> list[StorageUsage]:
        return list(self.usages)


# --- the hub ----------------------------------------------------------------------------------

BUDGETS_NOT_AVAILABLE = "GPU-hour budgets are not available yet."


@dataclass(frozen=True)
class ProjectUsage:
    name: str
    title: str
    gpu_hours: float | None  # None: no budget
    used: float
    left: float | None
    period: str = ""
    resets: str | None = None
    mine: float | None = None  # this user's share of `used`


@dataclass(frozen=True)
class Budgets:
    available: bool
    projects: tuple[ProjectUsage, ...] = ()
    message: str = ""


class HubError(Exception):
    """The hub refused or did not answer; `str()` is a sentence for the user."""


@dataclass(frozen=True)
class Extension:
    """What the hub answered to "more time": the new end, as Slurm has it."""

    ends_at: datetime | None
    hours_total: float
    extensions_left: int


class HubClient(Protocol):
    can_extend: bool

    def budget(self) -> Budgets: ...

    def stop_server(self) -> None: ...

    def extend(self, hours: float | None = None) -> Extension: ...

    def activity(self, report: dict[str, Any] | None = None) -> dict[str, Any]: ...


#: Sends one request; returns (HTTP status, body). Raises OSError when nothing answers.
Transport = Callable[[urllib.request.Request, float], tuple[int, bytes]]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: the hub's API on the hub's own machine (naic.hub.app.listen)."""

    def __init__(self, socket_path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def urllib_transport(req: urllib.request.Request, timeout_s: float) -> tuple[int, bytes]:
    url = urlsplit(req.full_url)
    if url.scheme == "http+unix":  # JupyterHub's form: the socket's path is the host
        conn = _UnixHTTPConnection(unquote(url.netloc), timeout_s)
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            conn.request(req.get_method(), target, body=req.data, headers=dict(req.header_items()))
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - hub API URL
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class HubSource:
    """The hub's REST API with this server's own token (`JUPYTERHUB_API_TOKEN`)."""

    _offers_extension: bool | None = None

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        transport: Transport = urllib_transport,
        timeout_s: float = 10.0,
    ):
        env = os.environ if environ is None else environ
        self.api = env.get("JUPYTERHUB_API_URL", "").rstrip("/")
        self.token = env.get("JUPYTERHUB_API_TOKEN", "")
        self.user = env.get("JUPYTERHUB_USER", "")
        self.server_name = env.get("JUPYTERHUB_SERVER_NAME", "")
        self._send, self._timeout = transport, timeout_s

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(  # noqa: S310 - the hub's API URL from JupyterHub
            f"{self.api}/{path}",
            data=body,
            method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
        )
        return self._send(req, self._timeout)

    def _extend_path(self) -> str:
        user = quote(self.user, safe="")
        if self.server_name:
            return f"naic/users/{user}/servers/{quote(self.server_name, safe='')}/extend"
        return f"naic/users/{user}/extend"

    @property
    def can_extend(self) -> bool:
        """Whether the hub offers more time for this session (asked once, then remembered)."""
        if self._offers_extension is None:
            offered = False
            if self.api and self.user:
                try:
                    status, body = self._request("GET", self._extend_path())
                    offered = status == 200 and bool(json.loads(body).get("offered"))
                except (OSError, ValueError, AttributeError):
                    offered = False
            self._offers_extension = offered
        return self._offers_extension

    def extend(self, hours: float | None = None) -> Extension:
        """Ask the hub for more time (default: the resource's usual step)."""
        if not (self.api and self.user):
            raise HubError("This session does not run under a hub, so it cannot be extended.")
        body = json.dumps({} if hours is None else {"hours": hours}).encode()
        try:
            status, data = self._request("POST", self._extend_path(), body)
        except OSError:
            raise HubError("The hub does not answer; try again in a minute.") from None
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {}
        if status != 200:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise HubError(message or f"The hub could not extend this session (HTTP {status}).")
        end = answer.get("ends_at")
        return Extension(
            ends_at=datetime.fromisoformat(end) if end else None,
            hours_total=float(answer.get("hours_total") or 0),
            extensions_left=int(answer.get("extensions_left") or 0),
        )

    def _session_path(self) -> str:
        user = quote(self.user, safe="")
        if self.server_name:
            return f"naic/users/{user}/servers/{quote(self.server_name, safe='')}"
        return f"naic/users/{user}"

    def activity(self, report: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a GPU activity report (None: only ask); the hub answers this session's
        notices and how often to report: {"notices": [...], "report_every_s": s}."""
        if not (self.api and self.user):
            raise HubError("This session does not run under a hub.")
        body = None if report is None else json.dumps(report).encode()
        path = self._session_path() + "/activity"
        try:
            status, data = self._request("GET" if report is None else "POST", path, body)
        except OSError:
            raise HubError("The hub does not answer.") from None
        if status != 200:
            raise HubError(f"The hub did not take the activity report (HTTP {status}).")
        try:
            answer = json.loads(data)
            return {"notices": list(answer["notices"]), "report_every_s": answer["report_every_s"]}
        except (ValueError, KeyError, TypeError):
            raise HubError("The hub's answer to the activity report is not readable.") from None

    def budget(self) -> Budgets:
        if not (self.api and self.user):
            return Budgets(False, message=BUDGETS_NOT_AVAILABLE + " (not running under a hub)")
        try:
            status, body = self._request("GET", f"naic/users/{quote(self.user, safe='')}/usage")
        except OSError:
            return Budgets(False, message=BUDGETS_NOT_AVAILABLE + " (the hub does not answer)")
        if status != 200:
            return Budgets(False, message=BUDGETS_NOT_AVAILABLE)
        try:
            return Budgets(True, tuple(_project(p) for p in json.loads(body)["projects"]))
        except (ValueError, KeyError, TypeError):
            return Budgets(False, message=BUDGETS_NOT_AVAILABLE)

    def stop_server(self) -> None:
        """Ask the hub to stop this session (the named server, if it is one)."""
        if not (self.api and self.user):
            raise HubError("This session does not run under a hub, so it cannot be stopped here.")
        user = quote(self.user, safe="")
        path = f"users/{user}/server"
        if self.server_name:
            path = f"users/{user}/servers/{quote(self.server_name, safe='')}"
        try:
            status, _ = self._request("DELETE", path)
        except OSError:
            # The hub may stop this very server before its answer arrives.
            return
        if status in (202, 204):
            return
        if status == 403:
            raise HubError(
                "The hub does not let this session stop itself; stop it from the hub's "
                "home page (File → Hub Control Panel)."
            )
        raise HubError(f"The hub could not stop this session (HTTP {status}); try again.")


def _project(p: dict[str, Any]) -> ProjectUsage:
    return ProjectUsage(
        name=str(p["name"]),
        title=str(p.get("title") or p["name"]),
        gpu_hours=None if p.get("gpu_hours") is None else float(p["gpu_hours"]),
        used=float(p.get("used") or 0),
        left=None if p.get("left") is None else float(p["left"]),
        period=str(p.get("period") or ""),
        resets=p.get("resets"),
        mine=None if p.get("mine") is None else float(p["mine"]),
    )


@dataclass
class FakeHubSource:
    """Fake: fixed budgets; counts stop requests; `extend` answers `extension` (or raises
    `extend_error`) and counts the requests."""

    budgets: Budgets = field(default_factory=lambda: Budgets(False, message=BUDGETS_NOT_AVAILABLE))
    can_extend: bool = False
    stops: int = 0
    stop_error: str = ""
    extension: Extension | None = None
    extend_error: str = ""
    extends: int = 0

    notices: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def activity(self, report: dict[str, Any] | None = None) -> dict[str, Any]:
        if report is not None:
            self.reports.append(report)
        return {"notices": list(self.notices), "report_every_s": 60}

    def extend(self, hours: float | None = None) -> Extension:
        self.extends += 1
        if self.extend_error or self.extension is None:
            raise HubError(self.extend_error or "This hub does not extend sessions.")
        return self.extension

    def budget(self) -> Budgets:
        return self.budgets

    def stop_server(self) -> None:
        if self.stop_error:
            raise HubError(self.stop_error)
        self.stops += 1
