"""One request, every site that could run it, soonest first: the comparison behind the
options API (`naic.hub.sessions.options`), the spawn form's "any site" card and the offer
to move a queued session (`naic.spawners.router`).

A researcher asks for what they need, not where (`Ask`: GPUs, at least so much memory
each, a model family, hours, environment, project). Every resource of every site whose
GPUs match (`matching`) becomes a session request through `parse_request`, the one gate,
with the user's own facts: a project that does not run there, or a budget that does not
cover it, is shown with its sentence rather than left out. Every remaining site's
estimator is asked at once, each within `ASK_TIMEOUT_S` (a site that does not answer is
"no answer", and never holds up the others), and `compare` answers:

    {"options": [{"site", "resource", "title", "start", "wait_s", "message", "answer",
                  "gpu": {"model", "memory_gb"}, "environment", "project",
                  "gpu_hours", "budget_left", "differs", "user_options"}, …],
     "default": 0}

With no matching resource, `options` is empty and `message` says so. `answer` is "yes"
(an estimate), "no answer" (timed out), "error" (the site said why in `message`) or
"refused" (the request gate's sentence). `default` is the index of the soonest option that
can start (none: null). `user_options` starts that option as it is. `differs` says, in
words, how an option's environment or budget differs from the default's.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass

from tornado import web

from naic.hub.catalogue import Catalogue, Resource
from naic.spawners.request import RequestError, SessionRequest, UserFacts, parse_request

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
    exclude: Collection[tuple[str, str]] = (),
) -> dict:
    """Every matching option with its estimate, asked at once; see the module's doc.
    `budget_left(project)`: its GPU-hours left (None: no budget); `exclude`: (site,
    resource) pairs not to ask (the one a queued session already waits at)."""

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

    where = [pair for pair in matching(cat, ask) if pair not in exclude]
    found = await asyncio.gather(*(one(site, res) for site, res in where))
    options, default = ranked(list(found))
    if not options:  # say so, rather than an empty list the user must read
        return {"options": [], "default": None, "message": nothing_offers(ask)}
    if default is not None:
        for option in options:
            option["differs"] = differences(option, options[default])
    return {"options": options, "default": default}


def differences(option: dict, default: dict) -> list[str]:
    """Pure: how `option` differs from the default option in what the user gets and pays,
    in sentences (none for the default itself or an option refused by the gate)."""
    if option is default or option["answer"] == "refused":
        return []
    out = []
    env, env0 = option.get("environment"), default.get("environment")
    if env != env0:
        out.append(f"Starts with {env}, not {env0}.")
    project, project0 = option.get("project"), default.get("project")
    left = option.get("budget_left")
    if project != project0:
        if not project:
            out.append(f"Not charged to a project; the soonest is charged to {project0}.")
        else:
            charged = f"Charged to project {project}"
            if left is not None:
                charged += f" ({left:g} GPU-hours left)"
            tail = f", not to {project0}." if project0 else "; the soonest is not charged."
            out.append(charged + tail)
    cost, cost0 = option.get("gpu_hours"), default.get("gpu_hours")
    if project and project == project0 and cost != cost0:
        out.append(f"Takes {cost:g} GPU-hours of {project}, not {cost0:g}.")
    return out


def ask_of(req: SessionRequest, cat: Catalogue) -> Ask:
    """Pure: the ask a pinned request stands for (to look elsewhere while it waits): as
    many GPUs with at least as much memory each, the same hours, environment and project."""
    gpu = cat.sites[req.site].resources[req.resource].gpu
    memory = gpu.memory_gb if gpu is not None else None
    return Ask(gpus=req.gpus, hours=req.hours, gpu_memory_gb=memory,
               project=req.project, environment=req.environment)  # fmt: skip


def ask_from_options(options: Mapping) -> tuple[Ask, tuple[str, str] | None]:
    """Pure: an "any site" request's ask (`user_options` with `"any"`, as the form or the
    REST API sends it) and the option the user pinned (`"pick": "site:resource"`), or
    ValueError with the sentence."""
    rest = {k: v for k, v in options.items() if k not in ("any", "pick") and v is not None}
    ask = parse_ask({k: v if isinstance(v, str) else _text(k, v) for k, v in rest.items()})
    pick = options.get("pick")
    if pick in (None, ""):
        return ask, None
    site, _, resource = str(pick).partition(":")
    if not isinstance(pick, str) or not resource:
        raise ValueError('"pick" must name one option as "site:resource".')
    return ask, (site, resource)


def _text(key: str, value: object) -> str:
    """A JSON number as the query's text; anything else (a number for a name, a list …) as
    text no ask accepts, so parse_ask names the field without echoing the value."""
    if isinstance(value, bool) or not isinstance(value, int | float) or key in _WORDS:
        return f"<{type(value).__name__}>"
    return f"{value:g}" if isinstance(value, float) else str(value)


def ask_dict(ask: Ask) -> dict:
    """Pure: the ask as saved with a session (None fields left out)."""
    return {k: v for k, v in asdict(ask).items() if v is not None}


def chosen(result: dict, pick: tuple[str, str] | None) -> dict:
    """Pure: the option `compare`'s `result` starts: the pinned one, else the default;
    web.HTTPError with the sentence when there is none."""
    options = result["options"]
    if not options:
        raise web.HTTPError(400, result["message"])
    if pick is not None:
        found = [o for o in options if (o["site"], o["resource"]) == pick]
        if not found:
            raise web.HTTPError(400, f'"pick": {pick[0]}:{pick[1]} does not offer this ask.')
        return found[0]
    if result["default"] is None:
        why = " ".join(f"{o['title']}: {o['message']}" for o in options)
        raise web.HTTPError(409, f"No site can start this session now. {why}")
    return options[result["default"]]


#: A move is offered when another site starts the session this much sooner at least …
MOVE_GAIN_S = 600.0


def move_offer(result: dict, waiting_s: float | None) -> dict | None:
    """Pure: the option a session waiting `waiting_s` more seconds (None: its scheduler
    does not say) should be offered to move to, or None. Another site must start it now,
    or, when the wait is known, in at most half of it and `MOVE_GAIN_S` sooner."""
    if result.get("default") is None:
        return None
    best = result["options"][result["default"]]
    wait = wait_of(best)
    if wait == 0.0:
        return best
    if waiting_s is None or not math.isfinite(wait):
        return None
    return best if wait <= waiting_s / 2 and waiting_s - wait >= MOVE_GAIN_S else None


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
