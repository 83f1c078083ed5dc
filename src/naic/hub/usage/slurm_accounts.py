"""Catalogue projects as Slurm accounts: `naic slurm accounts --catalogue FILE [--apply]`.

Each project of a site with `accounting: slurm` is a Slurm account (`slurm_account`, else
the project's name) in slurmdbd, with its members' user names as users and its GPU-hour
budget as `GrpTRESMins=gres/gpu=<minutes>`, so that Slurm itself holds batch jobs outside
the hub to the same budget (where the site sets `AccountingStorageEnforce=limits`; its
`PriorityUsageResetPeriod` should match the budget period). Without `--apply` the command
only says what differs (exit 1 if anything does); with it, it runs the `sacctmgr` commands.

Members are identities; a member's user name is the identity itself for plain names, its
local part for identities at the `identity.domains` of a `local_part` site, else unknown
here (`ldap`, `mapping`, IdP groups): such users are added when the operator names them.
"""

from __future__ import annotations

from dataclasses import dataclass

from naic.hub import catalogue
from naic.hub.usage.slurm_usage import accounted_sites, slurm_account


@dataclass(frozen=True)
class Association:
    account: str
    users: frozenset[str]
    gpu_minutes: int | None  # the budget in GPU-minutes; None: no limit


def user_name(cat: catalogue.Catalogue, member: str) -> str | None:
    """Pure: the user name of a project member, where the catalogue alone says it."""
    if "@" not in member:
        return member
    ident = cat.identity
    if ident is None or ident.usernames != "local_part":
        return None
    local, _, domain = member.partition("@")
    return local if domain in ident.domains else None


def wanted(cat: catalogue.Catalogue) -> tuple[list[Association], list[str]]:
    """Pure: the associations the catalogue asks for (none without a site with Slurm's
    accounting), and the members whose user names it does not know."""
    if not accounted_sites(cat):
        return [], []
    out, unknown = [], []
    for name, p in sorted(cat.projects.items()):
        users = set()
        for member in p.members:
            user = user_name(cat, member)
            if user is None:
                unknown.append(f"{member} ({name})")
            else:
                users.add(user)
        minutes = None if p.gpu_hours is None else round(p.gpu_hours * 60)
        out.append(Association(slurm_account(cat, name), frozenset(users), minutes))
    return out, unknown


SHOW = ["sacctmgr", "--noheader", "--parsable2", "show", "associations",
        "format=Account,User,GrpTRESMins"]  # fmt: skip


def current(text: str) -> dict[str, Association]:
    """Pure: what slurmdbd has, from `SHOW`'s output."""
    users: dict[str, set[str]] = {}
    minutes: dict[str, int | None] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3:
            continue
        account, user, tres = parts[:3]
        users.setdefault(account, set())
        if user:
            users[account].add(user)
        else:
            gpu = next(
                (t.split("=", 1)[1] for t in tres.split(",") if t.startswith("gres/gpu=")), None
            )
            minutes[account] = int(gpu) if gpu else None
    return {a: Association(a, frozenset(u), minutes.get(a)) for a, u in users.items()}


def plan(want: list[Association], have: dict[str, Association]) -> list[tuple[str, list[str]]]:
    """Pure: (what differs, the sacctmgr command that fixes it), in the order to run."""
    steps = []
    for w in want:
        h = have.get(w.account)
        if h is None:
            add = ["sacctmgr", "-i", "add", "account", w.account, "Organization=naic"]
            steps.append((f"account {w.account} is missing", add))
        had = h.gpu_minutes if h else None
        if had != w.gpu_minutes:
            limit = -1 if w.gpu_minutes is None else w.gpu_minutes
            slurm = "no limit" if had is None else f"{had}"
            what = f"account {w.account}: GPU budget {limit} GPU-minutes (Slurm has {slurm})"
            where = ["where", f"name={w.account}", "set", f"GrpTRESMins=gres/gpu={limit}"]
            steps.append((what, ["sacctmgr", "-i", "modify", "account", *where]))
        for user in sorted(w.users - (h.users if h else frozenset())):
            add = ["sacctmgr", "-i", "add", "user", user, f"account={w.account}"]
            steps.append((f"user {user} is not in account {w.account}", add))
    return steps


async def sync(cat: catalogue.Catalogue, apply: bool, say=print) -> int:
    """`naic slurm accounts`: print what differs at each site with Slurm's accounting; with
    `apply`, fix it. 0 when nothing differs (or all was fixed), else 1."""
    from naic.spawners.site import site_for

    want, unknown = wanted(cat)
    if not want:
        say("No site has `accounting: slurm`: budgets are counted by the hub's ledger.")
        return 0
    for member in unknown:
        say(f"note: {member}: no user name in the catalogue; add it with sacctmgr by hand")
    differs = False
    for name in sorted(accounted_sites(cat)):
        site = site_for(cat, name)
        try:
            steps = plan(want, current(await site.call(SHOW, timeout=30)))
        except RuntimeError as exc:
            say(f"{name}: slurmdbd does not answer sacctmgr: {str(exc).strip()}")
            return 1
        if not steps:
            say(f"{name}: every project's account, users and GPU budget are in Slurm")
        for what, argv in steps:
            if not apply:
                say(f"{name}: {what}; to fix: {' '.join(argv)}")
                differs = True
                continue
            try:
                await site.call(argv, timeout=30)
            except RuntimeError as exc:
                say(f"{name}: {what}; `{' '.join(argv)}` failed: {str(exc).strip()}")
                return 1
            say(f"{name}: fixed: {what}")
    if differs:
        say("Run again with --apply to make these changes.")
    return 1 if differs else 0


def add_parser(sub) -> None:
    """`naic slurm accounts --catalogue FILE [--apply]`."""
    slurm = sub.add_parser("slurm", help="Slurm's side of the catalogue (accounts, budgets)")
    actions = slurm.add_subparsers(dest="action", required=True, metavar="ACTION")
    acc = actions.add_parser(
        "accounts",
        help="check (or with --apply, create) the Slurm accounts, users and GPU budgets of "
        "the catalogue's projects at sites with `accounting: slurm`",
    )
    acc.add_argument("--catalogue", required=True, help="the catalogue YAML file")
    acc.add_argument("--apply", action="store_true", help="run the sacctmgr commands")


def run(args) -> int:
    import asyncio
    import sys

    try:
        cat = catalogue.load(args.catalogue)
    except catalogue.CatalogueError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    return asyncio.run(sync(cat, args.apply))
