"""Which login the hub's config picks, and when it refuses the dev login (naic.hub.app.config)."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from naic.hub import catalogue
from naic.hub.app.config import Settings, build_config, dev_login_problem, is_dev_login
from naic.hub.app.up import run_up
from naic.hub.identity.auth import DevAuthenticator

IDENTITY_YAML = """
identity:
  title: Feide
  issuer: https://auth.dataporten.no
  identity_claim: eduPersonPrincipalName
  domains: [uio.no]
"""


@pytest.fixture
def with_identity() -> catalogue.Catalogue:
    return catalogue.parse(catalogue.DEFAULT_CATALOGUE.read_text() + IDENTITY_YAML)


def test_dev_login_comes_from_the_environment_and_goes_back_to_it() -> None:
    assert Settings.from_env({"NAIC_DEV_LOGIN": "1"}).dev_login
    assert not Settings.from_env({"NAIC_DEV_LOGIN": ""}).dev_login
    assert not Settings.from_env({}).dev_login
    assert Settings(dev_login=True).to_env()["NAIC_DEV_LOGIN"] == "1"
    # `naic up` without --dev-login clears a value left in the operator's shell.
    assert Settings().to_env()["NAIC_DEV_LOGIN"] == ""


def test_dev_login_on_purpose_replaces_the_catalogues_identity(
    tmp_path: Path, with_identity: catalogue.Catalogue
) -> None:
    s = Settings(data_dir=tmp_path, dev_login=True, admins=("boss",))
    c = build_config(s, with_identity, None)
    assert c.JupyterHub.authenticator_class == "naic-dev"
    assert c.Authenticator.admin_users == {"boss"}
    assert "NaicOIDCAuthenticator" not in c
    assert dev_login_problem(c, with_identity, s) is None


@pytest.mark.parametrize(
    "value", ["naic-dev", "naic.hub.identity.auth.DevAuthenticator", DevAuthenticator]
)
def test_the_dev_login_set_after_naic_hubs_choice_is_refused(
    tmp_path: Path, with_identity: catalogue.Catalogue, value: object
) -> None:
    s = Settings(catalogue=Path("/etc/naic-hub/catalogue.yaml"), data_dir=tmp_path)
    c = build_config(s, with_identity, None)
    assert dev_login_problem(c, with_identity, s) is None
    c.JupyterHub.authenticator_class = value  # e.g. jupyterhub_config.d/50-ansible.py
    assert dev_login_problem(c, with_identity, s) == (
        "naic-hub: the catalogue /etc/naic-hub/catalogue.yaml logs in through its identity "
        f"provider, but {tmp_path}/jupyterhub_config.d sets the shared-password dev login "
        "(naic-dev) instead; remove that setting (Ansible: leave naic_hub_authenticator_class "
        "empty), or start with `naic up --dev-login` (plain jupyterhub: NAIC_DEV_LOGIN=1) to "
        "use the dev login on purpose."
    )


def test_other_logins_and_catalogues_without_identity_are_left_alone(
    tmp_path: Path, with_identity: catalogue.Catalogue
) -> None:
    s = Settings(data_dir=tmp_path)
    c = Config()
    c.JupyterHub.authenticator_class = "generic-oauth"
    assert dev_login_problem(c, with_identity, s) is None
    assert not is_dev_login("dummy") and not is_dev_login(None)
    plain = catalogue.load(catalogue.DEFAULT_CATALOGUE)
    assert dev_login_problem(build_config(s, plain, None), plain, s) is None


def test_naic_up_dev_login_says_how_to_log_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cat = tmp_path / "catalogue.yaml"
    cat.write_text(catalogue.DEFAULT_CATALOGUE.read_text() + IDENTITY_YAML)
    started: list[dict[str, str]] = []
    monkeypatch.setattr("naic.hub.app.up.find_proxy", lambda: "/bin/true")
    monkeypatch.setattr("naic.hub.app.up.os.geteuid", lambda: 1000)
    monkeypatch.setattr("naic.hub.app.up.os.chdir", lambda _path: None)
    monkeypatch.setattr("naic.hub.app.up.os.execve", lambda _f, _a, env: started.append(env))
    run_up(cat, 8000, tmp_path / "data", [], dev_login=True)
    out = capsys.readouterr().out
    assert "log in    any user name, with the password" in out
    assert "Feide" not in out
    assert started[0]["NAIC_DEV_LOGIN"] == "1"
