"""Institutional login over OpenID Connect: `NaicOIDCAuthenticator`, configured by the catalogue.

The catalogue's `identity:` names the provider (`issuer`), the claim that names a person
(`identity_claim`, e.g. `eduPersonPrincipalName`), where groups come from (a claim, and/or a
groups API called with the access token, as Feide's, `naic.hub.identity.groups_api`), and how
an identity becomes a hub user name: the site's user register over LDAP
(`naic.hub.identity.register`), the operator's `mapping` file, or `local_part` for identities
at the listed `domains` only. At hub start the provider's discovery document is fetched
once; a provider that does not answer, or a client id or secret missing from the
environment, stops the hub with one sentence.

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
- A groups API that fails (no answer within `groups_api_timeout_s`, a status other than 200,
  an answer that is not a list of groups) does not stop the login: one warning names its URL
  and what happened, and the person logs in with their other groups (at a refresh: the API's
  groups of the last login). Someone who would then have no project is told to try again
  later rather than sent to ask for access.
- A user name belongs to one identity (`Ledger.bind_identity`); a second identity that maps
  to the same name is refused, never merged.
- Every refusal is a page in the hub's look with a sentence saying what happened and what
  to do, never a traceback (`Refusal`, `NaicCallbackHandler` in `oidc_callback`).
- Refresh: the access token is renewed with the refresh token shortly before it expires;
  when that is impossible the user logs in again (17.4 would re-verify the stored, by then
  expired, ID token, and it sends client credentials in the body, which some providers
  refuse for the refresh grant).

The login is split by concern: `oidc_setup` (hub start: `configure`, `prepare`, `discover`,
`StartupError`), `oidc_settings` (the traits and the defaults that follow from discovery),
`oidc_callback` (`/hub/oauth_callback`) and this module (token exchange, verification,
admission, refresh). The setup names are importable from here too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
from tornado import web
from tornado.httpclient import HTTPClientError

from naic.hub.catalogue import LdapRegister
from naic.hub.identity import access
from naic.hub.identity.claims import (
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
from naic.hub.identity.groups_api import GroupsApiFailed, fetch_groups
from naic.hub.identity.oidc_callback import NaicCallbackHandler
from naic.hub.identity.oidc_settings import NaicOIDCSettings
from naic.hub.identity.oidc_setup import (
    CRYPT_KEY_ENV,
    CRYPT_KEY_FILE,
    DISCOVERY_TIMEOUT_S,
    StartupError,
    check_admins,
    check_register,
    configure,
    discover,
    ensure_crypt_key,
    prepare,
)
from naic.hub.identity.register import Register
from naic.hub.usage.ledger import IdentityTaken
from naic.hub.workshops import api as workshop_api
from naic.hub.workshops import entry
from naic.hub.workshops.base import store_for
from naic.hub.workshops.rules import code_key
from naic.spawners.request import UserFacts, projects_of

__all__ = [
    "CRYPT_KEY_ENV",
    "CRYPT_KEY_FILE",
    "DISCOVERY_TIMEOUT_S",
    "NaicCallbackHandler",
    "NaicOIDCAuthenticator",
    "StartupError",
    "check_admins",
    "check_register",
    "configure",
    "discover",
    "ensure_crypt_key",
    "prepare",
]


class NaicOIDCAuthenticator(NaicOIDCSettings):
    """Log in with the catalogue's OpenID Connect provider; see the module's docstring. Its
    traits and their defaults are in `NaicOIDCSettings`."""

    callback_handler = NaicCallbackHandler

    _mapping: MappingFile | None = None

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
        try:
            self._admit(handler.settings, model, next_url=_next_url(handler))
        except NeedsAccess:
            if self.groups_api and model["auth_state"]["api_groups"] is None:
                # Not "ask for access": the groups the API did not give may be their way in.
                raise refusal("groups_unreachable", provider=self.login_service) from None
            raise
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
        api_groups = await self._api_groups(token_info, identity, previous)
        state = self.build_auth_state_dict(token_info, userinfo)
        expires_in = token_info.get("expires_in")
        now = self.clock()
        state.update(
            identity=identity,
            groups=sorted(set(groups) | set(api_groups or ())),
            api_groups=api_groups,
            sub=claims.get("sub"),
            id_claims=claims,
            expires_at=now + float(expires_in) if expires_in else claims.get("exp"),
        )
        return {
            "name": name,
            "admin": True if identity in self.admin_identities else None,
            "auth_state": state,
        }

    async def _api_groups(
        self, token_info: dict, identity: str, previous: dict | None
    ) -> list[str] | None:
        """The groups API's groups for this access token ([] without a `groups_api`). When the
        API fails: one warning, and the groups it gave at the last login (a refresh) or None."""
        if not self.groups_api:
            return []
        try:
            token = token_info.get("access_token")
            if not token:
                raise GroupsApiFailed("was not asked: the provider sent no access token")
            return await fetch_groups(
                self.groups_api,
                token,
                timeout_s=self.groups_api_timeout_s,
                client=self.http_client,
            )
        except GroupsApiFailed as why:
            kept = (previous or {}).get("api_groups")
            self.log.warning(
                "Groups API %s %s; %s for %s",
                self.groups_api,
                why,
                "keeping its groups of the last login"
                if kept is not None
                else "going on without its groups",
                identity,
            )
            return kept

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

    def _admit(self, settings: Mapping[str, Any], model: dict, next_url: str = "") -> None:
        """Who may log in; raises Refusal (name taken) or NeedsAccess (no project). A
        workshop's student needs no project (`naic.hub.workshops.entry`)."""
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
            admitted = self._workshop_student(settings, name, next_url)
        if not admitted:
            raise NeedsAccess(identity, name)
        try:
            ledger.bind_identity(name, identity)
        except IdentityTaken:
            raise refusal("bound_elsewhere", name=name, identity=identity) from None

    def _workshop_student(self, settings: Mapping[str, Any], name: str, next_url: str) -> bool:
        """In no project, but seated in an open workshop or bringing a code that works."""
        code = entry.code_in(next_url, settings.get("base_url", "/") + "hub/")
        if code and workshop_api.rate_limited(name):
            return False  # the join would refuse it too; a login is no way round the limit
        secret = settings.get("cookie_secret")
        key = code_key(secret) if secret else None
        store = store_for(settings["naic"]["ledger_url"], key)
        ws = entry.workshop_entry(store, name, code if key else None, datetime.now(UTC))
        if ws is not None:
            self.log.info("OIDC login of %s: in no project, let in for workshop %s", name, ws)
        return ws is not None

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


def _next_url(handler) -> str:
    """Where the login goes next (the OAuth state's `next`), or "" when it cannot say."""
    try:
        return handler.get_next_url() or ""
    except Exception:
        return ""
