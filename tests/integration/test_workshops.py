"""A workshop on the real test cluster, as its instructor and ten students live it: `naic
workshop create`, ten students joining at the same moment, every session in the Slurm
reservation with the course material (a local git repository) in its home, the limits
(an 11th student, a code outside its window, a student at the dashboard, another
instructor), and `naic workshop end` leaving no job and no reservation behind."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in
from tests.integration.helpers import (
    COURSE,
    RESERVATION,
    client,
    jobs_of,
    notebook,
    ready,
    start,
    token_of,
    wait_until,
)
from tests.slurm_cluster import STUDENTS

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAIC = str(Path(sys.executable).parent / "naic")


def naic(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NAIC_HUB_URL": hub.url, "NAIC_TOKEN": token}
    return subprocess.run(
        [NAIC, "workshop", *args], env=env, capture_output=True, text=True, timeout=300
    )


def jobs(fmt: str) -> list[str]:
    users = ",".join(STUDENTS)
    out = subprocess.run(
        ["squeue", "-h", "-u", users, "-t", "PENDING,RUNNING", "-o", fmt],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(out.stdout.split("\n")[:-1])


def test_a_workshop_from_create_to_end(ws_hub: Hub) -> None:
    ingrid = token_of(ws_hub, "ingrid")
    now = datetime.now(UTC)
    created = naic(
        ws_hub,
        ingrid,
        "create",
        "ml-intro",
        "--title",
        "Intro to ML",
        "--seats",
        "10",
        "--start",
        (now - timedelta(minutes=5)).isoformat(),
        "--end",
        (now + timedelta(hours=2)).isoformat(),
        "--resource",
        "testcluster:cpu",
        "--hours",
        "1",
        "--project",
        "course",
        "--material",
        str(COURSE),
    )
    assert created.returncode == 0, created.stderr
    code = re.search(r"Join code:\s+(\S+)", created.stdout).group(1)
    assert f"Reservation: {RESERVATION}" in created.stdout
    shown = subprocess.run(
        ["scontrol", "show", "reservation", RESERVATION], capture_output=True, text=True
    )
    assert "Accounts=course" in shown.stdout, shown.stdout + shown.stderr

    # Ten students join and start at the same moment.
    students = {name: client(ws_hub, name) for name in STUDENTS}
    answers: dict[str, int] = {}

    def join_and_start(name: str) -> None:
        c = students[name]
        joined = c.post("/hub/api/naic/workshops/join", json={"code": code.lower()})
        answers[name] = joined.status_code
        if joined.is_success:
            start(c, name, joined.json()["user_options"], server="ml-intro")

    threads = [threading.Thread(target=join_and_start, args=(n,)) for n in STUDENTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == dict.fromkeys(STUDENTS, 200)
    for name, c in students.items():
        wait_until(lambda c=c, n=name: ready(c, n, "ml-intro"), 300, f"{name}'s session")
    assert jobs("%u %v") == [f"{name} {RESERVATION}" for name in STUDENTS]

    # The material is in each home; a student's edit survives the next spawn.
    nb_path = Path("/home/student01/ml-intro/01-intro.ipynb")
    assert all(Path(f"/home/{n}/ml-intro/01-intro.ipynb").exists() for n in STUDENTS)
    nb_path.write_text(notebook_text := notebook(1, None))
    first = students["student01"]
    first.delete("/hub/api/users/student01/servers/ml-intro")
    wait_until(lambda: not ready(first, "student01", "ml-intro"), 60, "student01 stopped")
    wait_until(
        lambda: "ml-intro" not in first.get("/hub/api/users/student01").json()["servers"],
        60,
        "student01's session gone",
    )
    start(first, "student01", {"workshop": "ml-intro"}, server="ml-intro")
    wait_until(lambda: ready(first, "student01", "ml-intro"), 120, "student01 again")
    assert nb_path.read_text() == notebook_text
    ingrid_api = httpx.Client(
        base_url=ws_hub.url, headers={"Authorization": f"token {ingrid}"}, timeout=30
    )

    def progress_of(name: str) -> dict:
        w = ingrid_api.get("/hub/api/naic/workshops/ml-intro").json()
        return next(s for s in w["students"] if s["user"] == name)["notebooks"]

    wait_until(lambda: progress_of("student01") == {"01-intro.ipynb": [1, 2]}, 30, "progress")
    assert progress_of("student02") == {"01-intro.ipynb": [0, 2]}

    # The 11th student is refused on the join page, with a sentence.
    web, _ = log_in(ws_hub, "alice", ws_hub.password)
    page = web.get(f"/hub/naic/workshops/join?code={code}")
    assert page.status_code == 200 and code in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    full = web.post("/hub/naic/workshops/join", data={"code": code, "_xsrf": xsrf})
    assert full.status_code == 403
    assert "The workshop Intro to ML is full (10 seats)" in full.text

    # Students see no dashboard; another instructor manages nothing of ingrid's.
    assert students["student02"].get("/hub/api/naic/workshops/ml-intro").status_code == 403
    ivar = naic(ws_hub, token_of(ws_hub, "ivar"), "end", "ml-intro")
    assert ivar.returncode == 1
    assert ivar.stderr.strip() == "naic workshop end: You manage only your own workshops."
    dashboard = naic(ws_hub, ingrid, "show", "ml-intro")
    assert "10 of 10 seats taken" in dashboard.stdout
    assert dashboard.stdout.count(" running") == 10
    assert web.get("/hub/naic/workshops/ml-intro").status_code == 403

    # The instructor's page: everyone running; stopping one student says who stopped it.
    board, _ = log_in(ws_hub, "ingrid", ws_hub.password)
    page = board.get("/hub/naic/workshops/ml-intro")
    assert page.status_code == 200
    assert page.text.count('naic-session-state">running') == 10
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    stopped = board.post("/hub/naic/workshops/ml-intro", data={"stop": "student10", "_xsrf": xsrf})
    assert stopped.status_code == 302, stopped.text[:500]
    assert stopped.headers["location"].endswith("/hub/naic/workshops/ml-intro")
    wait_until(
        lambda: (
            "stopped by the instructor of Intro to ML"
            in board.get("/hub/naic/workshops/ml-intro").text
        ),
        60,
        "student10 stopped from the dashboard",
    )

    # The end: no job, no reservation, a report; the code no longer works.
    ended = naic(ws_hub, ingrid, "end", "ml-intro")
    assert ended.returncode == 0, ended.stderr
    report = list(csv.DictReader(io.StringIO(ended.stdout.split("report:\n", 1)[1])))
    assert sorted(r["user"] for r in report) == list(STUDENTS)
    assert next(r for r in report if r["user"] == "student01")["sessions"] == "2"
    wait_until(lambda: jobs("%u") == [], 60, "every workshop job gone")
    gone = subprocess.run(
        ["scontrol", "show", "reservation", RESERVATION], capture_output=True, text=True
    )
    assert gone.returncode != 0 or "not found" in (gone.stdout + gone.stderr).lower()
    late = students["student03"].post("/hub/api/naic/workshops/join", json={"code": code})
    assert late.status_code == 403
    assert late.json()["message"].startswith("The workshop Intro to ML ended at")
    # And a session can no longer be started from the old seat.
    again = students["student03"].post(
        "/hub/api/users/student03/servers/ml-intro", json={"user_options": {"workshop": "ml-intro"}}
    )
    assert again.status_code == 400
    assert "You hold no seat in a workshop" in again.json()["message"]


def test_a_code_before_its_window_and_bad_requests(ws_hub: Hub) -> None:
    ingrid = httpx.Client(
        base_url=ws_hub.url, headers={"Authorization": f"token {token_of(ws_hub, 'ingrid')}"}
    )
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    spec = {
        "name": "tomorrow",
        "seats": 2,
        "start": tomorrow.isoformat(),
        "end": (tomorrow + timedelta(hours=3)).isoformat(),
        "resource": "testcluster:cpu",
        "hours": 1,
    }
    made = ingrid.post("/hub/api/naic/workshops", json=spec)
    assert made.status_code == 201, made.text
    early = client(ws_hub, "student05").post(
        "/hub/api/naic/workshops/join", json={"code": made.json()["code"]}
    )
    assert early.status_code == 403
    assert early.json()["message"].startswith("The workshop tomorrow opens at")

    too_many = ingrid.post(
        "/hub/api/naic/workshops",
        json={**spec, "name": "huge", "resource": "testcluster:a100", "gpus": 1, "seats": 9},
    )
    assert too_many.status_code == 409
    assert too_many.json()["message"] == (
        "9 seats × 1 GPU need 3 nodes of 4 GPUs, and NVIDIA A100 (fake) has 1; lower the seats "
        "or GPUs (at most 4 GPUs in all)."
    )
    assert ingrid.get("/hub/api/naic/workshops/huge").status_code == 404  # nothing half-made
    bad = ingrid.post("/hub/api/naic/workshops", json={**spec, "name": "x", "seats": "many"})
    assert bad.status_code == 400
    assert (
        bad.json()["message"]
        == "`seats`: Input should be a valid integer, unable to parse string as an integer."
    )
    student = client(ws_hub, "student06").post("/hub/api/naic/workshops", json=spec)
    assert student.status_code == 403
    assert student.json()["message"] == "Only instructors and admins manage workshops."
    assert ingrid.delete("/hub/api/naic/workshops/tomorrow").status_code == 200

    # The instructor page's form does what the CLI does, with the same sentences.
    web, _ = log_in(ws_hub, "ingrid", ws_hub.password)
    page = web.get("/hub/naic/workshops")
    assert page.status_code == 200 and "tomorrow" in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    form = {
        "_xsrf": xsrf,
        "name": "from-page",
        "seats": "2",
        "hours": "1",
        "start": tomorrow.strftime("%Y-%m-%dT%H:%M"),
        "end": (tomorrow + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "resource": "testcluster:cpu",
        "gpus": "0",
        "project": "",
        "material": "",
    }
    bad = web.post("/hub/naic/workshops", data={**form, "hours": "3"})
    assert bad.status_code == 400
    assert "`hours` (3) must fit in the window (2 hours)" in bad.text
    made = web.post("/hub/naic/workshops", data=form)
    assert made.status_code == 200, made.text[:500]
    # The new workshop's page, with its code shown this once (the hub keeps its hash).
    assert "naic-ws-from-page" in made.text
    shown = re.search(r'naic-join-code">([A-Z2-9]{5}-[A-Z2-9]{5})<', made.text).group(1)
    later = web.get("/hub/naic/workshops/from-page").text
    assert shown not in later and "the hub keeps only its hash" in later
    assert ingrid.delete("/hub/api/naic/workshops/from-page").status_code == 200


def test_temporary_accounts_work_in_the_window_and_are_locked_out_at_the_end(
    ws_hub: Hub, tmp_path: Path
) -> None:
    ingrid = token_of(ws_hub, "ingrid")
    now = datetime.now(UTC)
    made = naic(
        ws_hub,
        ingrid,
        "create",
        "guests",
        "--seats",
        "3",
        "--start",
        now.isoformat(),
        "--end",
        (now + timedelta(hours=1)).isoformat(),
        "--resource",
        "testcluster:cpu",
        "--hours",
        "0.5",
        "--project",
        "course",
    )
    assert made.returncode == 0, made.stderr
    sheet = tmp_path / "accounts.csv"
    issued = naic(ws_hub, ingrid, "accounts", "guests", "--count", "2", "--csv", str(sheet))
    assert issued.returncode == 0, issued.stderr
    assert oct(sheet.stat().st_mode & 0o777) == "0o600"
    rows = list(csv.DictReader(sheet.open()))
    assert [r["username"] for r in rows] == ["guest01", "guest02"]
    more = naic(ws_hub, ingrid, "accounts", "guests", "--count", "2")
    assert more.returncode == 1
    assert "Only 1 workshop accounts are free now (the site has 3); ask for at most 1." in (
        more.stderr
    )

    # A guest logs in with the one-time password and lands in the workshop session.
    guest = httpx.Client(base_url=ws_hub.url, timeout=60, follow_redirects=True)
    page = guest.get("/hub/naic/workshops/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    form = {"username": "guest01", "password": rows[0]["password"], "_xsrf": xsrf}
    landed = guest.post("/hub/naic/workshops/login", data=form)
    assert landed.status_code == 200, landed.text[:500]
    with ws_hub.api() as api:
        wait_until(
            lambda: api.get("/users/guest01").json()["servers"].get("guests", {}).get("ready"),
            120,
            "guest01's workshop session",
        )
    assert jobs_of("guest01") == ["guest01 naic-ws-guests"]
    home = guest.get("/hub/home", follow_redirects=False)
    assert home.status_code == 200
    # The hub's own login does not take workshop accounts.
    _, refused = log_in(ws_hub, "guest02", ws_hub.password)
    assert refused.url.path != "/hub/home"

    ended = naic(ws_hub, ingrid, "end", "guests")
    assert ended.returncode == 0, ended.stderr
    wait_until(lambda: jobs_of("guest01") == [], 60, "guest01's job gone")
    after = guest.get("/hub/home", follow_redirects=False)
    assert after.status_code == 302 and "/hub/login" in after.headers["location"]
    xsrf = re.search(
        r'name="_xsrf" value="([^"]+)"', guest.get("/hub/naic/workshops/login").text
    ).group(1)
    again = guest.post("/hub/naic/workshops/login", data={**form, "_xsrf": xsrf})
    assert again.status_code == 403
    assert "This workshop account expired at" in again.text
