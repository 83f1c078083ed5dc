"""Access requests through the real hub: asking without a project, an admin's decision, and
following the outcome; all over the real OIDC login (tests/oidc_provider.py)."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.oidc_provider import OidcHub, oidc_log_in, xsrf_of

pytestmark = pytest.mark.integration


def row(page: httpx.Response, project: str) -> str:
    """The table row of one request on a requests page."""
    found = re.search(
        rf'<tr data-request="\d+" data-project="{project}"[^>]*>.*?</tr>', page.text, re.S
    )
    assert found, page.text[:4000]
    return html.unescape(found.group(0))


def alert(page: httpx.Response, cls: str) -> str:
    found = re.search(rf'class="alert [^"]*{cls}"[^>]*>(.*?)</div>', page.text, re.S)
    assert found, page.text[:4000]
    return " ".join(html.unescape(found.group(1)).split())


def words(page: httpx.Response) -> str:
    """The page's text as a person reads it: no tags, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def users(h: OidcHub) -> set[str]:
    with h.hub.api() as api:
        return {u["name"] for u in api.get("/users").json()}


def admin_decides(h: OidcHub, user: str, project: str, action: str, note: str) -> httpx.Response:
    admin, landed = oidc_log_in(h.hub.url, "boss-sub")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    page = admin.get("/hub/naic/admin/access")
    assert page.status_code == 200
    found = re.search(
        rf'<tr data-request="(\d+)" data-user="{user}" data-project="{project}">', page.text
    )
    assert found, page.text[:4000]
    return admin.post(
        "/hub/naic/admin/access",
        data={"_xsrf": xsrf_of(page), "request_id": found.group(1), "action": action, "note": note},
    )


def test_someone_without_a_project_asks_an_admin_approves_and_they_see_it(
    access_hub: OidcHub,
) -> None:
    # Kari authenticates at her institution but is in no project: the ask page, no user.
    browser, refused = oidc_log_in(access_hub.hub.url, "kari-sub")
    assert refused.status_code == 403
    assert "kari" not in users(access_hub)
    action = re.search(r'<form method="post" action="([^"]+)"', refused.text).group(1)
    sent = browser.post(
        action,
        data={
            "_xsrf": xsrf_of(refused),
            "project": "nn5678k",
            "reason": "I fold proteins for my PhD.",
        },
    )
    assert sent.status_code == 200, sent.text[:3000]
    assert "Your request is pending" in words(sent)
    assert "You can log in now as kari to follow it on your Access page." in words(sent)

    # With a pending request she may log in, and follows it on her Access page.
    _, landed = oidc_log_in(access_hub.hub.url, "kari-sub", client=browser)
    assert landed.url.path == "/hub/home", landed.text[:2000]
    mine = browser.get("/hub/naic/access")
    assert 'data-state="pending"' in row(mine, "nn5678k")

    # The admin logs in through the same login and approves with a note.
    decided = admin_decides(access_hub, "kari", "nn5678k", "approve", "Welcome aboard")
    assert decided.status_code == 200, decided.text[:3000]
    assert alert(decided, "naic-done") == "kari's request for project nn5678k is approved."
    assert 'data-state="approved"' in decided.text

    # Kari sees the outcome and the project at once.
    after = browser.get("/hub/naic/access")
    line = row(after, "nn5678k")
    assert 'data-state="approved"' in line and "Welcome aboard" in line and "by boss" in line
    assert '<li data-project="nn5678k">' in after.text


def test_a_member_asks_for_another_project_and_is_declined_with_a_note(access_hub: OidcHub) -> None:
    browser, landed = oidc_log_in(access_hub.hub.url, "ola-sub")
    assert landed.url.path == "/hub/home"
    page = browser.get("/hub/naic/access")
    assert '<li data-project="nn1234k">' in page.text
    assert 'value="nn1234k"' not in page.text  # no form choice for a project ola is in
    empty = browser.post(
        "/hub/naic/access", data={"_xsrf": xsrf_of(page), "project": "nn5678k", "reason": " "}
    )
    assert empty.status_code == 400
    assert alert(empty, "naic-error") == "Please say in a few words why you need this project."

    sent = browser.post(
        "/hub/naic/access",
        data={"_xsrf": xsrf_of(page), "project": "nn5678k", "reason": "Side project."},
    )
    assert sent.status_code == 200
    assert alert(sent, "naic-done").startswith("You asked for project nn5678k")
    twice = browser.post(
        "/hub/naic/access",
        data={"_xsrf": xsrf_of(page), "project": "nn5678k", "reason": "Again."},
    )
    assert twice.status_code == 400
    assert "You have already asked for project nn5678k" in alert(twice, "naic-error")

    decided = admin_decides(access_hub, "ola", "nn5678k", "decline", "Ask your PI first.")
    assert decided.status_code == 200
    line = row(browser.get("/hub/naic/access"), "nn5678k")
    assert 'data-state="declined"' in line and "Ask your PI first." in line


def test_only_admins_see_the_admin_page(access_hub: OidcHub) -> None:
    browser, _ = oidc_log_in(access_hub.hub.url, "ola-sub")
    resp = browser.get("/hub/naic/admin/access")
    assert resp.status_code == 403
    assert "Only the hub's administrators decide access requests." in words(resp)
    anonymous = httpx.get(access_hub.hub.url + "hub/naic/admin/access", follow_redirects=False)
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["location"]


def test_forms_need_the_xsrf_token(access_hub: OidcHub) -> None:
    browser, _ = oidc_log_in(access_hub.hub.url, "ola-sub")
    resp = browser.post("/hub/naic/access", data={"project": "nn5678k", "reason": "x"})
    assert resp.status_code == 403
    admin, _ = oidc_log_in(access_hub.hub.url, "boss-sub")
    resp = admin.post("/hub/naic/admin/access", data={"request_id": "1", "action": "approve"})
    assert resp.status_code == 403


def test_the_ask_form_is_bound_to_a_recent_verified_login(access_hub: OidcHub) -> None:
    # Without the cookie the hub signs at the end of a login, the form is refused.
    stranger = httpx.Client(base_url=access_hub.hub.url, timeout=30)
    resp = stranger.get("/hub/naic/access/ask")
    assert resp.status_code == 403
    assert "This form belongs to a login that is over or too old." in words(resp)

    # A forged cookie (claiming someone else's identity) is not accepted either.
    stranger.cookies.set("naic-access-ask", '{"identity": "boss@uio.no", "username": "boss"}')
    assert stranger.get("/hub/naic/access/ask").status_code == 403

    # A real one shows the form again; a bad choice is answered on the same page.
    browser, refused = oidc_log_in(access_hub.hub.url, "lars-sub")
    assert refused.status_code == 403
    again = browser.get("/hub/naic/access/ask")
    assert again.status_code == 200 and "lars@uib.no" in again.text
    bad = browser.post(
        "/hub/naic/access/ask",
        data={"_xsrf": xsrf_of(again), "project": "nope", "reason": "Because."},
    )
    assert bad.status_code == 400
    assert "There is no project 'nope' on this hub; choose one from the list." in words(bad)
    assert "lars" not in users(access_hub)


def test_a_person_whose_request_was_declined_is_asked_again_not_logged_in(
    access_hub: OidcHub,
) -> None:
    browser, refused = oidc_log_in(access_hub.hub.url, "mona-sub")
    sent = browser.post(
        "/hub/naic/access/ask",
        data={"_xsrf": xsrf_of(refused), "project": "nn1234k", "reason": "Weather."},
    )
    assert sent.status_code == 200
    decided = admin_decides(access_hub, "mona", "nn1234k", "decline", "Not this year.")
    assert decided.status_code == 200
    _, again = oidc_log_in(
        access_hub.hub.url,
        "mona-sub",
        client=httpx.Client(base_url=access_hub.hub.url, timeout=30, follow_redirects=True),
    )
    assert again.status_code == 403
    assert "You have no project on this hub yet" in words(again)
