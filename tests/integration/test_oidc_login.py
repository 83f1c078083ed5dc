"""Institutional login through a real OIDC provider and the real hub (`naic up`).

The provider is `oidc-provider-mock` in its own process (tests/oidc_provider.py); the
browser is httpx following redirects with a cookie jar. Refusals that the provider cannot
produce (a foreign issuer, another audience, an expired or altered ID token) come from a
relay between hub and provider that changes exactly one thing about the token.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from tests.hub_process import NAIC, free_port_base, stop_hub
from tests.integration.helpers import refusal_of
from tests.oidc_provider import (
    FOREIGN_ISSUER,
    OidcHub,
    Provider,
    Relay,
    free_port,
    oidc_catalogue,
    oidc_log_in,
    start_oidc_hub,
)

pytestmark = pytest.mark.integration


def users(h: OidcHub) -> dict[str, dict]:
    with h.hub.api() as api:
        return {u["name"]: u for u in api.get("/users").json()}


def user_model(h: OidcHub, name: str) -> dict:
    with h.hub.api() as api:
        resp = api.get(f"/users/{name}")
        assert resp.status_code == 200, resp.text
        return resp.json()


def test_the_login_page_offers_the_institution(oidc_hub: OidcHub) -> None:
    page = httpx.get(oidc_hub.hub.url + "hub/login")
    assert page.status_code == 200
    assert "Log in with Test IdP" in page.text


def test_a_project_member_logs_in_and_lands_on_home_with_the_mapped_name(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user(
        "ola-sub", eduPersonPrincipalName="ola@uio.no", groups=["fc:org:uio.no", "staff"]
    )
    client, landed = oidc_log_in(oidc_hub.hub.url, "ola-sub")
    assert landed.status_code == 200, landed.text[:2000]
    assert landed.url.path == "/hub/home"
    assert "ola" in landed.text
    assert 'data-project="nn1234k"' in landed.text  # the home page lists the user's project

    model = user_model(oidc_hub, "ola")
    assert sorted(model["groups"]) == ["fc:org:uio.no", "staff"]
    state = model["auth_state"]  # stored encrypted; the hub generated the key
    assert state["identity"] == "ola@uio.no"
    assert state["sub"] == "ola-sub"
    assert state["refresh_token"]
    key = oidc_hub.hub.data_dir / "auth-state-key"
    assert key.stat().st_mode & 0o777 == 0o600

    # Logged in for real: the hub's API answers as ola with the login cookie.
    assert client.get("/hub/api/user").json()["name"] == "ola"


def test_a_member_by_institution_group_logs_in(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    # gro@uio.no is not listed in nn1234k, but her group is.
    module_oidc_provider.set_user(
        "gro-sub", eduPersonPrincipalName="gro@uio.no", groups=["fc:org:uio.no"]
    )
    _, landed = oidc_log_in(oidc_hub.hub.url, "gro-sub")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    assert user_model(oidc_hub, "gro")["groups"] == ["fc:org:uio.no"]


def test_a_person_without_a_project_sees_the_ask_page_and_gets_no_user(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("nils-sub", eduPersonPrincipalName="nils@ntnu.no")
    client, resp = oidc_log_in(oidc_hub.hub.url, "nils-sub")
    assert resp.status_code == 403
    assert resp.url.path == "/hub/oauth_callback"
    assert "You have no project on this hub yet" in resp.text
    assert "nils@ntnu.no" in resp.text
    assert 'name="project"' in resp.text and 'name="reason"' in resp.text
    assert "nils" not in users(oidc_hub)
    assert client.get("/hub/api/user").status_code == 403  # not logged in


def test_a_name_that_is_not_valid_is_refused(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("on-sub", eduPersonPrincipalName="Ola.Nordmann@uio.no")
    _, resp = oidc_log_in(oidc_hub.hub.url, "on-sub")
    assert resp.status_code == 403
    assert refusal_of(resp) == (
        "Your identity Ola.Nordmann@uio.no gives the user name 'ola.nordmann', which this hub "
        "cannot use (names are lowercase letters, digits, - and _, starting with a letter, at "
        "most 24 characters). Ask the hub's operators to give you a user name."
    )
    assert "ola.nordmann" not in users(oidc_hub)


def test_a_second_identity_for_a_taken_name_is_refused_not_merged(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("per-uio", eduPersonPrincipalName="per@uio.no")
    module_oidc_provider.set_user("per-ntnu", eduPersonPrincipalName="per@ntnu.no")
    _, first = oidc_log_in(oidc_hub.hub.url, "per-uio")
    assert first.url.path == "/hub/home"
    client, second = oidc_log_in(oidc_hub.hub.url, "per-ntnu")
    assert second.status_code == 403
    assert refusal_of(second) == (
        "The user name 'per' already belongs to another identity, so per@ntnu.no cannot use "
        "it. Ask the hub's operators to give you a different user name."
    )
    assert client.get("/hub/api/user").status_code == 403
    assert user_model(oidc_hub, "per")["auth_state"]["identity"] == "per@uio.no"


def test_a_tampered_or_missing_state_is_refused(
    oidc_hub: OidcHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("stig-sub", eduPersonPrincipalName="stig@uio.no")
    for change in ("tamper", "drop"):
        client = httpx.Client(base_url=oidc_hub.hub.url, timeout=30, follow_redirects=True)
        page = client.get("/hub/oauth_login", params={"next": "/hub/home"})
        back = client.post(str(page.url), data={"sub": "stig-sub"}, follow_redirects=False)
        assert back.status_code == 302
        url = urllib.parse.urlparse(back.headers["location"])
        query = dict(urllib.parse.parse_qsl(url.query))
        if change == "tamper":
            query["state"] = "eyJzdGF0ZV9pZCI6ICJmb3JnZWQifQ=="  # {"state_id": "forged"}
        else:
            del query["state"]
        resp = client.get(url._replace(query=urllib.parse.urlencode(query)).geturl())
        assert resp.status_code == 400, change
        assert "security check (the OAuth state) did not match" in refusal_of(resp)
        assert client.get("/hub/api/user").status_code == 403
    assert "stig" not in users(oidc_hub)


def test_cancelling_at_the_provider_says_so(oidc_hub: OidcHub) -> None:
    client = httpx.Client(base_url=oidc_hub.hub.url, timeout=30, follow_redirects=True)
    page = client.get("/hub/oauth_login")
    resp = client.post(str(page.url), data={"action": "deny"})
    assert resp.status_code == 403
    assert refusal_of(resp).startswith("The login was cancelled at Test IdP")


def test_with_a_mapping_file_names_come_from_it_and_edits_apply_at_once(
    hub_dir: Path, oidc_provider: Provider
) -> None:
    names = hub_dir / "usernames.yaml"
    names.write_text("Ola.Nordmann@uio.no: olan\n")
    h = start_oidc_hub(
        hub_dir,
        oidc_provider,
        members=["Ola.Nordmann@uio.no", "kari@ntnu.no"],
        identity={"usernames": "mapping", "mapping_file": str(names)},
    )
    try:
        oidc_provider.set_user("on-sub", eduPersonPrincipalName="Ola.Nordmann@uio.no")
        oidc_provider.set_user("kari-sub", eduPersonPrincipalName="kari@ntnu.no")
        _, landed = oidc_log_in(h.hub.url, "on-sub")
        assert landed.url.path == "/hub/home"
        assert user_model(h, "olan")["auth_state"]["identity"] == "Ola.Nordmann@uio.no"

        _, refused = oidc_log_in(h.hub.url, "kari-sub")
        assert refused.status_code == 403
        assert refusal_of(refused) == (
            "Your identity kari@ntnu.no has no user name on this hub yet. Ask the hub's "
            "operators to add it to the hub's list of user names."
        )
        assert "kari" not in users(h)

        names.write_text("Ola.Nordmann@uio.no: olan\nkari@ntnu.no: kari2\n")
        _, landed = oidc_log_in(h.hub.url, "kari-sub")
        assert landed.url.path == "/hub/home"
        assert "kari2" in users(h)
    finally:
        stop_hub(h.hub)


# --- refusals of wrong tokens, through the relay ---------------------------------------


def test_through_a_faithful_relay_the_login_works(
    relay_hub: OidcHub, relay: Relay, module_oidc_provider: Provider
) -> None:
    relay.mode = None
    module_oidc_provider.set_user("eva-sub", eduPersonPrincipalName="eva@uio.no")
    _, landed = oidc_log_in(relay_hub.hub.url, "eva-sub")
    assert landed.url.path == "/hub/home", landed.text[:2000]


@pytest.mark.parametrize(
    ("mode", "who", "words"),
    [
        (
            "issuer",
            "iss",
            f"The identity token was issued by {FOREIGN_ISSUER}, not by http://127.0.0.1:",
        ),
        ("audience", "aud", "The identity token was issued for another service, not for this hub"),
        (
            "expired",
            "exp",
            "The identity token from Test IdP has expired, so you are not logged in",
        ),
        ("signature", "sig", "The identity token's signature does not match Test IdP's published"),
    ],
)
def test_a_wrong_id_token_is_refused_with_a_page(
    relay_hub: OidcHub,
    relay: Relay,
    module_oidc_provider: Provider,
    mode: str,
    who: str,
    words: str,
) -> None:
    module_oidc_provider.set_user(f"{who}-sub", eduPersonPrincipalName=f"{who}@uio.no")
    relay.mode = mode
    # The altered token claims to be the project member eva; only the signature mode
    # changes claims without re-signing.
    relay.patch = {"eduPersonPrincipalName": "eva@uio.no"} if mode == "signature" else {}
    try:
        client, resp = oidc_log_in(relay_hub.hub.url, f"{who}-sub")
    finally:
        relay.mode, relay.patch = None, {}
    assert resp.status_code == 403, resp.text[:2000]
    assert resp.headers["content-type"].startswith("text/html")
    assert refusal_of(resp).startswith(words)
    assert "Start again from the login page" in refusal_of(resp)
    assert "Traceback" not in resp.text
    assert client.get("/hub/api/user").status_code == 403
    assert who not in users(relay_hub)


# --- renewal of the access token -----------------------------------------------------------


def test_the_access_token_is_renewed_and_a_dead_one_needs_a_new_login(
    hub_dir: Path, oidc_provider: Provider
) -> None:
    # Every request re-checks the login (auth_refresh_age 1 s), and a token counts as
    # expiring when less than 3598 s of its 3600 s are left: renewals come 2 s after login.
    config = (
        "c.Authenticator.auth_refresh_age = 1\nc.NaicOIDCAuthenticator.refresh_margin_s = 3598\n"
    )
    h = start_oidc_hub(hub_dir, oidc_provider, members=["ola@uio.no"], config_d=config)
    try:
        oidc_provider.set_user("ola-sub", eduPersonPrincipalName="ola@uio.no")
        client, landed = oidc_log_in(h.hub.url, "ola-sub")
        assert landed.url.path == "/hub/home"
        first = user_model(h, "ola")["auth_state"]["access_token"]
        time.sleep(3)  # past the margin (3600 - 3598 s) and the refresh age
        assert client.get("/hub/home").status_code == 200
        renewed = user_model(h, "ola")["auth_state"]
        assert renewed["access_token"] != first
        assert renewed["identity"] == "ola@uio.no"
        assert "Renewed the access token of ola" in h.hub.log_text()

        # The provider revokes everything: the next check needs a new login.
        resp = httpx.post(f"{oidc_provider.issuer}/users/ola-sub/revoke-tokens")
        assert resp.status_code == 204
        time.sleep(3)  # the renewed token counts as expiring 2 s after its renewal
        again = client.get("/hub/home", follow_redirects=False)
        assert again.status_code == 302
        assert "/hub/login" in again.headers["location"]
    finally:
        stop_hub(h.hub)


# --- the hub does not start with a broken login ---------------------------------------------


def run_up(base: Path, catalogue_text: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    cat = base / "catalogue.yaml"
    cat.write_text(catalogue_text)
    argv = [NAIC, "up", "--port", str(free_port_base()), "--data-dir", str(base / "data")]
    argv += ["--catalogue", str(cat)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAIC_")}
    env.pop("JUPYTERHUB_CRYPT_KEY", None)
    return {**env, **extra}


def test_an_unreachable_provider_stops_the_hub_naming_its_url(hub_dir: Path) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    done = run_up(
        hub_dir,
        oidc_catalogue(issuer, []),
        clean_env(NAIC_OIDC_CLIENT_ID="x", NAIC_OIDC_CLIENT_SECRET="y"),
    )
    assert done.returncode != 0
    assert f"naic-hub: the identity provider {issuer} did not answer" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_client_secret_stops_the_hub_naming_the_variable(
    hub_dir: Path, oidc_provider: Provider
) -> None:
    done = run_up(
        hub_dir, oidc_catalogue(oidc_provider.issuer, []), clean_env(NAIC_OIDC_CLIENT_ID="x")
    )
    assert done.returncode != 0
    assert (
        "naic-hub: the institutional login needs its OAuth client secret in the environment "
        "variable NAIC_OIDC_CLIENT_SECRET, which is not set."
    ) in done.stderr
    assert "Traceback" not in done.stderr
