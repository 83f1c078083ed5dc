"""One person's whole way in: institutional login without a project, an access request, an
admin's approval, and a GPU session on the real Slurm test cluster charged to that project."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.hub_process import Hub, free_port_base, start_hub, stop_hub
from tests.oidc_provider import Provider, oidc_log_in, xsrf_of

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
GPU = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 0.5, "project": "demo"}


@pytest.fixture
def idp_hub(slurm_cluster, hub_dir: Path, oidc_provider: Provider) -> Iterator[Hub]:
    """The test cluster's catalogue with an `identity:`; project demo has no members."""
    oidc_provider.set_user("alice-sub", eduPersonPrincipalName="alice@uio.no")
    oidc_provider.set_user("boss-sub", eduPersonPrincipalName="boss@uio.no")
    port = free_port_base()
    client_id, secret = oidc_provider.register(f"http://127.0.0.1:{port}/hub/oauth_callback")
    cat = yaml.safe_load((REPO / "examples" / "catalogue-testcluster.yaml").read_text())
    cat["environments"]["python"]["venv"] = sys.prefix
    cat["projects"]["demo"]["members"] = []
    cat["identity"] = {
        "title": "Test IdP",
        "issuer": oidc_provider.issuer,
        "identity_claim": "eduPersonPrincipalName",
        "domains": ["uio.no"],
    }
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAIC_OIDC_CLIENT_ID", client_id)
        mp.setenv("NAIC_OIDC_CLIENT_SECRET", secret)
        hub = start_hub(
            hub_dir / "data",
            "--catalogue",
            str(hub_dir / "catalogue.yaml"),
            "--admin",
            "boss@uio.no",
            port=port,
        )
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", "--user=alice"], check=False)


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
