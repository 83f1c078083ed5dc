"""`naic up`: the hub in the foreground on 127.0.0.1, on embedded defaults."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from naic.hub import catalogue
from naic.hub.app.config import (
    CONFIG_FILE,
    Settings,
    default_data_dir,
    find_proxy,
    prepare_data_dir,
    shown_url,
    write_db_url,
)
from naic.hub.app.db import upgrade_at_start
from naic.hub.app.doctor.runner import up_checks


def _blocked_ancestor(path: Path) -> Path | None:
    """The first folder on the way to `path` that other accounts cannot pass through."""
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _root_checks(s: Settings) -> str | None:
    """As root, user accounts must reach their homes and run this Python."""
    for what, path in [("--data-dir", s.data_dir), ("the Python environment", Path(sys.prefix))]:
        blocked = _blocked_ancestor(path)
        if blocked:
            return (
                f"naic up: user accounts cannot reach {what} ({path}): {blocked} is private "
                f"(mode {stat.S_IMODE(blocked.stat().st_mode):o}). Use a location such as "
                "/var/lib/naic-hub or /srv, or open that folder to others (chmod o+x)."
            )
    return None


def run_up(
    cat_path: Path | None,
    port: int,
    data_dir: Path | None,
    admins: list[str],
    hub_ip: str = "127.0.0.1",
    dev_login: bool = False,
    db_url: str | None = None,
) -> int:
    s = Settings(
        catalogue=(cat_path or catalogue.DEFAULT_CATALOGUE).absolute(),
        data_dir=(data_dir or default_data_dir()).absolute(),
        port=port,
        hub_ip=hub_ip,
        admins=tuple(admins),
        dev_login=dev_login,
    )
    try:
        cat = catalogue.load(s.catalogue)
    except catalogue.CatalogueError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    proxy = find_proxy()
    if proxy is None:
        print(
            "naic up: configurable-http-proxy was not found. Run `make setup` in the "
            "repository (it installs it into node_modules), or set NAIC_PROXY.",
            file=sys.stderr,
        )
        return 1
    root = os.geteuid() == 0
    if root and (problem := _root_checks(s)):
        print(problem, file=sys.stderr)
        return 1

    password, created = prepare_data_dir(s)
    if db_url is not None:
        try:
            where = write_db_url(s, db_url)
        except ValueError as exc:
            print(f"naic up: --db-url: {exc}", file=sys.stderr)
            return 1
        print(f"naic-hub: the hub's database is {shown_url(db_url)} (kept in {where})")
    # What `naic doctor --quick` checks: a taken port or a leftover proxy stops the start
    # with its sentence (instead of JupyterHub's traceback); anything else is a warning.
    refusal, warnings = up_checks(s, cat)
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    for line in warnings:
        print(line, file=sys.stderr)
    # The naic_* tables to this release's schema, a backup first (naic.hub.app.db).
    if problem := upgrade_at_start(s.data_dir):
        print(problem, file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{s.port}/"
    print(f"naic-hub: {cat.name} — {len(cat.sites)} site(s) from {s.catalogue}")
    print(f"  open      {url}")
    if cat.identity is not None and not s.dev_login:
        print(f"  log in    with {cat.identity.title} ({cat.identity.issuer})")
    elif created:
        print(f"  log in    any user name, with the password {password}")
        print(f"            (shown once; it is kept in {s.password_file})")
    else:
        print(f"  log in    any user name, with the password in {s.password_file}")
    print(f"  admins    {', '.join(s.admins) or 'none (add with --admin NAME)'}")
    print(f"  API token {s.admin_token_file} (admin rights; for scripts)")
    if not root:
        print(
            "  note      every session runs as your own OS account: a one-person dev hub. "
            "Run as root to give each user their own account."
        )
    sys.stdout.flush()

    jupyterhub = shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) or "jupyterhub"
    env = {**os.environ, **s.to_env()}
    os.chdir(s.data_dir)
    os.execve(jupyterhub, [jupyterhub, "-f", str(CONFIG_FILE)], env)  # noqa: S606
