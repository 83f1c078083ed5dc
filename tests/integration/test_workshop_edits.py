"""Editing a workshop after it was made, on the real test cluster (#19, item 7): seats never
below those seated, raised within the project's GPU-hour budget and refused above it with
the numbers; the window moved, and Slurm's reservation with it (`scontrol show
reservation`); a Slurm refusal leaves the workshop as it was; a removed student's session
stops, their seat is free, and they can neither join again nor start the session."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from naic.hub.workshops.rules import _slurm_time
from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    client,
    jobs_of,
    make_instructors,
    ready,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)
from tests.integration.test_workshops import naic
from tests.slurm_cluster import STUDENTS

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAMES = ("edit-cpu", "edit-gpu", "edit-later")


@pytest.fixture
def edit_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """ingrid an instructor of project course (10 GPU-hours a month), ivar another."""

    def course(cat: dict) -> None:
        cat["projects"]["course"] = {
            "title": "ML course",
            "slurm_account": "course",
            "members": ["ingrid"],
            "gpu_hours": 10,
            "budget_period": "month",
        }

    hub = start_testcluster_hub(hub_dir, course, "--admin", "ops")
    make_instructors(hub, "ingrid", "ivar")
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in STUDENTS[:3]:
            subprocess.run(["scancel", f"--user={user}"], check=False)
        for name in NAMES:
            subprocess.run(
                ["scontrol", "delete", f"ReservationName=naic-ws-{name}"], capture_output=True
            )


def minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def reservation(name: str) -> str:
    out = subprocess.run(
        ["scontrol", "--oneliner", "show", "reservation", f"naic-ws-{name}"],
        capture_output=True,
        text=True,
    )
    return out.stdout + out.stderr


def api_of(hub: Hub, name: str) -> httpx.Client:
    token = token_of(hub, name)
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60)


def test_seats_and_window_of_a_gpu_workshop_before_it_opens(edit_hub: Hub) -> None:
    ingrid = api_of(edit_hub, "ingrid")
    day = minute(datetime.now(UTC) + timedelta(days=2))
    spec = {
        "name": "edit-gpu", "seats": 2, "start": day.isoformat(),
        "end": (day + timedelta(hours=3)).isoformat(), "resource": "testcluster:a100",
        "gpus": 1, "hours": 2, "project": "course",
    }  # fmt: skip
    made = ingrid.post("/hub/api/naic/workshops", json=spec)
    assert made.status_code == 201, made.text
    path = "/hub/api/naic/workshops/edit-gpu"

    # Raised within the budget (4 × 1 × 2 = 8 of 10), above it refused with the numbers.
    up = ingrid.patch(path, json={"seats": 4})
    assert up.status_code == 200, up.text
    assert up.json()["seats"] == 4 and up.json()["message"].startswith("edit-gpu: seats 2 → 4.")
    over = ingrid.patch(path, json={"seats": 6})
    assert over.status_code == 403
    assert over.json()["message"] == (
        "`seats`: 6 seats × 1 GPU × 2 h = 12 GPU-hours, but project course has 10 left this "
        "month; lower the seats, GPUs or hours, or ask the project's PI for more."
    )
    assert ingrid.get(path).json()["seats"] == 4

    # The window moved by an hour, in Slurm too (its local time), the answer in UTC.
    later = day + timedelta(hours=1)
    moved = naic(
        edit_hub, token_of(edit_hub, "ingrid"), "edit", "edit-gpu", "--start", later.isoformat(),
        "--end", (later + timedelta(hours=3)).isoformat(),
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert "window " in moved.stdout and " UTC (was " in moved.stdout, moved.stdout
    shown = reservation("edit-gpu")
    assert f"StartTime={_slurm_time(later)}" in shown, shown
    assert f"EndTime={_slurm_time(later + timedelta(hours=3))}" in shown, shown
    assert "NodeCnt=1" in shown, shown

    # Bad input: one sentence naming the field; nothing changed.
    long = (later + timedelta(days=20)).isoformat()
    for body, status, message in [
        ({"end": (later - timedelta(hours=1)).isoformat()}, 400, "`end` must be after `start`."),
        ({"end": long}, 400, "A workshop lasts at most 14 days."),
        ({"start": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
          "end": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}, 400, "`start` ("),
        ({"gpus": 2}, 400, "`gpus`: Extra inputs are not permitted."),
        ({"seats": 0}, 400, "`seats`: Input should be greater than or equal to 1."),
    ]:  # fmt: skip
        resp = ingrid.patch(path, json=body)
        assert resp.status_code == status, resp.text
        assert resp.json()["message"].startswith(message), resp.json()["message"]
    assert api_of(edit_hub, "ivar").patch(path, json={"seats": 3}).status_code == 403
    student = client(edit_hub, "student03").patch(path, json={"seats": 3})
    assert student.status_code == 403

    # Slurm refuses (the reservation is gone): the stored workshop keeps its old values.
    subprocess.run(["scontrol", "delete", "ReservationName=naic-ws-edit-gpu"], check=True)
    refused = ingrid.patch(path, json={"end": (later + timedelta(hours=2)).isoformat()})
    assert refused.status_code == 409, refused.text
    assert refused.json()["message"].startswith("Slurm did not change the workshop's reservation")
    kept = ingrid.get(path).json()
    assert datetime.fromisoformat(kept["end"]) == later + timedelta(hours=3)
    assert ingrid.delete(path).status_code == 200

    # A CPU workshop before its window: more seats, more cores (its reservation replaced).
    cpu = {**spec, "name": "edit-later", "resource": "testcluster:cpu", "gpus": 0}
    assert ingrid.post("/hub/api/naic/workshops", json=cpu).status_code == 201
    more = ingrid.patch("/hub/api/naic/workshops/edit-later", json={"seats": 3})
    assert more.status_code == 200, more.text
    shown = reservation("edit-later")
    assert "CoreCnt=3" in shown and "Accounts=course" in shown, shown
    assert f"StartTime={_slurm_time(day)}" in shown, shown
    assert ingrid.delete("/hub/api/naic/workshops/edit-later").status_code == 200


def test_an_open_workshop_seats_end_and_a_removed_student(edit_hub: Hub) -> None:
    ingrid_token = token_of(edit_hub, "ingrid")
    ingrid = api_of(edit_hub, "ingrid")
    now = minute(datetime.now(UTC))
    made = naic(
        edit_hub, ingrid_token, "create", "edit-cpu", "--seats", "3", "--start",
        (now - timedelta(minutes=5)).isoformat(), "--end", (now + timedelta(hours=1)).isoformat(),
        "--resource", "testcluster:cpu", "--hours", "0.5", "--project", "course",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    code = made.stdout.split("Join code:")[1].split()[0]
    students = {n: client(edit_hub, n) for n in ("student01", "student02")}
    for name, c in students.items():
        joined = c.post("/hub/api/naic/workshops/join", json={"code": code})
        assert joined.status_code == 200, joined.text
        start(c, name, {"workshop": "edit-cpu"}, server="edit-cpu")
    for name, c in students.items():
        wait_until(lambda c=c, n=name: ready(c, n, "edit-cpu"), 180, f"{name}'s session")
    path = "/hub/api/naic/workshops/edit-cpu"

    # Seats: not below the two seated; up within the reservation's cores.
    low = naic(edit_hub, ingrid_token, "edit", "edit-cpu", "--seats", "1")
    assert low.returncode == 1
    assert low.stderr.strip() == (
        "naic workshop edit: `seats`: 2 students already hold a seat in edit-cpu, so its seats "
        "can go down to 2, not 1; remove a student first."
    )
    # Slurm updates no reservation of cores, and deletes none that runs sessions: more seats
    # are refused while they run; fewer keep the three cores held.
    busy = ingrid.patch(path, json={"seats": 4})
    assert busy.status_code == 409, busy.text
    assert busy.json()["message"].startswith(
        "`seats`: Slurm cannot give more cores to the reservation of edit-cpu while sessions run"
    ), busy.json()["message"]
    assert "CoreCnt=3" in reservation("edit-cpu"), reservation("edit-cpu")
    down = ingrid.patch(path, json={"seats": 2})
    assert down.status_code == 200, down.text
    assert down.json()["seats"] == 2 and "CoreCnt=3" in reservation("edit-cpu")

    # An open workshop's end moves (Slurm's too); its start no longer does.
    end = now + timedelta(hours=2)
    longer = naic(edit_hub, ingrid_token, "edit", "edit-cpu", "--end", end.isoformat())
    assert longer.returncode == 0, longer.stderr
    assert f"EndTime={_slurm_time(end)}" in reservation("edit-cpu"), reservation("edit-cpu")
    # The dashboard's form does the same, in UTC, with the sentence on the page.
    page_end = now + timedelta(hours=3)
    web, _ = log_in(edit_hub, "ingrid", edit_hub.password)
    page = web.get("/hub/naic/workshops/edit-cpu")
    assert "naic-edit-workshop" in page.text and "naic-remove" in page.text
    form = {
        "_xsrf": re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1),
        "edit": "1", "seats": "2", "end": page_end.strftime("%Y-%m-%dT%H:%M"),
    }  # fmt: skip
    edited = web.post("/hub/naic/workshops/edit-cpu", data=form)
    assert edited.status_code == 200, edited.text[:500]
    assert "naic-edit-notice" in edited.text and "UTC" in edited.text
    assert f"EndTime={_slurm_time(page_end)}" in reservation("edit-cpu"), reservation("edit-cpu")
    bad = web.post("/hub/naic/workshops/edit-cpu", data={**form, "seats": "1"})
    assert bad.status_code == 400 and "can go down to 2, not 1" in bad.text
    again = ingrid.patch(path, json={"start": (now + timedelta(minutes=30)).isoformat()})
    assert again.status_code == 400
    assert again.json()["message"].startswith("`start`: edit-cpu opened at")

    # student02 removed: session stopped, seat free, no way back in.
    removed = naic(edit_hub, ingrid_token, "remove", "edit-cpu", "student02")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith("student02 was removed from edit-cpu"), removed.stdout
    s2 = students["student02"]
    wait_until(lambda: jobs_of("student02") == [], 60, "student02's job gone")
    wait_until(lambda: not ready(s2, "student02", "edit-cpu"), 60, "student02 stopped")
    board = ingrid.get(path).json()
    assert [s["user"] for s in board["students"]] == ["student01"]
    with edit_hub.api() as api:
        assert "student02" not in api.get("/groups/workshop-edit-cpu").json()["users"]
    rejoin = s2.post("/hub/api/naic/workshops/join", json={"code": code})
    assert rejoin.status_code == 403
    assert rejoin.json()["message"].startswith("You were removed from the workshop edit-cpu")
    spawn = s2.post(
        "/hub/api/users/student02/servers/edit-cpu", json={"user_options": {"workshop": "edit-cpu"}}
    )
    assert spawn.status_code == 400
    assert "You hold no seat in a workshop" in spawn.json()["message"]
    # student01 is untouched, and now one seat is enough.
    assert ready(students["student01"], "student01", "edit-cpu")
    assert jobs_of("student01") == ["student01 naic-ws-edit-cpu"]
    assert ingrid.patch(path, json={"seats": 1}).status_code == 200
    gone = ingrid.delete("/hub/api/naic/workshops/edit-cpu/students/student02")
    assert gone.status_code == 404
    assert ingrid.delete(path).status_code == 200
