"""Workshop boundaries played by the attacker on the real hub and the real test cluster:
guessing a workshop account's password from rotating client addresses, reading join codes
out of a copy of the database, joining with a session's own server token, and an
instructor charging a project they are not in or reserving beyond the catalogue's policy."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import (
    client,
    guest_login,
    issue,
    ready,
    server_token,
    start,
    token_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def api_of(hub: Hub, token: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=120)


def spec(name: str, **more) -> dict:
    now = datetime.now(UTC)
    return {
        "name": name,
        "seats": 3,
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "resource": "testcluster:cpu",
        "hours": 0.5,
        **more,
    }


def reservation_exists(name: str) -> bool:
    shown = subprocess.run(
        ["scontrol", "show", "reservation", f"naic-ws-{name}"], capture_output=True, text=True
    )
    return shown.returncode == 0 and "not found" not in (shown.stdout + shown.stderr).lower()


def wrong_login(hub: Hub, username: str, fake_ip: str) -> httpx.Response:
    """A wrong password, sent with a client-chosen address in every header a hub may read
    (the page too: the hub ties its form's XSRF token to the address it believes)."""
    spoof = {"X-Real-Ip": fake_ip, "X-Forwarded-For": fake_ip}
    c = httpx.Client(base_url=hub.url, timeout=60, headers=spoof)
    page = c.get("/hub/naic/workshops/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    form = {"username": username, "password": "wrong-guess", "_xsrf": xsrf}
    resp = c.post("/hub/naic/workshops/login", data=form, follow_redirects=False)
    assert resp.status_code == 429 or "account or password is not right" in resp.text, resp.text
    return resp


def test_rotating_client_addresses_do_not_buy_more_password_guesses(
    ws_hub: Hub, cleanup_reservations
) -> None:
    api = api_of(ws_hub, token_of(ws_hub, "ingrid"))
    assert api.post("/hub/api/naic/workshops", json=spec("guess")).status_code == 201
    (victim, password), (other, other_password) = issue(api, "guess", count=2)

    answers = [wrong_login(ws_hub, victim, f"10.9.{i}.{i}").status_code for i in range(15)]
    assert answers[:10] == [403] * 10
    assert answers[10:] == [429] * 5, answers
    # Even the right password gets nothing now: no login, no cookie.
    c, late = guest_login(ws_hub, victim, password)
    assert late.status_code == 429
    assert "Too many wrong passwords for this workshop account" in late.text
    assert c.get("/hub/home", follow_redirects=False).status_code != 200

    # Another account from the same address still logs in, after a few typos of its own:
    # what failed for the victim, and its own success, use up nothing of it.
    for i in range(5):
        assert wrong_login(ws_hub, other, f"10.8.0.{i}").status_code == 403
    _, ok = guest_login(ws_hub, other, other_password)
    assert ok.status_code == 302, ok.text[:300]


def test_a_copy_of_the_database_holds_no_join_code(ws_hub: Hub, cleanup_reservations) -> None:
    api = api_of(ws_hub, token_of(ws_hub, "ingrid"))
    made = api.post("/hub/api/naic/workshops", json=spec("leak"))
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)

    db = ws_hub.data_dir / "jupyterhub.sqlite"
    raw = db.read_bytes() + b"".join(
        p.read_bytes() for p in db.parent.glob("jupyterhub.sqlite-*") if p.is_file()
    )
    assert code.encode() not in raw and code.replace("-", "").encode() not in raw
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert code not in dump and code.replace("-", "") not in dump
    # The code still works for a student (it is kept as a hash).
    joined = client(ws_hub, "student01").post("/hub/api/naic/workshops/join", json={"code": code})
    assert joined.status_code == 200, joined.text
    # Nobody is shown it again; the instructor may replace it, and the old one stops working.
    assert api.get("/hub/api/naic/workshops/leak").json()["code"] is None
    renewed = api.post("/hub/api/naic/workshops/leak/code")
    assert renewed.status_code == 200, renewed.text
    new = renewed.json()["code"]
    assert new != code and renewed.json()["join_url"].endswith(f"join?code={new}")
    student = client(ws_hub, "student04")
    old = student.post("/hub/api/naic/workshops/join", json={"code": code})
    assert old.status_code == 404
    assert student.post("/hub/api/naic/workshops/join", json={"code": new}).status_code == 200


def test_a_sessions_server_token_cannot_join_a_workshop(ws_hub: Hub, cleanup_reservations) -> None:
    api = api_of(ws_hub, token_of(ws_hub, "ingrid"))
    first = api.post("/hub/api/naic/workshops", json=spec("first", project="course"))
    assert first.status_code == 201, first.text
    second = api.post("/hub/api/naic/workshops", json=spec("second", project="course"))
    assert second.status_code == 201, second.text

    student = client(ws_hub, "student02")
    joined = student.post("/hub/api/naic/workshops/join", json={"code": first.json()["code"]})
    assert joined.status_code == 200, joined.text
    start(student, "student02", {"workshop": "first"}, server="first")
    wait_until(lambda: ready(student, "student02", "first"), 180, "student02's session")
    job = subprocess.run(
        ["squeue", "-h", "-u", "student02", "-n", "naic-student02-first", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]

    # Code in the session (a shared notebook, say) takes the session's own token.
    session = api_of(ws_hub, server_token(job))
    refused = session.post("/hub/api/naic/workshops/join", json={"code": second.json()["code"]})
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "Joining a workshop needs your own login (the hub's page, or a token you made); a "
        "session's own token may not join workshops."
    )
    seats = api.get("/hub/api/naic/workshops/second").json()["students"]
    assert seats == []
    student.delete("/hub/api/users/student02/servers/first")


def test_an_instructor_charges_only_their_projects_and_stays_within_the_policy(
    ws_hub: Hub, cleanup_reservations
) -> None:
    ivar = api_of(ws_hub, token_of(ws_hub, "ivar"))  # an instructor, not in `course`
    refused = ivar.post("/hub/api/naic/workshops", json=spec("theirs", project="course"))
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "You are not a member of the project course, so your workshops cannot charge it; "
        "choose one of your projects, or none."
    )
    assert ivar.get("/hub/api/naic/workshops/theirs").status_code == 404
    assert not reservation_exists("theirs")

    # Above the catalogue's policy (a window of at most 4 hours): kept, waiting for an admin.
    ingrid = api_of(ws_hub, token_of(ws_hub, "ingrid"))
    long = {"end": (datetime.now(UTC) + timedelta(hours=6)).isoformat(), "project": "course"}
    big = ingrid.post("/hub/api/naic/workshops", json=spec("big", **long))
    assert big.status_code == 202, big.text
    assert big.json()["state"] == "awaiting approval"
    assert big.json()["reservation"] is None
    assert "a window longer than 4 hours" in big.json()["approval"]
    assert not reservation_exists("big")
    early = client(ws_hub, "student03").post(
        "/hub/api/naic/workshops/join", json={"code": big.json()["code"]}
    )
    assert early.status_code == 403
    assert early.json()["message"].startswith("The workshop big awaits an admin's approval")
    assert ingrid.post("/hub/api/naic/workshops/big/approve").status_code == 403
    assert not reservation_exists("big")
    page, _ = log_in(ws_hub, "ingrid", ws_hub.password)  # the instructor's page says so
    listed = page.get("/hub/naic/workshops").text
    assert re.search(r'data-workshop="big">(?:(?!</tr>).)*awaiting approval', listed, re.S)
    assert "Awaiting approval." in page.get("/hub/naic/workshops/big").text

    with ws_hub.api() as admin:
        approved = admin.post("/naic/workshops/big/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active"
    assert reservation_exists("big")
    joined = client(ws_hub, "student03").post(
        "/hub/api/naic/workshops/join", json={"code": big.json()["code"]}
    )
    assert joined.status_code == 200, joined.text
