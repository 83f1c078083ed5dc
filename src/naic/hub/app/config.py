"""From catalogue and `NAIC_*` settings to JupyterHub's traitlets config.

`src/naic/hub/jupyterhub_config.py` calls `load_into(c)`; `naic up` sets the environment and runs
plain `jupyterhub -f` on that file, so both ways of starting the hub share this code.
Config code only sets values; operators change anything else in `jupyterhub_config.d/`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from jupyterhub.roles import get_default_roles
from traitlets.config import Config

from naic.hub import catalogue
from naic.hub.app import listen, memory
from naic.hub.data import routes as data_routes
from naic.hub.identity import oidc
from naic.hub.identity import routes as identity_routes
from naic.hub.identity.auth import DevAuthenticator, ensure_secret_file, make_private
from naic.hub.sessions import remedies
from naic.hub.sessions import routes as session_routes
from naic.hub.sessions.hooks import HubHooks
from naic.hub.usage import accounting, metrics, slurm_usage
from naic.hub.usage import routes as usage_routes
from naic.hub.workshops import resets
from naic.hub.workshops import routes as workshop_routes
from naic.spawners import callback  # noqa: F401 - replaces batchspawner's port callback

REPO_ROOT = Path(__file__).resolve().parents[4]
CONFIG_FILE = Path(__file__).parents[1] / "jupyterhub_config.py"
#: How long the proxy keeps a client's idle connection open (its default: 5000).
PROXY_KEEP_ALIVE_MS = 75_000
TEMPLATES = Path(__file__).parents[1] / "templates"

#: The hub's rooms, each declaring its handlers, scopes and roles (`<room>/routes.py`).
AREAS = (identity_routes, usage_routes, session_routes, workshop_routes, data_routes)


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/naic-hub")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "naic-hub"


def _in_data_dir(*parts: str) -> property:
    return property(lambda self: self.data_dir.joinpath(*parts))


@dataclass(frozen=True)
class Settings:
    """What the operator chose, from `NAIC_*` environment variables."""

    catalogue: Path = catalogue.DEFAULT_CATALOGUE
    data_dir: Path = field(default_factory=default_data_dir)
    port: int = 8000
    hub_ip: str = "127.0.0.1"  # where Slurm jobs on other nodes reach the hub's API
    admins: tuple[str, ...] = ()
    # The dev login even though the catalogue has `identity:` (`naic up --dev-login`).
    dev_login: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        s = cls()
        return cls(
            catalogue=Path(env.get("NAIC_CATALOGUE") or s.catalogue),
            data_dir=Path(env.get("NAIC_DATA_DIR") or s.data_dir).absolute(),
            port=int(env.get("NAIC_PORT") or s.port),
            hub_ip=env.get("NAIC_HUB_IP") or s.hub_ip,
            admins=tuple(a for a in (env.get("NAIC_ADMINS") or "").split(",") if a),
            dev_login=env.get("NAIC_DEV_LOGIN") == "1",
        )

    def to_env(self) -> dict[str, str]:
        return {
            "NAIC_CATALOGUE": str(self.catalogue),
            "NAIC_DATA_DIR": str(self.data_dir),
            "NAIC_PORT": str(self.port),
            "NAIC_HUB_IP": self.hub_ip,
            "NAIC_ADMINS": ",".join(self.admins),
            "NAIC_DEV_LOGIN": "1" if self.dev_login else "",
        }

    # Files in the data dir, named once here. The proxy's socket is in a folder of its
    # own: a proxy that runs as another account (the Ansible role's wrapper gives it that
    # folder) can create its socket there, nobody else can.
    password_file = _in_data_dir("dev-password")
    hub_socket = _in_data_dir("hub.sock")
    proxy_socket = _in_data_dir("proxy", "api.sock")
    db_file = _in_data_dir("jupyterhub.sqlite")
    admin_token_file = _in_data_dir("admin-token")
    config_d = _in_data_dir("jupyterhub_config.d")
    homes = _in_data_dir("users")


def find_proxy() -> str | None:
    """configurable-http-proxy: `NAIC_PROXY`, the project's node_modules, then PATH."""
    candidates = [
        os.environ.get("NAIC_PROXY"),
        str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"),
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return shutil.which("configurable-http-proxy")


def prepare_data_dir(s: Settings) -> tuple[str, bool]:
    """Create the data dir and its secrets; returns (dev password, newly created)."""
    # 0711: user accounts may pass through to their homes, but not list or read hub files.
    s.data_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    s.homes.mkdir(mode=0o711, exist_ok=True)
    s.config_d.mkdir(mode=0o700, exist_ok=True)
    s.proxy_socket.parent.mkdir(mode=0o700, exist_ok=True)
    listen.remove_stale_socket(s.proxy_socket)  # a proxy killed with -9 leaves its file
    ensure_secret_file(s.admin_token_file, nbytes=32)
    # JupyterHub's database holds token hashes, join codes and user names: it would be
    # created 0644 under the usual umask (SQLite's journals follow the file's mode).
    if not s.db_file.exists():
        os.close(os.open(s.db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    make_private(s.db_file)
    return ensure_secret_file(s.password_file)


def build_config(s: Settings, cat: catalogue.Catalogue, proxy: str | None) -> Config:
    """Pure: the hub's traitlets config for these settings and this catalogue."""
    c = Config()
    c.JupyterHub.bind_url = f"http://127.0.0.1:{s.port}"
    # Neighbouring ports keep JupyterHub's usual 8000/8001/8081 layout for port 8000.
    c.JupyterHub.hub_bind_url = f"http://{s.hub_ip}:{s.port + 81}"
    # The proxy's API and the hub's API for local sessions on Unix sockets in the data
    # dir: no other account can take them over while the hub restarts (naic.hub.app.listen).
    c.ConfigurableHTTPProxy.api_url = f"http+unix://{quote(str(s.proxy_socket), safe='')}"
    c.ConfigurableHTTPProxy.pid_file = str(s.data_dir / "jupyterhub-proxy.pid")
    # Clients' idle connections stay open 75 s, not the proxy's default 5 s: a client that
    # reuses one just as the proxy closes it gets "connection reset" (a script's or a
    # notebook's API call every few seconds), and a load balancer that keeps its own idle
    # connections 60 s (AWS ALB's default) answers 502. The idle time must exceed theirs.
    c.ConfigurableHTTPProxy.command = [
        proxy or "configurable-http-proxy",
        "--keep-alive-timeout",
        str(PROXY_KEEP_ALIVE_MS),
    ]
    c.JupyterHub.db_url = f"sqlite:///{s.db_file}"
    c.JupyterHub.cookie_secret_file = str(s.data_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(s.data_dir / "jupyterhub.pid")
    # Sessions outlive the hub: a restart must not stop anybody's work.
    c.JupyterHub.cleanup_servers = False
    # A link on another site must not act with the hub's cookies (a GET that spawns, a
    # form posted from elsewhere): the browser sends them only on top-level navigation.
    c.JupyterHub.tornado_settings = {"cookie_options": {"samesite": "Lax"}}
    c.JupyterHub.template_vars = {"naic_catalogue": cat.name}

    c.JupyterHub.authenticator_class = "naic-dev"
    c.DevAuthenticator.password_file = str(s.password_file)
    c.Authenticator.admin_users = set(s.admins)
    if cat.guest_accounts is not None:
        # Workshop accounts log in only with their one-time passwords (naic.hub.workshops.api),
        # never through the hub's own login, and only while their workshop runs.
        c.Authenticator.blocked_users = set(cat.guest_accounts.names)
        c.JupyterHub.template_vars = {**c.JupyterHub.template_vars, "naic_guest_accounts": True}
    if cat.identity is not None and not s.dev_login:  # institutional login (OIDC)
        oidc.configure(c, cat.identity, s.admins)

    # The operator's token (for scripts) belongs to a service with the admin role.
    token = s.admin_token_file.read_text().strip() if s.admin_token_file.exists() else None
    operator = [{"name": "naic-operator", "api_token": token}] if token else []
    # The culler: a managed service with the naic-culler role (naic.hub.sessions.routes).
    culler = {"name": "naic-culler", "command": [sys.executable, "-m", "naic.hub.sessions.culler"]}
    c.JupyterHub.services = [*operator, culler]
    # Each room of the hub declares its scopes and roles; a session's server may do what
    # every room lets it (its own usage, extending and stopping itself).
    c.JupyterHub.custom_scopes = {k: v for area in AREAS for k, v in area.SCOPES.items()}
    server_role = next(r for r in get_default_roles() if r["name"] == "server")
    server_scopes = [s for area in AREAS for s in area.SERVER_SCOPES]
    c.JupyterHub.load_roles = [
        *([{"name": "admin", "services": ["naic-operator"]}] if token else []),
        *(role for area in AREAS for role in area.ROLES),
        {"name": "server", "scopes": [*server_role["scopes"], *server_scopes]},
    ]
    c.JupyterHub.extra_user_scopes = [s for area in AREAS for s in area.USER_SCOPES]

    # Every spawn goes through the router, whose request model is the one input gate.
    c.JupyterHub.spawner_class = "naic-router"
    c.Router.catalogue_file = str(s.catalogue)
    wire_ledger(c, s)
    c.LocalSpawner.home_root = str(s.homes)
    c.LocalSpawner.hub_socket = str(s.hub_socket)
    material = REPO_ROOT / "notebooks"
    if material.is_dir():
        c.LocalSpawner.material_dir = c.SlurmSpawner.material_dir = str(material)
    c.Spawner.default_url = "/lab"
    # JupyterHub logs that extra_handlers is deprecated; it is the way to add API handlers.
    c.JupyterHub.extra_handlers = [h for area in AREAS for h in area.HANDLERS]
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    # Researchers run several sessions (a GPU prototype beside a CPU one).
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 5
    # A queued job may wait long; the progress page tells the user where it stands.
    c.SlurmSpawner.start_timeout = 12 * 3600
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 90
    return c


def wire_ledger(c: Config, s: Settings) -> None:
    """GPU-hour budgets: the usage ledger lives in the hub's own database (`db_url`)."""
    url = c.JupyterHub.db_url
    c.Router.hooks = HubHooks(catalogue_file=str(s.catalogue), ledger_url=url)
    c.JupyterHub.tornado_settings = {
        **c.JupyterHub.get("tornado_settings", {}),
        "naic": {"catalogue_file": str(s.catalogue), "ledger_url": url},
    }
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "naic_projects": accounting.home_projects(str(s.catalogue), url),
        "naic_remedies": remedies.REMEDIES,
        # A callable, as naic_projects: JupyterHub calls it with the user at each page.
        "naic_help": lambda _user: remedies.site_help(catalogue.load_cached(str(s.catalogue))),
    }


def load_into(c: Config, env: Mapping[str, str] = os.environ) -> None:
    """Fill JupyterHub's `c`; a broken catalogue stops the hub as `naic catalogue check` would."""
    s = Settings.from_env(env)
    try:
        cat = catalogue.load(s.catalogue)
    except catalogue.CatalogueError as exc:
        print(exc.message, file=sys.stderr)
        raise SystemExit(1) from None
    password, created = prepare_data_dir(s)
    if created:
        print(f"naic-hub: generated the dev login password: {password}", file=sys.stderr)
    c.merge(build_config(s, cat, find_proxy()))
    listen.also_listen_on(s.hub_socket)
    from jupyterhub.app import JupyterHub  # the hub that is loading this config, if any

    if JupyterHub.initialized():  # loaded by a starting hub, not by a config check
        listen.stop_proxy_at_exit(JupyterHub.instance())
        memory.freeze_after_start(JupyterHub.instance())
    if not s.dev_login:
        oidc.prepare(c, s.data_dir, cat, env)  # provider discovery, client secrets, auth_state key
    _load_config_d(c, s.config_d)
    if problem := dev_login_problem(c, cat, s):
        print(problem, file=sys.stderr)
        raise SystemExit(1)
    wire_ledger(c, s)  # again: an operator's file may have moved the database
    # naic's gauges join JupyterHub's own at /hub/metrics (computed when scraped).
    metrics.register(str(s.catalogue), c.JupyterHub.db_url)
    # Workshop accounts whose window passed are reset with nobody acting (and at the start).
    resets.watch_guest_windows()
    # Projects' usage in Slurm's accounting, read ahead so pages never wait for slurmdbd.
    slurm_usage.keep_fresh(str(s.catalogue))


def is_dev_login(authenticator_class: object) -> bool:
    """`authenticator_class` as JupyterHub takes it (entry point name, dotted path, class)."""
    if isinstance(authenticator_class, type):
        return issubclass(authenticator_class, DevAuthenticator)
    return authenticator_class in ("naic-dev", "naic.hub.identity.auth.DevAuthenticator")


def dev_login_problem(c: Config, cat: catalogue.Catalogue, s: Settings) -> str | None:
    """The shared-password dev login must not replace the catalogue's institutional login
    behind the operator's back (an old `jupyterhub_config.d/` file, an Ansible default)."""
    if cat.identity is None or s.dev_login:
        return None
    if not is_dev_login(c.JupyterHub.get("authenticator_class")):
        return None
    return (
        f"naic-hub: the catalogue {s.catalogue} logs in through its identity provider, but "
        f"{s.config_d} sets the shared-password dev login (naic-dev) instead; remove that "
        "setting (Ansible: leave naic_hub_authenticator_class empty), or start with "
        "`naic up --dev-login` (plain jupyterhub: NAIC_DEV_LOGIN=1) to use the dev login on "
        "purpose."
    )


DB_URL_FILE = "00-db-url.py"


def normal_db_url(url: str) -> str:
    """Pure: a database URL JupyterHub and naic can both use, or ValueError with why not:
    PostgreSQL through psycopg 3 (the driver naic-hub installs), or SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{shown_url(url)!r} is not a database URL") from None
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        return url
    raise ValueError(f"the hub runs on PostgreSQL or SQLite, not {parsed.get_backend_name()}")


def shown_url(url: str) -> str:
    """Pure: the URL with any password hidden, for logs and messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def write_db_url(s: Settings, url: str) -> Path:
    """`naic up --db-url`: the hub's database for this and later starts (and `naic db`), in
    a config file of the data dir that only the hub's account reads."""
    path = s.config_d / DB_URL_FILE
    text = (
        "# Written by `naic up --db-url`: JupyterHub's database and naic's tables in it.\n"
        f"c.JupyterHub.db_url = {normal_db_url(url)!r}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)
    return path


def _load_config_d(c: Config, folder: Path) -> None:
    """The escape hatch: operators' `*.py` files, in name order, with `c` in scope."""
    for path in sorted(folder.glob("*.py")):
        code = compile(path.read_text(), str(path), "exec")
        exec(code, {"c": c, "__file__": str(path)})  # noqa: S102 - operator-owned config
