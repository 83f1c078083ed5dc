"""A site's session environment, as an operator installs it on the nodes: a fresh venv
with `naic-hub[session]` only (not editable), built once per source state and kept in
/var/tmp, world-readable so the test users' jobs run their servers from it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _source_hash() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for path in sorted((REPO / "src" / "naic").rglob("*")):
        if path.is_file() and "node_modules" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def session_venv() -> Path:
    """The venv's folder; built (about a minute, from PyPI) when this source has none."""
    venv = Path(f"/var/tmp/naic-session-env-{_source_hash()}")
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    python = getattr(sys, "_base_executable", sys.executable)  # Debian's, readable by all
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"{REPO}[session]"], check=True, cwd="/tmp")  # fmt: skip
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    (venv / ".complete").touch()
    return venv
