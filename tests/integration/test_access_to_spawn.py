"""One person's whole way in: institutional login without a project, an access request, an
admin's approval, and a GPU session on the real Slurm test cluster charged to that project."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.hub_process import Hub
from tests.oidc_provider import oidc_log_in, xsrf_of

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

GPU = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}


def test_an_access_request_ends_in_a_running_gpu_session(idp_hub: Hub) -> None:
    # alice@uio.no is in no project: she may not log in, but may ask.
    browser, refused = oidc_log_in(idp_hub.url, "alice-sub")
    assert refused.status_code == 403
    sent = browser.post(
        "/hub/naic/access/ask",
        data={"_xsrf": xsrf_of(refused), "project": "demo", "reason": "My thesis needs GPUs."},
    )
    assert sent.status_code == 200, sent.text[:2000]

    # Pending, she can log in, but a GPU session at the cluster needs the project.
    _, home = oidc_log_in(idp_hub.url, "alice-sub", client=browser)
    assert home.url.path == "/hub/home"
    assert "naic-no-project" in home.text and "naic/access" in home.text
    xsrf = {"X-XSRFToken": browser.cookies.get("_xsrf", path="/hub/")}
    early = browser.post("/hub/api/users/alice/server", json={"user_options": GPU}, headers=xsrf)
    assert early.status_code == 400
    assert 'You are not a member of project "demo"' in early.json()["message"]

    # The admin approves.
    admin, _ = oidc_log_in(idp_hub.url, "boss-sub")
    page = admin.get("/hub/naic/admin/access")
    request_id = (
        page.text.split('data-user="alice" data-project="demo"')[0]
        .rsplit('data-request="', 1)[1]
        .split('"', 1)[0]
    )
    decided = admin.post(
        "/hub/naic/admin/access",
        data={"_xsrf": xsrf_of(page), "request_id": request_id, "action": "approve"},
    )
    assert decided.status_code == 200

    # Now the same request starts a Slurm job with one GPU, charged to demo.
    started = browser.post("/hub/api/users/alice/server", json={"user_options": GPU}, headers=xsrf)
    assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + 120
    while not browser.get("/hub/api/users/alice").json()["servers"].get("", {}).get("ready"):
        assert time.monotonic() < deadline, "alice's GPU session did not become ready"
        time.sleep(0.5)
    jobs = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-t", "RUNNING", "-o", "%a %b"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert jobs == ["demo", "gres:gpu:a100:1"]
    lab = browser.get("/user/alice/lab")  # the server's own OAuth step, then JupyterLab
    assert lab.status_code == 200 and lab.url.path == "/user/alice/lab"
    home = browser.get("/hub/home").text
    assert 'data-project="demo"' in home
