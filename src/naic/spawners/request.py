"""Session requests: the one gate from user input to any backend.

The spawn form and `POST /hub/api/users/{name}/server` with `{"user_options": {...}}` both
end in `parse_request`, which checks every option against the catalogue and the user's
projects and returns a `SessionRequest`, or raises `RequestError` whose text is one plain
sentence for the user (the hub answers it with HTTP 400). Strings must be exact catalogue
keys and numbers real numbers within bounds, so nothing a user types reaches a batch script.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from naic.hub.catalogue import NAME_PATTERN, SAFE_WORD, Catalogue, Resource, Site

#: A workshop's material: a git URL or an absolute folder, nothing a shell would read.
MATERIAL_PATTERN = r"^(https?://|file://|git@|/)[^\s;|&$`\\]+$"
#: A workshop's shared course folder: an absolute path of printable characters, nothing a
#: shell would read (`..` is refused where it is set, naic.hub.workshops.rules).
SHARED_PATTERN = r"^/[^\x00-\x20\x7f;|&$`\\'\"<>*?!#~(){}\[\]]+$"
#: The keys a user may send in `user_options`, in the order the form shows them.
OPTIONS = ("site", "resource", "gpus", "cpus", "memory_gb", "hours", "environment", "project")
_THE_OPTIONS = f"the options are: {', '.join(OPTIONS)}."
_MISSING = object()
_SHOW_CHARS = 40  # a user's string is echoed at most this long


@dataclass(frozen=True)
class WorkshopPreset:
    """A workshop seat the user holds while its window is open: the session it gives."""

    name: str
    title: str
    site: str
    resource: str
    gpus: int
    hours: float  # the workshop's, cut to the time the window has left
    project: str | None
    reservation: str | None
    material: str = ""
    environment: str | None = None  # the instructor's choice; None: the resource's first
    shared: str | None = None  # the read-only course folder on the site; None: none


@dataclass(frozen=True)
class UserFacts:
    """Who asks: the hub user name, the identities they logged in with, their IdP groups,
    the projects an admin granted them (approved access requests), and the workshops in
    which they hold a seat now."""

    name: str
    identities: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    granted: frozenset[str] = frozenset()
    workshops: tuple[WorkshopPreset, ...] = ()
    #: Every session but a workshop's needs a project of one's own (set by the hub for an
    #: institutional login who is no admin: one in no project came in for a workshop, or to
    #: follow an access request).
    needs_project: bool = False


def projects_of(cat: Catalogue, user: UserFacts) -> list[str]:
    """Projects the user may charge, in catalogue order: by identity, group or an admin's
    grant (a grant of a project the catalogue no longer has counts for nothing). The hub
    name stands for the identity only when there is none (dev login): with an institutional
    login, `members: [ola]` must not admit whoever is called ola."""
    ids = user.identities or {user.name}
    return [
        name
        for name, p in cat.projects.items()
        if ids.intersection(p.members) or user.groups.intersection(p.groups) or name in user.granted
    ]


class SessionRequest(BaseModel):
    """One validated session: what every backend receives, and what the router persists."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    site: str = Field(pattern=NAME_PATTERN)
    resource: str = Field(pattern=NAME_PATTERN)
    gpus: int = Field(ge=0)
    cpus: int = Field(ge=1)
    memory_gb: int = Field(ge=1)
    hours: float = Field(gt=0, allow_inf_nan=False)
    environment: str = Field(pattern=NAME_PATTERN)
    project: str | None = Field(pattern=NAME_PATTERN)
    #: Set by the hub only (a workshop's Slurm reservation); never read from user_options.
    reservation: str | None = Field(None, pattern=SAFE_WORD)
    #: The workshop this session belongs to (`{"workshop": name}` asks for its preset).
    workshop: str | None = Field(None, pattern=NAME_PATTERN)
    #: Set by the hub only: the workshop's material (a git URL or a folder) for the home.
    material: str | None = Field(None, pattern=MATERIAL_PATTERN)
    #: Set by the hub only: the workshop's shared course folder, linked as ~/<workshop>/shared.
    shared: str | None = Field(None, pattern=SHARED_PATTERN)

    @property
    def time_minutes(self) -> int:
        # Round first: 0.1 h * 60 is 6.000000000000001 in floats and must stay 6 minutes.
        return math.ceil(round(self.hours * 60, 6))

    def slurm_account(self, cat: Catalogue) -> str | None:
        if self.project is None:
            return None
        return cat.projects[self.project].slurm_account or self.project


class RequestError(ValueError):
    """A refused request. `str()` is one sentence for the user; `field` the option at fault."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


def parse_request(raw: Mapping[str, Any], cat: Catalogue, user: UserFacts) -> SessionRequest:
    """Validate `user_options` (JSON from REST or `options_from_form`); fill in defaults."""
    if not isinstance(raw, Mapping):
        raise RequestError(
            None,
            "The session options must be a mapping of option names to values, "
            f'such as {{"gpus": 1}}; you sent {_show(raw)}.',
        )
    if "workshop" in raw:
        return _workshop_request(raw, cat, user)
    for key in raw:
        if key == "reservation":
            why = "is set by the hub for workshops and cannot be chosen"
            raise RequestError(key, f'"reservation" {why}; {_THE_OPTIONS}')
        if not isinstance(key, str) or key not in OPTIONS:
            field = key[:_SHOW_CHARS] if isinstance(key, str) else None
            raise RequestError(field, f"{_show(key)} is not a session option; {_THE_OPTIONS}")
    site_name = _choice(raw, "site", list(cat.sites), "on this hub")
    site = cat.sites[site_name]
    res_name = _choice(raw, "resource", list(site.resources), f"at {_plain(site.title)}")
    res = site.resources[res_name]
    where = f"{_plain(res.title)} at {_plain(site.title)}"
    return SessionRequest(
        site=site_name,
        resource=res_name,
        gpus=_gpus(raw, res, where),
        cpus=_whole(raw, "cpus", res.cpus.min, res.cpus.max, res.cpus.initial, where),
        memory_gb=_whole(
            raw, "memory_gb", res.memory_gb.min, res.memory_gb.max, res.memory_gb.initial, where
        ),
        hours=_hours(raw, res, where),
        environment=_choice(
            raw, "environment", cat.environments_for(site_name, res_name), f"for {where}"
        ),
        project=_project(raw, cat, user, site),
    )


def _workshop_request(raw: Mapping[str, Any], cat: Catalogue, user: UserFacts) -> SessionRequest:
    """`{"workshop": name}`: the workshop's preset session, in its reservation."""
    if set(raw) != {"workshop"}:
        raise RequestError(
            "workshop",
            'A workshop session takes only {"workshop": name}: its instructor chose the rest.',
        )
    name = raw["workshop"]
    preset = next((w for w in user.workshops if w.name == name), None)
    if preset is None:
        raise RequestError(
            "workshop",
            f"You hold no seat in a workshop {_show(name)} that is open now; join it with the "
            "code your instructor gave you.",
        )
    site = cat.sites.get(preset.site)
    res = site.resources.get(preset.resource) if site else None
    if res is None:
        raise RequestError("workshop", "This workshop's resource is no longer offered.")
    return SessionRequest(
        site=preset.site,
        resource=preset.resource,
        gpus=preset.gpus,
        cpus=res.cpus.initial,
        memory_gb=res.memory_gb.initial,
        hours=preset.hours,
        environment=_workshop_environment(preset, cat),
        project=preset.project,
        reservation=preset.reservation,
        workshop=preset.name,
        material=preset.material or None,
        shared=preset.shared or None,
    )


def _workshop_environment(preset: WorkshopPreset, cat: Catalogue) -> str:
    offered = cat.environments_for(preset.site, preset.resource)
    if preset.environment is None:
        return offered[0]
    if preset.environment not in offered:
        raise RequestError(
            "workshop",
            f"This workshop's environment {_show(preset.environment)} is no longer offered; "
            "tell its instructor.",
        )
    return preset.environment


_INT = re.compile(r"-?[0-9]{1,100}")
_DECIMAL = re.compile(r"-?([0-9]{1,100}(\.[0-9]{1,100})?|\.[0-9]{1,100})")


def options_from_form(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """JupyterHub's form fields (every value a list of str) → `user_options` for parse_request.

    Numbers are converted only when they look like plain decimals, so `"2"` → 2 and
    `"1.5"` → 1.5, while `"two"` or `"1e9"` stay text and parse_request names the mistake.
    An empty field means "not given". Unknown keys stay, so parse_request refuses them.
    """
    out: dict[str, Any] = {}
    for key, values in formdata.items():
        # A template may carry JupyterHub's `_xsrf` token in the body: transport, not an option.
        if key == "_xsrf" or not values:
            continue
        value = values[0] if isinstance(values, list | tuple) else values
        if value == "":
            continue
        if isinstance(value, str) and key in ("gpus", "cpus", "memory_gb", "hours"):
            text = value.strip()
            if _INT.fullmatch(text) and key != "hours":
                value = int(text)
            elif _DECIMAL.fullmatch(text):
                value = float(text)
        out[key] = value
    return out


# --- one option at a time ---------------------------------------------------------------


def _choice(raw: Mapping[str, Any], field: str, choices: list[str], where: str) -> str:
    if not choices:
        raise RequestError(field, f'No "{field}" is offered {where} yet; ask the hub operators.')
    value = raw.get(field, _MISSING)
    if value is _MISSING:
        return choices[0]
    if not isinstance(value, str):
        raise RequestError(
            field, f'"{field}" must be text, one of: {", ".join(choices)}; {_got(value)}.'
        )
    if value not in choices:
        offered = ", ".join(choices)
        raise RequestError(
            field, f'"{field}" {_show(value)} is not offered {where}; choose one of: {offered}.'
        )
    return value


def _whole(raw: Mapping[str, Any], field: str, lo: int, hi: int, default: int, where: str) -> int:
    value = raw.get(field, _MISSING)
    if value is _MISSING:
        return default
    number = _as_int(value)
    if number is None or not lo <= number <= hi:
        allowed = str(lo) if lo == hi else f"a whole number from {lo} to {hi}"
        raise RequestError(field, f'"{field}" must be {allowed} for {where}; {_got(value)}.')
    return number


def _gpus(raw: Mapping[str, Any], res: Resource, where: str) -> int:
    if res.gpu is None:
        value = raw.get("gpus", 0)
        if _as_int(value) != 0:
            raise RequestError(
                "gpus", f'"gpus" must be 0 for {where}: it has no GPUs; {_got(value)}.'
            )
        return 0
    # A GPU resource whose default is 0 GPUs lets users ask for none; otherwise at least one.
    lo = 0 if res.gpu.default == 0 else 1
    return _whole(raw, "gpus", lo, res.gpu.max, res.gpu.default, where)


def _hours(raw: Mapping[str, Any], res: Resource, where: str) -> float:
    value = raw.get("hours", _MISSING)
    if value is _MISSING:
        return res.initial_hours
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, int):
        ok = abs(value) <= 10**6  # float() of a 400-digit int overflows
    hours = float(value) if ok else math.nan
    if not (math.isfinite(hours) and round(hours * 60, 6) >= 1 and hours <= res.max_hours):
        raise RequestError(
            "hours",
            f'"hours" must be a number of hours between 1/60 (one minute) and '
            f"{res.max_hours:g} for {where}; {_got(value)}.",
        )
    return hours


def _project(raw: Mapping[str, Any], cat: Catalogue, user: UserFacts, site: Site) -> str | None:
    mine = projects_of(cat, user)
    yours = f"your projects are: {', '.join(mine)}" if mine else "you are in no project yet"
    value = raw.get("project", _MISSING)
    name = next(k for k, v in cat.sites.items() if v is site)

    def runs_here(project: str) -> bool:  # its Slurm account exists only at some sites
        return cat.projects[project].sites is None or name in cat.projects[project].sites

    if value is _MISSING:
        if user.needs_project and not mine:
            raise RequestError(
                "project",
                "You are in no project yet, so you may start only your workshop's session; "
                "ask for access to a project on the hub's Access page.",
            )
        if site.backend != "slurm" or not cat.projects:
            return None
        if not mine:
            raise RequestError(
                "project",
                f"Sessions at {_plain(site.title)} are charged to a project, and you are in no "
                "project yet; ask for access to one on the hub's Access page.",
            )
        here = [p for p in mine if runs_here(p)]
        if not here:
            raise RequestError(
                "project",
                f"None of your projects ({', '.join(mine)}) runs at {_plain(site.title)}; "
                "choose a site where one does.",
            )
        return here[0]
    if not isinstance(value, str):
        raise RequestError("project", f'"project" must be text naming a project; {_got(value)}.')
    if value not in mine:  # the same words whether or not the project exists: no probing
        raise RequestError("project", f"You are not a member of project {_show(value)}; {yours}.")
    if not runs_here(value):
        where = ", ".join(_plain(cat.sites[s].title) for s in cat.projects[value].sites or [])
        raise RequestError(
            "project", f"Project {value} runs only at {where}, not at {_plain(site.title)}."
        )
    return value


# --- showing a user's value back, short and on one line -----------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _got(value: Any) -> str:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"you {'asked for' if number else 'sent'} {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        out = ""
        for ch in value:
            if len(out) >= _SHOW_CHARS:
                return f'"{out}…" ({len(value)} characters)'
            printable = ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
            out += "\\" + ch if ch in '"\\' else printable
        return f'"{out}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 128 else "a number with more than 38 digits"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # a form's "-3" was made -3.0; show what the user typed
        return "NaN" if math.isnan(value) else repr(value).replace("inf", "Infinity")
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a value of type {type(value).__name__}"


def _plain(title: str) -> str:
    return " ".join(title.split())  # an operator's title, on one line for a message
