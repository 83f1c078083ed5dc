"""Institutional login: the OpenID Connect provider, the claims that name a person and their
groups, and where a hub user name comes from (LDAP register, mapping file, local part)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from naic.hub.catalogue.base import ENV_NAME, URL, Model

#: Where a hub user name comes from: the site's user register over LDAP, the operator's
#: file, or the identity's part before `@` (only for identities at the listed `domains`).
UsernameRule = Literal["local_part", "mapping", "ldap"]
DOMAIN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"


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
    #: The claim that names a person, e.g. `eduPersonPrincipalName` (`ola@uio.no`).
    identity_claim: str = Field("sub", min_length=1)
    #: The claim listing the person's groups, matched against projects' `groups`.
    groups_claim: str | None = None
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
