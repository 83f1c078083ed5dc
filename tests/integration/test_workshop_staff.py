"""Co-instructors and teaching assistants on the real hub and the real Slurm test cluster: a
TA named at `naic workshop create --ta` sees the dashboard and opens a student's workshop
JupyterLab through the hub (JupyterHub's own OAuth step, on a share of that one server);
the same TA cannot open the student's other server nor another workshop's student; the
dashboard shows who opened whose session. A co-instructor manages the workshop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    COURSE,
    client,
    course_repository,
    make_instructors,
    ready,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAIC = str(Path(sys.executable).parent / "naic")
A, B = "staff-a", "staff-b"
STUDENT_A, STUDENT_B = "student07", "student08"
TA, CO = "alice", "bob"


@pytest.fixture
def staff_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    def course(cat: dict) -> None:
        cat["projects"]["course"] = {"title": "ML course", "slurm_account": "course",
                                     "members": ["ingrid"]}  # fmt: skip

    course_repository()
    hub = start_testcluster_hub(hub_dir, course, "--admin", "ops")
    make_instructors(hub, "ingrid")
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in (STUDENT_A, STUDENT_B):
            subprocess.run(["scancel", f"--user={user}"], check=False)
        for name in (A, B):
            subprocess.run(["scontrol", "delete", f"ReservationName=naic-ws-{name}"], check=False)


def naic(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NAIC_HUB_URL": hub.url, "NAIC_TOKEN": token}
    return subprocess.run(
        [NAIC, "workshop", *args], env=env, capture_output=True, text=True, timeout=300
    )


def create(hub: Hub, token: str, name: str, *staff: str) -> str:
    now = datetime.now(UTC)
    made = naic(
        hub, token, "create", name, "--seats", "1",
        "--start", (now - timedelta(minutes=5)).isoformat(),
        "--end", (now + timedelta(hours=2)).isoformat(),
        "--resource", "testcluster:cpu", "--hours", "1", "--project", "course",
        "--material", str(COURSE), *staff,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return re.search(r"Join code:\s+(\S+)", made.stdout).group(1)


def seat_and_start(hub: Hub, student: str, code: str, workshop: str) -> httpx.Client:
    c = client(hub, student)
    joined = c.post("/hub/api/naic/workshops/join", json={"code": code})
    assert joined.status_code == 200, joined.text
    start(c, student, {"workshop": workshop}, server=workshop)
    return c


def authorize(c: httpx.Client, page: httpx.Response) -> httpx.Response:
    """Press JupyterHub's Authorize button on its OAuth confirmation page."""
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert "_xsrf" in form, page.text[:2000]
    return c.post(str(page.url), data=form, follow_redirects=True)


def test_a_ta_opens_a_students_workshop_session_and_nothing_else(staff_hub: Hub) -> None:
    ingrid = token_of(staff_hub, "ingrid")
    code_a = create(staff_hub, ingrid, A, "--ta", TA, "--co-instructor", CO)
    code_b = create(staff_hub, ingrid, B)
    shown = naic(staff_hub, ingrid, "staff", A)
    assert f"Co-instructors: {CO}" in shown.stdout and f"TAs:            {TA}" in shown.stdout

    a = seat_and_start(staff_hub, STUDENT_A, code_a, A)
    b = seat_and_start(staff_hub, STUDENT_B, code_b, B)
    # The student's other session, outside the workshop.
    start(a, STUDENT_A, {"site": "local", "resource": "cpu-small", "hours": 1}, server="other")
    for c, user, server in ((a, STUDENT_A, A), (b, STUDENT_B, B), (a, STUDENT_A, "other")):
        wait_until(lambda c=c, u=user, s=server: ready(c, u, s), 240, f"{user}/{server}")
    with staff_hub.api() as api:
        group = api.get(f"/groups/workshop-{A}").json()
        assert group["users"] == [STUDENT_A]

    # The TA: the dashboard of A (not B), and the Open link to the student's JupyterLab.
    ta, _ = log_in(staff_hub, TA, staff_hub.password)
    board = ta.get(f"/hub/naic/workshops/{A}")
    assert board.status_code == 200, board.text[:2000]
    assert f"/hub/naic/workshops/{A}/open/{STUDENT_A}" in board.text
    assert 'name="stop"' not in board.text  # looking only
    assert ta.get(f"/hub/naic/workshops/{B}").status_code == 403
    asked = ta.get(f"/hub/naic/workshops/{A}/open/{STUDENT_A}", follow_redirects=True)
    # JupyterHub asks a non-owner to confirm (the Authorize button), as a browser shows it.
    assert asked.url.path == "/hub/api/oauth2/authorize", asked.url
    lab = authorize(ta, asked)
    assert lab.status_code == 200, lab.text[:2000]
    assert lab.url.path.startswith(f"/user/{STUDENT_A}/{A}/"), lab.url
    assert ta.get(f"/user/{STUDENT_A}/{A}/api/contents", follow_redirects=True).is_success

    # Not the student's other server, not another workshop's student.
    other = ta.get(f"/user/{STUDENT_A}/other/lab", follow_redirects=True)
    assert other.status_code == 403, (other.status_code, other.url)
    foreign = ta.get(f"/user/{STUDENT_B}/{B}/lab", follow_redirects=True)
    assert foreign.status_code == 403, (foreign.status_code, foreign.url)
    assert ta.get(f"/hub/naic/workshops/{B}/open/{STUDENT_B}").status_code == 403
    # Nor a TA's way to change anything.
    xsrf = ta.cookies.get("_xsrf", path="/hub/")
    stop = ta.post(f"/hub/naic/workshops/{A}", data={"_xsrf": xsrf, "stop": STUDENT_A})
    assert stop.status_code == 403

    # The dashboard shows the opening, as `naic workshop staff` does.
    board = log_in(staff_hub, "ingrid", staff_hub.password)[0].get(f"/hub/naic/workshops/{A}")
    assert f'<tr data-staff="{TA}" data-student="{STUDENT_A}">' in board.text
    assert f"{TA} opened {STUDENT_A}'s session" in naic(staff_hub, ingrid, "staff", A).stdout
    assert f"Workshop {A}: {TA} opened {STUDENT_A}'s session" in staff_hub.log_text()

    # The co-instructor manages A (its students' data, its staff), not B.
    co = httpx.Client(base_url=staff_hub.url, timeout=30,
                      headers={"Authorization": f"token {token_of(staff_hub, CO)}"})  # fmt: skip
    assert co.get(f"/hub/api/naic/workshops/{A}").status_code == 200
    assert co.get(f"/hub/api/naic/workshops/{B}").status_code == 403
    removed = co.post(f"/hub/api/naic/workshops/{A}/staff", json={"remove": {"ta": [TA]}})
    assert removed.json()["ta"] == []
    assert ta.get(f"/hub/naic/workshops/{A}").status_code == 403
