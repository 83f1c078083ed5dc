"""`GET /hub/api/naic/options`: one request, every site that could run it, soonest first.

A researcher asks for what they need, not where:

    GET /hub/api/naic/options?gpus=2&gpu_memory_gb=40&hours=4[&gpu_model=A100]
                             [&project=nn1234k][&environment=pytorch]

Every resource of every site whose GPUs match (`matching`: enough of them per session,
at least that much memory each, the model family if named, the hours within its limit)
becomes a session request through `parse_request`, the one gate, with the user's own
facts: a project that does not run there, or a budget that does not cover it, is shown
with its sentence rather than left out. The hub then asks every remaining site's
estimator at once, each within `ASK_TIMEOUT_S` (a site that does not answer is "no
answer", and never holds up the others), and answers:

    {"options": [{"site", "resource", "title", "start", "wait_s", "message", "answer",
                  "gpu": {"model", "memory_gb"}, "environment", "project",
                  "gpu_hours", "user_options"}, …],
     "default": 0}

With no matching resource, `options` is empty and `message` says so. `answer` is "yes"
(an estimate), "no answer" (timed out), "error" (the site said why in `message`) or
"refused" (the request gate's sentence). `default` is the index of the
soonest option that can start (none: null). `user_options` starts that option as it is.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.hub.catalogue import Catalogue, Resource
from naic.hub.sessions.estimate import estimate_answers
from naic.hub.usage import accounting
from naic.spawners.request import RequestError, SessionRequest, UserFacts, parse_request

OPTIONS_PATH = r"/api/naic/options"
#: How long each site's estimator may take before its option says "no answer".
ASK_TIMEOUT_S = 8.0
_WHOLE = {"gpus": (1, 64), "gpu_memory_gb": (1, 4096)}
_WORDS = ("gpu_model", "project", "environment")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,79}")


@dataclass(frozen=True)
class Ask:
    gpus: int
    hours: float | None = None
    gpu_memory_gb: int | None = None
    gpu_model: str | None = None
    project: str | None = None
    environment: str | None = None


def parse_ask(query: Mapping[str, str]) -> Ask:
    """Pure: the query's ask, or ValueError with the sentence (a 400)."""
    known = {"gpus", "hours", *_WHOLE, *_WORDS}
    unknown = sorted(set(query) - known)
    if unknown:
        asks = ", ".join(sorted(known))
        raise ValueError(f'"{unknown[0][:40]}" is not an option here; ask with {asks}.')
    values: dict = {}
    for key, (low, high) in _WHOLE.items():
        if key in query:
            text = query[key]
            if not re.fullmatch(r"[0-9]{1,6}", text) or not low <= int(text) <= high:
                raise ValueError(f'"{key}" must be a whole number from {low} to {high}.')
            values[key] = int(text)
    if "gpus" not in values:
        raise ValueError('Say how many GPUs one session needs: "gpus", a whole number from 1.')
    if "hours" in query:
        try:
            hours = float(query["hours"])
        except ValueError:
            hours = math.nan
        if not math.isfinite(hours) or hours <= 0 or hours > 24 * 31:
            raise ValueError('"hours" must be a number of hours, more than 0.')
        values["hours"] = hours
    for key in _WORDS:
        if key in query:
            text = query[key].strip()
            if not _NAME.fullmatch(text):
                raise ValueError(f'"{key}" must be a name of letters, digits, "-" or "_".')
            values[key] = text
    return Ask(**values)


def offers(res: Resource, ask: Ask) -> bool:
    """Pure: whether one resource can run what `ask` needs."""
    gpu = res.gpu
    if gpu is None or gpu.max < ask.gpus:
        return False
    if ask.gpu_memory_gb is not None and (gpu.memory_gb or 0) < ask.gpu_memory_gb:
        return False
    if ask.gpu_model is not None:
        known = f"{gpu.model or ''} {gpu.type}".lower()
        if ask.gpu_model.lower() not in known:
            return False
    return ask.hours is None or ask.hours <= res.max_hours


def matching(cat: Catalogue, ask: Ask) -> list[tuple[str, str]]:
    """Pure: (site, resource) of every resource that offers what `ask` needs, in the
    catalogue's order."""
    return [
        (site, name)
        for site, s in cat.sites.items()
        for name, res in s.resources.items()
        if offers(res, ask)
    ]


def user_options(cat: Catalogue, site: str, resource: str, ask: Ask) -> dict:
    """Pure: the `user_options` that start `ask` at one site's resource."""
    res = cat.sites[site].resources[resource]
    out = {"site": site, "resource": resource, "gpus": ask.gpus,
           "hours": ask.hours if ask.hours is not None else res.initial_hours}  # fmt: skip
    if ask.project is not None:
        out["project"] = ask.project
    if ask.environment is not None:
        out["environment"] = ask.environment
    return out


def wait_of(option: dict) -> float:
    """Pure: how long the option waits, for sorting: now 0; unknown or unanswered last."""
    if option["answer"] != "yes":
        return math.inf
    if option.get("start") == "now":
        return 0.0
    wait = option.get("wait_s")
    return float(wait) if wait is not None else math.inf


def ranked(options: list[dict]) -> tuple[list[dict], int | None]:
    """Pure: soonest first (a known start before an unknown one, an answer before none,
    refusals last), and the index of the default: the first that starts at a known time."""
    order = {"yes": 0, "error": 1, "no answer": 1, "refused": 2}
    out = sorted(options, key=lambda o: (order[o["answer"]], wait_of(o)))
    default = next((i for i, o in enumerate(out) if math.isfinite(wait_of(o))), None)
    return out, default


async def compare(
    cat: Catalogue,
    facts: UserFacts,
    ask: Ask,
    estimate: Callable[[SessionRequest], Awaitable[dict]],
    timeout_s: float = ASK_TIMEOUT_S,
    budget_left: Callable[[str], float | None] = lambda project: None,
) -> dict:
    """Every matching option with its estimate, asked at once; see the module's doc.
    `budget_left(project)`: its GPU-hours left (None: no budget)."""

    async def one(site: str, resource: str) -> dict:
        s, res = cat.sites[site], cat.sites[site].resources[resource]
        opts = user_options(cat, site, resource, ask)
        gpu = {"model": res.gpu.model or res.gpu.type, "memory_gb": res.gpu.memory_gb}
        option = {"site": site, "resource": resource, "title": f"{res.title} at {s.title}",
                  "gpu": gpu, "user_options": opts}  # fmt: skip
        try:
            req = parse_request(opts, cat, facts)
        except RequestError as exc:
            return {**option, "answer": "refused", "message": str(exc)}
        env = cat.environments.get(req.environment)
        cost = round(req.gpus * req.hours, 3)
        option.update(project=req.project, environment=env.title if env else req.environment,
                      gpu_hours=cost)  # fmt: skip
        left = budget_left(req.project) if req.project else None
        if left is not None:
            option["budget_left"] = round(left, 3)
            if cost > left:
                message = (f"Project {req.project} has {left:.1f} GPU-hours left; this session "
                           f"would take {cost:g}.")  # fmt: skip
                return {**option, "answer": "refused", "message": message}
        try:
            answer = await asyncio.wait_for(estimate(req), timeout_s)
        except TimeoutError:
            message = f"{s.title} did not answer within {timeout_s:g} s."
            return {**option, "answer": "no answer", "message": message}
        except web.HTTPError as exc:
            return {**option, "answer": "error", "message": exc.log_message or str(exc)}
        return {**option, "answer": "yes", **answer}

    found = await asyncio.gather(*(one(site, res) for site, res in matching(cat, ask)))
    options, default = ranked(list(found))
    if not options:  # say so, rather than an empty list the user must read
        return {"options": [], "default": None, "message": nothing_offers(ask)}
    return {"options": options, "default": default}


def nothing_offers(ask: Ask) -> str:
    """Pure: the sentence when no resource of any site matches."""
    what = f"{ask.gpus} GPU{'s' if ask.gpus > 1 else ''}"
    if ask.gpu_memory_gb is not None:
        what += f" with at least {ask.gpu_memory_gb} GB each"
    if ask.gpu_model is not None:
        what += f" of model {ask.gpu_model}"
    if ask.hours is not None:
        what += f" for {ask.hours:g} h"
    return f"No site of this hub offers {what} in one session; ask for fewer or less."


class OptionsHandler(APIHandler):
    """The endpoint; for the logged-in user (or their token), as the estimate is."""

    async def get(self) -> None:
        user = self.current_user
        if user is None or getattr(user, "kind", None) != "user":
            raise web.HTTPError(403, "Log in as a user to compare where a session would start.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, "This token may not start servers, so it gets no options.")
        spawner = user.spawner
        if not hasattr(spawner, "backend_for"):
            raise web.HTTPError(404, "This hub's spawner has no service catalogue to compare.")
        query = {k: self.get_argument(k) for k in self.request.query_arguments}
        try:
            ask = parse_ask(query)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        cat, answers = spawner.catalogue, estimate_answers(self.settings)
        ledger = accounting.ledger_for(self.settings["naic"]["ledger_url"])
        now = datetime.now(UTC)

        def estimate(req: SessionRequest) -> Awaitable[dict]:
            key = (user.name, req.model_dump_json())
            return answers.get(key, lambda: spawner.backend_for(req).estimate(req))

        def budget_left(project: str) -> float | None:
            total = cat.projects[project].gpu_hours
            if total is None:
                return None
            return max(0.0, total - accounting.used_this_period(ledger, cat, project, now))

        result = await compare(cat, spawner.user_facts(), ask, estimate, budget_left=budget_left)
        self.finish(json.dumps(result))


HANDLERS = [(OPTIONS_PATH, OptionsHandler)]
