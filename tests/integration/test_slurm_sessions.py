"""GPU sessions on the real test cluster, through a real hub, as a student and an attacker."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from naic.hub.usage.ledger import Ledger
from tests.hub_process import Hub
from tests.integration.helpers import squeue, user_token, wait_ready
from tests.kernel import run_cell

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def test_a_gpu_session_runs_as_a_slurm_job_and_stopping_cancels_it(slurm_hub: Hub) -> None:
    token = user_token(slurm_hub, "alice")
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    resp = api.post(
        "/users/alice/server",
        json={"user_options": {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5}},
    )
    assert resp.status_code in (201, 202), resp.text
    wait_ready(api, "alice")

    jobs = squeue("--user=alice", "--states=RUNNING", "--format=%i %b %P")
    assert "gres/gpu:a100:1 accel" in jobs or "gpu:a100:1 accel" in jobs, jobs

    server_url = slurm_hub.url + "user/alice/"
    out = asyncio.run(
        run_cell(
            server_url,
            token,
            "import os, getpass; print(getpass.getuser(), os.environ.get('CUDA_VISIBLE_DEVICES'))",
        )
    )
    user, cuda = out.split()
    assert user == "alice"
    assert cuda.isdigit(), f"CUDA_VISIBLE_DEVICES should name one GPU, got {cuda!r}"

    assert api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while api.get("/users/alice").json()["servers"]:
        assert time.monotonic() < deadline, "the session did not stop"
        time.sleep(0.5)
    assert squeue("--user=alice", "--states=PENDING,RUNNING", "--format=%i") == ""


def test_bad_options_get_a_400_with_a_sentence_and_submit_nothing(slurm_hub: Hub) -> None:
    token = user_token(slurm_hub, "bob")
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    before = squeue("--states=all", "--format=%i")
    for options in (
        {"site": "testcluster", "resource": "a100", "gpus": 99},
        {"site": "testcluster", "resource": "a100", "hours": "1\n#SBATCH --uid=0"},
        {"site": "testcluster", "project": "nn9999k"},
        {"colour": "blue"},
    ):
        resp = api.post("/users/bob/server", json={"user_options": options})
        assert resp.status_code == 400, (options, resp.text)
        message = resp.json()["message"]
        assert message.endswith(".") and "Traceback" not in message, message
    assert squeue("--states=all", "--format=%i") == before


def test_the_port_callback_takes_a_port_and_nothing_else(slurm_hub: Hub, hub_dir: Path) -> None:
    """batchspawner 1.3.0 would run `batch_query_cmd` from this body as the hub (root)."""
    token = user_token(slurm_hub, "alice")
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
    )
    api.post(
        "/users/alice/server",
        json={"user_options": {"site": "testcluster", "resource": "cpu", "hours": 0.5}},
    )
    wait_ready(api, "alice")

    # The job's own token, as the student sees it in their session (this job's, not that of
    # a process some earlier session left behind).
    job_id = squeue("--user=alice", "--states=RUNNING", "--format=%i").strip()
    job_token = None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"JUPYTERHUB_USER=alice" in env and f"SLURM_JOB_ID={job_id}".encode() in env:
            job_token = next(
                e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"JUPYTERHUB_API_TOKEN=")
            )
            break
    assert job_token, "could not find the session's job process"

    pwned = hub_dir / "pwned"
    evil = httpx.post(
        slurm_hub.url + "hub/api/batchspawner",
        headers={"Authorization": f"token {job_token}"},
        json={"port": 1, "batch_query_cmd": f"touch {pwned}; squeue"},
    )
    assert evil.status_code == 400
    # Several status polls later, nothing ran and the session still answers on its port.
    for _ in range(3):
        assert api.get("/users/alice").json()["servers"][""]["ready"]
        time.sleep(1)
    assert not pwned.exists()
    status = httpx.get(
        slurm_hub.url + "user/alice/api/status", headers={"Authorization": f"token {token}"}
    )
    assert status.status_code == 200

    # bob cannot reach alice's server, nor start or stop servers for her.
    bob = user_token(slurm_hub, "bob")
    bob_headers = {"Authorization": f"token {bob}"}
    assert httpx.get(slurm_hub.url + "user/alice/api/status", headers=bob_headers).status_code in (
        302,
        403,
        404,
    )
    assert httpx.delete(
        slurm_hub.url + "hub/api/users/alice/server", headers=bob_headers
    ).status_code in (403, 404)
    alice_starts_for_bob = api.post("/users/bob/server", json={"user_options": {}})
    assert alice_starts_for_bob.status_code in (403, 404)
    assert api.delete("/users/alice/server").status_code in (202, 204)


@pytest.mark.parametrize("account", ["daemon", "slurm", "nobody"])
def test_no_session_runs_as_a_system_account(slurm_hub: Hub, account: str) -> None:
    """A hub user whose name is a system account's gets a sentence, never a job (nor an
    estimate, which runs `sbatch --test-only` as the account) with that account's rights:
    `daemon` (uid 1), Debian's `slurm` (64030, the scheduler's own), `nobody` (65534)."""
    token = user_token(slurm_hub, account)
    ledger = Ledger(f"sqlite:///{slurm_hub.data_dir / 'jupyterhub.sqlite'}")
    asked = ledger.request_access(account, "demo", "a test of system accounts")
    ledger.decide(asked.id, approve=True, by="ops")  # so only the account can stop it
    ledger.close()
    api = httpx.Client(
        base_url=slurm_hub.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=60
    )
    options = {"site": "testcluster", "resource": "cpu", "hours": 0.5, "project": "demo"}
    estimate = api.get("/naic/estimate", params=options)
    assert estimate.status_code == 403, estimate.text
    assert estimate.json()["message"] == (
        f"{account!r} at testcluster is a system account, not a user's; the hub starts no "
        "session as it."
    )
    resp = api.post(f"/users/{account}/server", json={"user_options": options})
    assert resp.status_code == 403, resp.text
    assert "is a system account, not a user's" in resp.json()["message"]
    assert squeue(f"--user={account}", "--format=%i") == ""
