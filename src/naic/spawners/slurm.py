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
import math
import pwd
from datetime import UTC, datetime

import batchspawner
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Enum, Float, Set, Unicode, default, observe

from naic.spawners import batch, script, ssh
from naic.spawners.backend import Backend, StartFailed
from naic.spawners.estimate import LIMIT_S, SlurmRefused, SlurmUnreachable, estimate_slurm
from naic.spawners.poller import JobInfo, SlurmPoller, Unreachable
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import session_env
from naic.spawners.site import NoAccount, SystemAccount
from naic.spawners.slurm_text import (
    END_REASONS,
    SACCT_ARGS,
    WAITING_FOR,
    dask_job_name,
    end_from_sacct,
    end_reason_from_sacct,
    failure_from_log,
    job_name,
    login_node_error,
    minutes_from_slurm,
    reason_from_log,
    reservation_end,
    submit_error,
    time_from_slurm,
)

_log = logging.getLogger(__name__)


async def cancel_dask_workers(job_id: str, user: str, run) -> None:
    """Cancel the Dask worker jobs of session job `job_id`, so none outlives its session.

    `run(argv)` runs a command with the spawner's privileges (raises RuntimeError on
    failure). scancel matching no job is fine; a failure is logged, not raised: the
    workers' death timeout ends them anyway."""
    try:
        await run(["scancel", f"--name={dask_job_name(job_id)}", f"--user={user}"])
    except RuntimeError as exc:
        _log.warning("scancel Dask workers of %s: %s", job_id, exc)


class SlurmSpawner(Backend, batchspawner.SlurmSpawner):
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
        30.0, help="Seconds a shared squeue snapshot answers polls of running sessions."
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

    async def _site_account(self) -> pwd.struct_passwd:
        """The user's account where the job runs: here, or on the site's login node; never
        a system account (a hub user named `root` must not get a root job)."""
        try:
            site, refused = self.site_runtime, self.refused_accounts
            return await site.account(self.user.name, also_refused=refused)
        except NoAccount:
            why = f"There is no account {self.user.name!r} at {self.site}"
            raise RuntimeError(f"{why}: ask the site's support to create it.") from None
        except SystemAccount as exc:
            raise web.HTTPError(403, str(exc)) from None

    @property
    def _login_node(self) -> ssh.Target | None:
        """The site's login node for `submit.via: ssh`; None: Slurm commands run here."""
        return self.site_runtime.login_node

    def _poller(self) -> SlurmPoller:
        return self.site_runtime.poller

    def _as_user(self) -> list[str]:
        """How Slurm commands run for the user: `sudo -n -u USER` where the hub is no Slurm
        operator (root), else as the hub itself (sbatch then takes `--uid`)."""
        auto = self.submit_as == "auto" and not self.site_runtime.root_at()
        return ["sudo", "-n", "-u", self.user.name] if self.submit_as == "sudo" or auto else []

    async def _run(self, argv: list[str], stdin: str | None = None, env: dict | None = None) -> str:
        """A Slurm command where the site's run (`Site.call`): its output, or RuntimeError
        with Slurm's words (`ssh.SSHError` when the login node does not answer)."""
        return await self.site_runtime.call(argv, stdin=stdin, env=env)

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
            raise login_node_error(title, exc) from None
        text = script.render_batch_script(
            self.request,
            self.catalogue,
            job_name=job_name(self.user.name, self.name),
            command=self._command(),
            workdir=account.pw_dir,
            output=f"{account.pw_dir}/.naic-session-%j.log",
            exports=script.job_variables(self.get_env()) if remote else None,
        )
        # The job's variables travel in sbatch's environment, unless in the script.
        self.job_id = await self._sbatch(account, text, env=None if remote else self.get_env())
        return self.job_id

    async def _sbatch(self, account: pwd.struct_passwd, text: str, env: dict | None) -> str:
        """Submit `text` as the user: the job id, or the sentence why not (HTTPError). `env`:
        sbatch's environment for `--export=ALL`; None: the script exports its own."""
        title = self.catalogue.sites[self.site].title
        argv = script.sbatch_argv(
            as_root=not self._as_user(),
            user=account.pw_name,
            group=str(account.pw_gid),
            sudo=bool(self._as_user()),
            keep_env=env is not None,
        )
        self.log.info("Submitting a job of %s to %s: %s", self.user.name, self.site, argv)
        try:
            out = await self._run(argv, stdin=text, env=env)
        except ssh.SSHError as exc:
            raise login_node_error(title, exc) from None
        except RuntimeError as exc:
            raise submit_error(title, str(exc)) from None
        return str(script.parse_parsable(out))

    async def notebook_job(
        self, req: SessionRequest, notebook: str, *, submit: bool
    ) -> tuple[str, str, str | None]:
        """A notebook as a batch job (`naic.spawners.batch`): its script, the user's home
        there and, with `submit`, its job id. None of the session's variables reach it."""
        try:
            account = await self._site_account()
        except ssh.SSHError as exc:
            raise login_node_error(self.catalogue.sites[self.site].title, exc) from None
        text = batch.render(req, self.catalogue, home=account.pw_dir, notebook=notebook)
        job_id = await self._sbatch(account, text, env=None) if submit else None
        return text, account.pw_dir, job_id

    async def _start_failed(self) -> StartFailed:
        """The job ended before its server answered: why, from the last lines of its log."""
        log, tail = await self._log_tail()
        why = failure_from_log(tail) or self.end_reason or "its job ended"
        self.log.warning("Job %s ended before its server answered: %s", self.job_id, why)
        self.clear_state()
        return StartFailed(why, log, self.catalogue.sites[self.site].title)

    async def _log_tail(self) -> tuple[str, str]:
        """The job log's path and last lines ("" if unreadable), read as the user (a link?)."""
        log = ""
        try:
            account = await self._site_account()
            log = f"{account.pw_dir}/.naic-session-{self.job_id}.log"
            tail = await self.site_runtime.run(
                ["tail", "-n", "20", log], as_user=account.pw_name, timeout=15
            )
            return log, tail.out if tail.code == 0 else ""
        except (RuntimeError, OSError) as exc:
            self.log.warning("Could not read the log of job %s: %s", self.job_id, exc)
            return log, ""

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
            found = await self.site_runtime.run(["sacct", *SACCT_ARGS, self.job_id], timeout=10)
            if found.code == 0:
                self.end_reason = end_reason_from_sacct(found.out)
                self._sacct_end = end_from_sacct(found.out)
        if self.end_reason == END_REASONS["FAILED"]:  # killed for its memory, says the log?
            self.end_reason = reason_from_log((await self._log_tail())[1]) or self.end_reason
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

    # --- the backend contract ------------------------------------------------------------

    @property
    def extendable(self) -> str | None:
        return None if self.job_id else super().extendable

    async def extend(self, hours: float) -> None:
        limit, _ = await self.time_limit()
        await self.set_time_limit((limit or 0) + math.ceil(round(hours * 60, 6)))

    async def reservation_end(self, name: str) -> datetime | None:
        """When reservation `name` ends (None: Slurm no longer knows it); RuntimeError
        when the scheduler does not answer."""
        try:
            text = await self._run(["scontrol", "show", "reservation", name])
        except RuntimeError as exc:
            if self.site_runtime.unreachable(exc):
                raise
            return None
        return reservation_end(text)

    def state(self) -> dict:
        node = self._info.node if self._info else ""
        return {"backend": "slurm", "where": node, "job": self.job_id or ""}

    async def estimate(self, req: SessionRequest) -> dict:
        """`sbatch --test-only` as the user, where the site's Slurm commands run."""
        site = self.site_runtime
        try:
            account = await site.account(self.user.name, also_refused=self.refused_accounts)
        except NoAccount:
            raise web.HTTPError(
                403,
                f"You have no account at {site.title} yet: ask the site's support to create it.",
            ) from None
        except SystemAccount as exc:  # the estimate runs as the account: not as the system's
            raise web.HTTPError(403, str(exc)) from None
        except ssh.SSHError as exc:
            raise web.HTTPError(503, f"{site.title} cannot be asked now: {exc}") from None

        async def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
            r = await site.run(argv, stdin=stdin, timeout=LIMIT_S)
            return (124 if not r.reached else r.code), r.out, r.err

        sudo = bool(self._as_user())
        try:
            return await estimate_slurm(
                req, self.catalogue, user=account.pw_name, group=str(account.pw_gid),
                as_root=not sudo, sudo=sudo, run=run,
            )  # fmt: skip
        except SlurmUnreachable as exc:
            raise web.HTTPError(503, str(exc)) from None
        except SlurmRefused as exc:
            raise web.HTTPError(400, str(exc)) from None

    def waiting(self) -> tuple[bool, float | None]:
        if not self.state_ispending():
            return False, None
        start = time_from_slurm(self._info.start)
        return True, start and max(0.0, (start - datetime.now(UTC)).total_seconds())

    def state_ispending(self) -> bool:
        return bool(self._info and self._info.state == "PENDING")

    def state_isrunning(self) -> bool:
        return bool(self._info and self._info.state in ("RUNNING", "COMPLETING"))

    def state_isunknown(self) -> bool:
        return self.job_status.startswith("UNKNOWN")

    def state_gethost(self) -> str:
        return self._info.node if self._info else ""

    _sacct_end: datetime | None = None

    @property
    def ended_at(self) -> datetime | None:
        """When Slurm says the job ended (for the usage ledger): squeue while it remembers
        the job, else Slurm's accounting (a session that ended while the hub was down)."""
        info = self._info
        if info is None:
            return self._sacct_end
        if info.state not in END_REASONS or info.end in ("", "N/A", "Unknown"):
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
                self.queued_s = self._poller().clock() - submitted
                break
            if status == batchspawner.JobStatus.NOTFOUND:
                raise await self._start_failed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._port_event.wait(), self.startup_poll_interval)
        self.ip = self.state_gethost()
        # A job that ends before its server reports (a missing environment, a crash) must
        # say so now, not after JupyterHub's start timeout.
        while not self._port_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._port_event.wait(), self.startup_poll_interval)
            if not self._port_event.is_set():
                status = await self._status(self.startup_poll_interval)
                if status == batchspawner.JobStatus.NOTFOUND:
                    raise await self._start_failed()
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
