"""Session launcher: material into the home (and a workshop's shared folder linked), the port
reported, then the server, in one process.

Runs as the user (after the spawner dropped privileges), so a user's own symlinks or
files can never trick the hub into writing elsewhere. Existing files are never replaced:
a student's edited notebook survives every restart.

    python -m naic.extensions.launch [--material DIR]... [--report-port] [-- COMMAND...]

The default command is `jupyterhub-singleuser`, which runs inside this interpreter instead
of a second one. What each session costs to start is what a workshop burst pays 40 times,
so the launcher also skips one import nothing in the server needs (see `_lighter_imports`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from naic.extensions import kernels

SINGLEUSER = "jupyterhub-singleuser"
#: The session's own endpoints (naic.extensions.server), loaded into every session's server.
SERVER_EXTENSION = "--ServerApp.jpserver_extensions=naic.extensions.server=True"
#: nbgitpuller enables its `/git-pull` server extension wherever it is installed; sessions
#: pull their material in the launcher instead, and start faster without it.
NO_GITPULLER = "--ServerApp.jpserver_extensions=nbgitpuller=False"
#: The session's notices as JupyterLab notifications: a prebuilt extension shipped in the
#: package (extensions/labextension), so no `jupyter labextension install` on any node.
LAB_EXTENSIONS = f"--LabServerApp.extra_labextensions_path={Path(__file__).parent / 'labextension'}"
#: Compute nodes rarely reach the internet, and students should not be asked about
#: JupyterLab's news feed or told to upgrade the site's software: neither is fetched.
QUIET_LAB = [
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
]


def copy_missing(src: Path, dest: Path) -> list[Path]:
    """Copy files under `src` that `dest` lacks; return what was copied."""
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        target = dest / rel
        if target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def workshop_material(environ: dict[str, str]) -> tuple[str, str] | None:
    """(workshop name, material) from NAIC_SESSION, for a workshop session with material."""
    try:
        ws = json.loads(environ.get("NAIC_SESSION") or "{}").get("workshop") or {}
    except ValueError:
        return None
    return (ws["name"], ws["material"]) if ws.get("name") and ws.get("material") else None


def workshop_shared(environ: dict[str, str]) -> tuple[str, str] | None:
    """(workshop name, shared folder) from NAIC_SESSION, for a workshop with a shared folder."""
    try:
        ws = json.loads(environ.get("NAIC_SESSION") or "{}").get("workshop") or {}
    except ValueError:
        return None
    return (ws["name"], ws["shared"]) if ws.get("name") and ws.get("shared") else None


def link_shared(shared: str, folder: Path) -> str:
    """Link `folder`/shared to the workshop's shared course folder; a student's own file or
    folder of that name is never replaced. Read-only is the folder's own permissions: they
    are not changed here. Returns what it did, or why it did not, in a sentence."""
    link = folder / "shared"
    if link.is_symlink() and os.readlink(link) == shared:
        return f"{link} links the course's shared folder {shared}"
    if link.exists() or link.is_symlink():
        return (
            f"the course's shared folder {shared} is not linked: you already have {link} "
            "(rename it to get the link at the next start)"
        )
    if not Path(shared).is_dir():
        return f"the course's shared folder {shared} is not there on this node; ask the instructor"
    folder.mkdir(parents=True, exist_ok=True)
    link.symlink_to(shared, target_is_directory=True)
    return f"{link} links the course's shared folder {shared}"


@contextlib.contextmanager
def _trusting(repository: str | None, home: Path):
    """Let git read a course repository another account owns (the instructor's folder):
    git ignores `-c safe.directory` for the local transport, so a global config file of
    our own, which includes the user's, names it, for the pull only."""
    if repository is None:
        yield
        return
    config = home / ".naic" / "material.gitconfig"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "[include]\n\tpath = ~/.gitconfig\n[safe]\n"
        f"\tdirectory = {repository}\n\tdirectory = {repository}/.git\n"
    )
    before = os.environ.get("GIT_CONFIG_GLOBAL")
    os.environ["GIT_CONFIG_GLOBAL"] = str(config)
    try:
        yield
    finally:  # the session's own git keeps the user's ~/.gitconfig
        if before is None:
            os.environ.pop("GIT_CONFIG_GLOBAL", None)
        else:
            os.environ["GIT_CONFIG_GLOBAL"] = before


def fetch_material(material: str, target: Path) -> str:
    """Bring a workshop's material into `target`, never overwriting a student's edits:
    a plain folder's files are copied only where missing; a git repository (a URL, or a
    folder that is one) is pulled with nbgitpuller, whose merge keeps the student's side of
    every change. Returns what it did."""
    folder = Path(material)
    if material.startswith("/") and not folder.is_dir():
        raise FileNotFoundError(f"the course's folder {material} is not there")
    repository = (folder / ".git").exists() or (folder / "HEAD").is_file()  # bare or not
    if material.startswith("/") and not repository:
        n = len(copy_missing(folder, target))
        return f"{n} new file(s) from {material} in {target}"
    from nbgitpuller.pull import GitPuller  # only in workshop sessions with a repository

    with _trusting(material if repository else None, target.parent):
        for line in GitPuller(material, str(target)).pull():
            print(f"naic: {line.rstrip()}", file=sys.stderr)
    return f"{material} pulled into {target}"


#: JupyterLab asks every new user whether to fetch news from the internet; a session's own
#: default answers "no" (written only when the user has no such setting, so theirs wins).
LAB_NOTIFICATION_SETTINGS = Path(
    ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
)


def quiet_lab_defaults(home: Path) -> bool:
    """Write the no-news default into `home` unless the user has a setting; True if written."""
    target = home / LAB_NOTIFICATION_SETTINGS
    if target.exists() or target.is_symlink():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}, indent=2))
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def report_port(env: dict[str, str]) -> int:
    """Tell the hub which port this job's server will use (batch backends pick it here).

    The hub's callback accepts exactly `{"port": N}` with this server's own token. The
    service URL JupyterHub gave the server is rewritten to the same port.
    """
    port = free_port()
    req = urllib.request.Request(  # noqa: S310 - the hub's own API URL from JupyterHub
        env["JUPYTERHUB_API_URL"].rstrip("/") + "/batchspawner",
        data=json.dumps({"port": port}).encode(),
        headers={
            "Authorization": f"token {env['JUPYTERHUB_API_TOKEN']}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310
        pass
    if env.get("JUPYTERHUB_SERVICE_URL"):
        url = urlparse(env["JUPYTERHUB_SERVICE_URL"])
        env["JUPYTERHUB_SERVICE_URL"] = urlunparse(url._replace(netloc=f"{url.hostname}:{port}"))
    return port


def _lighter_imports() -> None:
    # jsonschema imports `rfc3987_syntax` when present, which compiles ~35 Lark parsers at
    # import: about 1.1 s of CPU per server start on our 2-core VMs, for the `iri` string
    # format that no Jupyter schema uses. Marking it absent makes jsonschema skip that check
    # (its documented fallback); user kernels are other processes and keep the package.
    sys.modules.setdefault("rfc3987_syntax", None)


def run_server(command: list[str], extra: list[str] = ()) -> None:
    """Run the server: `jupyterhub-singleuser` in this interpreter, anything else exec'd;
    `extra` are more of the server's own arguments."""
    if Path(command[0]).name == SINGLEUSER:
        _lighter_imports()
        from jupyterhub.singleuser import main as singleuser

        sys.argv = [
            SINGLEUSER,
            *command[1:],
            SERVER_EXTENSION,
            NO_GITPULLER,
            LAB_EXTENSIONS,
            *QUIET_LAB,
            *extra,
        ]
        sys.exit(singleuser())
    os.execvp(command[0], command)  # noqa: S606 - the spawner's own server command


def detach(command: list[str], log: Path) -> list[str]:
    """For sessions started over SSH: the environment arrives on stdin (secrets never on a
    command line other users can see), the server gets a free port of this host, and the
    session outlives the SSH channel. The parent prints {"pid", "port"} and exits."""
    os.environ.update({str(k): str(v) for k, v in json.loads(sys.stdin.read()).items()})
    home = os.environ.get("HOME")
    if home:
        os.chdir(home)
    port = free_port()
    read, write = os.pipe()
    pid = os.fork()
    if pid:  # the parent: wait until the child is on its own, then say where it is
        os.close(write)
        os.read(read, 1)
        print(json.dumps({"pid": pid, "port": port}), flush=True)
        os._exit(0)
    os.close(read)
    os.setsid()  # its own session and process group: the hub stops it with one signal
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.write(write, b"x")
    os.close(write)
    if os.environ.get("JUPYTERHUB_SERVICE_URL"):  # where singleuser listens
        url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
        os.environ["JUPYTERHUB_SERVICE_URL"] = urlunparse(url._replace(netloc=f"127.0.0.1:{port}"))
    return command


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="naic.extensions.launch")
    parser.add_argument("--material", type=Path, action="append", default=[])
    parser.add_argument(
        "--report-port", action="store_true", help="pick a port and report it to the hub"
    )
    parser.add_argument(
        "--detach",
        type=Path,
        metavar="LOG",
        help="read the environment (a JSON object) from stdin, pick a free port, print "
        '{"pid": …, "port": …} and run on in the background with output to LOG '
        "(a node pool's host, started over SSH)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.detach:
        command = detach(command, args.detach)
    home = Path(os.environ.get("HOME") or Path.cwd())
    for folder in args.material:
        if folder.is_dir():
            n = len(copy_missing(folder, home))
            print(f"naic: {n} new file(s) from {folder} in {home}", file=sys.stderr)
    workshop = workshop_material(dict(os.environ))
    if workshop:
        name, material = workshop
        try:
            print(f"naic: {fetch_material(material, home / name)}", file=sys.stderr)
        except Exception as exc:  # a session without its material beats no session
            print(
                f"naic: the workshop material did not arrive ({exc}); ask the instructor.",
                file=sys.stderr,
            )
    shared = workshop_shared(dict(os.environ))
    if shared:  # after the material, so a folder of the course's own is never replaced
        try:
            print(f"naic: {link_shared(shared[1], home / shared[0])}", file=sys.stderr)
        except OSError as exc:  # the session starts without it
            print(f"naic: the course's shared folder is not linked ({exc})", file=sys.stderr)
    quiet_lab_defaults(home)
    if args.report_port:
        port = report_port(os.environ)  # type: ignore[arg-type]
        print(f"naic: the server will listen on port {port}", file=sys.stderr)
    extra: list[str] = []
    if os.environ.get("NAIC_KERNELS"):  # the catalogue's environments as kernels
        kernels_dir = Path(tempfile.mkdtemp(prefix="naic-kernels-"))
        atexit.register(shutil.rmtree, kernels_dir, ignore_errors=True)
        extra = kernels.install_session_kernels(os.environ, kernels_dir)  # type: ignore[arg-type]
    if os.environ.get("SLURM_JOB_ID"):  # datasets staged on the node's own disk go with it
        from naic.extensions.data import clean_node_local

        atexit.register(clean_node_local, os.environ["SLURM_JOB_ID"])
    run_server(command or [SINGLEUSER], extra)


if __name__ == "__main__":
    main()
