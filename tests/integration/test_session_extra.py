"""The node-side install (#17): `naic-hub[session]` alone, in a fresh venv from a clean copy
of the source, has the server, kernels and widgets, and none of the hub's own packages; every
module a session runs imports from it without the hub's code."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.session_env import REPO, session_venv

pytestmark = [pytest.mark.integration]

EXTENSIONS = REPO / "src" / "naic" / "extensions"

#: Packages of the `hub` extra that a session gets anyway, and through what. Everything else
#: in `hub` is the hub's alone and must not be on a node.
HUB_ALSO_IN_SESSION = {
    "alembic": "jupyterhub",
    "pydantic": "jupyterhub",
    "prometheus-client": "jupyterhub, jupyter-server",
    "pyyaml": "jupyter-events (jupyter-server)",
    "psutil": "ipykernel, distributed",
}
#: What a session needs: jupyterhub-singleuser, the lab, kernels, widgets, Dask.
SESSION = {
    "naic-hub", "jupyterhub", "jupyterlab", "ipykernel", "ipywidgets", "dask", "distributed",
    "dask-jobqueue", "nvidia-ml-py", "nbgitpuller", "jupyter-server-proxy",
}  # fmt: skip
#: Imports of the session code that a site may lack; the code says so where it imports them.
OPTIONAL_IMPORTS = {"torch"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group())


def hub_only() -> set[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    hub = {requirement_name(r) for r in extras["optional-dependencies"]["hub"]}
    assert set(HUB_ALSO_IN_SESSION) <= hub, "HUB_ALSO_IN_SESSION names a package not in `hub`"
    return (hub - set(HUB_ALSO_IN_SESSION)) | {"psycopg-binary"}


def third_party_imports(folder: Path) -> set[str]:
    """Top-level names that the modules under `folder` import, but the stdlib and naic."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"naic", "__future__"}


def run(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd="/",  # not the repository: its src/ must not shadow the installed package
    )


@pytest.fixture(scope="module")
def venv() -> Path:
    return session_venv()


@pytest.fixture(scope="module")
def installed(venv: Path) -> dict[str, str]:
    """Distribution name (normalized) -> version, as pip lists the venv."""
    listed = run(venv, "pip", "list", "--format=json", "--disable-pip-version-check")
    assert listed.returncode == 0, listed.stderr
    return {normalized(d["name"]): d["version"] for d in json.loads(listed.stdout)}


def test_none_of_the_hubs_own_packages_is_installed(installed: dict[str, str]) -> None:
    ours = hub_only()
    assert {"oauthenticator", "asyncssh", "psycopg", "ldap3", "batchspawner"} <= ours
    assert sorted(ours & set(installed)) == []


def test_what_a_session_runs_is_installed(installed: dict[str, str]) -> None:
    assert sorted(SESSION - set(installed)) == []


def test_every_import_of_the_session_code_is_satisfied(venv: Path) -> None:
    names = sorted(third_party_imports(EXTENSIONS) - OPTIONAL_IMPORTS)
    assert {"ipywidgets", "jupyter_server", "dask_jobqueue", "pynvml"} <= set(names)
    code = (
        "import importlib.util, sys\n"
        "missing = [n for n in sys.argv[1:] if importlib.util.find_spec(n) is None]\n"
        "print(' '.join(missing))\n"
    )
    out = run(venv, "python", "-c", code, *names)
    assert (out.returncode, out.stdout.strip()) == (0, ""), out.stderr


def test_jupyterhub_singleuser_runs(venv: Path) -> None:
    out = run(venv, "jupyterhub-singleuser", "--help")
    assert out.returncode == 0, out.stderr
    assert "Options" in out.stdout


def test_every_session_module_imports_without_the_hubs_code(venv: Path) -> None:
    # Every module of naic.extensions as installed (launcher, server extension, kernels,
    # widgets, Dask, naic-env, GPU check), then: nothing of the hub came with them.
    code = """
import importlib, json, pkgutil, sys
import naic.extensions as ext
names = [m.name for m in pkgutil.walk_packages(ext.__path__, "naic.extensions.")]
for name in names:
    importlib.import_module(name)
from naic.extensions.server import _jupyter_server_extension_points as points
hub = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1:]
             or m.startswith(("naic.hub", "naic.spawners")))
print(json.dumps({"file": ext.__file__, "modules": names, "points": points(), "hub": hub}))
"""
    hub_modules = ["oauthenticator", "asyncssh", "psycopg", "ldap3", "batchspawner", "jwt"]
    out = run(venv, "python", "-c", code, *hub_modules)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["file"].startswith(str(venv)), got["file"]
    expected = {"launch", "server", "kernels", "envs", "dask", "widgets", "gpu_check"}
    assert {f"naic.extensions.{name}" for name in expected} <= set(got["modules"])
    assert got["points"] == [{"module": "naic.extensions.server"}]
    assert got["hub"] == []


def test_naic_env_runs(venv: Path) -> None:
    out = run(venv, "naic-env", "--help")
    assert out.returncode == 0, out.stderr
    assert "create" in out.stdout
