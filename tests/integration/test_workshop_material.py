"""Material updates mid-course, on the real hub and the real Slurm test cluster: three
students' workshop sessions run; the instructor commits to the course repository and presses
"Update material" on the dashboard; every session pulls within its report interval without
restarting (same Slurm job, same start), a student's edited notebook keeps the edits while
the others get the course's change, and the dashboard shows which commit each one has."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    client,
    make_instructors,
    notebook,
    ready,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)
from tests.integration.test_workshop_staff import naic

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAME = "mat-course"
COURSE = Path("/var/tmp/naic-test-material")  # its own: other tests rebuild theirs
STUDENTS = ("student01", "student02", "student03")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(COURSE), "-c", "user.name=T", "-c", "user.email=t@x", *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def material_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    def course(cat: dict) -> None:
        cat["projects"]["course"] = {"title": "ML course", "slurm_account": "course",
                                     "members": ["ingrid"]}  # fmt: skip

    homes = [f"/home/{s}/{NAME}" for s in STUDENTS]  # a previous run's clones
    subprocess.run(["rm", "-rf", str(COURSE), *homes], check=True)
    COURSE.mkdir(mode=0o755)
    git("init", "-q", "-b", "main")
    (COURSE / "01-intro.ipynb").write_text(notebook(None, None))
    git("add", ".")
    git("commit", "-q", "-m", "course")
    hub = start_testcluster_hub(hub_dir, course)
    make_instructors(hub, "ingrid")
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in STUDENTS:
            subprocess.run(["scancel", f"--user={user}"], check=False)
        subprocess.run(["scontrol", "delete", f"ReservationName=naic-ws-{NAME}"], check=False)
        subprocess.run(["rm", "-rf", str(COURSE)], check=False)


def job_ids(user: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


def cells(path: Path) -> list:
    return [c["execution_count"] for c in json.loads(path.read_text())["cells"]]


def test_an_update_reaches_three_running_sessions_and_keeps_a_students_edits(
    material_hub: Hub,
) -> None:
    hub = material_hub
    ingrid = token_of(hub, "ingrid")
    now = datetime.now(UTC)
    made = naic(
        hub, ingrid, "create", NAME, "--seats", "3",
        "--start", (now - timedelta(minutes=5)).isoformat(),
        "--end", (now + timedelta(hours=2)).isoformat(),
        "--resource", "testcluster:cpu", "--hours", "0.5",
        "--project", "course", "--material", str(COURSE),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    code = re.search(r"Join code:\s+(\S+)", made.stdout).group(1)
    students = {}
    for name in STUDENTS:
        c = students[name] = client(hub, name)
        assert c.post("/hub/api/naic/workshops/join", json={"code": code}).status_code == 200
        start(c, name, {"workshop": NAME}, server=NAME)
    for name, c in students.items():
        wait_until(lambda c=c, n=name: ready(c, n, NAME), 300, f"{name}'s session")
    started = {n: c.get(f"/hub/api/users/{n}").json()["servers"][NAME]["started"]
               for n, c in students.items()}  # fmt: skip
    jobs = {n: job_ids(n) for n in STUDENTS}
    assert all(len(j) == 1 for j in jobs.values()), jobs
    api = httpx.Client(base_url=hub.url, headers={"Authorization": f"token {ingrid}"}, timeout=30)

    def pulled() -> dict:
        got = api.get(f"/hub/api/naic/workshops/{NAME}/material")
        assert got.status_code == 200, got.text
        return {s["user"]: s for s in got.json()["students"]}

    first = git("rev-parse", "--short=7", "HEAD")
    wait_until(
        lambda: all(s.get("version") == first for s in pulled().values()), 60, "first report"
    )

    # Mid-course: student01 has run a cell; the course adds a cell and a second notebook.
    mine = Path(f"/home/{STUDENTS[0]}/{NAME}/01-intro.ipynb")
    mine.write_text(notebook(1, None))
    (COURSE / "01-intro.ipynb").write_text(notebook(None, None, None))
    (COURSE / "02-more.ipynb").write_text(notebook(None))
    git("add", ".")
    git("commit", "-q", "-m", "more")
    second = git("rev-parse", "--short=7", "HEAD")

    # The instructor presses the button on the dashboard.
    web, _ = log_in(hub, "ingrid", hub.password)
    page = web.get(f"/hub/naic/workshops/{NAME}")
    assert "Update material" in page.text and "as the sessions started" in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    pressed = web.post(f"/hub/naic/workshops/{NAME}", data={"_xsrf": xsrf, "update_material": "1"})
    assert pressed.status_code == 200, pressed.text
    assert "Update 1 asked: running sessions pull it within 20 s." in pressed.text
    assert f"update 1 (commit <code>{second}</code>) asked by ingrid" in pressed.text

    wait_until(
        lambda: all(s.get("update") == 1 and s.get("version") == second
                    for s in pulled().values()),
        90, "every session pulled update 1",
    )  # fmt: skip
    assert not any(s.get("error") for s in pulled().values())
    for name in STUDENTS:
        assert Path(f"/home/{name}/{NAME}/02-more.ipynb").exists(), name
    assert cells(mine)[0] == 1  # the student's run cell is kept
    for name in STUDENTS[1:]:
        assert cells(Path(f"/home/{name}/{NAME}/01-intro.ipynb")) == [None, None, None]
    # Nothing restarted: the same Slurm job, the same start.
    for name, c in students.items():
        assert c.get(f"/hub/api/users/{name}").json()["servers"][NAME]["started"] == started[name]
        assert job_ids(name) == jobs[name]
    page = web.get(f"/hub/naic/workshops/{NAME}")
    assert page.text.count(f"{second}, up to date") == 3, page.text

    # A student cannot press it.
    assert students[STUDENTS[0]].post(f"/hub/api/naic/workshops/{NAME}/material").status_code == 403

    # The last hour: each session shows the end, with a link to download the folder.
    end = (datetime.now(UTC) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    moved = api.patch(f"/hub/api/naic/workshops/{NAME}", json={"end": end.isoformat()})
    assert moved.status_code == 200, moved.text
    first_student = students[STUDENTS[0]]
    base = f"/user/{STUDENTS[0]}/{NAME}/"

    def end_notice() -> dict | None:
        got = first_student.get(base + "naic/api/notices").json()["notices"]
        return next((n for n in got if n["id"] == "workshop-end"), None)

    wait_until(lambda: end_notice() is not None, 60, "the end notice")
    notice = end_notice()
    assert notice["text"] == (
        f"{NAME} ends at {end:%H:%M} UTC on {end:%Y-%m-%d}. ~/{NAME} stays in your home; "
        "download a copy if you wish."
    )
    assert notice["link"] == {
        "label": "Download my folder",
        "url": base + "naic/api/workshop/archive",
    }
    got = first_student.get(notice["link"]["url"])
    assert got.status_code == 200, got.text
    assert got.headers["content-disposition"].startswith(f'attachment; filename="{NAME}-')
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        names = set(z.namelist())
        assert {f"{NAME}/01-intro.ipynb", f"{NAME}/02-more.ipynb"} <= names
        assert not any("/.git/" in n for n in names)
        assert json.loads(z.read(f"{NAME}/01-intro.ipynb"))["cells"][0]["execution_count"] == 1
    other = students[STUDENTS[1]].get(notice["link"]["url"])  # another student's folder
    assert other.status_code == 403

    # The report: sessions, GPU-hours, cells run, the material's version, per student.
    report = api.get(f"/hub/api/naic/workshops/{NAME}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = {r["user"]: r for r in csv.DictReader(io.StringIO(report.text))}
    assert sorted(rows) == list(STUDENTS)
    assert rows[STUDENTS[0]]["cells_run"] == "1" and rows[STUDENTS[0]]["cells"] == "3"
    assert {r["material"] for r in rows.values()} == {second}
    assert {r["sessions"] for r in rows.values()} == {"1"}
    assert {r["gpu_hours"] for r in rows.values()} == {"0.000"}  # CPU sessions
    # The dashboard's link gives the same report to the logged-in instructor.
    assert f"/hub/naic/workshops/{NAME}/report.csv" in web.get(f"/hub/naic/workshops/{NAME}").text
    linked = web.get(f"/hub/naic/workshops/{NAME}/report.csv")
    assert linked.status_code == 200 and linked.text.splitlines()[0] == report.text.splitlines()[0]
    assert students[STUDENTS[1]].get(f"/hub/api/naic/workshops/{NAME}/report").status_code == 403
