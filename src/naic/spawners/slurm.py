"""The `slurm` backend: a session is a Slurm job, on batchspawner's start/stop logic.

What we change of `batchspawner.SlurmSpawner`: the script comes from a pure renderer fed
only by a validated `SessionRequest` (never raw `user_options`, never Jinja); commands run
as argv lists (no shell); job state comes from the site's shared `SlurmPoller`; an
unreachable controller means "unknown", so sessions survive a slurmctld outage; progress
says where the job stands in words.

A site with `submit.via: ssh` runs every Slurm command on its login node, over the hub's
one SSH connection to it (`naic.spawners.ssh`). There the session's variables travel in the
batch script (`script.export_lines`), never on a command line, and the account (home,
group) is the login node's, which the hub's machine may not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import re
from datetime import UTC, datetime

import batchspawner
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Any, Enum, Float, Set, Unicode, default, observe

from naic.hub.catalogue import Site
from naic.hub.usage import metrics
from naic.spawners import script, ssh
from naic.spawners.accounts import system_account_refusal
from naic.spawners.poller import (
    JobInfo,
    SlurmPoller,
    Unreachable,
    login_node,
    poller_for,
    run_argv,
    ssh_runner,
)
from naic.spawners.session_env import session_env

_log = logging.getLogger(__name__)

#: Slurm states after which the job will never run again, in words a user reads.
END_REASONS = {
    "COMPLETED": "the session ended",
    "CANCELLED": "cancelled",
    "TIMEOUT": "time limit reached",
    "PREEMPTED": "preempted by a higher-priority job",
    "OUT_OF_MEMORY": "out of memory",
    "NODE_FAIL": "node failure",
    "FAILED": "the server failed to start or crashed",
    "BOOT_FAIL": "node failure",
    "DEADLINE": "time limit reached",
}
#: Pending reasons from squeue, in words.
WAITING_FOR = {
    "Resources": "free GPUs or CPUs",
    "Priority": "jobs with higher priority",
    "ReqNodeNotAvail": "a node that is not available",
    "Reservation": "its reservation to begin",
    "None": "the scheduler",
}


#: What sbatch says when slurmctld is down or not answering.
UNREACHABLE = ("Unable to contact slurm controller", "Socket timed out", "Connection refused")


SACCT_ARGS = ["--noheader", "--allocations", "--parsable2", "--format=State", "--jobs"]


def end_reason_from_sacct(out: str) -> str:
    """Pure: words for the first state sacct prints ("CANCELLED by 1001" → "cancelled")."""
    words = out.split()
    return END_REASONS.get(words[0], "") if words else ""


def _job_name(user: str, server: str) -> str:
    """`naic-<user>[-<server>]`; server names are the user's own words, so keep safe letters."""
    name = f"naic-{user}" + (f"-{server}" if server else "")
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64]


def dask_job_name(job_id: str) -> str:
    """Name of a session's Dask worker jobs (as `naic.extensions.dask` submits them)."""
    return f"naic-dask-{job_id}"


async def cancel_dask_workers(job_id: str, user: str, run) -> None:
    """Cancel the Dask worker jobs of session job `job_id`, so none outlives its session.

    `run(argv)` runs a command with the spawner's privileges (raises RuntimeError on
    failure). scancel matching no job is fine; a failure is logged, not raised: the
    workers' death timeout ends them anyway."""
    try:
        await run(["scancel", f"--name={dask_job_name(job_id)}", f"--user={user}"])
    except RuntimeError as exc:
        _log.warning("scancel Dask workers of %s: %s", job_id, exc)


def minutes_from_slurm(text: str) -> int | None:
    """Pure: a Slurm duration (`30:00`, `1:30:00`, `2-00:00:00`, `45`) in whole minutes;
    None for UNLIMITED, N/A or anything else."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        h, mins, secs = a, b or 0, c or 0
    elif c is not None:  # hours:minutes:seconds
        h, mins, secs = a, b, c
    elif b is not None:  # minutes:seconds
        h, mins, secs = 0, a, b
    else:  # minutes
        h, mins, secs = 0, a, 0
    return (days or 0) * 1440 + h * 60 + mins + (1 if secs else 0)


def time_from_slurm(text: str) -> datetime | None:
    """Pure: Slurm's time without a zone (the cluster's local time) in UTC; None for N/A."""
    try:
        return datetime.fromisoformat(text.strip()).astimezone(UTC)
    except ValueError:
        return None


def _submit_error(site_title: str, message: str) -> web.HTTPError:
    """A failed sbatch as the sentence the student reads (503: try later; 400: won't fit)."""
    if any(marker in message for marker in UNREACHABLE):
        return web.HTTPError(
            503,
            f"The scheduler at {site_title} is not answering, so no session can be queued "
            "right now; running sessions are not affected. Please try again in a few minutes.",
        )
    detail = message.split("error:")[-1].strip().rstrip(".")
    return web.HTTPError(400, f"{site_title} refused the session: {detail}.")


def _login_node_error(site_title: str, exc: ssh.SSHError) -> web.HTTPError:
    """A login node the hub cannot use, as the sentence the student reads (503: try later)."""
    return web.HTTPError(
        503,
        f"The hub cannot use the login node of {site_title}, so no session was queued: {exc} "
        "Please try again later, and tell the hub's operators if it lasts.",
    )


def account_from_getent(line: str) -> pwd.struct_passwd:
    """Pure: `getent passwd NAME`'s line as a `pwd.struct_passwd` (ValueError if it is not
    one)."""
    fields = line.strip().split(":")
    if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
        raise ValueError(f"getent printed no account: {line!r:.120}")
    name, password, uid, gid, gecos, home, shell = fields
    return pwd.struct_passwd((name, password, int(uid), int(gid), gecos, home, shell))


class SlurmSpawner(batchspawner.SlurmSpawner):
    site = Unicode(help="Catalogue name of the site this session runs at (set by the router).")
    request = Any(help="The validated SessionRequest (set by the router).")
    catalogue = Any(help="The loaded Catalogue (set by the router).")

    submit_as = Enum(
        ["auto", "uid", "sudo"],
        "auto",
        help="""How jobs are submitted as the user: `uid` (`sbatch --uid/--gid`, the hub runs as
        root), `sudo` (`sudo -n -u USER sbatch`, the hub runs as a service account with a
        sudoers rule for sbatch and scancel), or `auto` (uid as root, else sudo).
        """,
    ).tag(config=True)

    refused_accounts = Set(
        Unicode(),
        help="""Accounts no session (nor estimate) ever runs as, besides root, the
        scheduler's own and every uid outside 1000–60000 (naic.spawners.accounts): e.g. a
        site's SlurmUser or service accounts with a people's uid.

        Example: c.SlurmSpawner.refused_accounts = {"slurmadm", "backup"}
        """,
    ).tag(config=True)

    status_max_age = Float(
        30.0,
        help="Seconds a shared squeue snapshot answers polls of running sessions.",
    ).tag(config=True)

    material_dir = Unicode(
        "",
        help="Folder copied into the home at the start of each session (never overwriting).",
    ).tag(config=True)

    @default("db")
    def _db_without_warning(self):
        # batchspawner 1.3 commits through the deprecated `db` once a job runs.
        return self._deprecated_db_session

    _info: JobInfo | None = None
    #: The session job whose Dask workers were cancelled (once per job is enough).
    _dask_cancelled_for: str = ""

    # --- how commands run -----------------------------------------------------------

    @property
    def _account(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(self.user.name)
        except KeyError:
            raise RuntimeError(
                f"There is no account {self.user.name!r} at {self.site}: ask the site's "
                "support to create it."
            ) from None

    async def _site_account(self) -> pwd.struct_passwd:
        """The user's account where the job runs: here, or on the site's login node; never
        a system account (a hub user named `root` must not get a root job)."""
        account = await self._lookup_account()
        refused = system_account_refusal(
            account.pw_name, account.pw_uid, self.site, self.refused_accounts
        )
        if refused:
            raise web.HTTPError(403, refused)
        return account

    async def _lookup_account(self) -> pwd.struct_passwd:
        target = self._login_node
        if target is None:
            return self._account
        code, out, err = await ssh.run(target, ["getent", "passwd", self.user.name])
        if code == 2:  # getent: no such key
            raise RuntimeError(
                f"There is no account {self.user.name!r} at {self.site}: ask the site's "
                "support to create it."
            )
        if code:
            raise RuntimeError(f"getent failed at {self.site}: {err.strip()}")
        return account_from_getent(out)

    @property
    def _site_facts(self) -> Site | None:
        return self.catalogue.sites.get(self.site) if self.catalogue is not None else None

    @property
    def _login_node(self) -> ssh.Target | None:
        """The site's login node for `submit.via: ssh`; None: Slurm commands run here."""
        return login_node(self._site_facts)

    def _poller(self) -> SlurmPoller:
        return poller_for(self.site, self._site_facts)

    def _as_user(self) -> list[str]:
        target = self._login_node
        root = os.geteuid() == 0 if target is None else target.access.user == "root"
        sudo = self.submit_as == "sudo" or (self.submit_as == "auto" and not root)
        return ["sudo", "-n", "-u", self.user.name] if sudo else []

    async def _run(self, argv: list[str], stdin: str | None = None) -> str:
        target = self._login_node
        if target is not None:  # raises SSHError (a RuntimeError) when it does not answer
            code, out, err = await ssh.run(target, argv, stdin=stdin)
            if code:
                raise RuntimeError(f"{argv[0]} failed at {self.site}: {err.strip()}")
            return out
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.get_env(),
        )
        out, err = await proc.communicate(stdin.encode() if stdin else None)
        if proc.returncode:
            raise RuntimeError(f"{argv[0]} failed at {self.site}: {err.decode().strip()}")
        return out.decode()

    def user_env(self, env: dict) -> dict:
        # Over SSH the job's USER, HOME and SHELL come from the user's login environment on
        # the node (`--export=NONE`); the hub's machine may have no such account.
        return env if self._login_node is not None else super().user_env(env)

    def get_env(self) -> dict:
        env = super().get_env()
        if self.request is not None and self.catalogue is not None:  # the session's own facts
            now = datetime.now(UTC)
            env.update(session_env(self.request, self.catalogue, self.user.name, started_at=now))
        return env

    def _command(self) -> list[str]:
        # The launcher reports the port to our callback and runs the server in one process.
        cmd = ["python", "-m", "naic.extensions.launch", "--report-port"]
        if self.material_dir:
            cmd += ["--material", self.material_dir]
        return [*cmd, "--", "jupyterhub-singleuser", *self.get_args()]

    # --- batchspawner's hooks -------------------------------------------------------

    async def submit_batch_script(self) -> str:
        title = self.catalogue.sites[self.site].title
        remote = self._login_node is not None
        try:
            account = await self._site_account()
        except ssh.SSHError as exc:  # before sbatch: nothing was submitted
            raise _login_node_error(title, exc) from None
        text = script.render_batch_script(
            self.request,
            self.catalogue,
            job_name=_job_name(self.user.name, self.name),
            command=self._command(),
            workdir=account.pw_dir,
            output=f"{account.pw_dir}/.naic-session-%j.log",
            exports=script.job_variables(self.get_env()) if remote else None,
        )
        argv = script.sbatch_argv(
            as_root=not self._as_user(),
            user=account.pw_name,
            group=str(account.pw_gid),
            sudo=bool(self._as_user()),
            keep_env=not remote,
        )
        self.log.info("Submitting %s's session to %s: %s", self.user.name, self.site, argv)
        try:
            out = await self._run(argv, stdin=text)
        except ssh.SSHError as exc:
            raise _login_node_error(title, exc) from None
        except RuntimeError as exc:
            raise _submit_error(title, str(exc)) from None
        self.job_id = str(script.parse_parsable(out))
        return self.job_id

    async def query_job_status(self) -> batchspawner.JobStatus:
        return await self._status(self.status_max_age)

    async def _status(self, max_age: float, since: float | None = None) -> batchspawner.JobStatus:
        if not self.job_id:
            self.job_status = ""
            return batchspawner.JobStatus.NOTFOUND
        try:
            info = await self._poller().job(self.job_id, max_age, since)
        except Unreachable as exc:
            self.job_status = f"UNKNOWN {exc}"
            return batchspawner.JobStatus.UNKNOWN
        self._info = info
        self.job_status = f"{info.state} {info.node}" if info else ""
        if info and info.state in ("RUNNING", "COMPLETING"):
            return batchspawner.JobStatus.RUNNING
        if info and info.state in ("PENDING", "CONFIGURING", "REQUEUED", "RESIZING"):
            return batchspawner.JobStatus.PENDING
        # The session's job ended (or Slurm forgot it): its Dask workers go too.
        await self._cancel_dask_workers()
        if info and info.state in END_REASONS:
            self.end_reason = END_REASONS[info.state]
        elif info is None and not self.end_reason:
            # squeue forgets a job MinJobAge after it ends; accounting, if any, remembers.
            argv = ["sacct", *SACCT_ARGS, self.job_id]
            target = self._login_node
            try:
                if target is None:
                    code, out, _ = await run_argv(argv, limit_s=10)
                else:
                    code, out, _ = await ssh_runner(target, limit_s=10)(argv)
            except OSError:  # no sacct on this host
                code, out = 1, ""
            self.end_reason = end_reason_from_sacct(out) if code == 0 else ""
        return batchspawner.JobStatus.NOTFOUND

    async def stop(self, now: bool = False) -> None:
        """Cancel the job; unless `now`, wait (about 10 s at most) until Slurm shows it gone.

        Asks for snapshots taken after the cancel: batchspawner's loop would read the shared,
        still-fresh snapshot that says RUNNING and always wait its full 10 s."""
        poller = self._poller()
        cancelled_at = poller.clock()
        await self.cancel_batch_job()
        if now or not self.job_id:
            return
        for _ in range(40):
            status = await self._status(self.startup_poll_interval, since=cancelled_at)
            ending = self._info is not None and self._info.state == "COMPLETING"
            if ending or status in (batchspawner.JobStatus.NOTFOUND,):
                return
            await asyncio.sleep(self.startup_poll_interval)
            cancelled_at = poller.clock()
        self.log.warning("Job %s of %s did not end after scancel", self.job_id, self.user.name)

    async def cancel_batch_job(self) -> None:
        if not self.job_id:
            return
        try:
            await self._run([*self._as_user(), "scancel", self.job_id])
        except RuntimeError as exc:  # e.g. the job ended meanwhile: nothing left to cancel
            self.log.warning("scancel %s: %s", self.job_id, exc)
        await self._cancel_dask_workers()

    async def _cancel_dask_workers(self) -> None:
        """Once per session job: cancel the Dask workers it started (`naic.extensions.dask`)."""
        if not self.job_id or self._dask_cancelled_for == self.job_id:
            return
        self._dask_cancelled_for = self.job_id
        await cancel_dask_workers(
            self.job_id, self.user.name, lambda argv: self._run([*self._as_user(), *argv])
        )

    async def time_limit(self) -> tuple[int | None, datetime | None]:
        """The job's time limit in minutes and its end, as Slurm has them now."""
        out = await self._run(["squeue", "-h", "-j", self.job_id, "-o", "%l|%e"])
        limit, _, end = out.strip().partition("|")
        return minutes_from_slurm(limit), time_from_slurm(end)

    async def set_time_limit(self, minutes: int) -> None:
        """Change the job's time limit. Run as the hub, never as the user: Slurm lets users
        only lower their limits, so the hub (root, or a service account that is a Slurm
        operator) raises them."""
        argv = ["scontrol", "update", f"JobId={self.job_id}", f"TimeLimit={minutes}"]
        await self._run(argv)

    def state_ispending(self) -> bool:
        return bool(self._info and self._info.state == "PENDING")

    def state_isrunning(self) -> bool:
        return bool(self._info and self._info.state in ("RUNNING", "COMPLETING"))

    def state_isunknown(self) -> bool:
        return self.job_status.startswith("UNKNOWN")

    def state_gethost(self) -> str:
        return self._info.node if self._info else ""

    end_reason = Unicode("", help="Why the last job of this session ended, in words.")

    @property
    def ended_at(self) -> datetime | None:
        """When Slurm says the job ended, if it still remembers (for the usage ledger)."""
        info = self._info
        if info is None or info.state not in END_REASONS or info.end in ("", "N/A", "Unknown"):
            return None
        try:  # Slurm prints the cluster's local time without a zone
            return datetime.fromisoformat(info.end).astimezone(UTC)
        except ValueError:
            return None

    startup_poll_interval = Float(
        0.25,
        help="""Seconds between job-state checks while a session starts. The site's poller
        shares one squeue among all starting sessions, so this does not multiply.""",
    ).tag(config=True)

    @observe("port")
    def _port_reported(self, change) -> None:
        if change.new and self._port_event is not None:
            self._port_event.set()

    _port_event: asyncio.Event | None = None

    async def start(self) -> tuple[str, int]:
        """Submit, wait until Slurm runs the job and the job reports its port; no fixed sleeps
        after the port arrives (the callback wakes us), unlike batchspawner's 0.5 s loops."""
        self.port = 0
        self._port_event = asyncio.Event()
        submitted = self._poller().clock()
        await self.submit_batch_script()
        # Only a squeue begun after sbatch answered must know the job: one that another
        # session started while this sbatch ran may not, and must not make the job "gone".
        accepted = self._poller().clock()
        while True:
            # A reported port proves the job runs: fetch its node at once.
            age = 0.0 if self._port_event.is_set() else self.startup_poll_interval
            status = await self._status(age, since=accepted)
            if status == batchspawner.JobStatus.RUNNING:
                waited = self._poller().clock() - submitted
                metrics.QUEUE_WAIT.labels(self.site).observe(waited)
                break
            if status == batchspawner.JobStatus.NOTFOUND:
                why = self.end_reason or "it disappeared from the queue"
                self.clear_state()
                raise web.HTTPError(500, f"The session's job ended before it started: {why}.")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._port_event.wait(), self.startup_poll_interval)
        self.ip = self.state_gethost()
        await self._port_event.wait()
        await self._wait_http()
        self.log.info("Job %s of %s runs on %s:%s", self.job_id, self.user.name, self.ip, self.port)
        return self.ip, self.port

    server_poll_interval = Float(
        0.1,
        help="""Seconds between checks that the started server answers HTTP. JupyterHub's own
        check backs off exponentially (0.2, 0.6, 1.4, 3 s…) and so finds a server late.""",
    ).tag(config=True)

    async def _wait_http(self) -> None:
        """Return as soon as the server answers (any HTTP status), at most `http_timeout`."""
        url = f"http://{self.ip}:{self.port}{self.server.base_url if self.server else '/'}api"
        client = AsyncHTTPClient()
        deadline = asyncio.get_running_loop().time() + self.http_timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                resp = await client.fetch(url, raise_error=False, request_timeout=2)
                if resp.code != 599:  # any answer, even 404, means it listens
                    return
            except (OSError, HTTPClientError):  # not listening yet
                pass
            await asyncio.sleep(self.server_poll_interval)
        # JupyterHub's own check then reports the failure in its usual words.

    async def progress(self):
        """Events a student reads while waiting: queue position, node, server start."""
        last = None
        while True:
            info = self._info
            if info is None:
                message = f"Submitting to {self.site}…"
            elif info.state == "PENDING":
                why = WAITING_FOR.get(info.reason, info.reason)
                when = "" if info.start in ("N/A", "") else f", expected start {info.start[11:16]}"
                message = (
                    f"Queued at {self.site}, position {info.position} in partition "
                    f"{info.partition}, waiting for {why}{when}"
                )
            elif info.state in ("RUNNING", "COMPLETING"):
                message = f"Starting on node {info.node}"
                if self.port:
                    message = f"Jupyter server on {info.node} is starting"
            else:
                message = f"Job {info.state.lower()}"
            if message != last:
                yield {"message": message}
                last = message
            if self.port:
                return
            await asyncio.sleep(1)
