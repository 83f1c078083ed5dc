"""A workshop's shared course folder on the real hub and the real Slurm test cluster (#19,
item 5): `naic workshop create --shared`, a student's workshop session finds it linked as
~/<workshop>/shared and reads the course's data through it, and `naic workshop check`
passes it while it is read-only for students and fails it once group or others can write."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import (
    client,
    make_instructors,
    ready,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAIC = str(Path(sys.executable).parent / "naic")
NAME, STUDENT = "shared-course", "student04"
SHARED = Path("/var/tmp/naic-test-shared")
LINK = Path(f"/home/{STUDENT}/{NAME}/shared")


@pytest.fixture
def shared_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    subprocess.run(["rm", "-rf", str(SHARED), str(LINK.parent)], check=True)
    SHARED.mkdir()
    SHARED.chmod(0o755)
    (SHARED / "data.csv").write_text("x,y\n1,2\n")
    (SHARED / "data.csv").chmod(0o644)
    hub = start_testcluster_hub(hub_dir)
    make_instructors(hub, "alice")  # a Unix account: the check runs her job
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", f"--user={STUDENT}"], check=False)
        subprocess.run(["scontrol", "delete", f"ReservationName=naic-ws-{NAME}"], check=False)
        subprocess.run(["rm", "-rf", str(SHARED), str(LINK.parent)], check=False)


def naic(hub: Hub, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NAIC_HUB_URL": hub.url, "NAIC_TOKEN": token}
    return subprocess.run(
        [NAIC, "workshop", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_students_session_links_the_shared_folder_and_the_check_guards_it(
    shared_hub: Hub,
) -> None:
    alice = token_of(shared_hub, "alice")
    now = datetime.now(UTC)
    made = naic(
        shared_hub, alice, "create", NAME, "--seats", "1",
        "--start", (now - timedelta(minutes=5)).isoformat(),
        "--end", (now + timedelta(hours=2)).isoformat(),
        "--resource", "testcluster:cpu", "--hours", "1", "--project", "demo",
        "--shared", str(SHARED),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    code = re.search(r"Join code:\s+(\S+)", made.stdout).group(1)
    listed = naic(shared_hub, alice, "list")
    assert f"shared {SHARED}" in listed.stdout, listed.stdout + listed.stderr

    c = client(shared_hub, STUDENT)
    joined = c.post("/hub/api/naic/workshops/join", json={"code": code})
    assert joined.status_code == 200, joined.text
    start(c, STUDENT, {"workshop": NAME}, server=NAME)
    wait_until(lambda: ready(c, STUDENT, NAME), 240, f"{STUDENT}/{NAME}")

    assert LINK.is_symlink() and os.readlink(LINK) == str(SHARED)
    read = subprocess.run(
        ["runuser", "-u", STUDENT, "--", "cat", str(LINK / "data.csv")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert read.returncode == 0 and read.stdout == "x,y\n1,2\n", read.stderr
    assert (SHARED.stat().st_mode & 0o777) == 0o755  # the session changed no permission

    good = naic(shared_hub, alice, "check", NAME)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"PASS shared folder: {SHARED} is there, read-only for students" in good.stdout

    SHARED.chmod(0o777)
    bad = naic(shared_hub, alice, "check", NAME)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert (
        f"FAIL shared folder: {SHARED} (mode 777, owner root) is writable by group or others: "
        "students could change it for everyone" in bad.stdout
    ), bad.stdout
