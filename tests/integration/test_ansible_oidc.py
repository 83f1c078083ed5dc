"""The naic_hub role with a catalogue whose `identity:` is a real OIDC provider.

The role is applied as in test_ansible.py (`connection: local`, service manager `none`,
everything under one throw-away folder in /var/tmp), with no login settings in the inventory
beyond the catalogue and the OAuth client's id and secret. The hub the role deployed is
started with the command the role left. The attacker is a stranger who knows (or reads in a
leaked log) the dev login's shared password: it must not get them in; the catalogue's
institutional login must.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.ansible_play import DeployedHub
from tests.oidc_provider import Provider, oidc_log_in

pytestmark = pytest.mark.integration


def test_the_dev_login_password_does_not_let_a_stranger_in(deployed_hub: DeployedHub) -> None:
    password_file = deployed_hub.data / "dev-password"
    # A leaked dev password, or a guess when the hub keeps none.
    password = password_file.read_text().strip() if password_file.exists() else "naic"
    client = httpx.Client(base_url=deployed_hub.url, timeout=30)
    page = client.get("/hub/login")
    found = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    xsrf = found.group(1) if found else client.cookies.get("_xsrf") or ""
    client.post("/hub/login", data={"username": "stranger", "password": password, "_xsrf": xsrf})
    assert client.get("/hub/api/user").status_code == 403  # not logged in
    assert "stranger" not in deployed_hub.user_names()


def test_a_project_member_logs_in_through_the_catalogues_provider(
    deployed_hub: DeployedHub, module_oidc_provider: Provider
) -> None:
    module_oidc_provider.set_user("ola-sub", eduPersonPrincipalName="ola@uio.no")
    client, landed = oidc_log_in(deployed_hub.url, "ola-sub")
    assert landed.url.path == "/hub/home", landed.text[:2000]
    assert client.get("/hub/api/user").json()["name"] == "ola"
