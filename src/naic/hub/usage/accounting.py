"""GPU-hour budgets on the hub: who may charge what, what is left, and who may read it.

The ledger (`naic.hub.usage.ledger`) records sessions; this module turns it and the catalogue into
what people see: a project list with GPU-hours left (home page, `GET
/hub/api/naic/users/{name}/usage`, the widgets), the spawn-time budget check, the admin's
usage page, and the scopes and roles that say who may read which usage.
"""

from __future__ import annotations

import contextlib
import functools
import json
from datetime import UTC, datetime, timedelta

from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.hub import catalogue
from naic.hub.usage.ledger import Ledger, budget_refusal, next_reset, period_start
from naic.hub.usage.slurm_usage import MAX_AGE_S, SLURM_USAGE, accounted_sites, slurm_account
from naic.spawners.request import SessionRequest, UserFacts, projects_of

USAGE_PATH = r"/api/naic/users/([^/]+)/usage"
ADMIN_USAGE_PATH = r"/naic/admin/usage"


def may(handler, scope: str, **filters: str) -> bool:
    """Whether the request holds `scope` for this user (or `admin:users`, as admins do)."""
    have = handler.parsed_scopes
    target = "".join(f"!{k}={v}" for k, v in filters.items())
    return has_scope("admin:users", have, db=handler.db) or has_scope(
        scope + target, have, db=handler.db
    )


@functools.cache
def ledger_for(url: str) -> Ledger:
    """One ledger (one connection pool) per database in this hub process."""
    return Ledger(url)


def facts_for(
    name: str, groups: frozenset[str], ledger: Ledger, *, admin: bool = False
) -> UserFacts:
    """Who a hub user is for projects: bound identity, IdP groups, granted projects. A user
    with an institutional identity is known by it alone (a bare name in `members` could be
    anybody's); without one (dev login), the hub name is the identity. Such a user who is
    not an admin needs a project for every session but a workshop's (`needs_project`)."""
    identity = ledger.identity_of(name)
    return UserFacts(
        name=name,
        identities=frozenset({identity or name}),
        groups=groups,
        granted=frozenset(ledger.granted_projects(name)),
        needs_project=identity is not None and not admin,
    )


def user_facts(user, ledger: Ledger) -> UserFacts:
    groups = frozenset(g.name for g in user.groups)
    return facts_for(user.name, groups, ledger, admin=bool(getattr(user, "admin", False)))


#: GPU-hours per user that Slurm's accounting counted for one project this period.
SlurmFigure = dict[str, float]


async def slurm_hours(
    cat: catalogue.Catalogue, project: str, now: datetime, max_age_s: float = MAX_AGE_S
) -> SlurmFigure:
    """What Slurm's accounting counted for `project` this period, per user, at the sites
    with `accounting: slurm` (none: empty). RuntimeError when slurmdbd does not answer."""
    p, account = cat.projects[project], slurm_account(cat, project)
    total: SlurmFigure = {}
    for site in sorted(accounted_sites(cat)):
        figures = await SLURM_USAGE.read(cat, site, p.budget_period, now, max_age_s)
        for user, hours in figures.get(account, {}).items():
            total[user] = total.get(user, 0.0) + hours
    return total


def cached_slurm_hours(cat: catalogue.Catalogue, project: str, now: datetime) -> SlurmFigure:
    """The last figures read for `project` (pages must not wait for slurmdbd)."""
    since = period_start(cat.projects[project].budget_period, now)
    total: SlurmFigure = {}
    for site in accounted_sites(cat):
        for user, hours in SLURM_USAGE.cached(site, slurm_account(cat, project), since).items():
            total[user] = total.get(user, 0.0) + hours
    return total


def used_this_period(
    ledger: Ledger, cat: catalogue.Catalogue, project: str, now: datetime,
    slurm: SlurmFigure | None = None, user: str | None = None,
) -> float:  # fmt: skip
    """GPU-hours `project` (and `user`, if given) used this period: the ledger's sessions,
    but at sites with Slurm's accounting Slurm's figure (`slurm`, else the last one read)."""
    by_user = used_by_user(ledger, cat, project, now, slurm)
    return sum(by_user.values()) if user is None else by_user.get(user, 0.0)


def used_by_user(
    ledger: Ledger, cat: catalogue.Catalogue, project: str, now: datetime,
    slurm: SlurmFigure | None = None,
) -> dict[str, float]:  # fmt: skip
    """`used_this_period` of `project` per user (their sum is the project's)."""
    slurm = cached_slurm_hours(cat, project, now) if slurm is None else slurm
    since = period_start(cat.projects[project].budget_period, now)
    used = dict(slurm)
    mine = ledger.gpu_hours_by_user(
        project=project, since=since, now=now, not_at=accounted_sites(cat)
    )
    for user, hours in mine.items():
        used[user] = used.get(user, 0.0) + hours
    return used


def idle_this_period(ledger: Ledger, cat: catalogue.Catalogue, project: str, now: datetime):
    """GPU-hours that sessions of `project` reported idle in its current budget period."""
    since = period_start(cat.projects[project].budget_period, now)
    return ledger.gpu_idle_hours(project=project, since=since).get(project, (0.0, 0.0))[1]


def project_report(
    cat: catalogue.Catalogue, ledger: Ledger, facts: UserFacts, now: datetime,
    slurm: dict[str, SlurmFigure] | None = None,
) -> list[dict]:  # fmt: skip
    """The user's projects with their budgets: what the home page, API and widgets show.
    `slurm`: fresh figures of Slurm's accounting by project (else the last ones read)."""
    out = []
    for name in projects_of(cat, facts):
        p = cat.projects[name]
        by_user = used_by_user(ledger, cat, name, now, (slurm or {}).get(name))
        used = sum(by_user.values())
        reset = next_reset(p.budget_period, now)
        out.append(
            {
                "name": name,
                "title": p.title,
                "gpu_hours": p.gpu_hours,
                "used": round(used, 3),
                "left": None if p.gpu_hours is None else round(max(p.gpu_hours - used, 0), 3),
                "period": p.budget_period,
                "resets": reset.isoformat() if reset else None,
                "mine": round(by_user.get(facts.name, 0.0), 3),
            }
        )
    return out


#: How long a hold may wait for its session to start before it lapses by itself (a hub that
#: died mid-spawn cannot release it); a queued Slurm session waits at most 12 h.
HOLD_QUEUE_HOURS = 12


async def fresh_report(
    cat: catalogue.Catalogue, ledger: Ledger, facts: UserFacts, now: datetime
) -> list[dict]:
    """`project_report` with Slurm's figures at most `slurm_usage.MAX_AGE_S` old (the last
    ones read where slurmdbd does not answer now: the page still shows something)."""
    slurm: dict[str, SlurmFigure] = {}
    if accounted_sites(cat):
        for name in projects_of(cat, facts):
            with contextlib.suppress(RuntimeError):
                slurm[name] = await slurm_hours(cat, name, now)
    return project_report(cat, ledger, facts, now, slurm)


async def budget_hold(
    cat: catalogue.Catalogue,
    ledger: Ledger,
    req: SessionRequest,
    user: str,
    server: str,
    now: datetime,
) -> tuple[int | None, str | None]:
    """Hold what this session may use (GPUs × hours) against its project's budget: (the
    hold's id, None), or (None, the refusal sentence).

    What counts: GPU-hours used this period, what running and queued sessions may still use
    (their holds), and this session's GPUs × hours. Several sessions asked for at once can
    therefore never together run the budget below zero. CPU-only sessions and projects
    without a budget hold nothing."""
    if req.project is None or req.gpus == 0:
        return None, None
    p = cat.projects[req.project]
    if p.gpu_hours is None:
        return None, None
    asked = req.gpus * req.hours
    try:  # a budget is never guessed: without Slurm's figure, no session
        slurm = await slurm_hours(cat, req.project, now)
    except RuntimeError as exc:
        raise web.HTTPError(
            503,
            f"The budget of project {req.project} cannot be checked now: Slurm's accounting "
            f"does not answer ({str(exc).strip()[:200]}). Try again in a few minutes.",
        ) from None
    got = ledger.hold(
        user=user,
        server=server,
        project=req.project,
        gpu_hours=asked,
        budget=p.gpu_hours,
        since=period_start(p.budget_period, now),
        expires_at=now + timedelta(hours=req.hours + HOLD_QUEUE_HOURS),
        counted_elsewhere=sum(slurm.values()),
        not_at=accounted_sites(cat),
    )
    if isinstance(got, int):
        return got, None
    used, held = got
    return None, budget_refusal(req.project, p.gpu_hours, used, asked, p.budget_period, now, held)


def _request_json(r) -> dict:
    return {
        "id": r.id,
        "project": r.project,
        "state": r.state,
        "reason": r.reason,
        "created": r.created_at.isoformat(),
        "decided": r.decided_at.isoformat() if r.decided_at else None,
        "note": r.note,
    }


#: The largest request body naic's API handlers read: their JSON objects are small, and a
#: large one would only cost the hub memory and time to parse.
MAX_BODY_BYTES = 64 * 1024


class _NaicHandlerMixin:
    async def prepare(self):
        size = len(self.request.body or b"")
        if size > MAX_BODY_BYTES:
            raise web.HTTPError(
                413,
                f"The request body has {size} bytes; this API takes at most "
                f"{MAX_BODY_BYTES // 1024} KiB.",
            )
        result = super().prepare()
        if result is not None:
            await result

    @property
    def naic_catalogue(self) -> catalogue.Catalogue:
        return catalogue.load_cached(self.settings["naic"]["catalogue_file"])

    @property
    def naic_ledger(self) -> Ledger:
        return ledger_for(self.settings["naic"]["ledger_url"])

    def json_body(self) -> dict:
        """The request's JSON object, or HTTP 400 with a sentence."""
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "The body is not JSON.") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The body must be a JSON object.")
        return data


class UsageHandler(_NaicHandlerMixin, APIHandler):
    """`GET /hub/api/naic/users/{name}/usage`: projects, budgets, usage and requests."""

    async def get(self, user_name: str) -> None:
        # Checked here, not with @needs_scope: custom scopes exist only once the hub loaded
        # its config, after this module was imported.
        if self.current_user is None:
            raise web.HTTPError(403, "Log in, or send a token, to read usage.")
        if not may(self, "custom:naic:usage:read", user=user_name):
            raise web.HTTPError(403, "You may read only your own usage and requests.")
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"There is no user {user_name!r} on this hub.")
        ledger, now = self.naic_ledger, datetime.now(UTC)
        facts = user_facts(user, ledger)
        body = {
            "user": user.name,
            "projects": await fresh_report(self.naic_catalogue, ledger, facts, now),
            "requests": [_request_json(r) for r in ledger.requests(user=user.name)],
        }
        self.finish(json.dumps(body))


class AdminUsageHandler(_NaicHandlerMixin, BaseHandler):
    """`/hub/naic/admin/usage`: GPU-hours per project and per user this period (admins)."""

    @web.authenticated
    async def get(self) -> None:
        if not self.current_user.admin:
            raise web.HTTPError(403, "Only the hub's admins see everybody's usage.")
        cat, ledger, now = self.naic_catalogue, self.naic_ledger, datetime.now(UTC)
        projects = []
        for name, p in cat.projects.items():
            since = period_start(p.budget_period, now)
            projects.append(
                {
                    "name": name,
                    "title": p.title,
                    "budget": p.gpu_hours,
                    "used": used_this_period(ledger, cat, name, now),
                    "idle": idle_this_period(ledger, cat, name, now),
                    "users": sorted(ledger.usage_by_user(since, project=name).items()),
                    "period": p.budget_period,
                }
            )
        html = await self.render_template(
            "naic-usage.html", projects=projects, open_sessions=ledger.open_sessions()
        )
        self.finish(html)


def home_projects(cat_file: str, ledger_url: str):
    """A template variable: JupyterHub calls it with the user for every page it renders; it
    gives the home page a function for the logged-in user's projects and budgets, so that
    only the page that shows them asks the ledger (every other page did, a few queries)."""

    def report(user) -> list[dict] | None:
        cat = catalogue.load_cached(cat_file)
        if not cat.projects:  # a hub without projects (the embedded default) shows none
            return None
        if user is None or getattr(user, "kind", "user") != "user":
            return []
        ledger = ledger_for(ledger_url)
        return project_report(cat, ledger, user_facts(user, ledger), datetime.now(UTC))

    return lambda user: functools.partial(report, user)
