"""The spawn form's start estimate, from a real hub asking the real test cluster."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_process import Hub, start_hub, stop_hub
from tests.integration.helpers import squeue, user_token
from tests.integration.helpers import testcluster_catalogue as cluster_catalogue

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


A100 = {"site": "testcluster", "resource": "a100", "gpus": "1", "hours": "0.5"}
LATER = re.compile(r"Expected start in about \d+ (min|h)( \d+ min)?(, behind \d+ jobs?)?")


def client_as(hub: Hub, name: str) -> httpx.Client:
    token = user_token(hub, name)
    return httpx.Client(
        base_url=hub.url + "hub/api/naic",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


def test_an_idle_node_starts_now_and_a_local_site_at_once(slurm_hub: Hub) -> None:
    api = client_as(slurm_hub, "alice")
    resp = api.get("/estimate", params={"site": "testcluster", "resource": "cpu"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["message"] == "Starts now" and body["wait_s"] == 0
    assert set(body) == {"start", "wait_s", "ahead", "message", "age_s"}
    assert body["age_s"] == 0  # the harness's hub reuses no answer (NAIC_ESTIMATE_FRESH_S=0)

    local = api.get("/estimate", params={"site": "local", "resource": "cpu-small", "hours": "2"})
    assert local.json() == {"start": "now", "message": "Starts now", "age_s": 0}


def test_a_full_node_gives_a_later_start_behind_the_queue(
    slurm_hub: Hub, full_gpu_node: list[str]
) -> None:
    api = client_as(slurm_hub, "alice")
    resp = api.get("/estimate", params=A100)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["wait_s"] >= 60, body
    assert body["ahead"] >= 1, body
    assert LATER.fullmatch(body["message"]), body
    assert "behind" in body["message"]
    # Asking queued nothing (sbatch --test-only): Slurm knows no job by the estimate's name.
    assert squeue("--states=all", "--name=naic-estimate-alice", "--format=%i") == ""


def test_bad_input_gets_400_with_the_requests_sentence(slurm_hub: Hub) -> None:
    api = client_as(slurm_hub, "bob")
    for params, sentence in (
        ({**A100, "gpus": "99"}, '"gpus" must be a whole number from 1 to 4 for NVIDIA A100'),
        ({**A100, "project": "nn9999k"}, 'You are not a member of project "nn9999k"'),
        ({**A100, "hours": "1\n#SBATCH --uid=0"}, '"hours" must be a number of hours'),
        ({**A100, "colour": "blue"}, '"colour" is not a session option'),
    ):
        resp = api.get("/estimate", params=params)
        assert resp.status_code == 400, (params, resp.text)
        message = resp.json()["message"]
        assert message.startswith(sentence) and message.endswith("."), message


def test_only_a_logged_in_user_gets_estimates(slurm_hub: Hub) -> None:
    anonymous = httpx.get(slurm_hub.url + "hub/api/naic/estimate", params=A100)
    assert anonymous.status_code == 403
    with slurm_hub.api() as operator:  # a service token, not a user
        assert operator.get("/naic/estimate", params=A100).status_code == 403


def test_the_form_gets_an_older_answer_at_once_and_is_told_how_old(
    slurm_cluster, hub_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub that reuses answers (1 s here; 10 s by default) shows one up to 6× that old at
    once, asking Slurm again behind it; older than that, the form waits for a new one."""
    monkeypatch.setenv("NAIC_ESTIMATE_FRESH_S", "1")
    path = hub_dir / "catalogue.yaml"
    path.write_text(yaml.safe_dump(cluster_catalogue()))
    hub = start_hub(hub_dir / "data", "--catalogue", str(path))
    try:
        api = client_as(hub, "alice")
        first = api.get("/estimate", params=A100).json()
        assert first["age_s"] == 0, first
        time.sleep(2.5)
        older = api.get("/estimate", params=A100).json()
        assert older["age_s"] in (2, 3), older
        assert {**older, "age_s": 0} == first  # the same answer, said to be older
        deadline, newer = time.monotonic() + 10, older
        while newer["age_s"] >= 2 and time.monotonic() < deadline:  # asked again behind it
            time.sleep(0.2)
            newer = api.get("/estimate", params=A100).json()
        assert newer["age_s"] < 2 and newer["start"] != first["start"], newer
        time.sleep(6.5)
        assert api.get("/estimate", params=A100).json()["age_s"] == 0  # too old to show
    finally:
        stop_hub(hub)
