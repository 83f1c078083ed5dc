"""The service catalogue: one YAML file, validated into typed models.

This module is the leaf everything else imports. The models are the one schema: the
loader, `naic catalogue check`, the hub's start-up and (later) the spawn form all read it.
Errors are collected, not raised one at a time, so an operator fixes a file in one pass;
each names the file, the field path, the rule and the bad value.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

#: Keys of sites, resources, environments, projects and storage areas end up in URLs,
#: form values and batch scripts, so they are plain lowercase names.
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
#: Slurm accounts, partitions, GPU types and Lmod modules go into `#SBATCH` lines and shell.
SAFE_WORD = r"^[A-Za-z0-9][A-Za-z0-9._+/:-]*$"
PATH_PLACEHOLDERS = {"username", "project"}
VENV_PATH = r"^/[A-Za-z0-9._+/-]*$"
URL = r"^https?://[^\s]+$"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
#: How a pattern mismatch reads in an error message.
PATTERN_WORDS = {
    SAFE_WORD: "must be one word of letters, digits and . _ + / : - (no spaces or quotes)",
    VENV_PATH: "must be an absolute path of letters, digits and . _ + / -",
    URL: "must be an http:// or https:// URL without spaces",
    ENV_NAME: "must be an environment variable name (capitals, digits and _)",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _fixed_or_range(value: Any) -> Any:
    """`cpus: 2` is shorthand for a fixed amount: `{min: 2, default: 2, max: 2}`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("must be ≥ 1")
        return {"min": value, "default": value, "max": value}
    return value


class Amount(_Model):
    """A user-chosen whole amount (CPUs, GB of memory) with bounds and a default."""

    min: int = Field(1, ge=1)
    default: int | None = Field(None, ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Amount:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be ≥ min ({self.min})")
        if self.default is not None and not self.min <= self.default <= self.max:
            raise ValueError(
                f"default ({self.default}) must lie between min ({self.min}) and max ({self.max})"
            )
        return self

    @property
    def initial(self) -> int:
        return self.min if self.default is None else self.default


AmountField = Annotated[Amount, BeforeValidator(_fixed_or_range)]


class Gpu(_Model):
    type: str = Field(pattern=SAFE_WORD, description="GPU type as Slurm's gres knows it")
    max: int = Field(ge=1, description="most GPUs one session may ask for")
    default: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _default_in_bounds(self) -> Gpu:
        if self.default > self.max:
            raise ValueError(f"default ({self.default}) must be ≤ max ({self.max})")
        return self


class Resource(_Model):
    title: str = Field(min_length=1)
    partition: str | None = Field(None, pattern=SAFE_WORD)
    gpu: Gpu | None = None
    cpus: AmountField = Amount(min=1, default=1, max=1)
    memory_gb: AmountField = Amount(min=1, default=2, max=2)
    max_hours: float = Field(gt=0)
    default_hours: float | None = Field(None, gt=0)
    environments: list[str] | None = Field(
        None, description="environments offered on this resource (default: the site's)"
    )
    #: Extending a running session: how often, and by how much; `max_hours` bounds the total.
    max_extensions: int = Field(
        0, ge=0, description="times a running session may be extended (0: not offered)"
    )
    extend_step_hours: float = Field(1.0, gt=0, description="hours one extension adds")

    @model_validator(mode="after")
    def _hours(self) -> Resource:
        if self.default_hours is not None and self.default_hours > self.max_hours:
            raise ValueError(
                f"default_hours ({self.default_hours:g}) must be ≤ max_hours ({self.max_hours:g})"
            )
        if self.max_extensions and self.extend_step_hours > self.max_hours:
            raise ValueError(
                f"extend_step_hours ({self.extend_step_hours:g}) must be ≤ max_hours "
                f"({self.max_hours:g})"
            )
        return self

    @property
    def initial_hours(self) -> float:
        return self.default_hours if self.default_hours is not None else min(1.0, self.max_hours)


HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$"
PATTERN_WORDS[HOST] = "must be a host name or IPv4 address"


class Submit(_Model):
    """Where sbatch, squeue and scancel run: on the hub's machine, or on a login node over SSH
    (the site's `ssh:` says how)."""

    host: str = Field("localhost", pattern=HOST)
    via: Literal["local", "ssh"] = "local"
    port: int = Field(22, ge=1, le=65535)

    @model_validator(mode="after")
    def _local_is_here(self) -> Submit:
        if self.via == "local" and self.host not in {"localhost", "127.0.0.1"}:
            raise ValueError(f"host {self.host!r} is another machine: add `via: ssh`")
        return self


class SSH(_Model):
    """How the hub logs in to a site's machines: as `user` (root, or an account that may
    `sudo -n` to root and to users), with the private key at `identity_file` (a path on the
    hub, never the key itself), trusting only the host keys in `known_hosts` (unknown keys
    are refused)."""

    user: str = Field("root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    identity_file: str = Field(pattern=VENV_PATH, description="the hub's private key")
    known_hosts: str = Field(pattern=VENV_PATH, description="the hosts' pinned public keys")
    connect_timeout_s: float = Field(10, gt=0, le=120)


class Host(_Model):
    """One machine of a node pool (a cloud VM) and the GPUs it has, numbered 0 … n-1."""

    address: str = Field(pattern=HOST)
    port: int = Field(22, ge=1, le=65535)
    gpus: dict[str, Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=dict, description="GPU type → count, e.g. {l40s: 4}"
    )
    #: The GPUs' device files, e.g. "/dev/nvidia{index}": while a session runs, its GPUs'
    #: files belong to its user alone (mode 0600), so no other user's process can open
    #: them; after, root's and everyone's again (0666, NVIDIA's default). Without it,
    #: `CUDA_VISIBLE_DEVICES` is advice that a session's code may ignore.
    gpu_devices: str | None = Field(None, pattern=r"^/dev/[\w./-]*\{index\}[\w./-]*$")


class Culling(_Model):
    """When the hub's culler stops a site's sessions, and how early it warns (null: never).

    A session counts as active while its browser, kernels or terminals are, *or* while one of
    its GPUs is busy, so a long training run is never stopped for an idle browser; a session
    whose GPUs all sit below `gpu_busy_percent` for `gpu_idle_minutes` is stopped even while
    its browser tab is open."""

    idle_minutes: float | None = Field(
        120.0, gt=0, description="minutes without browser, kernel or GPU activity before a stop"
    )
    gpu_idle_minutes: float | None = Field(
        60.0, gt=0, description="minutes a session may hold GPUs that it does not use"
    )
    gpu_busy_percent: float = Field(
        1.0, ge=0, lt=100, description="a GPU whose utilisation exceeds this is in use"
    )
    max_age_hours: float | None = Field(
        None, gt=0, description="hours after which any session is stopped"
    )
    warn_minutes: float = Field(10.0, gt=0, description="minutes of warning before a stop")
    time_left_notice_minutes: float = Field(
        30.0, ge=0, description='the session says "N minutes left" this long before its end'
    )

    @model_validator(mode="after")
    def _warn_fits(self) -> Culling:
        for name in ("idle_minutes", "gpu_idle_minutes"):
            limit = getattr(self, name)
            if limit is not None and self.warn_minutes >= limit:
                raise ValueError(
                    f"warn_minutes ({self.warn_minutes:g}) must be shorter than {name} "
                    f"({limit:g}), or the warning would come before anything was idle"
                )
        return self


class Site(_Model):
    title: str = Field(min_length=1)
    backend: Literal["local", "slurm", "nodes"]
    submit: Submit | None = None
    ssh: SSH | None = Field(None, description="how the hub reaches this site's machines")
    hosts: dict[str, Host] | None = Field(None, description="a node pool's machines")
    when_full: Literal["wait", "refuse"] = Field(
        "wait", description="a node pool with no free GPU: queue the session, or say no"
    )
    culling: Culling = Field(default_factory=Culling, description="when sessions are stopped")
    gpus_per_node: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="GPUs of each type one node has, e.g. {a100: 4}"
    )
    environments: list[str] | None = Field(
        None, description="environments offered at this site (default: all)"
    )
    resources: dict[str, Resource] = Field(min_length=1)

    @model_validator(mode="after")
    def _submit_fits_backend(self) -> Site:
        if self.backend != "slurm" and self.submit is not None:
            raise ValueError("only Slurm sites have a submit host; remove `submit`")
        if self.backend == "slurm" and self.submit is None:
            object.__setattr__(self, "submit", Submit())
        if self.backend == "nodes" and not self.hosts:
            raise ValueError("a `nodes` site needs `hosts`, the machines of its pool")
        if self.backend != "nodes" and self.hosts is not None:
            raise ValueError("only `nodes` sites have `hosts`")
        needs_ssh = self.backend == "nodes" or (self.submit and self.submit.via == "ssh")
        if needs_ssh and self.ssh is None:
            raise ValueError(
                "this site is reached over SSH: add `ssh` (identity_file, known_hosts)"
            )
        if self.backend == "nodes" and self.gpus_per_node is None:
            # The most GPUs of each type one host has: what a single session can ask for.
            most: dict[str, int] = {}
            for h in self.hosts.values():
                for kind, n in h.gpus.items():
                    most[kind] = max(most.get(kind, 0), n)
            object.__setattr__(self, "gpus_per_node", most)
        return self


class Environment(_Model):
    title: str = Field(min_length=1)
    venv: str | None = Field(None, pattern=VENV_PATH)
    modules: list[Annotated[str, Field(pattern=SAFE_WORD)]] = []

    @model_validator(mode="after")
    def _something_to_activate(self) -> Environment:
        if self.venv is None and not self.modules:
            raise ValueError("needs `venv` (a path) or `modules` (Lmod module names)")
        return self


class Storage(_Model):
    title: str | None = None
    path: str
    quota_gb: float | None = Field(None, gt=0)
    purge_days: int | None = Field(None, ge=1)
    read_only: bool = False

    @field_validator("path")
    @classmethod
    def _template(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must be an absolute path")
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(path) if f is not None}
        except ValueError:  # Python's own words: "Single '}' encountered in format string"
            raise ValueError(
                "has a `{` or `}` that is not part of a {username} or {project} placeholder"
            ) from None
        unknown = names - PATH_PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"may use only {{username}} and {{project}}, not {{{sorted(unknown)[0]}}}"
            )
        return path


class Project(_Model):
    title: str = Field(min_length=1)
    slurm_account: str | None = Field(None, pattern=SAFE_WORD)
    #: GPU-hours per budget period; None means no budget is enforced.
    gpu_hours: float | None = Field(None, ge=0, description="GPU-hour budget")
    #: When the budget starts afresh: the first day (UTC) of each month, quarter or year.
    budget_period: Literal["month", "quarter", "year", "never"] = "year"
    #: Identities that belong to it: the identity claim's values with an institutional
    #: login (`ola@uio.no`; a bare hub name never matches there), hub user names without.
    members: list[str] = []
    #: IdP groups (the groups claim's values) whose members belong to it.
    groups: list[str] = []


#: Where a hub user name comes from: the site's user register over LDAP, the operator's
#: file, or the identity's part before `@` (only for identities at the listed `domains`).
UsernameRule = Literal["local_part", "mapping", "ldap"]
DOMAIN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"


class LdapRegister(_Model):
    """The site's user register over LDAP: the entry whose `identity_attribute` equals the
    person's identity gives their user name in `username_attribute`."""

    url: str = Field(pattern=r"^ldaps?://[^\s]+$", description="ldap[s]://host[:port]")
    base_dn: str = Field(min_length=1, description="where people are, e.g. ou=people,dc=…")
    identity_attribute: str = Field("eduPersonPrincipalName", pattern=r"^[A-Za-z][\w-]*$")
    username_attribute: str = Field("uid", pattern=r"^[A-Za-z][\w-]*$")
    #: Bind as this DN (anonymous without it); its password in `bind_password_env`.
    bind_dn: str | None = None
    bind_password_env: str = Field("NAIC_LDAP_PASSWORD", pattern=ENV_NAME)


class Identity(_Model):
    """Institutional login over OpenID Connect (Feide, eduGAIN proxies, any OIDC provider)."""

    title: str = Field("your institution", min_length=1, description='"Log in with {title}"')
    issuer: str = Field(pattern=URL)
    scopes: list[str] = ["openid", "profile", "email"]
    #: The claim that names a person, e.g. `eduPersonPrincipalName` (`ola@uio.no`).
    identity_claim: str = Field("sub", min_length=1)
    #: The claim listing the person's groups, matched against projects' `groups`.
    groups_claim: str | None = None
    usernames: UsernameRule = "local_part"
    #: With `usernames: local_part`: the identity domains whose local parts are this site's
    #: user names (one user register). Without the list, `ola@uio.no` and `ola@evil.example`
    #: would both be `ola`, first come first served.
    domains: list[str] = []
    #: YAML file `identity: username` the operator maintains (with `usernames: mapping`).
    mapping_file: str | None = None
    #: The site's user register (with `usernames: ldap`).
    ldap: LdapRegister | None = None
    #: Environment variables holding the OAuth client id and secret (never in this file).
    client_id_env: str = Field("NAIC_OIDC_CLIENT_ID", pattern=ENV_NAME)
    client_secret_env: str = Field("NAIC_OIDC_CLIENT_SECRET", pattern=ENV_NAME)

    @model_validator(mode="after")
    def _mapping_needs_file(self) -> Identity:
        if self.usernames == "mapping" and not self.mapping_file:
            raise ValueError("usernames: mapping needs mapping_file (YAML of identity: name)")
        if self.mapping_file and not self.mapping_file.startswith("/"):
            raise ValueError("mapping_file must be an absolute path")
        if self.usernames == "ldap" and self.ldap is None:
            raise ValueError("usernames: ldap needs ldap: {url, base_dn, …} (the user register)")
        if self.usernames == "local_part" and not self.domains:
            raise ValueError(
                "usernames: local_part needs domains: the identity domains whose local parts "
                "are this site's user names (e.g. [uio.no]); otherwise the same name at another "
                "institution would take the account"
            )
        for domain in self.domains:
            if not re.match(DOMAIN, domain):
                raise ValueError(f"domains: {domain!r} is not a lower-case domain such as uio.no")
        return self


class GuestAccounts(_Model):
    """Workshop accounts for people without an institutional login: accounts the site has
    made for courses (e.g. guest01 … guest50, on every node), which the hub hands out for a
    workshop's window with one-time passwords and takes back at its end."""

    prefix: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,20}$", description="e.g. guest")
    count: int = Field(ge=1, le=9999, description="how many: prefix + 01 … count")

    @property
    def names(self) -> list[str]:
        width = max(2, len(str(self.count)))
        return [f"{self.prefix}{i:0{width}}" for i in range(1, self.count + 1)]


class WorkshopPolicy(_Model):
    """What an instructor may hold without an admin: a workshop above any of these is kept
    "awaiting approval" (no Slurm reservation, no seats) until an admin approves it. E.g.
    `workshops: {max_seats: 40, max_gpus_per_seat: 1, max_hours: 8,
    max_active_per_instructor: 2}`."""

    max_seats: int = Field(40, ge=1, le=500, description="seats in one workshop, e.g. 40")
    max_gpus_per_seat: int = Field(1, ge=0, description="GPUs each seat's session may have")
    max_hours: float = Field(
        8, gt=0, le=14 * 24, allow_inf_nan=False, description="the window's length, in hours"
    )
    max_active_per_instructor: int = Field(
        2,
        ge=1,
        description="workshops one instructor has not ended and whose window has not passed",
    )


class Catalogue(_Model):
    name: str = Field(min_length=1)
    sites: dict[str, Site] = Field(min_length=1)
    environments: dict[str, Environment] = {}
    storage: dict[str, Storage] = {}
    projects: dict[str, Project] = {}
    #: Institutional login; without it the hub uses its dev login (`naic up`).
    identity: Identity | None = None
    #: Accounts that instructors may hand out for a workshop (none: no temporary accounts).
    guest_accounts: GuestAccounts | None = None
    #: What instructors may reserve without an admin's approval (none: no limit but the
    #: resources' own).
    workshops: WorkshopPolicy | None = None

    def environments_for(self, site: str, resource: str) -> list[str]:
        """Environment names offered for one resource, in catalogue order."""
        s = self.sites[site]
        offered = s.resources[resource].environments or s.environments
        return list(offered) if offered is not None else list(self.environments)


# --- errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    value: Any = None
    has_value: bool = False

    def render(self, file: str) -> str:
        where = f"{file}: {self.path}: " if self.path else f"{file}: "
        got = f" (got {_show(self.value)})" if self.has_value else ""
        return f"{where}{self.rule}{got}"


class CatalogueError(Exception):
    """A catalogue that cannot be used; `str()` is the message an operator reads."""

    def __init__(self, file: str | Path, problems: list[Problem]):
        self.file = str(file)
        self.problems = problems
        super().__init__(self.message)

    @property
    def message(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: the service catalogue has {n} problem{'s' if n != 1 else ''}:"
        return "\n".join([head, *("  " + p.render(self.file) for p in self.problems)])


def _show(value: Any) -> str:
    text = (
        repr(value)
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )
    return text if len(text) <= 60 else text[:57] + "..."


_RULES = {
    "missing": "is required",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping of names to settings",
    "model_type": "must be a mapping of settings",
    "model_attributes_type": "must be a mapping of settings",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
}


def _rule(err: dict[str, Any], model_fields: list[str]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in _RULES:
        return _RULES[kind]
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']:g}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']:g}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']:g}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "literal_error":
        return "must be one of: " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    if kind == "string_pattern_mismatch":
        return PATTERN_WORDS.get(ctx["pattern"], f"must match {ctx['pattern']}")
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(str(err["loc"][-1]), model_fields, n=1)
        return "is not a known field" + (f"; did you mean `{near[0]}`?" if near else "")
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"][:1].lower() + err["msg"][1:]


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names allowed where `loc` points, for 'did you mean' hints."""
    model: Any = Catalogue
    key_next = False
    for part in loc[:-1]:
        if key_next:  # a name the operator chose (a site called `gpu`), never a field
            key_next = False
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        key_next = get_origin(ann) is dict
        inner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif inner is not None:
            model = inner
        elif args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            model = args[-1]
    return list(model.model_fields)


def _problems_from(exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if "[key]" in loc:
            continue  # a name that is not text: `_check_names` already said so
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        has_value = err["type"] != "missing" and not isinstance(err.get("input"), dict)
        out.append(Problem(path, _rule(err, _fields_at(loc)), err.get("input"), has_value))
    return out


def _check_names(raw: dict[str, Any]) -> list[Problem]:
    bad = []
    sections = ["sites", "environments", "storage", "projects"]
    for section in sections:
        for key in (raw.get(section) or {}) if isinstance(raw.get(section), dict) else {}:
            if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
                bad.append(Problem(f"{section}.{key}", _NAME_RULE, key, True))
    for site, spec in (
        (raw.get("sites") or {}).items() if isinstance(raw.get("sites"), dict) else ()
    ):
        resources = spec.get("resources") if isinstance(spec, dict) else None
        for key in resources if isinstance(resources, dict) else {}:
            if not isinstance(key, str) or not re.match(NAME_PATTERN, key):
                bad.append(Problem(f"sites.{site}.resources.{key}", _NAME_RULE, key, True))
    return bad


_NAME_RULE = "names must be lowercase letters, digits, - or _, starting with a letter"


def cross_check(cat: Catalogue) -> list[Problem]:
    """Rules that span sections: references must exist, requests must fit the hardware."""
    out: list[Problem] = []
    envs = set(cat.environments)
    for site_name, site in cat.sites.items():
        at = f"sites.{site_name}"
        for i, env in enumerate(site.environments or []):
            if env not in envs:
                out.append(
                    Problem(f"{at}.environments[{i}]", _unknown("environment", envs), env, True)
                )
        for res_name, res in site.resources.items():
            rat = f"{at}.resources.{res_name}"
            for i, env in enumerate(res.environments or []):
                if env not in envs:
                    out.append(
                        Problem(
                            f"{rat}.environments[{i}]", _unknown("environment", envs), env, True
                        )
                    )
                elif site.environments is not None and env not in site.environments:
                    out.append(
                        Problem(f"{rat}.environments[{i}]", "is not offered by its site", env, True)
                    )
            if site.backend == "slurm" and res.partition is None:
                out.append(Problem(f"{rat}.partition", "is required on a Slurm site"))
            if site.backend != "slurm" and res.partition is not None:
                out.append(
                    Problem(
                        f"{rat}.partition",
                        "only Slurm resources have a partition",
                        res.partition,
                        True,
                    )
                )
            if res.gpu is not None:
                out.extend(_gpu_fits(site, rat, res.gpu))
    return out


def _gpu_fits(site: Site, at: str, gpu: Gpu) -> list[Problem]:
    if site.gpus_per_node is None:
        if site.backend == "local":
            return [
                Problem(
                    f"{at}.gpu",
                    "the hub's own machine declares no GPUs; add `gpus_per_node` to its site",
                )
            ]
        return []
    if gpu.type not in site.gpus_per_node:
        have = ", ".join(site.gpus_per_node) or "none"
        return [
            Problem(
                f"{at}.gpu.type",
                f"is not a GPU type of this site, which has: {have}",
                gpu.type,
                True,
            )
        ]
    has = site.gpus_per_node[gpu.type]
    if gpu.max > has:
        return [
            Problem(
                f"{at}.gpu.max",
                f"must be ≤ {has}, the {gpu.type} GPUs one node of this site has",
                gpu.max,
                True,
            )
        ]
    return []


def _unknown(kind: str, known: set[str]) -> str:
    return f"names no {kind} of this catalogue (known: {', '.join(sorted(known)) or 'none'})"


# --- loading --------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; an operator wants to hear of it."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse(text: str, file: str | Path = "<catalogue>") -> Catalogue:
    """Validate catalogue YAML text; raise `CatalogueError` listing every problem."""
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise CatalogueError(file, [Problem(where, f"is not valid YAML: {what}")]) from None
    if not isinstance(raw, dict):
        rule = "is empty" if raw is None else "must be a mapping with `name` and `sites` at the top"
        raise CatalogueError(file, [Problem("", f"the file {rule}")])
    problems = _check_names(raw)
    try:
        cat = Catalogue.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(file, problems + _problems_from(exc)) from None
    problems += cross_check(cat)
    if problems:
        raise CatalogueError(file, problems)
    return cat


@functools.cache
def load_cached(path: str) -> Catalogue:
    """One parse per hub process: the hub validated the file when it started."""
    return load(path)


def load(path: str | Path) -> Catalogue:
    """Read and validate a catalogue file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, UnicodeDecodeError):
            bad = exc.object[exc.start]
            reason = f"it is not UTF-8 text (byte {bad:#04x} at offset {exc.start})"
        raise CatalogueError(path, [Problem("", f"cannot be read: {reason}")]) from None
    return parse(text, path)


#: The catalogue `naic up` uses when none is given: the hub's own machine only.
DEFAULT_CATALOGUE = Path(__file__).parent / "defaults" / "catalogue.yaml"
