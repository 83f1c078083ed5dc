"""The load of the hub-load benchmark, for locust (`locust -f benchmarks/hub_locustfile.py`).

Started by `benchmarks.hub_load`, which writes the plan (JSON, at `$NAIC_BENCH_PLAN`): the
hub's kind (`naic` or `stock`), its admin token, the running sessions with their server
tokens, the browsing users with theirs, the report and culler intervals, and the burst.

- `Session` (one per running session): reports activity with its own server token at the
  site policy's rate: naic's `POST /hub/api/naic/users/NAME/activity`, stock's
  `POST /hub/api/users/NAME/activity` (what jupyterhub-singleuser sends).
- `Culler` (one): the culler's poll at its rate: naic's `GET /hub/api/naic/sessions`,
  stock's `GET /hub/api/users?state=ready` (what jupyterhub-idle-culler asks).
- `Browser` (one per browsing user): a person clicking every few seconds through the home
  page, their own REST record, and on naic the spawn form, its estimate, their usage and
  the workshop dashboard.
- `Burst` (one): at `burst.at_s`, K users' spawns at once; "spawn to ready" is recorded.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import gevent
from locust import HttpUser, between, constant, constant_pacing, events, task

PLAN = json.loads(Path(os.environ["NAIC_BENCH_PLAN"]).read_text())
NAIC = PLAN["kind"] == "naic"
_sessions, _browsers = count(), count()


#: Every request after the warm-up (logins, ramp): [start s, name, ms, error or None],
#: written to PLAN["out"] at the end, so that the benchmark computes exact percentiles,
#: overall and outside the burst's window.
RECORDS: list[list] = []
T0 = time.time() + PLAN["warmup_s"]


@events.request.add_listener
def _record(request_type, name, response_time, exception, **_kw) -> None:
    started = time.time() - response_time / 1000 - T0
    if started >= 0:
        error = None if exception is None else str(exception)[:200]
        RECORDS.append([round(started, 4), f"{request_type} {name}", response_time, error])


@events.quitting.add_listener
def _write(environment, **_kw) -> None:
    Path(PLAN["out"]).write_text(json.dumps(RECORDS))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


class Session(HttpUser):
    fixed_count = len(PLAN["sessions"])
    # Not constant_pacing: it paces from the user's start, so every session's second report
    # would come at the same moment whatever the first one's offset.
    wait_time = constant(PLAN["report_every_s"])

    def on_start(self) -> None:
        i = next(_sessions) % len(PLAN["sessions"])
        self.name, token = PLAN["sessions"][i]
        self.headers = _auth(token)
        # Spread the first reports over one interval, as sessions started at different times.
        gevent.sleep(PLAN["report_every_s"] * i / len(PLAN["sessions"]))

    @task
    def report(self) -> None:
        if NAIC:
            body = {"gpus": [{"index": 0, "utilization_pct": 37.0}], "window_s": 60}
            url, name = f"/hub/api/naic/users/{self.name}/activity", "naic activity"
        else:
            now = datetime.now(UTC).isoformat()
            body = {"servers": {"": {"last_activity": now}}, "last_activity": now}
            url, name = f"/hub/api/users/{self.name}/activity", "activity"
        self.client.post(url, json=body, headers=self.headers, name=name)


class Culler(HttpUser):
    fixed_count = 1
    wait_time = constant_pacing(PLAN["cull_every_s"])

    @task
    def poll(self) -> None:
        headers = _auth(PLAN["admin_token"])
        url = "/hub/api/naic/sessions" if NAIC else "/hub/api/users?state=ready"
        self.client.get(url, headers=headers, name=f"{url.removeprefix('/hub/api/')} (culler)")


class Browser(HttpUser):
    fixed_count = len(PLAN["browsers"])
    wait_time = between(2, 6)

    def on_start(self) -> None:
        """Log in through the login form, as a person does; the cookie then goes along, and
        the XSRF token in a header as JupyterHub's own pages send it."""
        self.name = PLAN["browsers"][next(_browsers) % len(PLAN["browsers"])]
        page = self.client.get("/hub/login", name="/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        form = {"username": self.name, "password": PLAN["password"], "_xsrf": xsrf}
        self.client.post("/hub/login", data=form, name="/hub/login")
        self.headers = {"X-XSRFToken": self.client.cookies.get("_xsrf", xsrf)}

    @task(3)
    def home(self) -> None:
        self.client.get("/hub/home", headers=self.headers, name="/hub/home")

    @task(2)
    def rest(self) -> None:
        self.client.get(f"/hub/api/users/{self.name}", headers=self.headers, name="user (REST)")

    @task(2)
    def spawn_form(self) -> None:
        if not NAIC:  # stock's spawn page without a form would start a server
            return
        self.client.get("/hub/spawn", headers=self.headers, name="/hub/spawn (form)")
        self.client.get(
            "/hub/api/naic/estimate",
            params=PLAN["estimate"],
            headers=self.headers,
            name="naic estimate",
        )

    @task(1)
    def usage(self) -> None:
        if NAIC:
            url = f"/hub/api/naic/users/{self.name}/usage"
            self.client.get(url, headers=self.headers, name="naic usage")

    @task(1)
    def dashboard(self) -> None:
        if NAIC and PLAN.get("workshop"):
            url = f"/hub/naic/workshops/{PLAN['workshop']}"
            self.client.get(url, headers=self.headers, name="workshop dashboard")


class Burst(HttpUser):
    fixed_count = 1 if PLAN["burst"]["users"] else 0
    wait_time = constant(3600)

    @task
    def burst(self) -> None:
        burst = PLAN["burst"]
        gevent.sleep(burst["at_s"])
        headers = _auth(PLAN["admin_token"])
        gevent.joinall([gevent.spawn(self._one, user, headers) for user in burst["users"]])

    def _one(self, user: str, headers: dict[str, str]) -> None:
        started = time.monotonic()
        body = {"user_options": PLAN["burst"]["options"]} if NAIC else None
        resp = self.client.post(
            f"/hub/api/users/{user}/server", json=body, headers=headers, name="spawn (burst)"
        )
        error = None if resp.status_code in (201, 202) else f"{resp.status_code} {resp.text}"
        while error is None:
            if time.monotonic() - started > PLAN["burst"]["timeout_s"]:
                error = "not ready in time"
                break
            model = self.client.get(
                f"/hub/api/users/{user}", headers=headers, name="user (burst wait)"
            ).json()
            if model.get("servers", {}).get("", {}).get("ready"):
                break
            gevent.sleep(0.2)
        events.request.fire(
            request_type="BURST",
            name="spawn to ready",
            response_time=(time.monotonic() - started) * 1000,
            response_length=0,
            exception=RuntimeError(error) if error else None,
            context={},
        )
