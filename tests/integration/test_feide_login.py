"""Feide as it is: the identity in a namespaced claim, groups only from the groups API.

Feide names a person in `https://n.feide.no/claims/eduPersonPrincipalName` and puts no groups
in its tokens; they come from its groups API, called with the person's access token. Here
the provider is `oidc-provider-mock` (tests/oidc_provider.py) and the groups API is
tests/feide_groups.py, which accepts only access tokens that provider issued.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.feide_groups import GroupsApi
from tests.hub_process import stop_hub
from tests.integration.helpers import refusal_of
from tests.oidc_provider import OidcHub, Provider, oidc_log_in, start_oidc_hub

pytestmark = pytest.mark.integration

EPPN = "https://n.feide.no/claims/eduPersonPrincipalName"
SCOPES = ["openid", "userid-feide", "groups-org", "groups-other"]
#: nn1234k admits by Feide group only; nn5678k lists eva by identity.
PROJECTS = """\
  nn1234k: {title: "Deep learning for weather", groups: ["fc:org:uio.no"]}
  nn5678k: {title: "Protein folding", members: ["eva@uio.no"]}
"""


@pytest.fixture(scope="module")
def groups_api(module_oidc_provider: Provider) -> Iterator[GroupsApi]:
    api = GroupsApi(module_oidc_provider).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def feide_hub(
    oidc_base: Path, module_oidc_provider: Provider, groups_api: GroupsApi
) -> Iterator[OidcHub]:
    """A hub configured as for Feide: namespaced ePPN claim, no groups claim, groups API."""
    (oidc_base / "feide").mkdir()
    h = start_oidc_hub(
        oidc_base / "feide",
        module_oidc_provider,
        projects=PROJECTS,
        identity={
            "title": "Feide",
            "identity_claim": EPPN,
            "groups_claim": None,
            "groups_api": groups_api.url,
            "scopes": SCOPES,
        },
        config_d="c.NaicOIDCAuthenticator.groups_api_timeout_s = 2\n",
    )
    try:
        yield h
    finally:
        stop_hub(h.hub)


@pytest.fixture
def api(groups_api: GroupsApi) -> Iterator[GroupsApi]:
    """The module's groups API, answering honestly again after the test."""
    try:
        yield groups_api
    finally:
        groups_api.outage = None


def user_model(h: OidcHub, name: str) -> dict:
    with h.hub.api() as hub_api:
        resp = hub_api.get(f"/users/{name}")
        assert resp.status_code == 200, resp.text
        return resp.json()


def user_names(h: OidcHub) -> set[str]:
    with h.hub.api() as hub_api:
        return {u["name"] for u in hub_api.get("/users").json()}


def projects_on_home(page: httpx.Response) -> set[str]:
    return {p for p in ("nn1234k", "nn5678k") if f'data-project="{p}"' in page.text}


@contextlib.contextmanager
def failing(api: GroupsApi, outage: int | str) -> Iterator[None]:
    if outage == "down":
        with api.down():
            yield
        return
    api.outage = outage
    try:
        yield
    finally:
        api.outage = None


def test_the_hub_asks_feide_for_its_scopes(feide_hub: OidcHub) -> None:
    client = httpx.Client(base_url=feide_hub.hub.url, timeout=30)
    resp = client.get("/hub/oauth_login", follow_redirects=False)
    assert resp.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["location"]).query)
    assert query["scope"][0].split() == SCOPES


def test_a_feide_login_gets_its_project_from_the_groups_api(
    feide_hub: OidcHub, module_oidc_provider: Provider, api: GroupsApi
) -> None:
    module_oidc_provider.set_user("feide-ola", **{EPPN: "ola@uio.no"})
    api.set_groups("feide-ola", "fc:org:uio.no", "fc:adhoc:5f2e0c1a-weather-lab")
    client, landed = oidc_log_in(feide_hub.hub.url, "feide-ola")
    assert landed.status_code == 200, landed.text[:2000]
    assert landed.url.path == "/hub/home"
    assert projects_on_home(landed) == {"nn1234k"}  # by the group fc:org:uio.no alone
    assert client.get("/hub/api/user").json()["name"] == "ola"

    model = user_model(feide_hub, "ola")
    assert sorted(model["groups"]) == ["fc:adhoc:5f2e0c1a-weather-lab", "fc:org:uio.no"]
    state = model["auth_state"]
    assert state["identity"] == "ola@uio.no"
    # Feide-shaped: the identity came from the namespaced claim, no groups were in a token.
    assert state["id_claims"][EPPN] == "ola@uio.no"
    assert "groups" not in state["id_claims"]
    assert "feide-ola" in api.served


def test_the_groups_api_answers_only_a_real_access_token(
    feide_hub: OidcHub, module_oidc_provider: Provider, api: GroupsApi
) -> None:
    module_oidc_provider.set_user("feide-kari", **{EPPN: "kari@uio.no"})
    api.set_groups("feide-kari", "fc:org:uio.no")
    _, landed = oidc_log_in(feide_hub.hub.url, "feide-kari")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    token = user_model(feide_hub, "kari")["auth_state"]["access_token"]

    for headers in (
        {},
        {"Authorization": "Bearer not-a-token-of-the-provider"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer " + token[:-4] + "AAAA"},
    ):
        refused = httpx.get(api.url, headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")

    answer = httpx.get(api.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "id": "fc:org:uio.no",
            "displayName": "uio.no",
            "type": "fc:org",
            "membership": {"basic": "member"},
        }
    ]


@pytest.mark.parametrize(
    ("outage", "words"),
    [
        (503, "answered HTTP 503"),
        ("slow", "did not answer within 2 s"),
        ("garbage", "answered something that is not JSON"),
        ("down", "could not be reached (Connection refused)"),
    ],
)
def test_a_failing_groups_api_lets_the_person_in_without_its_groups(
    feide_hub: OidcHub,
    module_oidc_provider: Provider,
    api: GroupsApi,
    outage: int | str,
    words: str,
) -> None:
    module_oidc_provider.set_user("feide-eva", **{EPPN: "eva@uio.no"})
    api.set_groups("feide-eva", "fc:org:uio.no")
    warning = f"Groups API {api.url} {words}; going on without its groups for eva@uio.no"
    before = feide_hub.hub.log_text().count(warning)
    with failing(api, outage):
        _, landed = oidc_log_in(feide_hub.hub.url, "feide-eva")
    assert landed.status_code == 200, landed.text[:2000]
    assert landed.url.path == "/hub/home"
    assert projects_on_home(landed) == {"nn5678k"}  # by identity; not nn1234k by group
    assert user_model(feide_hub, "eva")["groups"] == []
    assert feide_hub.hub.log_text().count(warning) == before + 1

    # The API answers again: the next login has the group's project too.
    _, again = oidc_log_in(feide_hub.hub.url, "feide-eva")
    assert projects_on_home(again) == {"nn1234k", "nn5678k"}
    assert user_model(feide_hub, "eva")["groups"] == ["fc:org:uio.no"]


def test_someone_only_a_group_lets_in_is_told_to_try_again_while_the_api_fails(
    feide_hub: OidcHub, module_oidc_provider: Provider, api: GroupsApi
) -> None:
    module_oidc_provider.set_user("feide-gro", **{EPPN: "gro@uio.no"})
    api.set_groups("feide-gro", "fc:org:uio.no")
    api.outage = 502
    client, refused = oidc_log_in(feide_hub.hub.url, "feide-gro")
    api.outage = None
    assert refused.status_code == 503
    assert refusal_of(refused) == (
        "The hub could not fetch your groups from Feide, and without them you have no project "
        "here, so you are not logged in. Try again in a few minutes; if it happens again, tell "
        "the hub's operators."
    )
    assert client.get("/hub/api/user").status_code == 403
    assert "gro" not in user_names(feide_hub)

    _, landed = oidc_log_in(feide_hub.hub.url, "feide-gro")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    assert projects_on_home(landed) == {"nn1234k"}
