"""The culler: a JupyterHub service that warns, then stops, sessions the site's policy says
are idle. `python -m naic.hub.sessions.culler` (the hub starts it as the managed service
`naic-culler`, with a token that holds only `custom:naic:cull`).

Each round it reads `GET /hub/api/naic/sessions` (every running session with its site's
policy, its browser activity and what its own GPU reports said), runs `decide` on each, and
tells the hub what to do: `PUT …/notices/{kind}` (a warning the session shows), `DELETE
…/notices/{kind}` (activity came back), `POST …/cull` (stop it, with the reason the user
will read). The hub owns the facts and the stop; this process only decides, so its policy is
a pure function that tests drive with any clock (jupyterhub-idle-culler's lesson).

Three reasons, each with its own deadline; a warning comes `warn` before the deadline, and a
session is never stopped sooner than `warn` after its warning (a culler that was down does
not stop anybody unannounced):

    gpu-idle  its GPUs all below `gpu_busy_percent` since the last busy report (needs reports)
    idle      no browser, kernel or GPU activity
    max-age   the session is older than `max_age_hours`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

log = logging.getLogger("naic.culler")
REASONS = ("gpu-idle", "idle", "max-age")


@dataclass(frozen=True)
class Policy:
    """A site's `culling:` section in seconds (None: that reason never stops anything)."""

    idle_s: float | None
    gpu_idle_s: float | None
    max_age_s: float | None
    warn_s: float

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Policy:
        return cls(d.get("idle_s"), d.get("gpu_idle_s"), d.get("max_age_s"), d["warn_s"])


@dataclass(frozen=True)
class Notice:
    kind: str
    deadline: datetime
    at: datetime


@dataclass(frozen=True)
class SessionView:
    """What the hub says of one running session (`GET /hub/api/naic/sessions`)."""

    user: str
    server: str
    site_title: str
    gpus: int
    started_at: datetime
    last_activity: datetime | None
    #: When the session's own reports last came, and last said a GPU was busy.
    gpu_reported_at: datetime | None
    gpu_busy_at: datetime | None
    policy: Policy
    notices: dict[str, Notice] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SessionView:
        t = _time
        return cls(
            user=d["user"],
            server=d["server"],
            site_title=d["site_title"],
            gpus=int(d["gpus"]),
            started_at=t(d["started_at"]),
            last_activity=t(d.get("last_activity")),
            gpu_reported_at=t(d.get("gpu_reported_at")),
            gpu_busy_at=t(d.get("gpu_busy_at")),
            policy=Policy.from_json(d["policy"]),
            notices={
                n["kind"]: Notice(n["kind"], t(n["deadline"]), t(n["at"]))
                for n in d.get("notices", [])
                if n.get("kind") in REASONS
            },
        )


@dataclass(frozen=True)
class Action:
    """`warn` (with the deadline and the sentence the user reads), `clear`, or `stop`."""

    what: str
    kind: str
    text: str = ""
    deadline: datetime | None = None


def deadlines(s: SessionView) -> dict[str, datetime]:
    """Pure: when each reason would stop the session, as things stand."""
    p, out = s.policy, {}
    if p.gpu_idle_s and s.gpus and s.gpu_reported_at:  # GPU-aware only where GPUs report
        since = max(s.gpu_busy_at or s.started_at, s.started_at)
        out["gpu-idle"] = since + timedelta(seconds=p.gpu_idle_s)
    if p.idle_s:
        last = max(t for t in (s.started_at, s.last_activity, s.gpu_busy_at) if t)
        out["idle"] = last + timedelta(seconds=p.idle_s)
    if p.max_age_s:
        out["max-age"] = s.started_at + timedelta(seconds=p.max_age_s)
    return out


def decide(s: SessionView, now: datetime) -> list[Action]:
    """Pure: what to do with one session now. At most one stop, and then nothing else."""
    warn = timedelta(seconds=s.policy.warn_s)
    actions = []
    for kind, due in deadlines(s).items():
        notice = s.notices.get(kind)
        if now < due - warn:
            if notice is not None:
                actions.append(Action("clear", kind))
            continue
        if notice is None:
            deadline = max(due, now + warn)
            actions.append(Action("warn", kind, warning_text(kind, s, deadline), deadline))
        elif now >= max(due, notice.deadline):
            return [Action("stop", kind, stop_text(kind, s))]
    for kind in set(s.notices) - set(deadlines(s)):  # the policy no longer applies
        actions.append(Action("clear", kind))
    return actions


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{round(seconds)} seconds"
    m = round(seconds / 60)
    if m >= 120 and m % 60 == 0:
        return f"{m // 60} hours"
    return "1 minute" if m == 1 else f"{m} minutes"


def _clock(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%H:%M UTC")


def warning_text(kind: str, s: SessionView, deadline: datetime) -> str:
    """What the session shows; short, as JupyterLab cuts notifications at 140 characters."""
    p, when = s.policy, _clock(deadline)
    if kind == "gpu-idle":
        gpus = "GPU is" if s.gpus == 1 else "GPUs are"
        return (
            f"This session's {gpus} not in use (limit {_minutes(p.gpu_idle_s)}): it stops at "
            f"{when} unless a GPU is used. Save your work."
        )
    if kind == "idle":
        return (
            f"This session is idle (limit {_minutes(p.idle_s)}): it stops at {when} unless "
            "you use it."
        )
    age = _minutes(p.max_age_s)
    return f"This session reaches its maximum age ({age}): it stops at {when}. Save your work."


def stop_text(kind: str, s: SessionView) -> str:
    """The reason the user reads on the hub's home page."""
    p = s.policy
    if kind == "gpu-idle":
        gpus = "GPU was" if s.gpus == 1 else f"{s.gpus} GPUs were"
        return (
            f"stopped by the hub because its {gpus} not used for {_minutes(p.gpu_idle_s)} "
            f"(the policy of {s.site_title})"
        )
    if kind == "idle":
        return (
            f"stopped by the hub after {_minutes(p.idle_s)} without activity "
            f"(the policy of {s.site_title})"
        )
    longest = _minutes(p.max_age_s)
    return f"stopped by the hub at the longest a session may run on {s.site_title} ({longest})"


def session_path(user: str, server: str) -> str:
    """Below the hub's API URL: a session's resources (the default server has no name)."""
    base = f"/naic/users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server, safe='')}" if server else base


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# --- the service ----------------------------------------------------------------------------


class Culler:
    """One round at a time against the hub's API; `clock` is injectable."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parent: Callable[[], int] = os.getppid,
    ):
        from tornado.httpclient import AsyncHTTPClient

        self.api_url, self.token, self.clock = api_url.rstrip("/"), token, clock
        self.http = AsyncHTTPClient()
        self.parent, self.hub_pid = parent, parent()

    async def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        resp = await self.http.fetch(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            raise_error=False,
            request_timeout=60,
        )
        if resp.code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.code} {resp.body[:200]!r}")
        return json.loads(resp.body) if resp.body else None

    async def once(self) -> float:
        """One round; returns how long to wait before the next (the hub says)."""
        listing = await self._call("GET", "/naic/sessions")
        now = self.clock()
        for raw in listing["sessions"]:
            s = SessionView.from_json(raw)
            base = session_path(s.user, s.server)
            for a in decide(s, now):
                try:
                    if a.what == "warn":
                        body = {"text": a.text, "deadline": a.deadline.isoformat()}
                        await self._call("PUT", f"{base}/notices/{a.kind}", body)
                    elif a.what == "clear":
                        await self._call("DELETE", f"{base}/notices/{a.kind}")
                    else:
                        await self._call("POST", f"{base}/cull", {"kind": a.kind, "reason": a.text})
                    log.info("%s %s/%s: %s %s", a.what, s.user, s.server, a.kind, a.text)
                except RuntimeError as exc:  # one session's trouble must not stop the round
                    log.warning("Could not %s %s/%s: %s", a.what, s.user, s.server, exc)
        return float(listing.get("check_every_s", 60))

    async def run(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        # A hub that was killed cannot stop its services: the next hub starts its own
        # culler, so this one ends with the hub that started it.
        while self.parent() == self.hub_pid:
            try:
                wait = await self.once()
            except Exception as exc:  # the hub restarting, say: try again shortly
                log.warning("Culling round failed: %s", exc)
                wait = 30.0
            await sleep(wait)
        log.info("The hub that started this culler is gone; stopping.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m naic.hub.sessions.culler", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)1.1s %(asctime)s culler] %(message)s"
    )
    api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not api_url or not token:
        raise SystemExit(
            "The culler runs as a JupyterHub service: JUPYTERHUB_API_URL and "
            "JUPYTERHUB_API_TOKEN must be set."
        )
    culler = Culler(api_url, token)
    # The hub stops its services with SIGINT, then SIGTERM only after 30 s. A hub started
    # in the background (`naic up &`, nohup) hands its services SIGINT ignored, and its stop
    # then waited those 30 s on the culler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(culler.once() if args.once else culler.run())
    except KeyboardInterrupt:  # the hub stopping: nothing to report
        pass


if __name__ == "__main__":
    main()
