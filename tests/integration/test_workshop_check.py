"""`naic workshop check` and a workshop's environment on the real test cluster (#19, items
3 and 4): the check runs the material's notebooks in the workshop's preset session (a Slurm
job of the instructor) and passes on good material, names the notebook and the cell that
broke on bad material, and fails when the seats' GPU-hours exceed the project's budget; a
workshop's environment is stored and its students' sessions run it; create refuses a bad
environment and a workshop its project cannot pay for, with the numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from naic.hub.usage.ledger import Ledger
from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import (
    client,
    start,
    start_testcluster_hub,
    token_of,
    wait_until,
)
from tests.integration.test_workshops import naic

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

GOOD = Path("/var/tmp/naic-check-good")  # a plain folder
BAD = Path("/var/tmp/naic-check-bad")  # a git repository
ENV = Path("/var/tmp/naic-check-env")  # the course environment: this venv, by another path
NAMES = ("check-good", "check-bad", "check-gpu", "check-env")


def notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "source": s, "outputs": []}
        for s in sources
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})


def materials() -> None:
    subprocess.run(["rm", "-rf", str(GOOD), str(BAD)], check=True)
    GOOD.mkdir(mode=0o755)
    (GOOD / "01-fine.ipynb").write_text(notebook("x = 6 * 7", "print(x)"))
    BAD.mkdir(mode=0o755)
    (BAD / "01-fine.ipynb").write_text(notebook("print('fine')"))
    (BAD / "02-broken.ipynb").write_text(
        notebook("y = 1", "raise RuntimeError('broken on purpose')\nprint('never')", "y")
    )
    git = ["git", "-C", str(BAD), "-c", "user.name=T", "-c", "user.email=t@x"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "course"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", str(GOOD), str(BAD)], check=True)


@pytest.fixture
def check_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """alice an instructor (a member of demo, 100 GPU-hours); a second environment."""
    materials()
    if ENV.is_symlink() or ENV.exists():
        ENV.unlink()
    ENV.symlink_to(sys.prefix)

    def edit(cat: dict) -> None:
        cat["environments"]["course-env"] = {"title": "The course's", "venv": str(ENV)}

    hub = start_testcluster_hub(hub_dir, edit)
    with hub.api() as api:
        api.post("/users/alice")
        resp = api.post("/groups/instructors/users", json={"users": ["alice"]})
        assert resp.is_success, resp.text
    try:
        yield hub
    finally:
        stop_hub(hub)
        for name in NAMES:
            subprocess.run(
                ["scontrol", "delete", f"ReservationName=naic-ws-{name}"], capture_output=True
            )


def window(days: float, hours: float = 3) -> list[str]:
    start = datetime.now(UTC) + timedelta(days=days)
    return ["--start", start.isoformat(), "--end", (start + timedelta(hours=hours)).isoformat()]


def create(hub: Hub, token: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return naic(hub, token, "create", name, *args)


def test_check_passes_on_good_material_and_names_the_broken_cell(check_hub: Hub) -> None:
    alice = token_of(check_hub, "alice")
    for name, material in (("check-good", GOOD), ("check-bad", BAD)):
        made = create(
            check_hub, alice, name, "--seats", "2", *window(2), "--resource", "testcluster:cpu",
            "--hours", "1", "--project", "demo", "--material", str(material),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

    good = naic(check_hub, alice, "check", "check-good")
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert any(line.startswith("… notebook job") for line in lines), good.stdout
    assert "PASS budget: CPU sessions use no GPU-hours" in lines
    assert any(
        line.startswith("PASS reservation: naic-ws-check-good holds 2 cores") for line in lines
    ), good.stdout
    assert "PASS notebook 01-fine.ipynb: every cell ran" in lines
    assert lines[-1] == "check-good: every check passed"

    bad = naic(check_hub, alice, "check", "check-bad")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "PASS notebook 01-fine.ipynb: every cell ran" in bad.stdout
    assert (
        "FAIL notebook 02-broken.ipynb: cell 2 (index 1) `raise RuntimeError('broken on "
        "purpose')`: RuntimeError: broken on purpose" in bad.stdout
    ), bad.stdout
    assert bad.stdout.splitlines()[-1] == "check-bad: FAILED"


def test_seats_beyond_the_budget_are_refused_at_create_and_fail_the_check(
    check_hub: Hub,
) -> None:
    alice = token_of(check_hub, "alice")
    gpu = ["--resource", "testcluster:a100", "--gpus", "1", "--project", "demo"]
    refused = create(check_hub, alice, "check-gpu", "--seats", "40", *window(3, 7), *gpu,
                     "--hours", "6")  # fmt: skip
    assert refused.returncode == 1
    assert (
        "40 seats × 1 GPU × 6 h = 240 GPU-hours, but project demo has 100 left this year"
        in refused.stderr
    ), refused.stderr

    made = create(check_hub, alice, "check-gpu", "--seats", "4", *window(3, 6), *gpu,
                  "--hours", "5")  # fmt: skip
    assert made.returncode == 0, made.stderr
    # Since then, other sessions of demo took 90 of its 100 GPU-hours.
    ledger = Ledger(f"sqlite:///{check_hub.data_dir / 'jupyterhub.sqlite'}")
    try:
        held = ledger.hold(
            user="bob", server="", project="demo", gpu_hours=90, budget=100, since=None,
            expires_at=datetime.now(UTC) + timedelta(hours=2),
        )  # fmt: skip
        assert isinstance(held, int)
    finally:
        ledger.close()
    checked = naic(check_hub, alice, "check", "check-gpu")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert (
        "FAIL budget: 4 seats × 1 GPU × 5 h = 20 GPU-hours, but project demo has 10 left this "
        "year" in checked.stdout
    ), checked.stdout
    assert "PASS reservation: naic-ws-check-gpu holds 1 nodes" in checked.stdout, checked.stdout


def test_a_workshops_environment_is_stored_and_its_sessions_run_it(check_hub: Hub) -> None:
    alice = token_of(check_hub, "alice")
    cpu = ["--resource", "testcluster:cpu", "--hours", "1"]
    bad = create(check_hub, alice, "check-env", "--seats", "2", *window(0), *cpu,
                 "--environment", "nope")  # fmt: skip
    assert bad.returncode == 1
    assert (
        "`environment` 'nope' is not offered on CPU only; choose one of: course-env, python."
        in bad.stderr
    ), bad.stderr

    now = datetime.now(UTC)
    made = create(
        check_hub, alice, "check-env", "--seats", "2", "--start",
        (now - timedelta(minutes=5)).isoformat(), "--end", (now + timedelta(hours=1)).isoformat(),
        *cpu, "--environment", "course-env",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "environment course-env" in made.stdout
    code = made.stdout.split("Join code:")[1].split()[0]
    api = httpx.Client(
        base_url=check_hub.url, headers={"Authorization": f"token {alice}"}, timeout=30
    )
    assert api.get("/hub/api/naic/workshops/check-env").json()["environment"] == "course-env"

    bob = client(check_hub, "bob")
    joined = bob.post("/hub/api/naic/workshops/join", json={"code": code})
    assert joined.status_code == 200, joined.text
    start(bob, "bob", joined.json()["user_options"], server="check-env")

    def job() -> str:
        out = subprocess.run(
            ["squeue", "-h", "-u", "bob", "-o", "%i %v"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return next((ln for ln in out.stdout.splitlines() if "naic-ws-check-env" in ln), "")

    wait_until(lambda: job() != "", 60, "bob's workshop job")
    job_id = job().split()[0]
    text = subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True
    ).stdout
    assert f"source {ENV}/bin/activate" in text, text
    bob.delete("/hub/api/users/bob/servers/check-env")
