"""The OIDC login's setup and authenticator (naic.hub.identity.oidc): the catalogue's
`identity:` as hub config, the checks at hub start, discovery, the authenticator's defaults,
and admins named by identity. The pure parts are in test_oidc_claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traitlets.config import Config

from naic.hub import catalogue
from naic.hub.app.config import Settings, build_config
from naic.hub.identity import oidc, oidc_setup

ISSUER = "https://idp.example.org"


# --- configuration ------------------------------------------------------------------------


IDENTITY_YAML = """
identity:
  title: Feide
  issuer: https://auth.dataporten.no
  identity_claim: eduPersonPrincipalName
  groups_claim: groups
  domains: [uio.no]
  client_id_env: FEIDE_ID
  client_secret_env: FEIDE_SECRET
"""


def test_build_config_selects_the_oidc_login_from_the_catalogue(tmp_path: Path) -> None:
    text = catalogue.DEFAULT_CATALOGUE.read_text() + IDENTITY_YAML
    cat = catalogue.parse(text)
    c = build_config(Settings(data_dir=tmp_path), cat, None)
    assert c.JupyterHub.authenticator_class == "naic-oidc"
    a = c.NaicOIDCAuthenticator
    assert a.issuer == "https://auth.dataporten.no"
    assert a.login_service == "Feide"
    assert a.identity_claim == "eduPersonPrincipalName"
    assert a.client_secret_variable == "FEIDE_SECRET"
    paths = [h[0] for h in c.JupyterHub.extra_handlers]
    assert {"/naic/access", "/naic/access/ask", "/naic/admin/access"} <= set(paths)


def test_without_identity_the_dev_login_stays(tmp_path: Path) -> None:
    cat = catalogue.load(catalogue.DEFAULT_CATALOGUE)
    c = build_config(Settings(data_dir=tmp_path), cat, None)
    assert c.JupyterHub.authenticator_class == "naic-dev"


def test_prepare_stops_the_hub_naming_a_missing_variable(tmp_path: Path, capsys) -> None:
    cat = catalogue.parse(catalogue.DEFAULT_CATALOGUE.read_text() + IDENTITY_YAML)
    with pytest.raises(SystemExit):
        oidc.prepare(Config(), tmp_path, cat, env={"FEIDE_ID": "x"})
    assert capsys.readouterr().err.strip() == (
        "naic-hub: the institutional login needs its OAuth client secret in the environment "
        "variable FEIDE_SECRET, which is not set."
    )


def test_discovery_of_an_unreachable_issuer_names_it() -> None:
    with pytest.raises(oidc.StartupError, match=r"the identity provider http://127.0.0.1:9/x "):
        oidc.discover("http://127.0.0.1:9/x", timeout=2)


def test_crypt_key_is_generated_once_private_and_usable(tmp_path: Path) -> None:
    from jupyterhub.crypto import _validate_key

    path = tmp_path / "auth-state-key"
    key = oidc.ensure_crypt_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert oidc.ensure_crypt_key(path) == key
    assert len(_validate_key(key)) == 32


def test_a_missing_mapping_file_stops_the_hub_naming_it(tmp_path: Path, capsys) -> None:
    extra = IDENTITY_YAML + "  usernames: mapping\n  mapping_file: /nonexistent/names.yaml\n"
    cat = catalogue.parse(catalogue.DEFAULT_CATALOGUE.read_text() + extra)
    with pytest.raises(SystemExit):
        oidc.prepare(Config(), tmp_path, cat, env={"FEIDE_ID": "x", "FEIDE_SECRET": "y"})
    assert capsys.readouterr().err.strip() == (
        "naic-hub: the user name mapping file /nonexistent/names.yaml cannot be used: "
        "No such file or directory."
    )


class _Answer:
    def __init__(self, doc: dict):
        self.body = json.dumps(doc).encode()

    def read(self) -> bytes:
        return self.body

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_discovery_must_name_the_configured_issuer(monkeypatch) -> None:
    doc = {
        "issuer": "https://other.example",
        "authorization_endpoint": "a",
        "token_endpoint": "t",
        "jwks_uri": "j",
    }
    monkeypatch.setattr(oidc_setup.urllib.request, "urlopen", lambda url, timeout: _Answer(doc))
    with pytest.raises(oidc.StartupError) as info:
        oidc.discover(ISSUER)
    assert str(info.value) == (
        f"naic-hub: the identity provider at {ISSUER} calls itself https://other.example; set "
        "`identity.issuer` in the catalogue to exactly that."
    )
    doc["issuer"] = ISSUER + "/"  # a trailing slash is the same issuer
    assert oidc.discover(ISSUER)["token_endpoint"] == "t"
    del doc["jwks_uri"]
    with pytest.raises(oidc.StartupError, match="lacks jwks_uri"):
        oidc.discover(ISSUER)


DISCOVERY = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/authorize",
    "token_endpoint": ISSUER + "/token",
    "userinfo_endpoint": ISSUER + "/userinfo",
    "jwks_uri": ISSUER + "/jwks",
}


class _Group:
    def __init__(self, name: str):
        self.name = name


class _User:
    groups = (_Group("instructors"), _Group("old-idp-group"))


def test_the_authenticator_follows_discovery_and_keeps_hub_groups() -> None:
    a = oidc.NaicOIDCAuthenticator(issuer=ISSUER, discovery=DISCOVERY)
    assert a.token_url == ISSUER + "/token"
    assert a.userdata_url == ISSUER + "/userinfo"
    assert a.basic_auth  # the OAuth and OIDC default client authentication
    assert a.enable_auth_state and a.manage_groups
    assert a.algorithms == ["RS256"]
    # Provider groups replace provider groups; the hub's own groups stay, and a provider
    # group named like one of them is ignored.
    assert a._groups(["fc:org:uio.no", "instructors"], _User()) == ["fc:org:uio.no", "instructors"]
    assert a._groups(["fc:org:uio.no", "instructors"], None) == ["fc:org:uio.no"]


def test_refresh_sends_client_credentials_only_once() -> None:
    a = oidc.NaicOIDCAuthenticator(
        issuer=ISSUER, discovery=DISCOVERY, client_id="id", client_secret="s"
    )
    assert a.build_refresh_token_request_params("rt") == {
        "grant_type": "refresh_token",
        "refresh_token": "rt",
    }
    post = oidc.NaicOIDCAuthenticator(
        issuer=ISSUER,
        discovery={**DISCOVERY, "token_endpoint_auth_methods_supported": ["client_secret_post"]},
        client_id="id",
        client_secret="s",
    )
    assert not post.basic_auth
    assert post.build_refresh_token_request_params("rt")["client_secret"] == "s"


def test_client_credentials_come_from_the_named_variables(monkeypatch) -> None:
    monkeypatch.setenv("FEIDE_ID", "the-id")
    monkeypatch.setenv("FEIDE_SECRET", "the-secret")
    a = oidc.NaicOIDCAuthenticator(
        issuer=ISSUER,
        discovery=DISCOVERY,
        client_id_variable="FEIDE_ID",
        client_secret_variable="FEIDE_SECRET",
    )
    assert (a.client_id, a.client_secret) == ("the-id", "the-secret")


# --- admins ----------------------------------------------------------------------------


def test_admins_are_named_by_identity() -> None:
    ident = catalogue.Identity(
        issuer="https://idp.example", identity_claim="eduPersonPrincipalName", domains=["uio.no"]
    )
    oidc.check_admins({"ola@uio.no"}, ident)
    with pytest.raises(oidc.StartupError) as info:
        oidc.check_admins({"ola@uio.no", "kari", "boss"}, ident)
    assert str(info.value) == (
        "naic-hub: with an institutional login, admins are named by identity (e.g. "
        "--admin ola@uio.no), not by user name: boss, kari."
    )
    opaque = catalogue.Identity(
        issuer="https://idp.example", identity_claim="sub", domains=["uio.no"]
    )
    oidc.check_admins({"f81d4fae"}, opaque)  # subject ids have no @


def test_oidc_settings_name_admins_by_identity_not_hub_name() -> None:
    c = Config()
    c.Authenticator.admin_users = {"ola"}
    ident = catalogue.Identity(issuer="https://idp.example", domains=["uio.no"])
    oidc.configure(c, ident, ("ola@uio.no",))
    assert c.Authenticator.admin_users == set()
    assert c.NaicOIDCAuthenticator.admin_identities == {"ola@uio.no"}
    assert c.NaicOIDCAuthenticator.domains == ["uio.no"]
