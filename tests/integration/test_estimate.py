"""The spawn form's start estimate, from a real hub asking the real test cluster."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.hub_process import Hub
from tests.integration.helpers import squeue, user_token

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
    assert set(body) == {"start", "wait_s", "ahead", "message"}

    local = api.get("/estimate", params={"site": "local", "resource": "cpu-small", "hours": "2"})
    assert local.json() == {"start": "now", "message": "Starts now"}


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
