"""Kernels as an HPC site has them (#17): the server runs from the site's session
environment (naic-hub's `session` extra only), the catalogue's Lmod module is a kernel whose
Python has no naic-hub, a module missing on the node answers with a sentence, and a
user's own environment made in one session is a working kernel in the next."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import start_testcluster_hub, user_token, wait_ready
from tests.kernel import run_cell
from tests.session_env import session_venv

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

MODULE = "SciPy-bundle/2023.07"  # written by tests/cluster/slurm-up
OPTIONS = {"site": "testcluster", "resource": "cpu", "hours": 0.5, "project": "demo"}


@pytest.fixture(scope="module")
def kernel_hub(slurm_cluster) -> Iterator[Hub]:
    venv = session_venv()
    hub_dir = Path(tempfile.mkdtemp(prefix="naic-kernels-", dir="/var/tmp"))
    hub_dir.chmod(0o755)

    def edit(cat: dict) -> None:
        cat["sites"]["testcluster"]["session_env"] = str(venv)
        cat["environments"]["scipy"] = {"title": "SciPy-bundle 2023.07", "kind": "module",
                                        "modules": [MODULE]}  # fmt: skip
        cat["environments"]["broken"] = {"title": "Broken", "modules": ["Missing/1.0"]}

    hub = start_testcluster_hub(hub_dir, edit)
    try:
        yield hub
    finally:
        stop_hub(hub)
        shutil.rmtree(hub_dir, ignore_errors=True)
        shutil.rmtree("/home/alice/.naic/envs/mine", ignore_errors=True)
        shutil.rmtree("/home/alice/.local/share/jupyter/kernels/naic-own-mine", ignore_errors=True)


def tiny_wheel(folder: Path) -> Path:
    """A package for `pip install` that needs no index: naicdemo, ANSWER = 42."""
    wheel = folder / "naicdemo-1.0-py3-none-any.whl"
    files = {
        "naicdemo.py": "ANSWER = 42\n",
        "naicdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: naicdemo\nVersion: 1.0\n",
        "naicdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in [*files, "naicdemo-1.0.dist-info/RECORD"])
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in {**files, "naicdemo-1.0.dist-info/RECORD": record}.items():
            z.writestr(name, text)
    wheel.chmod(0o644)
    return wheel


def session(hub: Hub, environment: str) -> tuple[httpx.Client, str, str]:
    token = user_token(hub, "alice")
    api = httpx.Client(base_url=hub.url + "hub/api",
                       headers={"Authorization": f"token {token}"}, timeout=60)  # fmt: skip
    resp = api.post("/users/alice/server",
                    json={"user_options": {**OPTIONS, "environment": environment}})  # fmt: skip
    assert resp.is_success, resp.text
    wait_ready(api, "alice", timeout_s=180)
    return api, hub.url + "user/alice/", token


def cell(url: str, token: str, code: str, kernel: str) -> str:
    return asyncio.run(run_cell(url, token, code, timeout_s=120, kernel=kernel)).strip()


def test_module_kernels_and_an_own_environment_across_sessions(kernel_hub: Hub) -> None:
    api, url, token = session(kernel_hub, "scipy")
    specs = httpx.get(url + "api/kernelspecs", headers={"Authorization": f"token {token}"}).json()
    assert specs["default"] == "naic-scipy", specs
    titles = {name: s["spec"]["display_name"] for name, s in specs["kernelspecs"].items()}
    assert titles == {
        "naic-python": "Python 3 (the hub's environment)",
        "naic-scipy": "SciPy-bundle 2023.07",
        "naic-broken": "Broken",
        "python3": "Python 3 (ipykernel)",
    }  # the session environment's own

    # The module's kernel: its variable, its numpy (Debian's), and no naic-hub in it.
    out = cell(url, token, "import os, sys, numpy, importlib.util\n"
               "print(os.environ['NAIC_DEMO_MODULE'], numpy.__file__, sys.executable,"
               " importlib.util.find_spec('naic'))", "naic-scipy")  # fmt: skip
    variable, numpy_file, python, naic = out.split()
    assert variable == MODULE
    assert numpy_file.startswith("/usr/lib/python3/dist-packages/numpy/"), out
    assert python.startswith("/opt/naic/sw/scipy-bundle-2023.07/"), out
    assert naic == "None", out

    # A module this node does not have: a sentence, not a dead kernel.
    out = cell(url, token, "print('never')", "naic-broken")
    assert out.startswith("Broken: the module Missing/1.0 cannot be loaded on vm: "), out
    assert "unknown" in out and out.endswith("Tell the hub operators, or choose another kernel.")

    # alice makes her own environment on top of the module, with a package, from a cell.
    wheel = tiny_wheel(Path(tempfile.mkdtemp(prefix="naic-wheel-", dir="/var/tmp")))
    wheel.parent.chmod(0o755)
    out = cell(url, token, "import subprocess\nr = subprocess.run(['naic-env', 'create', "
               f"'mine', '--module', {MODULE!r}, '--install', {str(wheel)!r}],"
               " capture_output=True, text=True)\nprint(r.returncode, r.stdout, r.stderr)",
               "naic-scipy")  # fmt: skip
    assert out.startswith("0 mine: created in /home/alice/.naic/envs/mine"), out
    assert api.delete("/users/alice/server").status_code in (202, 204)
    shutil.rmtree(wheel.parent)

    # The next session (another default kernel) has it, working.
    _, url, token = session(kernel_hub, "python")
    specs = httpx.get(url + "api/kernelspecs", headers={"Authorization": f"token {token}"}).json()
    assert specs["default"] == "naic-python"
    assert specs["kernelspecs"]["naic-own-mine"]["spec"]["display_name"] == "mine (own)"
    out = cell(url, token, "import os, sys, naicdemo, numpy\n"
               "print(naicdemo.ANSWER, os.environ['NAIC_DEMO_MODULE'], sys.prefix)",
               "naic-own-mine")  # fmt: skip
    assert out == f"42 {MODULE} /home/alice/.naic/envs/mine", out
    assert api.delete("/users/alice/server").status_code in (202, 204)
