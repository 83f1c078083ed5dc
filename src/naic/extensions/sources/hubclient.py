"""The hub, as a session reaches it: its REST API with the server's own token.

GPU-hour budgets, stopping this session, more time, and the activity report (which answers
the session's notices). Over TCP, or over the hub's Unix socket on the hub's own machine.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

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

    def batch(self, notebook: str, **options: Any) -> dict[str, Any]: ...

    def batch_state(self, site: str, job_id: str) -> dict[str, Any]: ...


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
        notices and how often to report: {"notices": [...], "report_every_s": s}, and in a
        workshop session the material update to have ("material_update": n)."""
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
            out = {"notices": list(answer["notices"]), "report_every_s": answer["report_every_s"]}
            if "material_update" in answer:  # a workshop session's (naic.extensions.reporter)
                out["material_update"] = int(answer["material_update"])
            return out
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

    def batch(
        self,
        notebook: str,
        *,
        hours: float | None = None,
        gpus: int | None = None,
        submit: bool = False,
    ) -> dict[str, Any]:
        """Run `notebook` as a batch job (with `submit`), or see the script it would run.
        The hub's answer (`script`, `output`, `log`, `site`, `job_id`), or HubError with the
        hub's sentence (the spawn form's refusals)."""
        body: dict[str, Any] = {"notebook": notebook, "submit": submit}
        if hours is not None:
            body["hours"] = hours
        if gpus is not None:
            body["gpus"] = gpus
        return self._json("POST", self._session_path() + "/batch", body, "run the batch job")

    def batch_state(self, site: str, job_id: str) -> dict[str, Any]:
        """Where batch job `job_id` stands: `state` (queued, running, done, failed), `words`."""
        path = f"naic/users/{quote(self.user, safe='')}/batch/{quote(site)}/{quote(job_id)}"
        if self.server_name:
            path += f"?server={quote(self.server_name, safe='')}"
        return self._json("GET", path, None, "say how the batch job is")

    def _assignments_path(self, workshop: str, *rest: str) -> str:
        parts = [quote(p, safe="") for p in (workshop, "assignments", *rest)]
        return "naic/workshops/" + "/".join(parts)

    def assignments(self, workshop: str) -> dict[str, Any]:
        """The workshop's assignments as the caller may see them (naic.hub.workshops.
        assignment_api): a student's released ones, or the staff's with submissions."""
        return self._json("GET", self._assignments_path(workshop), None, "list the assignments")

    def assignment(self, workshop: str, name: str) -> dict[str, Any]:
        """A released assignment: {"name", "released_at", "archive": base64 zip}."""
        path = self._assignments_path(workshop, name)
        return self._json("GET", path, None, f"hand out {name}")

    def submit_assignment(self, workshop: str, name: str, archive_b64: str) -> dict[str, Any]:
        """This user's submission of `name` (a resubmission replaces it)."""
        path = self._assignments_path(workshop, name, "submission")
        return self._json("PUT", path, {"archive": archive_b64}, f"take {name}")

    def submissions(self, workshop: str, name: str) -> dict[str, Any]:
        """Every student's latest submission of `name` (the workshop's staff only)."""
        path = self._assignments_path(workshop, name, "submissions")
        return self._json("GET", path, None, f"collect {name}")

    def _json(self, method: str, path: str, body: Any, what: str) -> dict[str, Any]:
        """A JSON call to the hub: its answer, or HubError with the hub's own sentence."""
        if not (self.api and self.user):
            raise HubError(f"This session does not run under a hub, so it cannot {what}.")
        data = None if body is None else json.dumps(body).encode()
        try:
            status, raw = self._request(method, path, data)
        except OSError:
            raise HubError("The hub does not answer; try again in a minute.") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status >= 400 or not isinstance(answer, dict):
            said = answer.get("message") if isinstance(answer, dict) else None
            raise HubError(said or f"The hub could not {what} (HTTP {status}).")
        return answer

    def datasets(self) -> dict[str, Any]:
        """The catalogue's datasets as this user sees them (naic.hub.data.datasets)."""
        return self._json("GET", "naic/datasets", None, "list the datasets")

    def dataset(self, name: str) -> dict[str, Any]:
        """One dataset the user may read (its path, manifest); HubError with the hub's
        sentence for one they may not."""
        return self._json("GET", f"naic/datasets/{quote(name, safe='')}", None, f"find {name}")

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
