"""How full the session's storage areas are: `df`, `du` or `lfs quota` per area, measured
on this machine as the session's user, kept a few minutes (du is slow)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from naic.extensions.session import StorageArea
from naic.extensions.sources.commands import Runner, run_argv

log = logging.getLogger("naic.extensions")

#: Sizes are binary, as `du`, `lfs quota` and quota tools count them; the UI says "GB".
GB = 2**30


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


class _Command:
    """A measurement by a command that may take long: past `timeout_s` it is Unavailable,
    with a note that says what took too long (and `advice`, if there is some)."""

    def __init__(self, timeout_s: float = 30.0):
        self.timeout_s = timeout_s

    def output(self, run: Runner, argv: list[str], what: str, advice: str = "") -> str:
        try:
            return run(argv, self.timeout_s)
        except subprocess.TimeoutExpired:
            note = f"{what} took longer than {self.timeout_s:g} s"
            raise Unavailable(f"{note}; {advice}" if advice else note) from None


class DiskUsage(_Command):
    """`du -s`: what is stored under the area's path, against the catalogue's quota."""

    name = "du"

    def measure(self, area: StorageArea, user: str, run: Runner) -> tuple[float, float | None, str]:
        argv = ["du", "-s", "-k", area.path]
        out = self.output(run, argv, "counting", advice="try again later")
        return int(out.split()[0]) * 1024 / GB, area.quota_gb, "area"


class LustreQuota(_Command):
    """`lfs quota -u USER PATH`: the user's bytes and limit on a Lustre file system."""

    name = "lfs"

    def measure(self, area: StorageArea, user: str, run: Runner) -> tuple[float, float | None, str]:
        out = self.output(run, ["lfs", "quota", "-u", user, area.path], "lfs quota")
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


def fs_type(path: str, mounts: str) -> str:
    """Pure: the type of the file system `path` lives on, from /proc/mounts' text (the
    longest mount point that contains it; "" when none does)."""
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def _mounts() -> str:
    try:
        return Path("/proc/mounts").read_text()
    except OSError:
        return ""


class LocalStorageSource:
    """Usage of the session's storage areas, measured on this machine.

    The method per area: `methods` (or `NAIC_STORAGE_METHODS`) by area name; otherwise
    `lfs` on a Lustre file system (its own quota, no walk over millions of files), then `du`
    where the catalogue gives a quota and `df` where it gives none; `du`/`df` are also the
    fallback when `lfs quota` does not answer. A path that does not exist here is "not
    available here". Results are kept `max_age_s` (du is slow)."""

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
        mounts: Callable[[], str] = _mounts,
    ):
        self.areas = list(areas)
        self.user = user
        env = os.environ if environ is None else environ
        self.methods = dict(methods) if methods is not None else methods_from_env(env)
        self._run, self._max_age, self._clock, self._mounts = run, max_age_s, clock, mounts
        self._cache: dict[str, tuple[float, StorageUsage]] = {}

    def method_for(self, area: StorageArea) -> str:
        if area.name in self.methods:
            return self.methods[area.name]
        if fs_type(area.path, self._mounts()) == "lustre":
            return "lfs"
        return self._plain(area)

    @staticmethod
    def _plain(area: StorageArea) -> str:
        return "du" if area.quota_gb else "df"

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
            try:
                used, limit, scope = METHODS[method]().measure(area, self.user, self._run)
            except (Unavailable, OSError, subprocess.SubprocessError) as exc:
                if method != "lfs":
                    raise
                log.info(
                    "lfs quota for %s did not answer (%s): measuring otherwise", area.path, exc
                )
                method = self._plain(area)
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
