"""Institutional login over OpenID Connect: `NaicOIDCAuthenticator`, configured by the catalogue.

The catalogue's `identity:` names the provider (`issuer`), the claim that names a person
(`identity_claim`, e.g. `eduPersonPrincipalName`), the groups claim, and how an identity
becomes a hub user name: the site's user register over LDAP (`naic.hub.identity.register`), the
operator's `mapping` file, or `local_part` for identities at the listed `domains` only. At
hub start the provider's discovery document is fetched once; a provider that does not
answer, or a client id or secret missing from the environment, stops the hub with one
sentence.

What oauthenticator 17 leaves out, and this class adds:

- The ID token is verified: signature against the provider's published keys (JWKS), `iss`
  equal to the discovered issuer, `aud` holding our client id (and `azp` when there are
  several audiences), `exp`, `iat` and `nbf` against the hub's clock with a small leeway.
  oauthenticator decodes it with `verify_signature=False` and never looks at `iss`.
- The userinfo answer is used only when its `sub` is the ID token's `sub`.
- Who may log in: admins (by identity), members of a catalogue project (by identity or IdP
  group, never by a bare hub name), and people with a granted project or a pending request
  in the ledger. Anybody else whom the provider vouched for gets the ask-for-access page
  (`naic.hub.identity.access`), bound to the verified identity by a signed, short-lived cookie, and
  no hub user.
- With `identity_claim: email`, the provider must say the address is verified.
- A user name belongs to one identity (`Ledger.bind_identity`); a second identity that maps
  to the same name is refused, never merged.
- Every refusal is a page in the hub's look with a sentence saying what happened and what
  to do, never a traceback (`Refusal`, `NaicCallbackHandler`).
- Refresh: the access token is renewed with the refresh token shortly before it expires;
  when that is impossible the user logs in again (17.4 would re-verify the stored, by then
  expired, ID token, and it sends client credentials in the body, which some providers
  refuse for the refresh grant).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from jupyterhub.utils import url_path_join
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, _deserialize_state
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Callable as CallableTrait
from traitlets import Dict, Enum, Float, List, Set, Unicode, default
from traitlets.config import Config

from naic.hub.catalogue import Catalogue, Identity, LdapRegister
from naic.hub.identity import access
from naic.hub.identity.auth import USERNAME_PATTERN, make_private
from naic.hub.identity.claims import (
    SIGNING_ALGORITHMS,
    MappingFile,
    NeedsAccess,
    Refusal,
    email_verified,
    groups_from,
    identity_from,
    refusal,
    username_for,
    verify_id_token,
)
from naic.hub.identity.register import Register
from naic.hub.usage import accounting
from naic.hub.usage.ledger import IdentityTaken
from naic.spawners.request import UserFacts, projects_of

#: The key that encrypts auth_state (tokens, identity) in the hub's database, in the data dir.
CRYPT_KEY_FILE = "auth-state-key"
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"
DISCOVERY_TIMEOUT_S = 5.0
# --- discovery and hub start ----------------------------------------------------------------


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


# --- the authenticator -------------------------------------------------------------------


class NaicCallbackHandler(OAuthCallbackHandler):
    """`/hub/oauth_callback`: finish the login, or show why not, in the hub's look."""

    def check_error(self) -> None:
        error = self.get_argument("error", "")
        if error:
            provider = self.authenticator.login_service
            if error == "access_denied":
                raise refusal("cancelled", provider=provider)
            code = error if re.match(r"^[a-z_]{1,40}$", error) else "an unknown error"
            raise refusal("provider_error", provider=provider, error=code)

    def check_code(self) -> None:
        if not self.get_argument("code", ""):
            raise refusal("no_code", provider=self.authenticator.login_service)

    def check_state(self) -> None:
        cookie_state = self.get_state_cookie()
        url_state = self.get_argument("state", "")
        cookie_id = _deserialize_state(cookie_state).get("state_id") if cookie_state else None
        url_id = _deserialize_state(url_state).get("state_id") if url_state else None
        if not cookie_id or not url_id or not secrets.compare_digest(str(cookie_id), str(url_id)):
            self.log.warning("OIDC login refused: OAuth state missing or mismatched")
            raise refusal("state")

    async def get(self) -> None:
        try:
            self.check_arguments()
            user = await self.login_user()
            if user is None:  # `authenticate` refuses with a reason; this is unexpected
                raise refusal("internal")
        except NeedsAccess as need:
            self.log.info(
                "OIDC login of %s (%s): no project, asked to request access",
                need.identity,
                need.username,
            )
            access.remember_asker(self, need.identity, need.username)
            await access.render_ask_page(self, need.identity, need.username, status=403)
            return
        except Refusal as r:
            await self._refuse(r)
            return
        except Exception:
            self.log.exception("OIDC login failed")
            await self._refuse(refusal("internal"))
            return
        self.redirect(self.get_next_url(user))

    async def _refuse(self, r: Refusal) -> None:
        self.log.warning("OIDC login refused (%s): %s", r.kind, r)
        self.set_status(r.status)
        html = await self.render_template(
            "naic-refused.html",
            message=str(r),
            kind=r.kind,
            again_url=url_path_join(self.hub.base_url, "login"),
        )
        self.finish(html)


class NaicOIDCAuthenticator(GenericOAuthenticator):
    """Log in with the catalogue's OpenID Connect provider; see the module's docstring."""

    callback_handler = NaicCallbackHandler

    issuer = Unicode(
        help="""The provider's issuer URL; its discovery document is read at hub start.

        Example: c.NaicOIDCAuthenticator.issuer = "https://auth.dataporten.no"
        """,
    ).tag(config=True)

    discovery = Dict(
        help="""The provider's discovery document; fetched from `issuer` when empty.

        `naic up` fetches it once at hub start (so a provider that does not answer stops
        the hub with a sentence) and sets it here.
        """,
    ).tag(config=True)

    identity_claim = Unicode(
        "sub",
        help="""The claim that names a person, matched against projects' `members`.

        Example: c.NaicOIDCAuthenticator.identity_claim = "eduPersonPrincipalName"
        """,
    ).tag(config=True)

    groups_claim = Unicode(
        "",
        help="""The claim listing the person's groups (empty: none); they become JupyterHub
        groups, matched against projects' `groups`. A dotted name reaches into objects.

        Example: c.NaicOIDCAuthenticator.groups_claim = "groups"
        """,
    ).tag(config=True)

    username_rule = Enum(
        ["local_part", "mapping", "ldap"],
        "local_part",
        help="""How an identity becomes a hub user name: `ldap` (the site's user register,
        `ldap_register`), `mapping` (the operator's `mapping_file`) or `local_part` (the part
        before `@`, lower-cased, for identities at `domains` only).

        Example: c.NaicOIDCAuthenticator.username_rule = "ldap"
        """,
    ).tag(config=True)

    domains = List(
        Unicode(),
        help="""With `username_rule = "local_part"`: the identity domains whose local parts
        are user names here. An identity at any other domain is refused, so `ola@evil.example`
        never becomes `ola`.

        Example: c.NaicOIDCAuthenticator.domains = ["uio.no"]
        """,
    ).tag(config=True)

    ldap_register = Dict(
        help="""With `username_rule = "ldap"`: the catalogue's `identity.ldap` (url, base_dn,
        identity_attribute, username_attribute, bind_dn, bind_password_env).

        Example: c.NaicOIDCAuthenticator.ldap_register = {"url": "ldaps://ldap.site",
        "base_dn": "ou=people,dc=site"}
        """,
    ).tag(config=True)

    admin_identities = Set(
        Unicode(),
        help="""Identities (values of the identity claim) who are admins. JupyterHub's
        `admin_users` names hub users, which a stranger could hold; these name people.

        Example: c.NaicOIDCAuthenticator.admin_identities = {"ola@uio.no"}
        """,
    ).tag(config=True)

    mapping_file = Unicode(
        "",
        help="""YAML file of `identity: username`, read again when it changes.

        Example: c.NaicOIDCAuthenticator.mapping_file = "/etc/naic/usernames.yaml"
        """,
    ).tag(config=True)

    client_id_variable = Unicode(
        "NAIC_OIDC_CLIENT_ID",
        help="""Environment variable holding the OAuth client id.

        Example: c.NaicOIDCAuthenticator.client_id_variable = "FEIDE_CLIENT_ID"
        """,
    ).tag(config=True)

    client_secret_variable = Unicode(
        "NAIC_OIDC_CLIENT_SECRET",
        help="""Environment variable holding the OAuth client secret.

        Example: c.NaicOIDCAuthenticator.client_secret_variable = "FEIDE_CLIENT_SECRET"
        """,
    ).tag(config=True)

    hub_groups = Set(
        Unicode(),
        {accounting.INSTRUCTORS_GROUP},
        help="""JupyterHub groups the hub manages itself (not the provider): memberships in
        them survive a login, and a provider group of the same name is ignored, so nobody
        becomes an instructor because of a group name at their institution.

        Example: c.NaicOIDCAuthenticator.hub_groups = {"instructors", "staff"}
        """,
    ).tag(config=True)

    leeway_s = Float(
        60,
        help="""Seconds of clock difference tolerated when checking `exp`, `iat` and `nbf`.

        Example: c.NaicOIDCAuthenticator.leeway_s = 30
        """,
    ).tag(config=True)

    refresh_margin_s = Float(
        60,
        help="""Renew the access token when it expires within this many seconds.

        Example: c.NaicOIDCAuthenticator.refresh_margin_s = 300
        """,
    ).tag(config=True)

    clock = CallableTrait(
        time.time,
        help="""Seconds since the epoch; replaceable so tests can move the hub's clock.

        Example: c.NaicOIDCAuthenticator.clock = lambda: time.time() + 7200
        """,
    ).tag(config=True)

    # -- defaults that follow from OIDC and from the catalogue ---------------------------

    @default("enable_auth_state")
    def _default_auth_state(self) -> bool:
        return True

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    @default("auth_state_groups_key")
    def _default_groups_key(self) -> str:
        return "groups"

    @default("username_pattern")
    def _default_pattern(self) -> str:
        return USERNAME_PATTERN

    @default("http_request_kwargs")
    def _default_request_kwargs(self) -> dict:
        return {"connect_timeout": 5.0, "request_timeout": 15.0}

    @default("discovery")
    def _default_discovery(self) -> dict:
        if not self.issuer:
            return {}
        return discover(self.issuer)

    @default("authorize_url")
    def _default_authorize_url(self) -> str:
        return self.discovery.get("authorization_endpoint", "")

    @default("token_url")
    def _default_token_url(self) -> str:
        return self.discovery.get("token_endpoint", "")

    @default("userdata_url")
    def _default_userdata_url(self) -> str:
        return self.discovery.get("userinfo_endpoint", "")

    @default("basic_auth")
    def _default_basic_auth(self) -> bool:
        # RFC 6749 2.3.1: servers MUST support Basic; OIDC Discovery's default is Basic too.
        methods = self.discovery.get("token_endpoint_auth_methods_supported")
        return not methods or "client_secret_basic" in methods

    def _client_id_default(self) -> str:
        return os.environ.get(self.client_id_variable, "")

    def _client_secret_default(self) -> str:
        return os.environ.get(self.client_secret_variable, "")

    @property
    def expected_issuer(self) -> str:
        return str(self.discovery.get("issuer") or self.issuer)

    @property
    def algorithms(self) -> list[str]:
        offered = self.discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
        return [a for a in offered if a in SIGNING_ALGORITHMS]

    _jwks_client: jwt.PyJWKClient | None = None
    _mapping: MappingFile | None = None

    @property
    def jwks(self) -> jwt.PyJWKClient:
        if self._jwks_client is None:
            self._jwks_client = jwt.PyJWKClient(
                self.discovery["jwks_uri"], cache_jwk_set=True, lifespan=300, timeout=5
            )
        return self._jwks_client

    def check_allow_config(self) -> None:
        # `authenticate` admits admins, project members and people with a granted project or
        # a pending request; there is no allow list to check.
        self.log.info("OIDC login at %s: project members, grants and pending requests", self.issuer)

    async def check_allowed(self, username: str, auth_model: dict | None) -> bool:
        # `authenticate` returns a model only for people it admitted (see `_admit`).
        return True

    # -- the login -------------------------------------------------------------------------

    async def authenticate(self, handler, data=None) -> dict:
        try:
            params = self.build_access_tokens_request_params(handler, data)
        except web.HTTPError:
            raise refusal("state") from None
        token_info = await self._exchange(handler, params)
        model = await self._auth_model(token_info)
        existing = handler.find_user(model["name"])
        model["groups"] = self._groups(model["auth_state"]["groups"], existing)
        self._admit(handler.settings, model)
        return model

    async def _exchange(self, handler, params: dict) -> dict:
        provider = self.login_service
        try:
            return await self.get_token_info(handler, params)
        except HTTPClientError as exc:
            if exc.code == 599:
                raise refusal("unreachable", provider=provider) from None
            if 400 <= exc.code < 500:
                raise refusal("code_refused", provider=provider) from None
            raise refusal("provider_error", provider=provider, error=f"HTTP {exc.code}") from None
        except web.HTTPError as exc:
            if exc.status_code == 403:  # the token endpoint's own error_description
                raise refusal("code_refused", provider=provider) from None
            raise refusal("provider_error", provider=provider, error="no access token") from None
        except (OSError, TimeoutError):
            raise refusal("unreachable", provider=provider) from None

    async def _auth_model(self, token_info: dict, previous: dict | None = None) -> dict:
        """Verified claims → identity, groups, user name and auth_state; or a Refusal."""
        provider = self.login_service
        id_token = token_info.get("id_token")
        if id_token:
            claims = await self._verify(id_token)
            if previous and claims["sub"] != previous.get("sub"):
                raise refusal("userinfo_mismatch", provider=provider)
        elif previous:  # a refresh without a new ID token: the login's verified claims hold
            claims = previous.get("id_claims") or {}
        else:
            raise refusal("no_id_token", provider=provider)
        userinfo: dict = {}
        if self.userdata_url:
            try:
                userinfo = await self.token_to_user(token_info) or {}
            except HTTPClientError as exc:
                if exc.code == 599:
                    raise refusal("unreachable", provider=provider) from None
                raise refusal(
                    "provider_error", provider=provider, error=f"HTTP {exc.code}"
                ) from None
            except (OSError, TimeoutError):
                raise refusal("unreachable", provider=provider) from None
            if not isinstance(userinfo, dict) or userinfo.get("sub") != claims.get("sub"):
                raise refusal("userinfo_mismatch", provider=provider)
        identity = identity_from(claims, userinfo, self.identity_claim)
        if identity is None:
            raise refusal("no_identity", provider=provider, claim=self.identity_claim)
        if self.identity_claim == "email" and not email_verified(claims, userinfo):
            raise refusal("unverified_email", provider=provider, identity=identity)
        if self.username_rule == "ldap":
            name = await asyncio.to_thread(self._register().username, identity)
        else:
            name = username_for(identity, self.username_rule, self._mapping_table(), self.domains)
        groups = groups_from(claims, userinfo, self.groups_claim)
        state = self.build_auth_state_dict(token_info, userinfo)
        expires_in = token_info.get("expires_in")
        now = self.clock()
        state.update(
            identity=identity,
            groups=groups,
            sub=claims.get("sub"),
            id_claims=claims,
            expires_at=now + float(expires_in) if expires_in else claims.get("exp"),
        )
        return {
            "name": name,
            "admin": True if identity in self.admin_identities else None,
            "auth_state": state,
        }

    async def _verify(self, id_token: str) -> dict:
        provider = self.login_service
        try:
            keys = await asyncio.to_thread(self._candidate_keys, id_token)
        except jwt.PyJWKClientConnectionError:
            raise refusal("keys_unreachable", provider=provider) from None
        except jwt.PyJWKClientError:  # no published key has the token's key id
            raise refusal("signature", provider=provider) from None
        except jwt.PyJWTError:
            raise refusal("malformed", provider=provider) from None
        return verify_id_token(
            id_token,
            keys,
            issuer=self.expected_issuer,
            client_id=self.client_id,
            algorithms=self.algorithms,
            now=self.clock(),
            leeway=self.leeway_s,
            provider=provider,
        )

    def _candidate_keys(self, id_token: str) -> list[Any]:
        """The provider's keys the token may be signed with (blocking: run in a thread)."""
        kid = jwt.get_unverified_header(id_token).get("kid")
        if kid:
            return [self.jwks.get_signing_key(kid)]
        return list(self.jwks.get_signing_keys())  # no kid: any of the published keys

    def _register(self) -> Register:
        spec = LdapRegister.model_validate(self.ldap_register)
        return Register(spec, os.environ.get(spec.bind_password_env))

    def _mapping_table(self) -> dict[str, str] | None:
        if self.username_rule != "mapping":
            return None
        if self._mapping is None or self._mapping.path != self.mapping_file:
            self._mapping = MappingFile(self.mapping_file)
        try:
            return self._mapping.table()
        except (OSError, ValueError) as exc:
            self.log.error("The user name mapping file cannot be used: %s", exc)
            raise refusal("mapping_broken") from None

    def _groups(self, idp_groups: list[str], existing) -> list[str]:
        dropped = set(idp_groups) & self.hub_groups
        if dropped:
            self.log.warning("Ignoring provider groups named like hub groups: %s", dropped)
        kept = {g.name for g in getattr(existing, "groups", []) or []} & self.hub_groups
        return sorted((set(idp_groups) - self.hub_groups) | kept)

    def _admit(self, settings: Mapping[str, Any], model: dict) -> None:
        """Who may log in; raises Refusal (name taken) or NeedsAccess (no project)."""
        name, state = model["name"], model["auth_state"]
        identity = state["identity"]
        ledger = access.ledger(settings)
        if name in self.blocked_users:
            raise refusal("blocked", name=name)
        bound = ledger.identity_of(name)
        if bound is not None and bound != identity:  # before anything else is read by name
            raise refusal("collision", name=name, identity=identity)
        admitted = identity in self.admin_identities
        if not admitted:  # by identity only: a bare name in `members` is not this person
            facts = UserFacts(
                name=name, identities=frozenset({identity}), groups=frozenset(state["groups"])
            )
            cat = access.catalogue_of(settings)
            admitted = bool(
                projects_of(cat, facts) or ledger.granted_projects(name) or ledger.has_pending(name)
            )
        if not admitted:
            raise NeedsAccess(identity, name)
        try:
            ledger.bind_identity(name, identity)
        except IdentityTaken:
            raise refusal("bound_elsewhere", name=name, identity=identity) from None

    # -- refresh -------------------------------------------------------------------------

    async def refresh_user(self, user, handler=None, **kwargs):
        """True while the access token is fresh; a renewed model shortly before it expires;
        False (log in again) when it cannot be renewed."""
        state = await user.get_auth_state()
        if not state or "identity" not in state:
            return False
        expires_at = state.get("expires_at")
        if expires_at is None or self.clock() < float(expires_at) - self.refresh_margin_s:
            return True
        refresh_token = state.get("refresh_token")
        if not refresh_token:
            self.log.info("Access token of %s expired and there is no refresh token", user.name)
            return False
        try:
            token_info = await self.get_token_info(
                handler, self.build_refresh_token_request_params(refresh_token)
            )
            token_info["refresh_token"] = token_info.get("refresh_token") or refresh_token
            model = await self._auth_model(token_info, previous=state)
        except Refusal as r:
            self.log.info("Refresh for %s refused (%s); a new login is needed", user.name, r.kind)
            return False
        except Exception as exc:
            self.log.info("Refresh for %s failed (%s); a new login is needed", user.name, exc)
            return False
        if model["name"] != user.name or model["auth_state"]["identity"] != state["identity"]:
            self.log.warning("Refresh for %s named someone else; a new login is needed", user.name)
            return False
        model["groups"] = self._groups(model["auth_state"]["groups"], user)
        self.log.info("Renewed the access token of %s", user.name)
        return model

    def build_refresh_token_request_params(self, refresh_token: str) -> dict:
        params = super().build_refresh_token_request_params(refresh_token)
        if self.basic_auth:  # 17.4 sends the credentials in the body even with Basic
            params.pop("client_id", None)
            params.pop("client_secret", None)
        return params
