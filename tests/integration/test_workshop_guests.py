"""Workshop accounts handed to a second person, played by the attacker on the real hub and the
real test cluster: the person whose window passed keeps nothing (cookie, token, login, jobs),
also when the hub was down as it passed; the next person given the same account finds nothing
of the previous one (files, dotfiles, tokens, jobs); a one-time password logs in once.

The guests' "own" actions (files in the home, a batch job) are what they could do from their
session's terminal, done here with `runuser` as the guest account."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import (
    GUEST_CHECK,
    guest_login,
    issue,
    jobs_of,
    restart_hub,
    token_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

MARK = "left-by-the-previous-person"


def workshop(hub: Hub, instructor: str, name: str, ends_in_s: float) -> tuple[httpx.Client, float]:
    """A running workshop `name` whose window closes in `ends_in_s`; (instructor's API client,
    the window's end as time.time())."""
    api = httpx.Client(
        base_url=hub.url, headers={"Authorization": f"token {instructor}"}, timeout=120
    )
    now = datetime.now(UTC)
    end = now + timedelta(seconds=ends_in_s)
    spec = {
        "name": name,
        "seats": 3,
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": end.isoformat(),
        "resource": "testcluster:cpu",
        "hours": 0.05,
        "project": "course",
    }
    made = api.post("/hub/api/naic/workshops", json=spec)
    assert made.status_code == 201, made.text
    return api, end.timestamp()


def own_token(c: httpx.Client, username: str) -> str:
    """A token the guest makes for themselves with their cookie (the Token page's request)."""
    xsrf = c.cookies.get("_xsrf")
    made = c.post(
        f"/hub/api/users/{username}/tokens",
        json={"note": "mine", "expires_in": 30 * 24 * 3600},
        headers={"X-XSRFToken": xsrf},
    )
    assert made.status_code == 201, made.text
    return made.json()["token"]


def as_guest(username: str, *argv: str) -> str:
    done = subprocess.run(
        ["runuser", "-u", username, "--", *argv], capture_output=True, text=True, check=True
    )
    return done.stdout


def leave_traces(username: str) -> None:
    """What a person could leave behind for the next holder of the account."""
    as_guest(
        username,
        "sh",
        "-c",
        f"mkdir -p ~/.ssh ~/work/.hidden && echo 'ssh-ed25519 AAAA {MARK}' >> "
        f"~/.ssh/authorized_keys && echo 'echo {MARK}' >> ~/.bashrc && "
        f"echo {MARK} > ~/notes.txt && echo {MARK} > ~/work/.hidden/data && "
        f"chmod 0500 ~/work/.hidden",
    )
    as_guest(username, "sbatch", "--parsable", "--time=60", "--wrap", "sleep 3600")
    assert jobs_of(username), "the guest's own job did not queue"


def traces_in(home: Path) -> list[str]:
    """Every file under `home` that the previous person wrote (by its content) or made."""
    found = []
    for p in home.rglob("*"):
        rel = str(p.relative_to(home))
        if rel in (".ssh", "work", "notes.txt") or rel.startswith((".ssh/", "work/")):
            found.append(rel)
        elif p.is_file() and MARK in p.read_text(errors="replace"):
            found.append(rel)
    return sorted(found)


def cookie_works(c: httpx.Client) -> bool:
    return c.get("/hub/home", follow_redirects=False).status_code == 200


def token_works(hub: Hub, token: str) -> bool:
    resp = httpx.get(hub.url + "hub/api/user", headers={"Authorization": f"token {token}"})
    return resp.status_code == 200


def assert_locked_out(hub: Hub, username: str, password: str, c: httpx.Client, token: str):
    wait_until(lambda: not cookie_works(c), 20, f"{username}'s hub cookie stopping")
    assert not token_works(hub, token), f"{username}'s own API token still works"
    _, again = guest_login(hub, username, password)
    assert again.status_code == 403, f"{username} logged in again: {again.status_code}"
    wait_until(lambda: jobs_of(username) == [], 30, f"{username}'s jobs ending")


def wait_past(end: float) -> None:
    time.sleep(max(0.0, end - time.time()) + 1)


def test_a_window_that_passes_locks_the_guest_out_without_anyone_acting(
    ws_hub: Hub, cleanup_reservations
) -> None:
    api, end = workshop(ws_hub, token_of(ws_hub, "ingrid"), "passes", ends_in_s=40)
    [(user, password)] = issue(api, "passes")
    c, landed = guest_login(ws_hub, user, password)
    assert landed.status_code == 302, landed.text[:300]
    token = own_token(c, user)
    leave_traces(user)
    assert cookie_works(c) and token_works(ws_hub, token)

    wait_past(end)  # nobody ends the workshop
    assert_locked_out(ws_hub, user, password, c, token)


def test_a_window_that_passes_while_the_hub_is_down_locks_out_at_its_start(
    ws_hub: Hub, cleanup_reservations
) -> None:
    api, end = workshop(ws_hub, token_of(ws_hub, "ingrid"), "passes-down", ends_in_s=40)
    [(user, password)] = issue(api, "passes-down")
    c, landed = guest_login(ws_hub, user, password)
    assert landed.status_code == 302, landed.text[:300]
    token = own_token(c, user)
    leave_traces(user)

    stop_hub(ws_hub)
    wait_past(end)
    # The periodic check is now an hour away: only the check at startup can do it.
    config = ws_hub.data_dir / "jupyterhub_config.d" / "10-fast-polls.py"
    config.write_text(config.read_text().replace(GUEST_CHECK, GUEST_CHECK.replace("2", "3600")))
    restart_hub(ws_hub)
    assert_locked_out(ws_hub, user, password, c, token)


def test_a_reissued_account_carries_nothing_of_the_previous_person(
    ws_hub: Hub, cleanup_reservations
) -> None:
    ingrid = token_of(ws_hub, "ingrid")
    api, _ = workshop(ws_hub, ingrid, "first", ends_in_s=3600)
    [(user, password)] = issue(api, "first")
    first, landed = guest_login(ws_hub, user, password)
    assert landed.status_code == 302, landed.text[:300]
    old_token = own_token(first, user)
    leave_traces(user)
    home = Path(f"/home/{user}")
    assert traces_in(home) != []
    ended = api.delete("/hub/api/naic/workshops/first")
    assert ended.status_code == 200, ended.text

    api, _ = workshop(ws_hub, ingrid, "second", ends_in_s=3600)
    [(again, new_password)] = issue(api, "second")
    assert again == user  # the same Unix account, for somebody else
    second, landed = guest_login(ws_hub, user, new_password)
    assert landed.status_code == 302, landed.text[:300]
    assert traces_in(home) == [], "the next person finds the previous person's files"
    assert not token_works(ws_hub, old_token), "the previous person's token still works"
    assert not cookie_works(first), "the previous person's cookie still works"
    assert cookie_works(second)
    wait_until(lambda: jobs_of(user) == [], 30, "the previous person's job ending")


def test_a_one_time_password_logs_in_once(ws_hub: Hub, cleanup_reservations) -> None:
    api, _ = workshop(ws_hub, token_of(ws_hub, "ingrid"), "once", ends_in_s=3600)
    [(user, password)] = issue(api, "once")
    first, landed = guest_login(ws_hub, user, password)
    assert landed.status_code == 302, landed.text[:300]
    _, again = guest_login(ws_hub, user, password)
    assert again.status_code == 403, f"a second login with the same password: {again.status_code}"
    assert "This one-time password was already used" in again.text
    assert cookie_works(first)  # the first login stands
