"""Institutional login: the OpenID Connect provider, the claims that name a person and their
groups, and where a hub user name comes from (LDAP register, mapping file, local part)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from naic.hub.catalogue.base import ENV_NAME, URL, Model

#: Where a hub user name comes from: the site's user register over LDAP, the operator's
#: file, or the identity's part before `@` (only for identities at the listed `domains`).
UsernameRule = Literal["local_part", "mapping", "ldap"]
DOMAIN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"
#: Hosts where a groups API may be plain http (a test harness on this machine).
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class LdapRegister(Model):
    """The site's user register over LDAP: the entry whose `identity_attribute` equals the
    person's identity gives their user name in `username_attribute`."""

    url: str = Field(pattern=r"^ldaps?://[^\s]+$", description="ldap[s]://host[:port]")
    base_dn: str = Field(min_length=1, description="where people are, e.g. ou=people,dc=…")
    identity_attribute: str = Field("eduPersonPrincipalName", pattern=r"^[A-Za-z][\w-]*$")
    username_attribute: str = Field("uid", pattern=r"^[A-Za-z][\w-]*$")
    #: Bind as this DN (anonymous without it); its password in `bind_password_env`.
    bind_dn: str | None = None
    bind_password_env: str = Field("NAIC_LDAP_PASSWORD", pattern=ENV_NAME)


class Identity(Model):
    """Institutional login over OpenID Connect (Feide, eduGAIN proxies, any OIDC provider)."""

    title: str = Field("your institution", min_length=1, description='"Log in with {title}"')
    issuer: str = Field(pattern=URL)
    scopes: list[str] = ["openid", "profile", "email"]
    #: The claim that names a person, e.g. `eduPersonPrincipalName` (`ola@uio.no`), or a
    #: namespaced one such as Feide's `https://n.feide.no/claims/eduPersonPrincipalName`
    #: (a claim name may be a URL; an exact name wins over a dotted path into objects).
    identity_claim: str = Field("sub", min_length=1)
    #: The claim (ID token, else userinfo) listing the person's groups, matched against
    #: projects' `groups`. Without it and without `groups_api`, groups give no project.
    groups_claim: str | None = None
    #: An API that answers the person's groups when called with their access token as
    #: `Authorization: Bearer …`, in Feide's format: a JSON list of objects whose `id`
    #: (e.g. `fc:org:uio.no`) is the group, matched against projects' `groups`. Feide's is
    #: https://groups-api.dataporten.no/groups/me/groups (scopes `groups-org`, `groups-other`). With
    #: `groups_claim` too, a person's groups are both together. When the API fails at a
    #: login, the person logs in with their other groups and the hub logs a warning; someone
    #: then in no project is asked to try again later.
    groups_api: str | None = None
    usernames: UsernameRule = "local_part"
    #: With `usernames: local_part`: the identity domains whose local parts are this site's
    #: user names (one user register). Without the list, `ola@uio.no` and `ola@evil.example`
    #: would both be `ola`, first come first served.
    domains: list[str] = []
    #: YAML file `identity: username` the operator maintains (with `usernames: mapping`).
    mapping_file: str | None = None
    #: The site's user register (with `usernames: ldap`).
    ldap: LdapRegister | None = None
    #: Environment variables holding the OAuth client id and secret (never in this file).
    client_id_env: str = Field("NAIC_OIDC_CLIENT_ID", pattern=ENV_NAME)
    client_secret_env: str = Field("NAIC_OIDC_CLIENT_SECRET", pattern=ENV_NAME)

    @field_validator("groups_api")
    @classmethod
    def _groups_api_is_https(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname or ""
        except ValueError:  # e.g. an unbalanced `[` in the host
            scheme, host = "", ""
        allowed = scheme == "https" or (scheme == "http" and host in LOOPBACK_HOSTS)
        if re.search(r"\s", url) or not host or not allowed:
            raise ValueError(
                "must be an https:// URL such as https://groups-api.dataporten.no/groups/me/groups "
                "(http:// only on 127.0.0.1 or localhost): the access token is sent to it"
            )
        return url

    @model_validator(mode="after")
    def _mapping_needs_file(self) -> Identity:
        if self.usernames == "mapping" and not self.mapping_file:
            raise ValueError("usernames: mapping needs mapping_file (YAML of identity: name)")
        if self.mapping_file and not self.mapping_file.startswith("/"):
            raise ValueError("mapping_file must be an absolute path")
        if self.usernames == "ldap" and self.ldap is None:
            raise ValueError("usernames: ldap needs ldap: {url, base_dn, …} (the user register)")
        if self.usernames == "local_part" and not self.domains:
            raise ValueError(
                "usernames: local_part needs domains: the identity domains whose local parts "
                "are this site's user names (e.g. [uio.no]); otherwise the same name at another "
                "institution would take the account"
            )
        for domain in self.domains:
            if not re.match(DOMAIN, domain):
                raise ValueError(f"domains: {domain!r} is not a lower-case domain such as uio.no")
        return self
