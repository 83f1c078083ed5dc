"""GPU-hour budgets on the real test cluster: refused with a sentence, charged by wall time,
reconciled after a hub that was down, readable only by their owner."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import client, ready, restart_hub, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

TOO_BIG = {"site": "testcluster", "resource": "a100", "gpus": 2, "hours": 1, "project": "demo"}
FITS = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}


def demo_usage(c, name: str = "alice") -> dict:
    resp = c.get(f"/hub/api/naic/users/{name}/usage")
    assert resp.status_code == 200, resp.text
    return next(p for p in resp.json()["projects"] if p["name"] == "demo")


def test_budget_refuses_then_allows_and_charges_wall_time(budget_hub: Hub) -> None:
    alice = client(budget_hub, "alice")
    refused = alice.post("/hub/api/users/alice/server", json={"user_options": TOO_BIG})
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "Project demo has used 0 of its 1 GPU-hours this month; this session would need 2 more. "
        f"The budget resets on {_first_of_next_month()}."
    )
    assert not alice.get("/hub/api/users/alice").json()["servers"]  # nothing half-created

    assert alice.post("/hub/api/users/alice/server", json={"user_options": FITS}).is_success
    wait_until(lambda: ready(alice, "alice"), 120, "alice's 1-GPU session ready")
    started = time.monotonic()
    time.sleep(20)
    assert alice.delete("/hub/api/users/alice/server").status_code in (202, 204)
    wait_until(lambda: not alice.get("/hub/api/users/alice").json()["servers"], 60, "stop")
    wall_s = time.monotonic() - started

    demo = demo_usage(alice)
    assert abs(demo["used"] * 3600 - wall_s) < 60, (demo, wall_s)
    assert demo["mine"] == demo["used"] and demo["gpu_hours"] == 1
    assert demo["left"] == pytest.approx(1 - demo["used"], abs=0.001)

    # The home page says what is left; bob's token cannot read alice's usage.
    web, _ = log_in(budget_hub, "alice", budget_hub.password)
    home = web.get("/hub/home").text
    assert 'data-project="demo"' in home and "GPU-hours left" in home
    bob = client(budget_hub, "bob")
    assert bob.get("/hub/api/naic/users/alice/usage").status_code == 403
    assert demo_usage(bob, "bob")["mine"] == 0

    # Admins see usage per project and per user; students do not.
    assert web.get("/hub/naic/admin/usage").status_code == 403
    ops, _ = log_in(budget_hub, "ops", budget_hub.password)
    page = ops.get("/hub/naic/admin/usage")
    assert page.status_code == 200
    row = page.text.split('data-project="demo"', 1)[1].split("</tr>", 1)[0]
    assert f"alice: {demo['used']:.2f}" in row and "1 per month" in row


def test_a_session_that_ends_while_the_hub_is_down_is_charged_until_its_end(
    budget_hub: Hub,
) -> None:
    alice = client(budget_hub, "alice")
    assert alice.post("/hub/api/users/alice/server", json={"user_options": FITS}).is_success
    wait_until(lambda: ready(alice, "alice"), 120, "alice's session ready")
    started = time.monotonic()

    os.kill(budget_hub.process.pid, signal.SIGKILL)
    budget_hub.process.wait(timeout=10)
    time.sleep(5)
    subprocess.run(["scancel", "--user=alice"], check=True)  # ends while no hub watches
    ran_s = time.monotonic() - started
    time.sleep(25)  # the hub stays down well after the job ended

    restart_hub(budget_hub)
    wait_until(
        lambda: not alice.get("/hub/api/users/alice").json()["servers"], 60, "the end noticed"
    )
    used_s = demo_usage(alice)["used"] * 3600
    assert abs(used_s - ran_s) < 15, (used_s, ran_s)  # not the 30 s the hub was away
    time.sleep(6)
    assert demo_usage(alice)["used"] * 3600 == pytest.approx(used_s, abs=1)  # closed


def _first_of_next_month() -> str:
    t = time.gmtime()
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"1 {time.strftime('%B', (year, month, 1, 0, 0, 0, 0, 1, 0))} {year}"


def test_sessions_asked_for_together_cannot_spend_more_than_the_budget(budget_hub: Hub) -> None:
    """alice and bob each start a 1-GPU half-hour session, then alice a second one at once.
    Nothing is used yet, but the budget (1 GPU-hour) holds only two: the third is refused,
    and a smaller one gets in once bob's session has ended."""
    alice, bob = client(budget_hub, "alice"), client(budget_hub, "bob")
    assert alice.post("/hub/api/users/alice/server", json={"user_options": FITS}).is_success
    assert bob.post("/hub/api/users/bob/server", json={"user_options": FITS}).is_success
    third = alice.post("/hub/api/users/alice/servers/second", json={"user_options": FITS})
    assert third.status_code == 403, third.text
    assert third.json()["message"] == (
        "Project demo has used 0 of its 1 GPU-hours this month, and its running or queued "
        "sessions may use 1 more; this session would need 0.5 more. The budget resets on "
        f"{_first_of_next_month()}."
    )
    assert "second" not in alice.get("/hub/api/users/alice").json()["servers"]

    wait_until(lambda: ready(bob, "bob"), 120, "bob's session ready")
    assert bob.delete("/hub/api/users/bob/server").status_code in (202, 204)
    wait_until(lambda: not bob.get("/hub/api/users/bob").json()["servers"], 60, "bob's stop")
    # bob's hold is gone; what his session used (seconds) stays charged.
    smaller = {**FITS, "hours": 0.25}
    again = alice.post("/hub/api/users/alice/servers/second", json={"user_options": smaller})
    assert again.status_code in (201, 202), again.text
