"""The session's own facts, read inside the session: site, resources, time left, storage.

The spawner hands them over in `NAIC_SESSION` (see `naic.spawners.session_env` for the
shape). A Slurm job's real end can differ from the one asked for (an operator extends it,
the job started later than the spawner thought), so inside a Slurm job the end time comes
from Slurm when it answers. Outside naic-hub (a plain Jupyter) the facts say so instead of
failing: `SessionFacts.is_naic` is False and `reason` says why, in words.

Widgets and the server extension read the facts through a `SessionSource`: the real one
(`EnvSessionSource`, this process's environment and Slurm) or a fake (`FixedSessionSource`).

Standard library only (Slurm is asked through `naic.extensions.sources.jobend`): the server
extension imports this at its first request.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from naic.extensions.sources.jobend import JobEndSource, SqueueJobEnd

VARIABLE = "NAIC_SESSION"
NOT_A_SESSION = "This is not a naic-hub session, so there are no session facts to show."


@dataclass(frozen=True)
class StorageArea:
    """One storage area of the catalogue, with `{username}`/`{project}` filled in."""

    name: str
    title: str
    path: str
    quota_gb: float | None = None
    read_only: bool = False
    purge_days: int | None = None
    node_local: bool = False  # each node's own disk: staged copies go when the session ends


@dataclass(frozen=True)
class SessionFacts:
    is_naic: bool
    reason: str = ""
    catalogue: str = ""
    site: str = ""
    site_title: str = ""
    backend: str = ""
    resource: str = ""
    resource_title: str = ""
    gpus: int = 0
    gpu_type: str | None = None
    cpus: int = 0
    memory_gb: int = 0
    hours: float = 0.0
    environment: str = ""
    environment_title: str = ""
    project: str | None = None
    project_title: str | None = None
    started_at: datetime | None = None
    ends_at: datetime | None = None
    #: Where `ends_at` comes from: "slurm" (the job's time limit now) or "request".
    ends_at_from: str = ""
    job_id: str | None = None
    storage: tuple[StorageArea, ...] = field(default_factory=tuple)
    #: The session says "ends at …" this many minutes before its end (the site's policy).
    time_left_notice_minutes: float = 30.0
    #: The site's documentation and where to report a problem (a web page or mailto:).
    docs_url: str | None = None
    support_url: str | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        job_end: JobEndSource | None = None,
        ask_scheduler: bool = True,
    ) -> SessionFacts:
        """Facts from `NAIC_SESSION`; inside a Slurm job, the end time Slurm has now.

        `job_end` defaults to asking `squeue` (only when `SLURM_JOB_ID` is set, and not at
        all with `ask_scheduler=False`, for callers that need no end time)."""
        env = os.environ if environ is None else environ
        raw = env.get(VARIABLE)
        if not raw:
            return cls(is_naic=False, reason=NOT_A_SESSION)
        try:
            facts = cls.from_json(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"The session's facts ({VARIABLE}) cannot be read: {exc}."
            return cls(is_naic=False, reason=why)
        job_id = env.get("SLURM_JOB_ID") or None
        if job_id is None or not ask_scheduler:
            return facts
        if job_end is None:
            job_end = SqueueJobEnd()
        slurm_end = job_end.end_time(job_id)
        return replace(
            facts,
            job_id=job_id,
            ends_at=slurm_end or facts.ends_at,
            ends_at_from="slurm" if slurm_end else facts.ends_at_from,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionFacts:
        project = data.get("project") or None
        return cls(
            is_naic=True,
            catalogue=str(data.get("catalogue", "")),
            site=str(data["site"]),
            site_title=str(data.get("site_title") or data["site"]),
            backend=str(data.get("backend", "")),
            resource=str(data["resource"]),
            resource_title=str(data.get("resource_title") or data["resource"]),
            gpus=int(data.get("gpus", 0)),
            gpu_type=data.get("gpu_type"),
            cpus=int(data.get("cpus", 0)),
            memory_gb=int(data.get("memory_gb", 0)),
            hours=float(data.get("hours", 0)),
            environment=str(data.get("environment", "")),
            environment_title=str(data.get("environment_title") or data.get("environment", "")),
            project=project["name"] if project else None,
            project_title=project.get("title") if project else None,
            started_at=_parse_time(data.get("started_at")),
            ends_at=_parse_time(data.get("ends_at")),
            ends_at_from="request" if data.get("ends_at") else "",
            time_left_notice_minutes=float(data.get("time_left_notice_minutes", 30)),
            storage=tuple(
                StorageArea(
                    name=str(a["name"]),
                    title=str(a.get("title") or a["name"]),
                    path=str(a["path"]),
                    quota_gb=a.get("quota_gb"),
                    read_only=bool(a.get("read_only", False)),
                    purge_days=a.get("purge_days"),
                    node_local=bool(a.get("node_local", False)),
                )
                for a in data.get("storage", [])
            ),
            docs_url=(data.get("help") or {}).get("docs_url") or None,
            support_url=(data.get("help") or {}).get("support_url") or None,
        )

    def time_left(self, now: datetime) -> timedelta | None:
        """Until the session ends (never negative); None when nobody knows."""
        if self.ends_at is None:
            return None
        return max(self.ends_at - now, timedelta(0))

    def to_json(self, now: datetime) -> dict[str, Any]:
        """What `GET naic/api/session` answers."""
        if not self.is_naic:
            return {"naic": False, "message": self.reason}
        left = self.time_left(now)
        return {
            "naic": True,
            "catalogue": self.catalogue,
            "site": self.site,
            "site_title": self.site_title,
            "backend": self.backend,
            "resource": self.resource,
            "resource_title": self.resource_title,
            "gpus": self.gpus,
            "gpu_type": self.gpu_type,
            "cpus": self.cpus,
            "memory_gb": self.memory_gb,
            "hours": self.hours,
            "environment": self.environment,
            "environment_title": self.environment_title,
            "project": (
                {"name": self.project, "title": self.project_title} if self.project else None
            ),
            "started_at": _show_time(self.started_at),
            "ends_at": _show_time(self.ends_at),
            "ends_at_from": self.ends_at_from,
            "job_id": self.job_id,
            "time_left_s": None if left is None else int(left.total_seconds()),
            "time_left": describe_time_left(left),
            "storage": [
                {
                    "name": a.name,
                    "title": a.title,
                    "path": a.path,
                    "quota_gb": a.quota_gb,
                    "read_only": a.read_only,
                    "purge_days": a.purge_days,
                }
                for a in self.storage
            ],
        }

    def resources_text(self) -> str:
        """`1 × a100 GPU, 8 CPUs, 32 GB memory` (what the session panel shows)."""
        parts = []
        if self.gpus:
            kind = f"{self.gpu_type} " if self.gpu_type else ""
            parts.append(f"{self.gpus} × {kind}GPU")
        parts.append(f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}")
        parts.append(f"{self.memory_gb} GB memory")
        return ", ".join(parts)


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


def describe_time_left(left: timedelta | None) -> str:
    """`3 h 12 min`, `12 min`, `less than a minute`, `ended`, or `unknown`."""
    if left is None:
        return "unknown"
    seconds = left.total_seconds()
    if seconds <= 0:
        return "ended"
    if seconds < 60:
        return "less than a minute"
    minutes = math.floor(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} days {hours % 24} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def session_notices(
    facts: SessionFacts, hub_notices: list[dict[str, Any]], now: datetime, *, can_extend: bool
) -> list[dict[str, Any]]:
    """Pure: what the session warns about now: its end, when it is near (the site's
    `time_left_notice_minutes`), then the culler's warnings. The texts stay the same while
    the facts do, so a page shows each once; an extension changes the end, and the text."""
    out = []
    left = facts.time_left(now)
    notice = timedelta(minutes=facts.time_left_notice_minutes)
    if facts.is_naic and left is not None and facts.time_left_notice_minutes and left <= notice:
        end = facts.ends_at.astimezone(UTC).strftime("%H:%M UTC")
        if left.total_seconds() <= 0:
            text = f"This session's time ran out at {end}; it is being stopped."
        else:
            minutes = f"{facts.time_left_notice_minutes:g} minutes"
            text = f"This session ends at {end}, in less than {minutes}. Save your work"
            text += ", or ask for more time." if can_extend else "."
        out.append(
            {
                "id": "expiry",
                "kind": "expiry",
                "level": "warning",
                "text": text,
                "deadline": facts.ends_at.astimezone(UTC).isoformat(),
                "can_extend": can_extend and left.total_seconds() > 0,
            }
        )
    out += [{**n, "can_extend": False} for n in hub_notices]
    return out


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _show_time(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
