"""One catalogue site as the hub reaches it: the one way the hub runs a command there.

Every Slurm and SSH command of the hub goes through `Site.run`: on the hub's machine, on the
site's login node (`submit.via: ssh`) or on one of a pool's hosts, over the hub's one SSH
connection per machine (`naic.spawners.ssh`). Commands are argv lists (no shell); a command
that may run as a user gets a small fixed environment, never the hub's own (which holds its
secrets). `account` finds a user's account where their sessions run and refuses the
system's; `unreachable` tells a scheduler that is down from one that refused; `poller` is
the site's shared `squeue` snapshot.

    site = site_for(catalogue, "saga")
    result = await site.run(["squeue", "-h"], timeout=20)
    text = await site.call(["scontrol", "show", "reservation", name])  # or CommandFailed
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Collection
from dataclasses import dataclass, field

from naic.hub import catalogue
from naic.spawners import ssh
from naic.spawners.accounts import system_account_refusal
from naic.spawners.poller import SlurmPoller

#: What Slurm's commands (and ours) print when the scheduler is down or not answering,
#: rather than refusing what they were asked.
UNREACHABLE = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Zero Bytes were transmitted",
    "temporarily unable",
    "did not answer within",
)


def says_unreachable(message: str) -> bool:
    """Pure: whether a command's words say the scheduler is not answering."""
    return any(marker in message for marker in UNREACHABLE)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    #: False: the machine itself did not answer (SSH), so the command never ran.
    reached: bool = True


class CommandFailed(RuntimeError):
    """A command ran and failed; `str()` is what it said (Slurm's own words)."""

    def __init__(self, argv: list[str], result: Result) -> None:
        super().__init__(result.err.strip() or result.out.strip() or f"{argv[0]} failed")
        self.result = result


class NoAccount(LookupError):
    """The user has no account where the session would run."""


class SystemAccount(PermissionError):
    """The account is root's, a daemon's or the scheduler's; `str()` is the sentence."""


def account_from_getent(line: str) -> pwd.struct_passwd:
    """Pure: `getent passwd NAME`'s line as a `pwd.struct_passwd` (ValueError if it is not
    one)."""
    fields = line.strip().split(":")
    if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
        raise ValueError(f"getent printed no account: {line!r:.120}")
    name, password, uid, gid, gecos, home, shell = fields
    return pwd.struct_passwd((name, password, int(uid), int(gid), gecos, home, shell))


def switch_user(user: str, *, root: bool) -> list[str]:
    """Pure: the argv prefix that runs a command as `user`: `runuser` where the hub is
    root, else `sudo -n` (the site's sudoers allows the hub's account)."""
    return ["runuser", "-u", user, "--"] if root else ["sudo", "-n", "-u", user, "--"]


def quiet_env() -> dict[str, str]:
    """The environment of a command the hub runs: enough for Slurm's tools, none of the
    hub's secrets."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("SLURM_") or k == "TZ"})
    return env


@dataclass(eq=False)
class Site:
    name: str
    spec: catalogue.Site
    _poller: SlurmPoller | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return self.spec.title

    # --- where commands run ------------------------------------------------------------

    @property
    def login_node(self) -> ssh.Target | None:
        """The login node for `submit.via: ssh`; None: Slurm commands run on the hub's machine."""
        s = self.spec
        if s.submit is None or s.submit.via != "ssh" or s.ssh is None:
            return None
        return ssh.Target(s.submit.host, s.submit.port, s.ssh)

    def target(self, host: str | None = None) -> ssh.Target | None:
        """Where a command runs: a pool's `host`, else the login node (None: here)."""
        if host is None:
            return self.login_node
        h = self.spec.hosts[host]
        return ssh.Target(h.address, h.port, self.spec.ssh)

    def root_at(self, host: str | None = None) -> bool:
        target = self.target(host)
        return os.geteuid() == 0 if target is None else target.access.user == "root"

    def as_user(self, user: str, host: str | None = None) -> list[str]:
        """The argv prefix that runs a command as `user` there: `runuser` where the hub is
        root, else `sudo -n` (the site's sudoers allows the hub's account)."""
        return switch_user(user, root=self.root_at(host))

    async def run(
        self,
        argv: list[str],
        *,
        as_user: str | None = None,
        stdin: str | None = None,
        timeout: float = 60,  # noqa: ASYNC109 - one limit for here and over SSH alike
        host: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run `argv` (as `as_user`, else as the hub) where the site's commands run. Never
        raises for the command: a machine that does not answer is `reached=False`, a
        command that does not answer in `timeout` seconds is exit status 124, a missing
        one 127. `env` (here only) replaces the quiet environment."""
        if as_user is not None:
            argv = [*self.as_user(as_user, host), *argv]
        target = self.target(host)
        if target is not None:
            try:
                code, out, err = await ssh.run(target, argv, stdin=stdin, timeout_s=timeout)
            except ssh.SSHError as exc:
                return Result(255, "", str(exc), reached=False)
            return Result(code, out, err)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=quiet_env() if env is None else env,
            )
        except OSError as exc:
            return Result(127, "", f"{argv[0]}: {exc.strerror or exc}")
        try:
            data = stdin.encode() if stdin is not None else None
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Result(124, "", f"{argv[0]} did not answer within {timeout:g} s")
        code = proc.returncode or 0
        return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))

    async def call(self, argv: list[str], **kw) -> str:
        """`run`, for a command that must succeed: its output, or `ssh.SSHError` (the
        machine did not answer) or `CommandFailed` (both RuntimeError, with the words)."""
        result = await self.run(argv, **kw)
        if not result.reached:
            raise ssh.SSHError(result.err)
        if result.code:
            raise CommandFailed(argv, result)
        return result.out

    def unreachable(self, error: str | Exception | Result) -> bool:
        """Whether a failure means the scheduler (or the machine) is not answering, as
        opposed to refusing: try again later, and never take it for a job that ended."""
        if isinstance(error, Result):
            if not error.reached or error.code == 124:
                return True
            error = error.err
        if isinstance(error, ssh.SSHError):
            return True
        return says_unreachable(str(error))

    # --- accounts ------------------------------------------------------------------------

    async def account(
        self, user: str, *, host: str | None = None, also_refused: Collection[str] = ()
    ) -> pwd.struct_passwd:
        """`user`'s account where their sessions run (the hub's machine, the login node or
        a pool host): `NoAccount`, `SystemAccount` (root, daemons, the scheduler: never a
        session as them), or `ssh.SSHError` when the machine does not answer."""
        where = host or self.name
        if self.target(host) is None:
            try:
                account = pwd.getpwnam(user)
            except KeyError:
                raise NoAccount(user) from None
        else:
            result = await self.run(["getent", "passwd", user], host=host, timeout=30)
            if not result.reached:
                raise ssh.SSHError(result.err)
            if result.code == 2:  # getent: no such key
                raise NoAccount(user)
            if result.code:
                raise RuntimeError(f"getent failed at {where}: {result.err.strip()}")
            try:
                account = account_from_getent(result.out)
            except ValueError:
                raise NoAccount(user) from None
        refused = system_account_refusal(account.pw_name, account.pw_uid, where, also_refused)
        if refused:
            raise SystemAccount(refused)
        return account

    # --- job state -----------------------------------------------------------------------

    @property
    def poller(self) -> SlurmPoller:
        """The site's shared job-state snapshots (`squeue` where Slurm's commands run)."""
        if self._poller is None:

            async def squeue(argv: list[str]) -> tuple[int, str, str]:
                r = await self.run(argv, timeout=20)
                return r.code, r.out, r.err

            self._poller = SlurmPoller(squeue)
        return self._poller


_SITES: dict[str, Site] = {}


def site_for(cat: catalogue.Catalogue, name: str) -> Site:
    """The process-wide `Site` of catalogue site `name` (the hub is one process). A site the
    catalogue now describes differently (a reloaded catalogue) is a new one."""
    spec = cat.sites[name]
    known = _SITES.get(name)
    if known is None or known.spec != spec:
        known = _SITES[name] = Site(name, spec)
    return known
