"""`naic catalogue check FILE`: exit 0 and the summary, or exit 1 and every problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naic.hub.app.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = "examples/catalogue.yaml"
GOLDEN_DEMO = (Path(__file__).parent / "golden" / "summary-demo.txt").read_text(encoding="utf-8")
NAIC = Path(sys.executable).parent / "naic"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """The demo with `max: 0` under the GPU resource."""
    text = (REPO / DEMO).read_text(encoding="utf-8")
    assert text.count("gpu: {type: a100, max: 4}") == 1
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace("gpu: {type: a100, max: 4}", "gpu: {type: a100, max: 0}"))
    return path


def broken_message(path: Path | str) -> str:
    return (
        f"{path}: the service catalogue has 1 problem:\n"
        f"  {path}: sites.saga.resources.a100.gpu.max: must be ≥ 1 (got 0)\n"
    )


def test_check_demo(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["catalogue", "check", DEMO]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (GOLDEN_DEMO, "")


def test_check_broken(capsys, broken):
    assert main(["catalogue", "check", str(broken)]) == 1
    out, err = capsys.readouterr()
    assert "sites.saga.resources.a100.gpu.max" in err
    assert (out, err) == ("", broken_message(broken))


def test_check_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    assert main(["catalogue", "check", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{missing}: the service catalogue has 1 problem:\n"
        f"  {missing}: cannot be read: No such file or directory\n"
    )


def test_check_needs_a_file(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["catalogue", "check"])
    assert exc.value.code == 2
    assert "the following arguments are required: file" in capsys.readouterr().err


def _naic(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [str(NAIC), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_console_script(broken):
    assert NAIC.exists(), f"the console script is not installed at {NAIC}"
    ok = _naic("catalogue", "check", DEMO)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, GOLDEN_DEMO, "")
    bad = _naic("catalogue", "check", str(broken))
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", broken_message(broken))
