"""The site's user register over LDAP: an identity's hub user name, as the site gave it.

An HPC site's accounts come from its directory (LDAP: `uid` on a person's entry, which also
holds their federated identity, e.g. `eduPersonPrincipalName`). Taking names from there,
not from splitting an address, means `ola@uio.no` and `ola@evil.example` can never both be
`ola`: each identity finds its own entry, or none. Blocking (ldap3 is synchronous): the
authenticator calls `username` in a thread.
"""

from __future__ import annotations

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from naic.hub.catalogue import LdapRegister
from naic.hub.identity.claims import checked_name, refusal

TIMEOUT_S = 5


class Register:
    """Looks identities up in one LDAP directory (a connection per lookup: logins are rare
    and a kept connection would need its own reconnect logic)."""

    def __init__(self, spec: LdapRegister, password: str | None = None):
        self.spec = spec
        self.password = password

    def _connect(self) -> ldap3.Connection:
        server = ldap3.Server(self.spec.url, connect_timeout=TIMEOUT_S)
        return ldap3.Connection(
            server,
            user=self.spec.bind_dn,
            password=self.password if self.spec.bind_dn else None,
            auto_bind=True,
            read_only=True,
            receive_timeout=TIMEOUT_S,
        )

    def check(self) -> None:
        """At hub start: bind once; LDAPException says why not."""
        self._connect().unbind()

    def username(self, identity: str) -> str:
        """The user name of the one entry whose identity attribute is `identity`, or a
        Refusal: not registered, registered twice, or the register unreachable."""
        attr, name_attr = self.spec.identity_attribute, self.spec.username_attribute
        try:
            conn = self._connect()
            try:
                conn.search(
                    self.spec.base_dn,
                    f"({attr}={escape_filter_chars(identity)})",
                    attributes=[name_attr],
                    size_limit=2,
                )
                entries = list(conn.entries)
            finally:
                conn.unbind()
        except LDAPException:
            raise refusal("register_unreachable") from None
        if not entries:
            raise refusal("not_in_register", identity=identity)
        if len(entries) > 1:
            raise refusal("register_ambiguous", identity=identity)
        values = entries[0].entry_attributes_as_dict.get(name_attr) or []
        if len(values) != 1 or not isinstance(values[0], str):
            raise refusal("not_in_register", identity=identity)
        return checked_name(identity, values[0])
