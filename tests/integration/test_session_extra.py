"""The node-side install: `naic-hub[session]` alone has the server, kernels and widgets,
and none of the hub's own packages."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.session_env import session_venv

pytestmark = [pytest.mark.integration]

#: Only the hub needs these: a node must not carry them. (alembic, pydantic, pyyaml and
#: SQLAlchemy stay: jupyterhub itself, which provides jupyterhub-singleuser, requires them.)
HUB_ONLY = {"oauthenticator", "asyncssh", "psycopg", "psycopg-binary", "ldap3", "batchspawner",
            "wrapspawner", "pyjwt"}  # fmt: skip
SESSION = {"naic-hub", "jupyterhub", "jupyterlab", "ipykernel", "ipywidgets", "dask",
           "distributed", "dask-jobqueue", "nvidia-ml-py", "nbgitpuller"}  # fmt: skip


def test_the_session_extra_has_the_session_and_none_of_the_hub() -> None:
    venv = session_venv()
    listed = subprocess.run([venv / "bin" / "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    names = {d["name"].lower().replace("_", "-") for d in json.loads(listed)}
    assert names & HUB_ONLY == set(), sorted(names & HUB_ONLY)
    assert SESSION <= names, sorted(SESSION - names)

    # What a session runs: the server, the launcher, kernels, widgets, naic-env.
    assert subprocess.run([venv / "bin" / "jupyterhub-singleuser", "--help"],
                          capture_output=True, check=False).returncode == 0  # fmt: skip
    code = (
        "import naic.extensions.launch, naic.extensions.server, naic.extensions.kernels, "
        "naic.extensions.dask, naic.extensions.widgets, naic.extensions.envs; print('ok')"
    )
    out = subprocess.run([venv / "bin" / "python", "-c", code],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.stdout.strip() == "ok", out.stderr
    env_help = subprocess.run([venv / "bin" / "naic-env", "--help"], capture_output=True,
                              text=True, check=False)  # fmt: skip
    assert "create" in env_help.stdout, env_help.stderr
