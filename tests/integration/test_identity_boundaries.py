"""Attacks on user names across institutions, through the real OIDC provider and real hubs.

A stranger at another institution (`ola@evil.example`) must never become `ola`: not its
account, not its projects, not its admin rights, not by logging in first. Names come from
the site's user register (a real `slapd`, tests/ldap_server.py), the operator's mapping, or
the local part of identities at the listed domains only; admins and project members are
named by identity. A provider's unverified e-mail address proves nothing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.hub_process import stop_hub
from tests.integration.helpers import refusal_of
from tests.ldap_server import LdapServer
from tests.oidc_provider import OidcHub, Provider, oidc_log_in, start_oidc_hub

pytestmark = pytest.mark.integration


def names(h: OidcHub) -> dict[str, bool]:
    """Hub user name → admin, as the hub's API lists them."""
    with h.hub.api() as api:
        return {u["name"]: u["admin"] for u in api.get("/users").json()}


def logged_in_as(client: httpx.Client) -> str | None:
    resp = client.get("/hub/api/user")
    return resp.json()["name"] if resp.status_code == 200 else None


def test_a_stranger_with_an_admins_local_part_gets_neither_the_name_nor_admin(
    base: Path, oidc_provider: Provider
) -> None:
    h = start_oidc_hub(base, oidc_provider, members=["per@uio.no"], admins=("ola@uio.no",))
    try:
        oidc_provider.set_user("evil-ola", eduPersonPrincipalName="ola@evil.example")
        attacker, page = oidc_log_in(h.hub.url, "evil-ola")
        assert page.status_code == 403
        assert refusal_of(page) == (
            "Your identity ola@evil.example is from evil.example, and this hub takes user "
            "names only from identities at uio.no, ntnu.no, so ola@evil.example has none "
            "here. Ask the hub's operators to give you a user name."
        )
        assert logged_in_as(attacker) is None
        assert "ola" not in names(h)

        # The real Ola, afterwards, gets her name and her admin rights.
        oidc_provider.set_user("real-ola", eduPersonPrincipalName="ola@uio.no")
        ola, landed = oidc_log_in(h.hub.url, "real-ola")
        assert landed.url.path == "/hub/home", landed.text[:2000]
        assert logged_in_as(ola) == "ola"
        assert names(h)["ola"] is True
    finally:
        stop_hub(h.hub)


def test_a_stranger_cannot_claim_a_members_name_by_asking_for_access_first(
    base: Path, oidc_provider: Provider
) -> None:
    """Logging in first with a pending access request used to bind the name for good."""
    h = start_oidc_hub(base, oidc_provider, members=["per@uio.no"])
    try:
        oidc_provider.set_user("evil-per", eduPersonPrincipalName="per@evil.example")
        attacker, page = oidc_log_in(h.hub.url, "evil-per")
        assert page.status_code == 403
        assert "has none here" in refusal_of(page)
        assert "You have no project on this hub yet" not in page.text  # no ask form either
        assert logged_in_as(attacker) is None

        oidc_provider.set_user("real-per", eduPersonPrincipalName="per@uio.no")
        per, landed = oidc_log_in(h.hub.url, "real-per")
        assert landed.url.path == "/hub/home", landed.text[:2000]
        assert logged_in_as(per) == "per"
        assert 'data-project="nn1234k"' in landed.text
    finally:
        stop_hub(h.hub)


def test_a_bare_name_in_members_or_admins_is_not_an_identity(
    base: Path, oidc_provider: Provider
) -> None:
    """`members: [kari]` does not admit whoever is called kari; `--admin kari` stops the hub."""
    h = start_oidc_hub(base, oidc_provider, members=["kari"])
    try:
        oidc_provider.set_user("kari-ntnu", eduPersonPrincipalName="kari@ntnu.no")
        client, page = oidc_log_in(h.hub.url, "kari-ntnu")
        assert page.status_code == 403
        assert "You have no project on this hub yet" in page.text  # not a member
        assert logged_in_as(client) is None
    finally:
        stop_hub(h.hub)
    with pytest.raises(pytest.fail.Exception, match="admins are named by identity"):
        (base / "second").mkdir()
        start_oidc_hub(base / "second", oidc_provider, admins=("kari",))


def test_names_from_the_sites_ldap_register(
    base: Path, oidc_provider: Provider, ldap_server: LdapServer
) -> None:
    """Two people called Ola at two institutions get the two names the register gives them;
    somebody the register does not know gets no name at all."""
    ldap = {
        "url": ldap_server.url,
        "base_dn": ldap_server.base_dn,
        "bind_dn": ldap_server.bind_dn,
        "bind_password_env": "NAIC_TEST_LDAP_PASSWORD",
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAIC_TEST_LDAP_PASSWORD", ldap_server.bind_password)
        h = start_oidc_hub(
            base,
            oidc_provider,
            members=["ola@uio.no", "ola@ntnu.no", "eve@evil.example"],
            identity={"usernames": "ldap", "ldap": ldap},
        )
    try:
        oidc_provider.set_user("ntnu-ola", eduPersonPrincipalName="ola@ntnu.no")
        first, landed = oidc_log_in(h.hub.url, "ntnu-ola")
        assert landed.url.path == "/hub/home", landed.text[:2000]
        assert logged_in_as(first) == "olan"

        oidc_provider.set_user("uio-ola", eduPersonPrincipalName="ola@uio.no")
        second, landed = oidc_log_in(h.hub.url, "uio-ola")
        assert landed.url.path == "/hub/home", landed.text[:2000]
        assert logged_in_as(second) == "ola"

        # Listed in a project, known to the provider, unknown to the site: no account.
        oidc_provider.set_user("eve", eduPersonPrincipalName="eve@evil.example")
        eve, page = oidc_log_in(h.hub.url, "eve")
        assert page.status_code == 403
        assert refusal_of(page) == (
            "Your identity eve@evil.example is not in this site's user register, so it has no "
            "user name here. Ask your site's user administration to register it, then log in "
            "again."
        )
        assert logged_in_as(eve) is None
        # A filter injection finds nobody, not everybody.
        oidc_provider.set_user("star", eduPersonPrincipalName="*")
        _, page = oidc_log_in(h.hub.url, "star")
        assert "is not in this site's user register" in refusal_of(page)
        assert set(names(h)) == {"ola", "olan"}
    finally:
        stop_hub(h.hub)


def test_an_unverified_email_is_no_identity(base: Path, oidc_provider: Provider) -> None:
    h = start_oidc_hub(
        base,
        oidc_provider,
        members=["ola@uio.no"],
        identity={"identity_claim": "email", "domains": ["uio.no"]},
    )
    try:
        # Anybody can put any address in an account at a provider that does not verify it.
        oidc_provider.set_user("claims-ola", email="ola@uio.no", email_verified=False)
        attacker, page = oidc_log_in(h.hub.url, "claims-ola")
        assert page.status_code == 403
        assert refusal_of(page) == (
            "Test IdP has not verified that the e-mail address ola@uio.no is yours, so the hub "
            "cannot log you in with it. Verify the address at Test IdP, then log in again."
        )
        assert logged_in_as(attacker) is None
        assert "ola" not in names(h)

        oidc_provider.set_user("real-ola", email="ola@uio.no", email_verified=True)
        ola, landed = oidc_log_in(h.hub.url, "real-ola")
        assert landed.url.path == "/hub/home", landed.text[:2000]
        assert logged_in_as(ola) == "ola"
    finally:
        stop_hub(h.hub)


def test_an_identity_made_of_markup_is_shown_as_text(base: Path, oidc_provider: Provider) -> None:
    """The refusal page repeats the identity the provider sent: it must not run in the page."""
    h = start_oidc_hub(base, oidc_provider, members=["ola@uio.no"])
    try:
        evil = '<img src=x onerror="alert(1)">@evil.example'
        oidc_provider.set_user("markup", eduPersonPrincipalName=evil)
        _, page = oidc_log_in(h.hub.url, "markup")
        assert page.status_code == 403
        assert evil not in page.text
        assert "&lt;img src=x onerror=" in page.text
    finally:
        stop_hub(h.hub)
