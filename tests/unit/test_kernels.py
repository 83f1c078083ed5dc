"""Kernels from the catalogue's environments and the user's own: pure renderers, exact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from naic.extensions import envs, kernels
from naic.extensions.kernels import KernelEnv, kernel_spec, launcher_script

PRELUDE = (
    "NAIC_SESSION_PYTHON=${NAIC_SESSION_PYTHON:-$(command -v python3)}\n"
    'notice() { export NAIC_KERNEL_PROBLEM="$1"; exec "$NAIC_SESSION_PYTHON" '
    '-m naic.extensions.kernels notice -f "$CONNECTION"; }\n'
    "CONNECTION=$1\n"
    "NAIC_SESSION_BIN=${VIRTUAL_ENV:+$VIRTUAL_ENV/bin}\n"
    '[ -z "$NAIC_SESSION_BIN" ] || PATH=${PATH//"$NAIC_SESSION_BIN:"/}\n'
    "unset VIRTUAL_ENV PYTHONHOME\n"
)


EXEC = (
    '[ -z "$NAIC_SESSION_BIN" ] || PATH=$PATH:$NAIC_SESSION_BIN\n'
    'exec python -m ipykernel_launcher -f "$CONNECTION"\n'
)


def test_a_module_kernel_loads_its_module_and_says_why_it_cannot() -> None:
    k = KernelEnv("naic-scipy", 'SciPy "$HOME"', modules=("SciPy-bundle/2023.07",))
    assert launcher_script(k) == PRELUDE + (
        "type module >/dev/null 2>&1 || source /etc/profile >/dev/null 2>&1\n"
        'type module >/dev/null 2>&1 || notice "SciPy \\"\\$HOME\\": there is no \\`module\\` '
        'command (Lmod) on $(hostname)"\n'
        "naic_err=$(mktemp)\n"
        'module load SciPy-bundle/2023.07 2>"$naic_err"\n'
        "module is-loaded SciPy-bundle/2023.07 || { err=$(tr -s '\\n ' ' ' <\"$naic_err\" | "
        'head -c 400); rm -f "$naic_err"; notice "SciPy \\"\\$HOME\\": the module '
        'SciPy-bundle/2023.07 cannot be loaded on $(hostname): $err"; }\n'
        'rm -f "$naic_err"\n'
        'python -c "import ipykernel" 2>/dev/null || notice "SciPy \\"\\$HOME\\": its Python '
        'has no ipykernel on $(hostname)"\n' + EXEC
    )


def test_a_venv_kernel_checks_and_activates_it() -> None:
    k = KernelEnv("naic-own-mine", "mine (own)", venv="/home/alice/.naic/envs/mine")
    assert launcher_script(k) == PRELUDE + (
        '[ -x /home/alice/.naic/envs/mine/bin/python ] || notice "mine (own): the environment '
        '/home/alice/.naic/envs/mine is missing on $(hostname)"\n'
        "export PATH=/home/alice/.naic/envs/mine/bin:$PATH "
        "VIRTUAL_ENV=/home/alice/.naic/envs/mine\n"
        'python -c "import ipykernel" 2>/dev/null || notice "mine (own): its Python has no '
        'ipykernel on $(hostname)"\n' + EXEC
    )
    spec = kernel_spec(k)
    assert spec["argv"][:2] == ["bash", "-c"]
    assert spec["argv"][3:] == ["naic-kernel", "{connection_file}"]
    assert spec["display_name"] == "mine (own)" and spec["language"] == "python"


def test_a_conda_kernel_sets_conda_prefix() -> None:
    script = launcher_script(KernelEnv("naic-c", "C", conda="/opt/conda/envs/ml"))
    assert "export PATH=/opt/conda/envs/ml/bin:$PATH CONDA_PREFIX=/opt/conda/envs/ml\n" in script


def test_a_missing_environment_runs_the_notice_kernel(tmp_path: Path) -> None:
    """The script itself, run by bash: the notice gets the sentence with the node's name."""
    fake_python = tmp_path / "python3"
    fake_python.write_text('#!/bin/sh\necho "$NAIC_KERNEL_PROBLEM|$*"\n')
    fake_python.chmod(0o755)
    script = launcher_script(KernelEnv("naic-x", "X", venv=str(tmp_path / "gone")))
    out = subprocess.run(["bash", "-c", script, "naic-kernel", "/tmp/conn.json"],
                         env={"PATH": "/usr/bin:/bin", "NAIC_SESSION_PYTHON": str(fake_python)},
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert out == (
        f"X: the environment {tmp_path}/gone is missing on {host}|"
        "-m naic.extensions.kernels notice -f /tmp/conn.json\n"
    )


def test_the_session_writes_the_catalogues_kernels_and_the_default(tmp_path: Path) -> None:
    environ = {"NAIC_KERNELS": json.dumps({
        "environments": {"scipy": {"title": "SciPy", "modules": ["SciPy-bundle/2023.07"]},
                         "python": {"title": "Python", "venv": "/opt/naic/envs/base"}},
        "default": "scipy"})}  # fmt: skip
    args = kernels.install_session_kernels(environ, tmp_path)
    assert args == ["--MultiKernelManager.default_kernel_name=naic-scipy"]
    assert environ["JUPYTER_PATH"] == str(tmp_path)
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == ["naic-python", "naic-scipy"]
    spec = json.loads((tmp_path / "kernels" / "naic-scipy" / "kernel.json").read_text())
    assert spec["display_name"] == "SciPy"
    assert kernels.install_session_kernels({}, tmp_path / "none") == []


def test_own_environment_script_builds_on_the_modules() -> None:
    script = envs.create_script(Path("/home/a/.naic/envs/mine"), ["M/1"], ["numpy==1.26", "x y"])
    assert script == (
        "set -e\n"
        "type module >/dev/null 2>&1 || source /etc/profile >/dev/null 2>&1\n"
        "naic_err=$(mktemp)\n"
        'module load M/1 2>"$naic_err" || true\n'
        'module is-loaded M/1 || { echo "naic-env: the module M/1 cannot be loaded here: '
        '$(tr -s \'\\n \' \' \' <"$naic_err")"; rm -f "$naic_err"; exit 1; }\n'
        'rm -f "$naic_err"\n'
        '[ -z "${VIRTUAL_ENV:-}" ] || PATH=${PATH//"$VIRTUAL_ENV/bin:"/}\n'
        "env -u VIRTUAL_ENV python3 -m venv --system-site-packages /home/a/.naic/envs/mine\n"
        "/home/a/.naic/envs/mine/bin/python -c 'import ipykernel' 2>/dev/null || "
        "/home/a/.naic/envs/mine/bin/pip install --quiet ipykernel\n"
        "/home/a/.naic/envs/mine/bin/pip install --quiet numpy==1.26 'x y'\n"
    )


@pytest.mark.parametrize("name", ["", "Mine", "../x", "a b", "x" * 41])
def test_own_environment_names_are_checked(name: str, tmp_path: Path) -> None:
    with pytest.raises(envs.EnvError, match="is not a name for an environment"):
        envs.create(name, [], [], tmp_path)


def test_a_failed_create_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    rc = envs.main(["create", "bad", "--module", "Nope/1", "--in", str(tmp_path / "envs")])
    assert rc == 1
    assert capsys.readouterr().err.startswith(
        "naic-env: could not create bad: the module Nope/1 cannot be loaded here: "
    )
    assert not (tmp_path / "envs" / "bad").exists()
    assert not (tmp_path / "data" / "kernels").exists()
    assert envs.main(["remove", "bad"]) == 1
    assert "there is no environment 'bad' of yours" in capsys.readouterr().err


def test_the_widget_creates_an_environment_on_a_module_and_lists_it(tmp_path: Path) -> None:
    from naic.extensions.widgets import OwnEnvironments

    made: list[tuple] = []
    listing: list[dict] = []

    def creator(name, modules, packages, parent):
        if name == "taken":
            raise envs.EnvError(f"{parent / name} exists: choose another name")
        made.append((name, modules, packages))
        (tmp_path / name).mkdir()
        listing.append({"name": name, "modules": modules, "path": str(tmp_path / name)})
        return tmp_path / name

    widget = OwnEnvironments(lambda: list(listing), creator, modules=["SciPy-bundle/2023.07"])
    assert widget.table.value == "You have no environments of your own yet."
    assert [v for _, v in widget.module.options] == ["", "SciPy-bundle/2023.07"]
    widget.name.value, widget.module.value = "thesis", "SciPy-bundle/2023.07"
    widget.packages.value = " seaborn  transformers==4.40 "
    widget.create_button.click()
    assert made == [("thesis", ["SciPy-bundle/2023.07"], ["seaborn", "transformers==4.40"])]
    assert "choose the kernel <b>thesis (own)</b>" in widget.status.value
    assert widget.table.value == (
        f"<b>thesis (own)</b> — SciPy-bundle/2023.07 — 0 MB in <code>{tmp_path}/thesis</code>"
    )
    widget.name.value = "taken"
    widget.create_button.click()
    assert "exists: choose another name" in widget.status.value
    assert not widget.create_button.disabled


def test_the_storage_overview_shows_own_environments(tmp_path: Path) -> None:
    from naic.extensions.sources.storage import StorageSource
    from naic.extensions.widgets import StorageOverview

    class NoAreas(StorageSource):
        def usage(self):
            return []

    gone = {"name": "old", "modules": [], "path": str(tmp_path / "gone")}
    overview = StorageOverview(NoAreas(), environments=lambda: [gone])
    assert overview.rows["environments"].value == (
        "<b>Your environments</b><br><b>old (own)</b> — no modules — "
        f"<b>missing</b>: <code>{tmp_path}/gone</code>"
    )
