"""A session's notebook as a batch job on the test cluster (naic.hub.sessions.batch).

alice's GPU session sends notebook 04 to the queue: with a one-minute limit the job is
stopped by Slurm part-way through its training, and a second job, submitted with
`naic-batch` inside the session, resumes from the checkpoint and finishes. Hostile changes
of hours, GPUs and the notebook get the spawn form's sentences, and nobody else may submit
for alice or read her jobs.
"""

from __future__ import annotations

import asyncio
import pwd
import re
import subprocess
import time
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import squeue, user_token, wait_ready
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "04-from-notebook-to-batch-job.ipynb"
SESSION = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}
ONE_MINUTE = 1 / 60


def home(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


def api_as(hub: Hub, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=60
    )


def wait_state(api: httpx.Client, job_id: str, final: tuple[str, ...], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        got = api.get(f"/naic/users/alice/batch/testcluster/{job_id}")
        assert got.status_code == 200, got.text
        if got.json()["state"] in final:
            return got.json()
        assert time.monotonic() < deadline, (
            f"job {job_id} is still {got.json()} after {timeout_s} s"
        )
        time.sleep(3)


def cells_text(path: Path) -> str:
    book = nbformat.read(path, as_version=4)
    return "".join(
        out.get("text", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


@pytest.fixture
def alice_session(slurm_hub: Hub):
    """alice's GPU session, with a fresh copy of notebook 04 and no checkpoint."""
    (home("alice") / NOTEBOOK).unlink(missing_ok=True)  # the material copy puts it back
    for old in (home("alice") / "naic-checkpoints").glob("04-*"):
        old.unlink()
    with slurm_hub.api() as api:
        api.post("/users/alice")
        resp = api.post("/users/alice/server", json={"user_options": SESSION})
        assert resp.status_code in (201, 202), resp.text
        wait_ready(api, "alice")
    token = user_token(slurm_hub, "alice")
    try:
        yield token
    finally:
        subprocess.run(["scancel", "--user=alice", "--name=naic-batch"], check=False)
        with slurm_hub.api() as api:
            api.delete("/users/alice/server")


def test_a_notebook_runs_as_a_batch_job_stopped_at_its_limit_then_resumed(
    slurm_hub: Hub, alice_session: str
) -> None:
    api = api_as(slurm_hub, alice_session)
    assert (home("alice") / NOTEBOOK).is_file()

    # 1. The script first: the session's site, resource, environment and project.
    shown = api.post("/naic/users/alice/batch", json={"notebook": NOTEBOOK, "hours": ONE_MINUTE})
    assert shown.status_code == 200, shown.text
    script = shown.json()["script"]
    for line in (
        "#SBATCH --job-name=naic-batch",
        "#SBATCH --partition=accel",
        "#SBATCH --time=0:01:00",
        "#SBATCH --gres=gpu:a100:1",
        "#SBATCH --account=demo",
        "#SBATCH --export=NONE",
        f"exec python -m naic.extensions.batch run {NOTEBOOK}",
    ):
        assert line in script.splitlines(), script
    assert "JUPYTERHUB" not in script  # the session's hub login stays with the session
    assert squeue("--user=alice", "--name=naic-batch") == ""  # showing submits nothing

    # 2. Submitted with a one-minute limit: Slurm stops it part-way through the training.
    first = api.post(
        "/naic/users/alice/batch", json={"notebook": NOTEBOOK, "hours": ONE_MINUTE, "submit": True}
    )
    assert first.status_code == 201, first.text
    job = first.json()
    assert job["output"] == f"04-from-notebook-to-batch-job.batch-{job['job_id']}.ipynb"
    owner = squeue("--jobs", job["job_id"], "--format=%u %j").split()
    assert owner == ["alice", "naic-batch"]
    ended = wait_state(api, job["job_id"], ("done", "failed"), timeout_s=240)
    assert ended["words"] == "ended: time limit reached"
    partial = home("alice") / job["output"]
    assert partial.stat().st_uid == pwd.getpwnam("alice").pw_uid
    stopped_at = int(re.findall(r"step (\d+)/120", cells_text(partial))[-1])
    assert 0 < stopped_at < 120
    checkpoint = home("alice") / "naic-checkpoints" / "04-regression.npz"
    saved_step = int(np.load(checkpoint)["step"])
    assert saved_step >= stopped_at  # saved every 5 steps, printed with each save

    # 3. The second job, with naic-batch inside the session, resumes from the checkpoint.
    code = (
        "import subprocess\n"
        f"cmd = ['naic-batch', 'submit', {NOTEBOOK!r}, '--hours', '0.25', '--yes', '--follow']\n"
        "done = subprocess.run(cmd, capture_output=True, text=True, cwd=__import__('os')"
        ".path.expanduser('~'))\n"
        "print(done.stdout, done.stderr, 'exit', done.returncode)\n"
    )
    out = asyncio.run(run_cell(slurm_hub.url + "user/alice/", alice_session, code, 300))
    second = re.search(r"Submitted batch job (\d+) at testcluster", out)
    assert second, out
    assert f"Job {second.group(1)}: done: every cell ran" in out and "exit 0" in out, out
    output = f"04-from-notebook-to-batch-job.batch-{second.group(1)}.ipynb"
    resumed = cells_text(home("alice") / output)
    assert f"resumed from step {saved_step} (checkpoint 04-regression.npz)" in resumed
    assert "finished all 120 steps" in resumed


def test_hostile_changes_get_the_spawn_forms_sentences(slurm_hub: Hub, alice_session: str) -> None:
    api = api_as(slurm_hub, alice_session)
    # What the spawn form says for the same options is what the batch job says.
    with slurm_hub.api() as admin:
        form = admin.post(
            "/users/alice/servers/probe", json={"user_options": {**SESSION, "hours": 100}}
        )
    assert form.status_code == 400
    for body, field in (
        ({"hours": 100}, "hours"),
        ({"gpus": 9}, "gpus"),
        ({"gpus": "1; scancel -u bob"}, "gpus"),
        ({"hours": -1}, "hours"),
    ):
        got = api.post(
            "/naic/users/alice/batch", json={"notebook": NOTEBOOK, "submit": True, **body}
        )
        assert got.status_code == 400, got.text
        assert got.json()["message"].startswith(f'"{field}" must be'), got.text
    hours = api.post(
        "/naic/users/alice/batch", json={"notebook": NOTEBOOK, "hours": 100, "submit": True}
    )
    assert hours.json()["message"] == form.json()["message"]
    for notebook in ("../bob/secret.ipynb", "/etc/passwd", "notes.txt"):
        got = api.post("/naic/users/alice/batch", json={"notebook": notebook, "submit": True})
        assert got.status_code == 400 and "notebook" in got.json()["message"].lower(), got.text
    got = api.post("/naic/users/alice/batch", json={"notebook": NOTEBOOK, "partition": "x"})
    assert got.status_code == 400 and "not a batch job option" in got.json()["message"]
    assert squeue("--user=alice", "--name=naic-batch") == ""  # nothing half-submitted


def test_nobody_else_submits_for_alice_or_reads_her_jobs(
    slurm_hub: Hub, alice_session: str
) -> None:
    bob = api_as(slurm_hub, user_token(slurm_hub, "bob"))
    got = bob.post("/naic/users/alice/batch", json={"notebook": NOTEBOOK, "submit": True})
    assert got.status_code == 403, got.text
    # bob has no session: nothing to take a batch job from
    got = bob.post("/naic/users/bob/batch", json={"notebook": NOTEBOOK})
    assert got.status_code == 404 and "no running session" in got.json()["message"]
    alice = api_as(slurm_hub, alice_session)
    job = alice.post(
        "/naic/users/alice/batch", json={"notebook": NOTEBOOK, "hours": ONE_MINUTE, "submit": True}
    ).json()["job_id"]
    assert bob.get(f"/naic/users/alice/batch/testcluster/{job}").status_code == 403
    mine = bob.get(f"/naic/users/bob/batch/testcluster/{job}")  # alice's job as bob's: no
    assert mine.status_code == 404 and "not one of bob's batch jobs" in mine.json()["message"]
    subprocess.run(["scancel", job], check=True)
    assert "naic-alice" in squeue("--user=alice", "--format=%j").split()  # session untouched
