"""Workshop assignments on the real hub and the real Slurm test cluster, the hub being the
exchange (naic.hub.workshops.assignment_api): the instructor releases a folder with
`naic workshop release`; inside each of two students' running workshop sessions
`naic-assignment fetch` puts it in ~/asg-course/assignments/a1, the student edits it and
`naic-assignment submit` sends it with the session's own token; `naic workshop collect`
gives the instructor both students' edited files. Then the attacker: a student reading
another's submission or collecting, a user not seated, a zip that climbs out of its folder,
an unreleased assignment, a removed student submitting."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import pwd
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, log_in, stop_hub
from tests.integration.helpers import (
    make_instructors,
    ready,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAIC = str(Path(sys.executable).parent / "naic")
WS = "asg-course"
STUDENTS = ("student05", "student06")
API = f"/hub/api/naic/workshops/{WS}/assignments"


def home(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


@pytest.fixture
def course_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    def course(cat: dict) -> None:
        cat["projects"]["course"] = {"title": "ML course", "slurm_account": "course",
                                     "members": ["ingrid"]}  # fmt: skip

    for student in STUDENTS:  # a fresh course folder in each student's home
        shutil.rmtree(home(student) / WS, ignore_errors=True)
    hub = start_testcluster_hub(hub_dir, course, "--admin", "ops")
    make_instructors(hub, "ingrid")
    try:
        yield hub
    finally:
        stop_hub(hub)
        for student in STUDENTS:
            subprocess.run(["scancel", f"--user={student}"], check=False)
            shutil.rmtree(home(student) / WS, ignore_errors=True)
        subprocess.run(["scontrol", "delete", f"ReservationName=naic-ws-{WS}"], check=False)


def naic(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NAIC_HUB_URL": hub.url, "NAIC_TOKEN": token}
    return subprocess.run(
        [NAIC, "workshop", *args], env=env, capture_output=True, text=True, timeout=300
    )


def as_user(hub: Hub, token: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"token {token}"}, timeout=60)


def zipped(*members: tuple[str, bytes]) -> str:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return base64.b64encode(out.getvalue()).decode()


def in_session(hub: Hub, student: str, token: str, shell: str) -> str:
    """Run `shell` in the student's workshop session (a kernel there: the session's own
    environment and token, as a terminal has them); what it printed, and its exit code."""
    code = (
        "import subprocess, os\n"
        f"done = subprocess.run({shell!r}, shell=True, capture_output=True, text=True,"
        " cwd=os.path.expanduser('~'))\n"
        "print(done.stdout, done.stderr, 'exit', done.returncode)\n"
    )
    url = f"{hub.url}user/{student}/{WS}/"
    return asyncio.run(run_cell(url, token, code, 120))


def test_release_fetch_edit_submit_collect_and_the_attacker(
    course_hub: Hub, tmp_path: Path
) -> None:
    hub = course_hub
    ingrid = token_of(hub, "ingrid")
    now = datetime.now(UTC)
    made = naic(
        hub, ingrid, "create", WS, "--seats", "2",
        "--start", (now - timedelta(minutes=5)).isoformat(),
        "--end", (now + timedelta(hours=2)).isoformat(),
        "--resource", "testcluster:cpu", "--hours", "1", "--project", "course",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    code = re.search(r"Join code:\s+(\S+)", made.stdout).group(1)

    # 1. The instructor releases a folder.
    folder = tmp_path / "a1"
    (folder / "data").mkdir(parents=True)
    (folder / "answer.py").write_text("ANSWER = None\n")
    (folder / "data" / "points.csv").write_text("x,y\n1,2\n")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "answer-checkpoint.py").write_text("old")
    released = naic(hub, ingrid, "release", WS, "a1", "--from", str(folder))
    assert released.returncode == 0, released.stderr
    assert released.stdout.startswith(f"Released a1 to {WS}: 2 files, "), released.stdout
    assert released.stdout.splitlines()[1:] == ["  answer.py", "  data/points.csv"]

    # 2. Both students seated, their workshop sessions running.
    tokens, clients = {}, {}
    for student in STUDENTS:
        tokens[student] = token_of(hub, student)
        clients[student] = c = as_user(hub, tokens[student])
        joined = c.post("/hub/api/naic/workshops/join", json={"code": code})
        assert joined.status_code == 200, joined.text
        start(c, student, {"workshop": WS}, server=WS)
    for student in STUDENTS:
        c = clients[student]
        wait_until(lambda c=c, s=student: ready(c, s, WS), 240, f"{student}/{WS}")

    # 3. Inside each session: fetch, edit, submit (the session's own token).
    for student in STUDENTS:
        out = in_session(hub, student, tokens[student], "naic-assignment list")
        assert "a1" in out and "not submitted" in out and "exit 0" in out, out
        out = in_session(hub, student, tokens[student], "naic-assignment fetch a1")
        where = home(student) / WS / "assignments" / "a1"
        assert f"Fetched a1 into {where}: 2 new files" in out and "exit 0" in out, out
        edit = f"echo 'ANSWER = \"{student}\"' > ~/{WS}/assignments/a1/answer.py"
        out = in_session(hub, student, tokens[student], f"{edit} && naic-assignment submit a1")
        assert "Submitted a1 at " in out and "  answer.py" in out and "exit 0" in out, out
        # Fetching again keeps the student's edit.
        out = in_session(hub, student, tokens[student], "naic-assignment fetch a1")
        assert "0 new files; kept 2 you already have" in out, out
        assert (where / "answer.py").read_text() == f'ANSWER = "{student}"\n'
        assert (where / "answer.py").stat().st_uid == pwd.getpwnam(student).pw_uid

    # 4. The instructor collects both, the students' edited files.
    dest = tmp_path / "collected"
    collected = naic(hub, ingrid, "collect", WS, "a1", "--to", str(dest))
    assert collected.returncode == 0, collected.stderr
    assert f"Collected 2 submissions of a1 into {dest}" in collected.stdout
    for student in STUDENTS:
        assert (dest / student / "answer.py").read_text() == f'ANSWER = "{student}"\n'
        assert (dest / student / "data" / "points.csv").read_text() == "x,y\n1,2\n"
    listed = as_user(hub, ingrid).get(API).json()["assignments"]
    assert [(a["name"], a["submissions"]) for a in listed] == [("a1", 2)]
    assert [s["user"] for s in listed[0]["submitted"]] == list(STUDENTS)
    web, _ = log_in(hub, "ingrid", hub.password)  # and the dashboard shows who handed it in
    page = web.get(f"/hub/naic/workshops/{WS}").text
    row = re.search(r'<tr data-assignment="a1">.*?</tr>', page, re.S)
    assert row and f"2 of 2: {', '.join(STUDENTS)}" in row.group(0)

    # 5. The attacker. A student neither reads another's submission nor collects.
    s05, s06 = STUDENTS
    mallory = clients[s06]
    got = mallory.get(f"{API}/a1/submissions/{s05}")
    assert (got.status_code, got.json()["message"]) == (
        403,
        "You may see only your own submission.",
    )
    got = mallory.get(f"{API}/a1/submissions")
    assert got.status_code == 403 and "Only the staff of" in got.json()["message"]
    out = in_session(hub, s06, tokens[s06], f"naic-assignment collect {WS} a1")
    assert "exit 1" in out and "Only the staff of" in out, out
    own = mallory.get(f"{API}/a1/submission")
    assert own.status_code == 200 and own.json()["user"] == s06
    assert [a.get("submitted") for a in mallory.get(API).json()["assignments"]] == [None]
    # Nor releases.
    got = mallory.post(API, json={"name": "a2", "archive": zipped(("x", b""))})
    assert got.status_code == 403, got.text

    # A user not seated sees nothing.
    outsider = as_user(hub, token_of(hub, "outsider"))
    for method, path in (("GET", API), ("GET", f"{API}/a1"), ("GET", f"{API}/a1/submissions")):
        got = outsider.request(method, path)
        assert got.status_code == 403, (path, got.text)
        assert got.json()["message"] == f"You are not a student of {WS}."
    got = outsider.put(f"{API}/a1/submission", json={"archive": zipped(("x", b""))})
    assert got.status_code == 403, got.text

    # A zip that climbs out of its folder: 400 with the sentence, nothing stored.
    evil = zipped(("../x", b"evil"))
    sentence = "The archive's member '../x' goes up a folder (..); names must stay inside."
    got = as_user(hub, ingrid).post(API, json={"name": "a2", "archive": evil})
    assert (got.status_code, got.json()["message"]) == (400, sentence)
    assert [a["name"] for a in as_user(hub, ingrid).get(API).json()["assignments"]] == ["a1"]
    got = clients[s05].put(f"{API}/a1/submission", json={"archive": evil})
    assert (got.status_code, got.json()["message"]) == (400, sentence)
    mine = clients[s05].get(f"{API}/a1/submission").json()
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(mine["archive"]))) as z:
        assert z.read("answer.py") == f'ANSWER = "{s05}"\n'.encode()  # the good one stays

    # An assignment not released is not there for students.
    got = clients[s05].get(f"{API}/a2")
    assert got.status_code == 404 and "has no assignment a2 released" in got.json()["message"]

    # Archives beyond the 64 KiB other APIs take pass; beyond 20 MB they are refused.
    staff = as_user(hub, ingrid)
    big = zipped(("weights.bin", os.urandom(3_000_000)))
    got = staff.post(API, json={"name": "big", "archive": big})
    assert got.status_code == 201 and got.json()["replaced"] is False, got.text
    fetched = clients[s05].get(f"{API}/big").json()
    assert fetched["archive"] == big
    huge = zipped(("weights.bin", os.urandom(21_000_000)))
    got = staff.post(API, json={"name": "huge", "archive": huge})
    assert got.status_code == 413, got.text
    assert got.json()["message"].endswith("bytes; an archive may be 20 MB."), got.text

    # A removed student can no longer submit.
    removed = naic(hub, ingrid, "remove", WS, s06)
    assert removed.returncode == 0, removed.stderr
    got = mallory.put(f"{API}/a1/submission", json={"archive": zipped(("answer.py", b"late"))})
    assert got.status_code == 403, got.text
    assert (
        got.json()["message"] == f"You were removed from {WS}; its assignments are closed to you."
    )


def test_the_store_on_sqlite_and_postgresql(db_url: str) -> None:
    """Releases and submissions as SQLite and PostgreSQL keep them: bytes back as sent, a
    release again and a resubmission replace, sizes without reading the archives."""
    from naic.hub.workshops.assignments import AssignmentStore

    store = AssignmentStore(db_url)
    try:
        data = base64.b64decode(zipped(("a.py", b"x" * 1000)))
        assert store.release(WS, "a1", data, "ingrid")[1] is False
        assert store.release(WS, "a1", data + b"", "kari")[1] is True
        assert [(a.name, a.released_by, a.size) for a in store.assignments(WS)] == [
            ("a1", "kari", len(data))
        ]
        assert store.archive(WS, "a1") == data
        store.submit(WS, "a1", "student05", b"\x00first")
        store.submit(WS, "a1", "student05", b"\x00\xffsecond")
        store.submit(WS, "a1", "student06", b"other")
        listed = store.submissions(WS, "a1")
        assert [(s.username, s.size, s.archive) for s in listed] == [
            ("student05", 8, None),
            ("student06", 5, None),
        ]
        assert store.submission(WS, "a1", "student05").archive == b"\x00\xffsecond"
    finally:
        store.close()
