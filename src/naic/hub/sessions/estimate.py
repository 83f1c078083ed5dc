"""`GET /hub/api/naic/estimate`: when would this session start, asked before starting it.

The spawn form calls it as the user changes their choices. The options are the query
arguments (the same names as `user_options`) and go through `parse_request`, the one gate,
so a bad value gets the same 400 sentence as a bad spawn. Local sites start at once. For a
Slurm site the hub runs `sbatch --test-only` as the user with the batch script the session
would have (only its command is a harmless `true`), which makes Slurm plan the job without
queueing it, and counts the jobs already pending in the partition.

    {"start": "2026-11-27T04:32:00+00:00", "wait_s": 1200, "ahead": 3,
     "message": "Expected start in about 20 min, behind 3 jobs"}

A scheduler that does not answer gives 503 with a sentence, never a guess.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pwd
from collections.abc import Awaitable, Callable
from datetime import datetime

from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from naic.hub.catalogue import Catalogue
from naic.spawners import nodes, ssh
from naic.spawners.accounts import system_account_refusal
from naic.spawners.poller import login_node
from naic.spawners.request import RequestError, SessionRequest, options_from_form, parse_request
from naic.spawners.script import parse_test_only, render_batch_script, test_only_argv
from naic.spawners.slurm import account_from_getent

#: Where the handler is mounted, below the hub's prefix (`/hub/`).
ESTIMATE_PATH = r"/api/naic/estimate"
#: How long sbatch and squeue may take before the scheduler counts as not answering.
LIMIT_S = 15.0
#: Estimates in flight at once, hub-wide: each one is two RPCs to slurmctld.
_SLOTS = asyncio.Semaphore(4)
#: What sbatch says when it cannot reach slurmctld (rather than refusing the job).
_UNREACHABLE = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Zero Bytes were transmitted",
    "temporarily unable",
    "did not answer within",
)

Run = Callable[[list[str], str | None], Awaitable[tuple[int, str, str]]]

STARTS_NOW = "Starts now"


def start_message(wait_s: float, ahead: int) -> str:
    """Pure: a plain sentence for an expected wait and the jobs pending before it."""
    if wait_s < 60:
        return STARTS_NOW
    minutes = round(wait_s / 60)
    if minutes < 60:
        when = f"in about {minutes} min"
    elif minutes < 48 * 60:
        hours, rest = divmod(5 * round(minutes / 5), 60)  # no false precision past an hour
        when = f"in about {hours} h" + (f" {rest} min" if rest else "")
    else:
        when = f"in about {round(minutes / (24 * 60))} days"
    behind = f", behind {ahead} job{'s' if ahead != 1 else ''}" if ahead > 0 else ""
    return f"Expected start {when}{behind}"


def slurm_answer(start: datetime, now: datetime, ahead: int) -> dict:
    """Pure: the JSON answer from Slurm's expected start (naive local time, as Slurm
    prints it, like `now`) and the number of pending jobs in the partition."""
    wait_s = max(0, math.ceil((start - now).total_seconds()))
    return {
        "start": start.astimezone().isoformat(timespec="seconds"),
        "wait_s": wait_s,
        "ahead": ahead,
        "message": start_message(wait_s, ahead),
    }


class SlurmUnreachable(Exception):
    """The scheduler did not answer; `str()` is a sentence for the user."""


class SlurmRefused(Exception):
    """Slurm would not take this job; `str()` is a sentence for the user."""


async def run_with_stdin(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
    """Run a command without a shell, with a small fixed environment (never the hub's own,
    which holds its secrets, for a command that may run as the user)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if "SLURM_CONF" in os.environ:
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), LIMIT_S
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} did not answer within {LIMIT_S:g} s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def estimate_slurm(
    req: SessionRequest,
    cat: Catalogue,
    *,
    user: str,
    group: str,
    as_root: bool,
    sudo: bool,
    run: Run = run_with_stdin,
    now: Callable[[], datetime] = datetime.now,
) -> dict:
    """Ask Slurm when `req` would start for `user`; raises SlurmUnreachable or SlurmRefused."""
    site = cat.sites[req.site]
    partition = site.resources[req.resource].partition or ""
    text = render_batch_script(
        req,
        cat,
        job_name=f"naic-estimate-{user}",
        command=["true"],
        workdir="/tmp",  # noqa: S108 - never used: --test-only runs nothing
        output="/dev/null",
    )
    argv = test_only_argv(as_root=as_root, user=user, group=group, sudo=sudo)
    pending = [
        "squeue",
        "--noheader",
        "--states=PENDING",
        f"--partition={partition}",
        "--format=%i",
    ]
    async with _SLOTS:
        (code, _, err), (qcode, qout, _) = await asyncio.gather(run(argv, text), run(pending, None))
    silent = (
        f"The scheduler at {site.title} is not answering right now, so there is no start "
        "estimate; try again in a minute."
    )
    if code != 0:
        if code == 124 or any(sign in err for sign in _UNREACHABLE):
            raise SlurmUnreachable(silent)
        raise SlurmRefused(f"{site.title} would refuse this session: {_first_error(err)}.")
    if qcode != 0:
        raise SlurmUnreachable(silent)
    start = parse_test_only(err)
    if start is None:
        raise SlurmUnreachable(
            f"The scheduler at {site.title} gave no start estimate; try again in a minute."
        )
    ahead = sum(1 for line in qout.splitlines() if line.strip())
    return slurm_answer(start, now(), ahead)


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip().removeprefix("sbatch: error: ").strip()
        if line:
            return line.rstrip(".")[:200]
    return "it gave no reason"


class EstimateHandler(APIHandler):
    """The endpoint; authenticated as the user whose session it would be."""

    async def get(self) -> None:
        # Not @web.authenticated: on a GET that redirects to the login page, and an API
        # answers with a status the form's script can read.
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Log in to see when a session would start.")
        if getattr(user, "kind", None) != "user":
            raise web.HTTPError(403, "Start estimates are for users, not services.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(
                403, "This token may not start servers, so it gets no start estimates."
            )
        spawner = user.spawner
        if not hasattr(spawner, "catalogue") or not hasattr(spawner, "user_facts"):
            raise web.HTTPError(404, "This hub's spawner has no service catalogue to estimate.")
        cat: Catalogue = spawner.catalogue
        query = {
            key: [v.decode("utf-8", errors="replace") for v in values]
            for key, values in self.request.query_arguments.items()
        }
        try:
            req = parse_request(options_from_form(query), cat, spawner.user_facts())
        except RequestError as exc:
            raise web.HTTPError(400, str(exc)) from None

        site = cat.sites[req.site]
        if site.backend == "nodes":
            self.finish(json.dumps(pool_estimate(cat, req)))
            return
        if site.backend != "slurm":
            self.finish(json.dumps({"start": "now", "message": STARTS_NOW}))
            return
        target = login_node(site)
        as_root, sudo = _submit_mode(spawner)
        try:
            if target is None:
                account = pwd.getpwnam(user.name)
            else:  # the login node's account: the hub's machine may have none
                code, out, _ = await ssh.run(target, ["getent", "passwd", user.name])
                if code:
                    raise KeyError(user.name)
                account = account_from_getent(out)
                as_root, sudo = target.access.user == "root", target.access.user != "root"
        except KeyError:
            raise web.HTTPError(
                403,
                f"You have no account at {site.title} yet: ask the site's support to create it.",
            ) from None
        except ssh.SSHError as exc:
            raise web.HTTPError(503, f"{site.title} cannot be asked now: {exc}") from None
        refused = system_account_refusal(
            account.pw_name,
            account.pw_uid,
            req.site,
            spawner.config.SlurmSpawner.get("refused_accounts", set()),
        )
        if refused:  # the estimate runs sbatch --test-only as the account: not as the system's
            raise web.HTTPError(403, refused)
        try:
            answer = await estimate_slurm(
                req,
                cat,
                user=account.pw_name,
                group=str(account.pw_gid),
                as_root=as_root,
                sudo=sudo,
                **({} if target is None else {"run": _over_ssh(target)}),
            )
        except SlurmUnreachable as exc:
            raise web.HTTPError(503, str(exc)) from None
        except SlurmRefused as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.finish(json.dumps(answer))


def _over_ssh(target):
    async def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        try:
            return await ssh.run(target, argv, stdin=stdin, timeout_s=LIMIT_S)
        except ssh.SSHError as exc:
            return 255, "", str(exc)

    return run


def pool_estimate(cat: Catalogue, req: SessionRequest) -> dict:
    """A node pool: now, if a host has the GPUs free; else who is waiting."""
    site = cat.sites[req.site]
    res = site.resources[req.resource]
    kind = res.gpu.type if res.gpu else None
    pool = nodes.pool_for(req.site)
    if nodes.place(site.hosts, kind, req.gpus, pool.taken(), set(pool.down)) is not None:
        return {"start": "now", "message": STARTS_NOW}
    message = nodes.full_message(site, kind, len(pool.queue))
    if site.when_full == "refuse":
        message = message.split(";")[0] + "; the hub takes no more until one is free."
    return {"start": None, "message": message}


def _submit_mode(spawner) -> tuple[bool, bool]:
    """(as_root, sudo), decided as the Slurm backend decides it from its `submit_as`."""
    mode = spawner.child_options.get("slurm", {}).get("submit_as") or spawner.config.get(
        "SlurmSpawner", {}
    ).get("submit_as", "auto")
    sudo = mode == "sudo" or (mode == "auto" and os.geteuid() != 0)
    return not sudo, sudo
