"""What the OIDC login is configured with: `NaicOIDCSettings`, the traits of
`NaicOIDCAuthenticator` (set as `c.NaicOIDCAuthenticator.<name>`, mostly by
`naic.hub.identity.oidc_setup.configure` from the catalogue's `identity:`), and the
defaults that follow from OIDC and from the provider's discovery document."""

from __future__ import annotations

import os
import time

import jwt
from oauthenticator.generic import GenericOAuthenticator
from traitlets import Callable as CallableTrait
from traitlets import Dict, Enum, Float, List, Set, Unicode, default

from naic.hub.identity.auth import USERNAME_PATTERN, fixed_default
from naic.hub.identity.claims import SIGNING_ALGORITHMS
from naic.hub.identity.groups_api import GROUPS_API_TIMEOUT_S
from naic.hub.identity.oidc_setup import discover
from naic.hub.workshops.rules import INSTRUCTORS_GROUP


class NaicOIDCSettings(GenericOAuthenticator):
    """The OIDC login's settings; the login itself is `NaicOIDCAuthenticator`, whose name
    (not this one's) is the config section."""

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

    groups_api = Unicode(
        "",
        help="""An API answering the person's groups when called with their access token
        (`Authorization: Bearer …`), in Feide's format: a JSON list of objects whose `id` is
        the group (empty: none). Its groups join those of `groups_claim`. When it fails, the
        login goes on without its groups and the hub logs a warning.

        Example: c.NaicOIDCAuthenticator.groups_api =
            "https://groups-api.dataporten.no/groups/me/groups"
        """,
    ).tag(config=True)

    groups_api_timeout_s = Float(
        GROUPS_API_TIMEOUT_S,
        help="""Seconds to wait for `groups_api` before the login goes on without its groups.

        Example: c.NaicOIDCAuthenticator.groups_api_timeout_s = 3
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
        {INSTRUCTORS_GROUP},
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

    _default_auth_state = fixed_default("enable_auth_state", True)
    _default_manage_groups = fixed_default("manage_groups", True)
    _default_groups_key = fixed_default("auth_state_groups_key", "groups")
    _default_pattern = fixed_default("username_pattern", USERNAME_PATTERN)
    _default_request_kwargs = fixed_default(
        "http_request_kwargs", {"connect_timeout": 5.0, "request_timeout": 15.0}
    )

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

    @property
    def jwks(self) -> jwt.PyJWKClient:
        if self._jwks_client is None:
            self._jwks_client = jwt.PyJWKClient(
                self.discovery["jwks_uri"], cache_jwk_set=True, lifespan=300, timeout=5
            )
        return self._jwks_client
