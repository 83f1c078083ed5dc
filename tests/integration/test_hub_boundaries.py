"""Attacks on the hub itself by a local user, a link on another page, or a token holder.

Each test plays the attacker against a real `naic up` and asserts they got nothing: no
secret read, no session started on someone else's budget, no body parsed that could only
cost the hub memory.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in, start_hub, stop_hub

pytestmark = pytest.mark.integration


def read_as(user: str, path: Path) -> subprocess.CompletedProcess:
    """`cat` a file as another account of this machine."""
    return subprocess.run(
        ["runuser", "-u", user, "--", "cat", str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_a_local_user_reads_no_secret_and_not_the_database(hub_dir: Path, slurm_cluster) -> None:
    """alice (an account on the hub's machine) tries the hub's files. The admin token was
    put back from a backup with mode 0644 before the hub started: the hub closes it."""
    data = hub_dir / "data"
    data.mkdir(mode=0o711)
    (data / "admin-token").write_text("restored-from-backup-token\n")
    (data / "admin-token").chmod(0o644)
    hub = start_hub(data, "--admin", "boss")
    try:
        for name in (
            "admin-token",
            "dev-password",
            "jupyterhub.sqlite",
            "jupyterhub_cookie_secret",
        ):
            path = data / name
            got = read_as("alice", path)
            assert got.returncode != 0 and got.stdout == b"", f"alice read {name}"
            assert b"Permission denied" in got.stderr
            assert path.stat().st_mode & 0o777 == 0o600, name
        with hub.api() as api:  # the restored token is still the operator's
            assert api.get("/user").json()["name"] == "naic-operator"
    finally:
        stop_hub(hub)


def servers_of(hub: Hub, name: str) -> dict:
    with hub.api() as api:
        return api.get(f"/users/{name}").json()["servers"]


def test_a_link_cannot_start_a_session_but_shows_the_form(naic_hub: Hub) -> None:
    """A page elsewhere links (or embeds) `/hub/spawn?…`: the visitor's browser sends their
    cookie with the GET; before, that alone started a session on their budget."""
    client, _ = log_in(naic_hub, "kari", naic_hub.password)
    page = client.get("/hub/spawn?site=local&resource=small&hours=1", follow_redirects=True)
    assert page.status_code == 400
    assert "A link cannot start a session with chosen resources" in page.text
    assert 'name="resource_choice"' in page.text  # the form, to choose and start on purpose
    time.sleep(1)
    assert servers_of(naic_hub, "kari") == {}


def test_login_cookies_stay_on_this_site(naic_hub: Hub) -> None:
    client = httpx.Client(base_url=naic_hub.url, timeout=30)
    client.get("/hub/login")
    _, resp = log_in(naic_hub, "kari", naic_hub.password)
    cookies = resp.headers.get_list("set-cookie")
    assert any(c.startswith("jupyterhub-session-id=") for c in cookies), cookies
    for cookie in cookies:
        assert "SameSite=Lax" in cookie, cookie


def test_a_huge_json_body_is_refused_before_it_is_parsed(naic_hub: Hub) -> None:
    with naic_hub.api() as api:
        api.post("/users", json={"usernames": ["kari"]})
        body = b'{"gpus": [' + b'{"index": 0, "utilization_pct": 1},' * 40000 + b"{}]}"
        resp = api.post("/naic/users/kari/activity", content=body)
    assert resp.status_code == 413, resp.text
    assert resp.json()["message"] == (
        f"The request body has {len(body)} bytes; this API takes at most 64 KiB."
    )
