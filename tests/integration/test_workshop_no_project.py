"""A student in no project, over the real OIDC login and the real Slurm test cluster: with the
workshop's join link they log in, land on the join page and get the workshop's session
(charged to the workshop's project); a plain session stays refused. Without a code (or with
a wrong one) they see "ask for access", and a spawn call gets nowhere."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.hub_process import Hub, free_port_base, start_hub, stop_hub
from tests.integration.helpers import (
    COURSE,
    FAST_POLLS,
    course_repository,
    make_instructors,
    token_of,
    wait_until,
)
from tests.integration.helpers import testcluster_catalogue as cluster_catalogue
from tests.oidc_provider import Provider, oidc_log_in, xsrf_of

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

NAME = "intro-np"
STUDENT, OUTSIDER = "student09", "student10"


@pytest.fixture
def np_hub(slurm_cluster, hub_dir: Path, oidc_provider: Provider) -> Iterator[Hub]:
    """The test cluster with an OIDC login; project course is ingrid's (an instructor);
    student09@uio.no and student10@uio.no are in no project."""
    for sub, ident in [("s9-sub", f"{STUDENT}@uio.no"), ("s10-sub", f"{OUTSIDER}@uio.no")]:
        oidc_provider.set_user(sub, eduPersonPrincipalName=ident)
    port = free_port_base()
    client_id, secret = oidc_provider.register(f"http://127.0.0.1:{port}/hub/oauth_callback")
    cat = cluster_catalogue()
    cat["projects"]["course"] = {"title": "ML course", "slurm_account": "course",
                                 "members": ["ingrid"]}  # fmt: skip
    cat["identity"] = {
        "title": "Test IdP",
        "issuer": oidc_provider.issuer,
        "identity_claim": "eduPersonPrincipalName",
        "domains": ["uio.no"],
    }
    (hub_dir / "catalogue.yaml").write_text(yaml.safe_dump(cat))
    config_d = hub_dir / "data" / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "10-fast-polls.py").write_text(FAST_POLLS)
    course_repository()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAIC_OIDC_CLIENT_ID", client_id)
        mp.setenv("NAIC_OIDC_CLIENT_SECRET", secret)
        mp.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
        hub = start_hub(hub_dir / "data", "--catalogue", str(hub_dir / "catalogue.yaml"),
                        port=port)  # fmt: skip
    make_instructors(hub, "ingrid")
    try:
        yield hub
    finally:
        stop_hub(hub)
        for user in (STUDENT, OUTSIDER):
            subprocess.run(["scancel", f"--user={user}"], check=False)
        subprocess.run(["scontrol", "delete", f"ReservationName=naic-ws-{NAME}"], check=False)


def create_workshop(hub: Hub) -> str:
    """The instructor's workshop (CPU seats, the course project pays); its join code."""
    ingrid = httpx.Client(
        base_url=hub.url, headers={"Authorization": f"token {token_of(hub, 'ingrid')}"},
        timeout=60,
    )  # fmt: skip
    now = datetime.now(UTC)
    made = ingrid.post(
        "/hub/api/naic/workshops",
        json={
            "name": NAME,
            "title": "Intro without a project",
            "seats": 3,
            "start": (now - timedelta(minutes=5)).isoformat(),
            "end": (now + timedelta(hours=2)).isoformat(),
            "resource": "testcluster:cpu",
            "hours": 1,
            "project": "course",
            "material": str(COURSE),
        },
    )
    assert made.status_code == 201, made.text
    return made.json()["code"]


def test_a_student_without_a_project_gets_in_with_the_code_only(np_hub: Hub) -> None:
    code = create_workshop(np_hub)
    join = f"/hub/naic/workshops/join?code={code}"

    # Without a code, and with a wrong one: "ask for access", and no hub user.
    _, plain = oidc_log_in(np_hub.url, "s10-sub")
    assert plain.status_code == 403 and "naic/access/ask" in plain.text, plain.text[:2000]
    browser, wrong = oidc_log_in(np_hub.url, "s10-sub", next_url=join[:-3] + "XYZ")
    assert wrong.status_code == 403 and "naic/access/ask" in wrong.text
    with np_hub.api() as api:
        assert api.get(f"/users/{OUTSIDER}").status_code == 404
    spawn = browser.post(f"/hub/api/users/{OUTSIDER}/servers/{NAME}",
                         json={"user_options": {"workshop": NAME}})  # fmt: skip
    assert spawn.status_code == 403, spawn.text

    # With the join link: logged in, on the join page, the code filled in.
    browser, landed = oidc_log_in(np_hub.url, "s9-sub", next_url=join)
    assert landed.status_code == 200, landed.text[:2000]
    assert landed.url.path == "/hub/naic/workshops/join"
    assert code in landed.text
    xsrf = {"X-XSRFToken": browser.cookies.get("_xsrf", path="/hub/")}
    # Before joining, nothing starts: no project, no seat.
    early = browser.post(f"/hub/api/users/{STUDENT}/server", json={"user_options": {}},
                         headers=xsrf)  # fmt: skip
    assert early.status_code == 400 and "in no project" in early.json()["message"]

    joined = browser.post(
        "/hub/naic/workshops/join",
        data={"_xsrf": xsrf_of(landed), "code": code},
        follow_redirects=False,
    )
    assert joined.status_code == 302, joined.text[:2000]
    assert joined.headers["location"].endswith(f"/spawn/{STUDENT}/{NAME}?workshop={NAME}")
    browser.get(joined.headers["location"])  # the spawn, as the browser follows it

    def ready() -> bool:
        s = browser.get(f"/hub/api/users/{STUDENT}").json()["servers"].get(NAME)
        return bool(s and s["ready"])

    wait_until(ready, 180, f"{STUDENT}'s workshop session")
    jobs = subprocess.run(
        ["squeue", "-h", "-u", STUDENT, "-t", "RUNNING", "-o", "%a %v"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")[:-1]  # fmt: skip
    assert jobs == [f"course naic-ws-{NAME}"]
    lab = browser.get(f"/user/{STUDENT}/{NAME}/lab")
    assert lab.status_code == 200 and lab.url.path == f"/user/{STUDENT}/{NAME}/lab"

    # A plain session (no workshop) is still refused: the workshop's project is not theirs.
    for options in ({}, {"project": "course"}):
        other = browser.post(f"/hub/api/users/{STUDENT}/servers/other",
                             json={"user_options": options}, headers=xsrf)  # fmt: skip
        assert other.status_code == 400, other.text
    assert re.search(r"not a member of project|in no project", other.json()["message"])

    # Seated, they log in again later without the link (while the workshop is open).
    _, home = oidc_log_in(np_hub.url, "s9-sub")
    assert home.status_code == 200 and home.url.path == "/hub/home"
