"""Slurm batch scripts and sbatch command lines: pure functions, tested byte for byte.

Every value in a script comes from the catalogue (pattern-checked when it loaded), is a
number, or is a command argument passed through `shlex.quote`. As a last guard each line is
checked against the characters its kind of line may hold before the script is returned.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Iterable, Mapping
from datetime import datetime

from naic.hub.catalogue import Catalogue
from naic.spawners.request import SessionRequest

#: Characters the value of an `#SBATCH --option=value` line may contain.
SBATCH_LINE_CHARS = frozenset(string.ascii_letters + string.digits + "_.,:/=+@%-")
#: Characters any other line may contain: printable ASCII, so one line stays one line and
#: no NUL cuts it short. What keeps `$`, quotes and `;` inert there is `shlex.quote`.
SHELL_LINE_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F))
#: The job log's first line of our own once the environment is active.
START_MARKER = "naic-hub: session starting"

_SBATCH_LINE = re.compile(r"#SBATCH --[a-z][a-z-]*=(.+)")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")


def render_batch_script(
    req: SessionRequest,
    cat: Catalogue,
    *,
    job_name: str,
    command: list[str],
    workdir: str,
    output: str,
    exports: Mapping[str, str] | None = None,
) -> str:
    """The batch script for one session; `sbatch` reads it on stdin.

    `job_name`, `workdir` and `output` go into `#SBATCH` lines and must consist of
    `SBATCH_LINE_CHARS` (`output` may use Slurm's `%j`); `command` is exec'd, quoted.

    `exports` is for sbatch on another machine (a login node over SSH), which has none of
    the session's variables in its environment: the job then starts from the user's own
    login environment on the node (`--export=NONE`) and the script exports `exports`
    itself (see `export_lines`). None: the job inherits sbatch's environment.
    """
    site = cat.sites[req.site]
    if site.backend != "slurm":
        raise ValueError(f"site {req.site!r} is not a Slurm site; it has no batch scripts")
    res = site.resources[req.resource]
    env = cat.environments[req.environment]
    if not command:
        raise ValueError("the session needs a command to run")
    options: list[tuple[str, object]] = [
        ("job-name", job_name),
        ("partition", res.partition),
        ("time", _slurm_time(req.time_minutes)),
        ("cpus-per-task", req.cpus),
        ("mem", f"{req.memory_gb}G"),
    ]
    if req.gpus:
        if res.gpu is None:
            raise ValueError(f"resource {req.resource!r} has no GPUs to give {req.gpus}")
        options.append(("gres", f"gpu:{res.gpu.type}:{req.gpus}"))
    account = req.slurm_account(cat)
    if account:
        options.append(("account", account))
    if req.reservation:
        options.append(("reservation", req.reservation))
    # The job inherits sbatch's environment, which is how the JUPYTERHUB_* variables (the
    # server's token and URLs) reach it without being written into the script, where
    # `scontrol write batch_script` would show them. Explicit, so it reads as a contract:
    # the caller must run sbatch with the spawner's environment, never the hub's own.
    # With `exports` (sbatch over SSH) the script carries them instead, and the job starts
    # from the user's login environment, not from root's SSH session (its HOME and PATH).
    export = "ALL" if exports is None else "NONE"
    options += [("chdir", workdir), ("output", output), ("export", export)]

    lines = ["#!/bin/bash", *(f"#SBATCH --{name}={value}" for name, value in options), ""]
    if exports is not None:
        lines += export_lines(exports)
    lines.append('fail() { echo "naic-hub: $*" >&2; exit 1; }')
    # Lmod and login profiles are not written for `set -u`, so strict mode starts after them.
    if site.session_env:  # the server from the site's session environment; kernels load env
        lines += _activate_lines(site.session_env, "the session environment", ())
    else:
        lines += _activate_lines(env.venv, "the environment", env.modules)
    lines += [
        "set -euo pipefail",
        f'echo "{START_MARKER} on $(hostname) at $(date -Is)"',
        "exec " + " ".join(shlex.quote(arg) for arg in command),
    ]
    for line in lines:
        _assert_safe_line(line)
    return "\n".join(lines) + "\n"


def _activate_lines(venv: str | None, what: str, modules: Iterable[str]) -> list[str]:
    lines = []
    if modules:
        # Lmod defines `module` in login shells only, and sbatch from the hub is not one.
        lines.append("type module >/dev/null 2>&1 || source /etc/profile")
        lines.append("module purge")
        for module in modules:
            why = shlex.quote(f"cannot load the module {module}")
            lines.append(f"module load {shlex.quote(module)} || fail {why}")
    if venv:
        activate = f"{venv}/bin/activate"
        missing = f"{what} {venv} is missing on this node; tell the hub operators"
        lines.append(f"[ -f {shlex.quote(activate)} ] || fail {shlex.quote(missing)}")
        lines.append(f"source {shlex.quote(activate)}")
    return lines


#: Variables of the spawner's environment that describe the hub's machine and account, not
#: the job's: over SSH the user's login environment on the node has its own.
HUB_MACHINE_VARIABLES = frozenset(
    "PATH PYTHONPATH VIRTUAL_ENV CONDA_ROOT CONDA_DEFAULT_ENV HOME USER SHELL".split()
)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def job_variables(env: Mapping[str, str]) -> dict[str, str]:
    """Pure: what of the spawner's environment a job submitted on another machine needs
    (the JUPYTERHUB_* token and URLs, NAIC_SESSION, the operator's own variables)."""
    return {name: env[name] for name in sorted(env) if name not in HUB_MACHINE_VARIABLES}


def export_lines(env: Mapping[str, str]) -> list[str]:
    """Pure: `export NAME=value` lines (values through `shlex.quote`), sorted by name.

    They are in the script because a remote command line would show the server's token to
    every user of the login node (`ps`); the script reaches sbatch on stdin, and Slurm shows
    it only to the job's owner and its admins. The last line makes `srun` and `sbatch`
    inside the session (Dask workers) pass the session's environment on, as they do by
    default, instead of inheriting `--export=NONE`."""
    lines = []
    for name in sorted(env):
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"{name!r:.60} is not an environment variable name")
        lines.append(f"export {name}={shlex.quote(env[name])}")
    return [*lines, "export SLURM_EXPORT_ENV=ALL"]


def _slurm_time(minutes: int) -> str:
    """`H:MM:00` under a day, `D-HH:MM:00` from a day on (both are Slurm time formats)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours}:{mins:02d}:00"


def _assert_safe_line(line: str) -> None:
    if line.startswith("#SBATCH"):
        match = _SBATCH_LINE.fullmatch(line)
        ok = match is not None and set(match.group(1)) <= SBATCH_LINE_CHARS
    else:
        ok = set(line) <= SHELL_LINE_CHARS
    if not ok:
        raise ValueError(
            f"refusing to write a batch script line with odd characters: {line!r:.120}"
        )


# --- submitting -------------------------------------------------------------------------


def sbatch_argv(
    *, as_root: bool, user: str, group: str, sudo: bool = False, keep_env: bool = True
) -> list[str]:
    """How the hub submits as `user`: the script goes on stdin, the job id comes on stdout.

    As root: `sbatch --uid --gid` (without `--gid` the job would run with group root).
    As a service account with `sudo=True`: `sudo -n -E -u USER sbatch`, where `-E` keeps the
    JUPYTERHUB_* variables the job needs; sudoers must allow it, e.g.
    `naic-hub ALL=(%naic-users) NOPASSWD:SETENV: /usr/bin/sbatch`. `keep_env=False` (a
    script that exports its variables itself) leaves out `-E`, and sudoers needs no SETENV.
    Otherwise plain `sbatch`, as the hub's own account (a one-person dev hub).
    """
    flags = ["--parsable"]
    return _submit(flags, as_root=as_root, user=user, group=group, sudo=sudo, keep_env=keep_env)


def test_only_argv(*, as_root: bool, user: str, group: str, sudo: bool = False) -> list[str]:
    """`sbatch --test-only` as `user`: Slurm's start estimate on stderr, no job submitted."""
    return _submit(["--test-only"], as_root=as_root, user=user, group=group, sudo=sudo)


test_only_argv.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever pytest thinks


def _submit(
    flags: list[str], *, as_root: bool, user: str, group: str, sudo: bool, keep_env: bool = True
) -> list[str]:
    for what, name in (("user", user), ("group", group)):
        if not _ACCOUNT_NAME.fullmatch(name):
            raise ValueError(f"{name!r:.60} is not a valid {what} name to submit as")
    if as_root:
        return ["sbatch", *flags, f"--uid={user}", f"--gid={group}"]
    if sudo:
        return ["sudo", "-n", *(["-E"] if keep_env else []), "-u", user, "sbatch", *flags]
    return ["sbatch", *flags]


_WILL_RUN = re.compile(r"\bJob [0-9]+ to start at ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8})\b")
_JOB_ID = re.compile(r"([0-9]{1,10})(?:;[A-Za-z0-9_.-]+)?")


def parse_test_only(stderr: str) -> datetime | None:
    """Expected start from `sbatch --test-only`'s stderr, in the cluster's local time (naive).

    Slurm says "sbatch: Job 3 to start at 2026-11-27T03:25:13 using 1 processors on nodes vm
    in partition accel"; anything else (an error, no estimate) gives None.
    """
    match = _WILL_RUN.search(stderr)
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match.group(1))
    except ValueError:
        return None


def parse_parsable(stdout: str) -> int:
    """The job id from `sbatch --parsable` ("123" or "123;cluster"), or a ValueError that
    shows what sbatch printed instead."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _JOB_ID.fullmatch(lines[-1]) if lines else None
    if match is None or not 0 < int(match.group(1)) < 2**32:
        raise ValueError(f"sbatch printed no job id; its output was {stdout!r:.200}")
    return int(match.group(1))
