"""The OIDC login's setup and authenticator (naic.hub.identity.oidc): the catalogue's
`identity:` as hub config, the checks at hub start, discovery, the authenticator's defaults,
and admins named by identity. The pure parts are in test_oidc_claims."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError
from traitlets.config import Config

from naic.hub import catalogue
from naic.hub.app.config import Settings, build_config
from naic.hub.app.summary import render_summary
from naic.hub.identity import groups_api, oidc, oidc_setup

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


# --- Feide: the namespaced ePPN claim and the groups API ----------------------------------

EPPN = "https://n.feide.no/claims/eduPersonPrincipalName"
FEIDE_GROUPS = "https://groups-api.dataporten.no/groups/me/groups"
FEIDE_YAML = f"""
identity:
  title: Feide
  issuer: https://auth.dataporten.no
  scopes: [openid, userid-feide, groups-org, groups-other]
  identity_claim: {EPPN}
  groups_api: {FEIDE_GROUPS}
  domains: [uio.no]
"""


def test_a_feide_identity_configures_the_namespaced_claim_and_the_groups_api(
    tmp_path: Path,
) -> None:
    cat = catalogue.parse(catalogue.DEFAULT_CATALOGUE.read_text() + FEIDE_YAML)
    assert cat.identity.identity_claim == EPPN
    a = build_config(Settings(data_dir=tmp_path), cat, None).NaicOIDCAuthenticator
    assert a.identity_claim == EPPN
    assert a.groups_api == FEIDE_GROUPS
    assert a.groups_claim == ""  # Feide's groups are in no claim
    assert a.scope == ["openid", "userid-feide", "groups-org", "groups-other"]


@pytest.mark.parametrize(
    "url",
    [
        FEIDE_GROUPS,
        "https://groups.example.org:8443/me?x=1",
        "http://127.0.0.1:8123/groups/me/groups",
        "http://localhost/groups",
        "http://[::1]:9/groups",
    ],
)
def test_a_groups_api_is_https_or_on_loopback(url: str) -> None:
    ident = catalogue.Identity(issuer="https://idp.example", domains=["uio.no"], groups_api=url)
    assert ident.groups_api == url


GROUPS_API_RULE = (
    "must be an https:// URL such as https://groups-api.dataporten.no/groups/me/groups "
    "(http:// only on 127.0.0.1 or localhost): the access token is sent to it"
)


@pytest.mark.parametrize(
    "url",
    [
        "http://groups-api.dataporten.no/groups/me/groups",  # the token in clear text
        "http://127.0.0.2.example.org/groups",
        "ftp://groups.example.org/x",
        "groups-api.dataporten.no/groups/me/groups",
        "https://",
        "https://groups example.org/x",
        "https://[::1/x",
    ],
)
def test_a_groups_api_elsewhere_than_https_is_refused_with_a_sentence(url: str) -> None:
    text = catalogue.DEFAULT_CATALOGUE.read_text() + IDENTITY_YAML + f"  groups_api: {url!r}\n"
    with pytest.raises(catalogue.CatalogueError) as info:
        catalogue.parse(text, "c.yaml")
    assert str(info.value).splitlines()[1:] == [
        f"  c.yaml: identity.groups_api: {GROUPS_API_RULE} (got {url!r})"
    ]


def test_the_summary_says_where_groups_come_from() -> None:
    base = catalogue.DEFAULT_CATALOGUE.read_text()
    feide = render_summary(catalogue.parse(base + FEIDE_YAML), "c.yaml").splitlines()
    assert feide[-2:] == [
        f"Login: Feide (https://auth.dataporten.no), identity from {EPPN}",
        f"  groups from groups API {FEIDE_GROUPS}",
    ]
    both = base + FEIDE_YAML + "  groups_claim: groups\n"
    assert render_summary(catalogue.parse(both), "c.yaml").splitlines()[-1] == (
        f"  groups from claim groups and groups API {FEIDE_GROUPS}"
    )
    none = base + FEIDE_YAML.replace(f"  groups_api: {FEIDE_GROUPS}\n", "")
    assert render_summary(catalogue.parse(none), "c.yaml").splitlines()[-1] == (
        "  groups: none, so projects' `groups` admit nobody"
    )


# --- the groups API call and how its groups join the login's -----------------------------


class _Response:
    def __init__(self, code: int, body: bytes):
        self.code, self.body = code, body


class _Client:
    """Stands in for tornado's AsyncHTTPClient: answers, or raises, and keeps the request."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[HTTPRequest] = []

    async def fetch(self, request: HTTPRequest, raise_error: bool = True):
        assert raise_error is False  # a status other than 200 is an answer, not an error
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def fetch(answer, timeout_s: float = 3) -> tuple[list[str], _Client]:
    client = _Client(answer)
    got = asyncio.run(
        groups_api.fetch_groups(FEIDE_GROUPS, "tok-1", timeout_s=timeout_s, client=client)
    )
    return got, client


def test_the_groups_api_is_called_with_the_bearer_token_and_a_time_out() -> None:
    got, client = fetch(_Response(200, b'[{"id": "fc:org:uio.no", "type": "fc:org"}]'))
    assert got == ["fc:org:uio.no"]
    (request,) = client.requests
    assert request.url == FEIDE_GROUPS
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert (request.connect_timeout, request.request_timeout) == (3, 3)
    assert request.follow_redirects is False  # the token goes nowhere else


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (_Response(401, b'{"message": "Invalid token"}'), "answered HTTP 401"),
        (_Response(503, b""), "answered HTTP 503"),
        (_Response(200, b"<html>"), "answered something that is not JSON"),
        (_Response(200, b"{}"), "answered JSON that is not a list of groups"),
        (HTTPTimeoutError("Timeout during request"), "did not answer within 3 s"),
        (ConnectionRefusedError(111, "Connection refused"), "could not be reached"),
    ],
)
def test_every_failure_of_the_groups_api_says_what_happened(answer, why: str) -> None:
    with pytest.raises(groups_api.GroupsApiFailed) as info:
        fetch(answer)
    assert str(info.value).startswith(why)


CLAIMS = {"sub": "feide-ola", EPPN: "ola@uio.no", "groups": ["from-claim"]}


def authenticator(monkeypatch, api_answer, log: logging.Logger, **traits):
    """The login with a verified ID token of CLAIMS (no userinfo) and a stub groups API."""
    discovery = {k: v for k, v in DISCOVERY.items() if k != "userinfo_endpoint"}
    a = oidc.NaicOIDCAuthenticator(
        issuer=ISSUER,
        discovery=discovery,
        identity_claim=EPPN,
        domains=["uio.no"],
        groups_api=FEIDE_GROUPS,
        log=log,
        **traits,
    )

    async def verified(id_token: str) -> dict:
        return dict(CLAIMS)

    async def stub(url: str, token: str, **kw) -> list[str]:
        assert (url, token) == (FEIDE_GROUPS, "access-1")
        if isinstance(api_answer, Exception):
            raise api_answer
        return api_answer

    monkeypatch.setattr(a, "_verify", verified)
    monkeypatch.setattr(oidc, "fetch_groups", stub)
    return a


TOKENS = {"id_token": "x", "access_token": "access-1", "expires_in": 3600}


def test_groups_of_the_api_and_of_the_claim_are_both_the_persons(monkeypatch) -> None:
    log = logging.getLogger("naic-test-oidc")
    a = authenticator(monkeypatch, ["fc:org:uio.no"], log, groups_claim="groups")
    state = asyncio.run(a._auth_model(dict(TOKENS)))["auth_state"]
    assert state["identity"] == "ola@uio.no"
    assert state["groups"] == ["fc:org:uio.no", "from-claim"]
    assert state["api_groups"] == ["fc:org:uio.no"]

    alone = authenticator(monkeypatch, ["fc:org:uio.no"], log)  # Feide: no groups claim
    assert asyncio.run(alone._auth_model(dict(TOKENS)))["auth_state"]["groups"] == ["fc:org:uio.no"]


def test_a_failing_groups_api_leaves_its_groups_out_with_one_warning(monkeypatch, caplog) -> None:
    log = logging.getLogger("naic-test-oidc")
    failed = groups_api.GroupsApiFailed("answered HTTP 503")
    a = authenticator(monkeypatch, failed, log, groups_claim="groups")
    with caplog.at_level(logging.WARNING, logger="naic-test-oidc"):
        state = asyncio.run(a._auth_model(dict(TOKENS)))["auth_state"]
    assert state["groups"] == ["from-claim"]
    assert state["api_groups"] is None  # unknown, not "none"
    assert [r.getMessage() for r in caplog.records] == [
        f"Groups API {FEIDE_GROUPS} answered HTTP 503; going on without its groups for ola@uio.no"
    ]

    # At a refresh, the groups the API gave at the last login stay.
    caplog.clear()
    previous = {"sub": "feide-ola", "api_groups": ["fc:org:uio.no"]}
    with caplog.at_level(logging.WARNING, logger="naic-test-oidc"):
        state = asyncio.run(a._auth_model(dict(TOKENS), previous=previous))["auth_state"]
    assert state["groups"] == ["fc:org:uio.no", "from-claim"]
    assert state["api_groups"] == ["fc:org:uio.no"]
    assert [r.getMessage() for r in caplog.records] == [
        f"Groups API {FEIDE_GROUPS} answered HTTP 503; keeping its groups of the last login "
        "for ola@uio.no"
    ]
