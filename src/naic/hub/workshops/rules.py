"""Workshops: what an instructor asks for, and the rules a join code obeys. Pure.

An instructor describes a workshop (`WorkshopSpec`, validated against the catalogue: the
resource must be a Slurm one, the session must fit the window); the hub stores it with an
unguessable join code (`new_code`), reserves seats and GPUs in Slurm for the window
(`reservation_argv`) and lets students take a seat while the window is open
(`join_refusal`). The database keeps only a code's keyed hash (`code_digest`); an instructor
charges only their own projects (`project_refusal`), and a workshop above the catalogue's
`workshops` policy waits for an admin (`approval_reasons`). Everything here is a function
of its arguments: the store (naic.hub.workshops.store) and the handlers
(naic.hub.workshops.api) do the I/O.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from naic.hub.catalogue import NAME_PATTERN, Catalogue, WorkshopPolicy
from naic.spawners.request import MATERIAL_PATTERN, SHARED_PATTERN
from naic.spawners.site import account_from_getent, switch_user

#: JupyterHub group whose members get the instructor role.
INSTRUCTORS_GROUP = "instructors"

#: No 0/O, 1/I/L: codes are read off a projector and typed by hand.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
#: 10 characters of 31: about 50 bits, far beyond guessing at the redemption rate limit.
CODE_LENGTH = 10
MAX_SEATS = 500


def new_code() -> str:
    """`ABCDE-FGHJK`: unguessable (the `secrets` generator), easy to read aloud."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_code(text: str) -> str:
    """What students type, made comparable: case, spaces and dashes do not matter."""
    raw = re.sub(r"[\s-]", "", text or "").upper()
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == CODE_LENGTH else raw


def code_key(secret: bytes) -> bytes:
    """The key that hashes join codes, from a secret the database does not hold (the hub's
    cookie secret, a file in its data dir): a copy of the database alone gives no code."""
    return hmac.new(secret, b"naic workshop join codes", hashlib.sha256).digest()


def code_digest(code: str, key: bytes) -> str:
    """What the database keeps of a join code: HMAC-SHA256 of the normalised code, hex.
    Keyed, because 50 bits are within reach of a brute force over a plain hash."""
    return hmac.new(key, normalise_code(code).encode(), hashlib.sha256).hexdigest()


def is_code_digest(text: str) -> bool:
    """Pure: whether a stored value is already a digest (not a code kept in clear)."""
    return re.fullmatch(r"[0-9a-f]{64}", text or "") is not None


class WorkshopSpec(BaseModel):
    """What `naic workshop create` and `POST /hub/api/naic/workshops` take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="short name, e.g. ml-intro")
    title: str = Field("", max_length=120)
    seats: int = Field(ge=1, le=MAX_SEATS)
    start: datetime
    end: datetime
    resource: str = Field(description="site:resource from the catalogue, e.g. saga:a100")
    gpus: int = Field(0, ge=0)
    hours: float = Field(gt=0, allow_inf_nan=False)
    material: str = Field("", max_length=500, description="a git URL or a folder on the hub")
    project: str | None = Field(None, pattern=NAME_PATTERN)
    #: One of the catalogue's environments offered for the resource (None: its first).
    environment: str | None = Field(None, pattern=NAME_PATTERN)
    #: A read-only course folder on the site (one copy of the data), linked into each
    #: student's ~/<workshop> as `shared` (None: none).
    shared: str | None = Field(None, description="an absolute folder on the workshop's site")

    @field_validator("name")
    @classmethod
    def _not_a_route(cls, name: str) -> str:
        if name == "join":
            raise ValueError("`join` is the name of the page that takes codes; choose another")
        return name

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, t: datetime) -> datetime:
        if t.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2027-01-20T09:00+01:00 or …Z for UTC")
        return t.astimezone(UTC)

    @model_validator(mode="after")
    def _window(self) -> WorkshopSpec:
        if self.end <= self.start:
            raise ValueError("`end` must be after `start`")
        if self.end - self.start > timedelta(days=14):
            raise ValueError("a workshop lasts at most 14 days")
        window_h = (self.end - self.start).total_seconds() / 3600
        if self.hours > window_h + 1e-9:
            raise ValueError(
                f"`hours` ({self.hours:g}) must fit in the window ({window_h:g} hours)"
            )
        if self.material and not re.fullmatch(MATERIAL_PATTERN, self.material):
            raise ValueError(
                "`material` must be an http(s):// or git@ URL of a git repository, or an "
                "absolute folder path, without spaces or shell characters"
            )
        if self.shared is not None and not shared_ok(self.shared):
            raise ValueError(
                "`shared` must be an absolute folder path on the workshop's site, at most 500 "
                "characters, without `..`, spaces or shell characters"
            )
        return self

    @property
    def site(self) -> str:
        return self.resource.split(":", 1)[0]

    @property
    def resource_name(self) -> str:
        return self.resource.split(":", 1)[-1]


def shared_ok(path: str) -> bool:
    """Pure: whether `path` may be a workshop's shared folder (absolute, no `..`, printable,
    nothing a shell reads, at most 500 characters)."""
    return (
        len(path) <= 500
        and re.fullmatch(SHARED_PATTERN, path) is not None
        and ".." not in path.split("/")
    )


def catalogue_problems(spec: WorkshopSpec, cat: Catalogue) -> list[str]:
    """Pure: the sentences why the catalogue cannot host this workshop (empty: it can)."""
    site_name, _, res_name = spec.resource.partition(":")
    site = cat.sites.get(site_name)
    if site is None or not res_name or res_name not in site.resources:
        offered = ", ".join(
            f"{s}:{r}" for s, st in cat.sites.items() if st.backend == "slurm" for r in st.resources
        )
        return [f"`resource` {spec.resource!r} is not in the catalogue; choose one of: {offered}."]
    if site.backend != "slurm":
        return [f"`resource` {spec.resource!r} is not on a Slurm site; workshops reserve Slurm."]
    res = site.resources[res_name]
    problems = []
    most = res.gpu.max if res.gpu else 0
    if spec.gpus > most:
        problems.append(f"`gpus` must be at most {most} on {res.title}; you asked for {spec.gpus}.")
    if spec.hours > res.max_hours:
        problems.append(f"`hours` must be at most {res.max_hours:g} on {res.title}.")
    if spec.project is not None and spec.project not in cat.projects:
        problems.append(f"`project` {spec.project!r} is not in the catalogue.")
    offered = cat.environments_for(site_name, res_name)
    if spec.environment is not None and spec.environment not in offered:
        problems.append(
            f"`environment` {spec.environment!r} is not offered on {res.title}; choose one of: "
            f"{', '.join(offered)}."
        )
    return problems


def project_refusal(project: str | None, mine: list[str], *, admin: bool) -> str | None:
    """Pure: None if the instructor may charge `project` (one of `mine`, their projects; any
    for an admin; none at all for everyone), else the sentence why not."""
    if project is None or admin or project in mine:
        return None
    return (
        f"You are not a member of the project {project}, so your workshops cannot charge it; "
        "choose one of your projects, or none."
    )


def approval_reasons(
    spec: WorkshopSpec, policy: WorkshopPolicy | None, *, active: int
) -> list[str]:
    """Pure: why this workshop needs an admin's approval under the catalogue's `workshops`
    policy (empty: it does not). `active`: the instructor's other workshops not yet over."""
    if policy is None:
        return []
    reasons = []
    if spec.seats > policy.max_seats:
        reasons.append(f"more than {policy.max_seats} seats ({spec.seats})")
    if spec.gpus > policy.max_gpus_per_seat:
        reasons.append(f"more than {policy.max_gpus_per_seat} GPUs a seat ({spec.gpus})")
    window_h = (spec.end - spec.start).total_seconds() / 3600
    if window_h > policy.max_hours + 1e-9:
        reasons.append(f"a window longer than {policy.max_hours:g} hours ({window_h:g})")
    if active >= policy.max_active_per_instructor:
        reasons.append(
            f"more than {policy.max_active_per_instructor} workshops of one instructor at once"
        )
    return reasons


def awaiting_sentence(reasons: list[str]) -> str:
    """Pure: what the instructor reads about a workshop kept for an admin."""
    return (
        "This workshop asks for " + "; ".join(reasons) + ", above what the site lets "
        "instructors reserve alone: an admin must approve it before it is reserved and "
        "students can join."
    )


@dataclass(frozen=True)
class Reservation:
    """What Slurm is asked to hold: `nodes` whole nodes (GPU workshops) or `cores`."""

    name: str
    partition: str | None
    nodes: int
    cores: int
    accounts: tuple[str, ...]
    users: tuple[str, ...]


def reservation_for(
    spec: WorkshopSpec,
    cat: Catalogue,
    *,
    users: tuple[str, ...],
    nodes_in_partition: int,
) -> Reservation:
    """Pure: the reservation for the window, or ValueError with the sentence why the cluster
    cannot hold it. GPU workshops hold whole nodes (Slurm 22.05 reserves no GPUs by count):
    seats × GPUs over the GPUs one node has; CPU workshops hold seats × CPUs cores."""
    site = cat.sites[spec.site]
    res = site.resources[spec.resource_name]
    name = f"naic-ws-{spec.name}"
    project = cat.projects.get(spec.project) if spec.project else None
    accounts = ((project.slurm_account or spec.project),) if project else ()
    if spec.gpus:
        per_node = (site.gpus_per_node or {}).get(res.gpu.type) if res.gpu else None
        if not per_node:
            raise ValueError(
                f"The catalogue does not say how many {res.gpu.type if res.gpu else ''} GPUs a "
                f"node of {site.title} has (`gpus_per_node`), so GPUs cannot be reserved."
            )
        nodes = math.ceil(spec.seats * spec.gpus / per_node)
        if nodes > nodes_in_partition:
            raise ValueError(
                f"{spec.seats} seats × {spec.gpus} GPU{'s' * (spec.gpus != 1)} need {nodes} "
                f"nodes of {per_node} GPUs, and {res.title} has {nodes_in_partition}; lower "
                f"the seats or GPUs (at most {nodes_in_partition * per_node} GPUs in all)."
            )
        return Reservation(name, res.partition, nodes, 0, accounts, users)
    cores = spec.seats * res.cpus.initial
    return Reservation(name, res.partition, 0, cores, accounts, users)


def _slurm_time(t: datetime) -> str:
    # Slurm reads times in its own local zone; the hub hands them over in UTC with no zone
    # only where Slurm runs in UTC, so convert to the host's local time (what scontrol expects).
    return t.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def reservation_argv(r: Reservation, start: datetime, end: datetime) -> list[str]:
    """Pure: `scontrol create reservation …` as an argv list (no shell, no user strings)."""
    argv = [
        "scontrol",
        "create",
        "reservation",
        f"ReservationName={r.name}",
        f"StartTime={_slurm_time(start)}",
        f"EndTime={_slurm_time(end)}",
    ]
    if r.partition:
        argv.append(f"PartitionName={r.partition}")
    argv.append(f"NodeCnt={r.nodes}" if r.nodes else f"CoreCnt={r.cores}")
    if r.accounts:
        argv.append(f"Accounts={','.join(r.accounts)}")
    if r.users:
        argv.append(f"Users={','.join(r.users)}")
    return argv


def when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%d %b %Y %H:%M UTC").lstrip("0")


def join_refusal(
    *,
    title: str,
    start: datetime,
    end: datetime,
    ended: bool,
    seats: int,
    taken: int,
    already_in: bool,
    now: datetime,
    awaiting_approval: bool = False,
) -> str | None:
    """Pure: None if the user may take a seat now, else the sentence why not."""
    if awaiting_approval and not (ended or now >= end):
        return f"The workshop {title} awaits an admin's approval; its code works once approved."
    if ended or now >= end:
        return f"The workshop {title} ended at {when(end)}; its code no longer works."
    if now < start:
        return f"The workshop {title} opens at {when(start)}; come back then with the same code."
    if already_in:
        return None  # a second redemption is a no-op, not a second seat
    if taken >= seats:
        return (
            f"The workshop {title} is full ({seats} seats); ask the instructor whether "
            "another seat can be added."
        )
    return None


# -- temporary accounts ------------------------------------------------------------------------
#
# An account of the catalogue's `guest_accounts` pool is held by one person from its issue to
# its workshop's end. Before anybody else gets it, and as soon as that end passes (whether or
# not anybody acts), it is reset: the hub forgets its cookies and tokens, Slurm ends its jobs,
# and its home is emptied down to the site's /etc/skel.

#: Run as the guest account itself, so it can delete only what the guest could (symlinks are
#: not followed; a root-squashed NFS home is fine). `$1` is the home; a missing one is empty.
#: Folders the guest made unwritable are made writable first (errors there are not fatal: the
#: deletion's own errors are). Then the site's skeleton, as a new account starts with.
WIPE_SCRIPT = (
    'cd / || exit 1; [ -e "$1" ] || exit 0; '
    'chmod -R u+rwX -- "$1" 2>/dev/null; '
    'find "$1" -mindepth 1 -delete || exit 1; '
    '[ -d /etc/skel ] && cp -R /etc/skel/. "$1" 2>/dev/null; '
    "exit 0"
)


def as_account(username: str, *, root_here: bool) -> list[str]:
    """Pure: the argv prefix that runs a command as `username`: `runuser` where the hub runs
    as root on that machine, else `sudo -n` (the site's sudoers allows the hub's account)."""
    return switch_user(username, root=root_here)


def home_of(passwd_line: str, username: str) -> str:
    """Pure: the home folder in `getent passwd USER`'s line, or ValueError with the sentence
    why it is not one the hub will empty (only an absolute folder below the root, named
    without `..`, of that very account)."""
    try:
        account = account_from_getent(passwd_line)
    except ValueError:
        account = None
    if account is None or account.pw_name != username:
        raise ValueError(f"The system does not know the account {username}.")
    home = account.pw_dir
    parts = home.strip("/").split("/")
    if not home.startswith("/") or len(parts) < 2 or ".." in parts or "" in parts:
        raise ValueError(
            f"The home of {username} is {home!r}, which the hub does not empty; give workshop "
            "accounts homes of their own, e.g. /home/guest01."
        )
    return home


def reset_argvs(username: str, home: str, *, root_here: bool) -> list[list[str]]:
    """Pure: what resets `username` on a Slurm site, in order, each as the account itself:
    kill its running jobs at once (SIGKILL: no trap gets to write into the home), cancel the
    rest (pending ones too), empty its home."""
    me = as_account(username, root_here=root_here)
    return [
        [*me, "scancel", "--signal=KILL", f"--user={username}"],
        [*me, "scancel", f"--user={username}"],
        [*me, "sh", "-c", WIPE_SCRIPT, "naic-wipe", home],
    ]


def needs_reset(*, expires_at: datetime, reset_at: datetime | None, now: datetime) -> bool:
    """Pure: True when an issued account's window has passed and it was not reset since."""
    return expires_at <= now and (reset_at is None or reset_at < expires_at)


def guest_login_refusal(
    *,
    known: bool,
    password_ok: bool,
    expires_at: datetime | None,
    used_at: datetime | None,
    now: datetime,
) -> str | None:
    """Pure: None if this workshop account may log in with this password now, else why not.
    A wrong name and a wrong password read the same; the rest is said only to whoever knows
    the password."""
    if not known or not password_ok:
        return "That workshop account or password is not right."
    if expires_at is not None and expires_at <= now:
        return f"This workshop account expired at {when(expires_at)}, at the end of the workshop."
    if used_at is not None:
        return (
            f"This one-time password was already used, at {when(used_at)}; log in from the "
            "browser you used then, or ask the instructor for a new account."
        )
    return None


# -- password guessing -------------------------------------------------------------------------

#: Wrong workshop passwords one account takes in FAILURE_WINDOW_S, from anywhere: above, the
#: account is refused until the oldest failure ages out, whatever address a guesser shows.
FAILURES_PER_ACCOUNT = 10
#: Wrong workshop passwords one address sends in FAILURE_WINDOW_S, whatever the account: a
#: class behind one NAT typing passwords off a sheet stays well below.
FAILURES_PER_PEER = 50
FAILURE_WINDOW_S = 600.0


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return not address  # "": a Unix socket, on this machine too


def real_peer(socket_peer: str, forwarded_for: str | None) -> str:
    """Pure: the address a request came from. The socket's own address, unless that is this
    machine: the hub's proxies (configurable-http-proxy, and nginx where the site runs it)
    sit beside it, and each appends the address it saw to `X-Forwarded-For`. So: the last
    entry that is not this machine, read from the right; what lies left of it the client
    wrote itself. `X-Real-Ip`, which the hub's own `remote_ip` believes, is never read."""
    if not _loopback(socket_peer):
        return socket_peer
    for hop in reversed((forwarded_for or "").split(",")):
        hop = hop.strip()
        if hop and not _loopback(hop):
            return hop
    return socket_peer or "local"


@dataclass
class Failures:
    """Failed attempts per key within a sliding window; time is passed in (monotonic s).

    `take` counts an attempt before it is checked (so parallel guesses cannot all slip in
    before the first failure is counted) and `forgive` takes it back when it succeeded:
    only failures use up the budget."""

    limit: int
    window_s: float
    _seen: collections.defaultdict[str, collections.deque] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )

    def _prune(self, key: str, now: float) -> collections.deque:
        seen = self._seen[key]
        while seen and now - seen[0] >= self.window_s:
            seen.popleft()
        return seen

    def blocked(self, key: str, now: float) -> bool:
        return len(self._prune(key, now)) >= self.limit

    def take(self, key: str, now: float) -> bool:
        """Count an attempt; False (and nothing counted) when the budget is used up."""
        seen = self._prune(key, now)
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        return True

    def forgive(self, key: str, when: float) -> None:
        seen = self._seen.get(key)
        if seen and when in seen:
            seen.remove(when)
