"""Hub start for the OIDC login: its settings from the catalogue (`configure`), and the checks
that stop the hub with one sentence (`prepare`): the client's variables, the mapping file or
user register, admins named by identity, the provider's discovery document, and the key that
encrypts auth_state."""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traitlets.config import Config

from naic.hub.catalogue import Catalogue, Identity, LdapRegister
from naic.hub.identity.auth import make_private
from naic.hub.identity.claims import MappingFile
from naic.hub.identity.register import Register

#: The key that encrypts auth_state (tokens, identity) in the hub's database, in the data dir.
CRYPT_KEY_FILE = "auth-state-key"
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"
DISCOVERY_TIMEOUT_S = 5.0


class StartupError(Exception):
    """The hub cannot start its OIDC login; `str()` is one sentence for the operator."""


def discover(issuer: str, timeout: float = DISCOVERY_TIMEOUT_S) -> dict[str, Any]:
    """The provider's discovery document, checked; StartupError names the issuer URL."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - an http(s) URL
            doc = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise StartupError(
            f"naic-hub: the identity provider {issuer} answered HTTP {exc.code} for its "
            f"discovery document ({url}); check `identity.issuer` in the catalogue."
        ) from None
    except (OSError, TimeoutError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise StartupError(
            f"naic-hub: the identity provider {issuer} did not answer ({why}); check "
            "`identity.issuer` in the catalogue and that the hub can reach it."
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise StartupError(
            f"naic-hub: {url} is not a JSON discovery document; check `identity.issuer` "
            "in the catalogue (it is the provider's base URL)."
        ) from None
    if not isinstance(doc, dict):
        raise StartupError(f"naic-hub: {url} is not a JSON discovery document.")
    missing = [
        k
        for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not doc.get(k)
    ]
    if missing:
        raise StartupError(
            f"naic-hub: the discovery document of {issuer} lacks {', '.join(missing)}."
        )
    if str(doc["issuer"]).rstrip("/") != issuer.rstrip("/"):
        raise StartupError(
            f"naic-hub: the identity provider at {issuer} calls itself {doc['issuer']}; set "
            "`identity.issuer` in the catalogue to exactly that."
        )
    return doc


def ensure_crypt_key(path: Path) -> str:
    """The auth_state key (64 hex digits) in `path`, generated (mode 0600) when missing."""
    if path.exists():
        make_private(path)
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def configure(c: Config, ident: Identity, admins: tuple[str, ...] = ()) -> None:
    """Pure: the OIDC login's settings from the catalogue's `identity:`. `admins` are
    identities here: JupyterHub's own `admin_users` (bare names, made admins at start
    whoever holds the name) stays empty."""
    c.JupyterHub.authenticator_class = "naic-oidc"
    c.Authenticator.admin_users = set()
    a = c.NaicOIDCAuthenticator
    a.admin_identities = set(admins)
    a.domains = list(ident.domains)
    a.ldap_register = ident.ldap.model_dump() if ident.ldap else {}
    a.issuer = ident.issuer
    a.login_service = ident.title
    a.scope = list(ident.scopes)
    a.identity_claim = ident.identity_claim
    a.groups_claim = ident.groups_claim or ""
    a.groups_api = ident.groups_api or ""
    a.username_rule = ident.usernames
    a.mapping_file = ident.mapping_file or ""
    a.client_id_variable = ident.client_id_env
    a.client_secret_variable = ident.client_secret_env


def prepare(c: Config, data_dir: Path, cat: Catalogue, env: Mapping[str, str] = os.environ) -> None:
    """At hub start: check the client's variables and the mapping file, make sure auth_state
    has a key, and fetch the discovery document. A problem stops the hub with one sentence."""
    ident = cat.identity
    if ident is None:
        return
    try:
        for what, var in (("id", ident.client_id_env), ("secret", ident.client_secret_env)):
            if not env.get(var):
                raise StartupError(
                    f"naic-hub: the institutional login needs its OAuth client {what} in the "
                    f"environment variable {var}, which is not set."
                )
        if ident.usernames == "mapping" and ident.mapping_file:
            try:
                MappingFile(ident.mapping_file).table()
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise StartupError(
                    f"naic-hub: the user name mapping file {ident.mapping_file} cannot be "
                    f"used: {why}."
                ) from None
        if ident.usernames == "ldap" and ident.ldap:
            check_register(ident.ldap, env)
        check_admins(c.NaicOIDCAuthenticator.get("admin_identities", set()), ident)
        c.NaicOIDCAuthenticator.discovery = discover(ident.issuer)
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(1) from None
    # JupyterHub reads JUPYTERHUB_CRYPT_KEY when it first encrypts; an operator's own key
    # (e.g. while rotating keys) wins. Otherwise the key goes into the hub's config only, so
    # that the processes the hub starts do not inherit it.
    if not env.get(CRYPT_KEY_ENV):
        c.CryptKeeper.keys = [ensure_crypt_key(data_dir / CRYPT_KEY_FILE)]


def check_register(spec: LdapRegister, env: Mapping[str, str]) -> None:
    """At hub start: the user register answers and the hub may bind to it."""
    password = env.get(spec.bind_password_env)
    if spec.bind_dn and not password:
        raise StartupError(
            f"naic-hub: the user register needs the password of {spec.bind_dn} in the "
            f"environment variable {spec.bind_password_env}, which is not set."
        )
    try:
        Register(spec, password).check()
    except Exception as exc:  # ldap3 raises many kinds; all mean the same to the operator
        raise StartupError(
            f"naic-hub: the user register at {spec.url} cannot be used ({exc}); check "
            "`identity.ldap` in the catalogue and that the hub can reach it."
        ) from None


def check_admins(admins: set[str], ident: Identity) -> None:
    """Admins are named by identity: a bare name could be taken by whoever logs in as it."""
    if ident.identity_claim == "sub":
        return  # opaque subject ids: nothing to tell apart
    bare = sorted(a for a in admins if "@" not in a)
    if bare:
        raise StartupError(
            f"naic-hub: with an institutional login, admins are named by identity (e.g. "
            f"--admin ola@uio.no), not by user name: {', '.join(bare)}."
        )
