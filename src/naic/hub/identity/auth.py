"""The dev login (`DevAuthenticator`, the embedded default of `naic up`) and what the hub's
authenticators share: the user name rule, secret files, and fixed trait defaults.

The institutional login is `naic.hub.identity.oidc.NaicOIDCAuthenticator`, with the same
user name rule.
"""

from __future__ import annotations

import copy
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from traitlets import Unicode, default
from traitlets.traitlets import DefaultHandler

#: Hub names become OS account names (`naic-<name>`) and URL parts, so they are plain.
USERNAME_PATTERN = r"^[a-z][a-z0-9_-]{0,23}$"


def make_private(path: Path) -> None:
    """Mode 0600 for a secret that exists already (restored from a backup, copied by hand,
    made under a loose umask): readable by others, it is everybody's secret."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def ensure_secret_file(path: Path, nbytes: int = 12) -> tuple[str, bool]:
    """Read a secret from `path`, or generate one there; mode 0600 either way.
    Returns (secret, created)."""
    if path.exists():
        make_private(path)
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


def fixed_default(trait: str, value: Any) -> DefaultHandler:
    """A traitlets default that is always `value` (a fresh copy, so a dict is never shared
    between instances); in a class body, `_default_allow_all = fixed_default("allow_all", True)`
    is `@default("allow_all")` on a method that returns True."""

    def fixed(self) -> Any:
        return copy.deepcopy(value)

    return default(trait)(fixed)


class DevAuthenticator(Authenticator):
    """Any valid user name with one shared password that the hub generated.

    For a hub on one machine (`naic up`): nobody knows the password until the operator
    reads it from `password_file`, unlike a fixed dummy password. Not for production.
    """

    password_file = Unicode(
        help="""File holding the shared dev password; generated (mode 0600) if missing.

        Example: c.DevAuthenticator.password_file = "/var/lib/naic-hub/dev-password"
        """,
    ).tag(config=True)

    _default_pattern = fixed_default("username_pattern", USERNAME_PATTERN)
    _default_allow_all = fixed_default("allow_all", True)

    def normalize_username(self, username: str) -> str:
        return username.strip().lower()

    async def authenticate(self, handler, data: dict) -> str | None:
        if not self.password_file:
            self.log.error("DevAuthenticator.password_file is not set; refusing all logins")
            return None
        expected, _ = ensure_secret_file(Path(self.password_file))
        given = (data.get("password") or "").encode()
        if not hmac.compare_digest(given, expected.encode()):
            self.log.warning("Dev login refused for %r: wrong password", data.get("username"))
            return None
        return data.get("username")
