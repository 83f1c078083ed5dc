"""A site's session environment, as an operator installs it on the nodes: a fresh venv with
`naic-hub[session]` only (not editable, from a clean copy of the source), for the tests
that check that install and for the test users' jobs that run their servers from it.

The venv is kept in /var/tmp per state of pyproject.toml (the dependencies: about a minute
to build, from PyPI through pip's cache); when only the source under src/ changed,
naic-hub alone is reinstalled (seconds). World-readable, since jobs of alice and bob run
`jupyterhub-singleuser` from it; a lock lets concurrent test runs build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: What the build reads (the readme is the long description); copied alone, so nothing else
#: of the working tree (build/ with stale modules, node_modules) can end up in the wheel.
BUILD_INPUTS = ("pyproject.toml", "README.md", "src")
SKIPPED = shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc", "*.egg-info")
BUILT = ".naic-session-env"  # in the venv: the source hash naic-hub was installed from


def _hash(repo: Path, *paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _source_files(repo: Path) -> list[Path]:
    skipped = {"node_modules", "__pycache__"}
    files = (f for f in sorted((repo / "src").rglob("*")) if not skipped & set(f.parts))
    return [repo / "README.md", *(f for f in files if f.is_file() and f.suffix != ".pyc")]


def _pip_install(venv: Path, repo: Path, *args: str) -> None:
    with tempfile.TemporaryDirectory(prefix="naic-session-src-") as tmp:
        src = Path(tmp) / "naic-hub"
        src.mkdir()
        for name in BUILD_INPUTS:
            if (repo / name).is_dir():
                shutil.copytree(repo / name, src / name, ignore=SKIPPED)
            else:
                shutil.copy2(repo / name, src / name)
        pip = [venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *args, f"{src}[session]"], check=True, cwd=tmp)


def session_venv(repo: Path = REPO) -> Path:
    """The venv with `repo`'s `naic-hub[session]`, built or brought up to date; its folder."""
    venv = Path(f"/var/tmp/naic-session-env-{_hash(repo, repo / 'pyproject.toml')}")
    source = _hash(repo, repo / "pyproject.toml", *_source_files(repo))
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = venv / BUILT
        if not built.exists():
            shutil.rmtree(venv, ignore_errors=True)
            # The interpreter under this venv (Debian's, as on a node): same Python version,
            # and readable by every user.
            python = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            _pip_install(venv, repo)
        elif built.read_text() != source:
            _pip_install(venv, repo, "--no-deps", "--force-reinstall")
        else:
            return venv
        subprocess.run(["chmod", "-R", "u=rwX,go=rX", str(venv)], check=True)
        built.write_text(source)
        built.chmod(0o644)
    return venv
