"""The Ansible deployment as the tests apply it: ansible-playbook from this venv, a play that
applies the naic_hub role to this machine under one folder, a deployed hub's handle
(test_ansible, test_ansible_oidc; their fixtures are in conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
ROLES = ANSIBLE_DIR / "roles"
BIN = Path(sys.executable).parent
PLAYBOOK_TIMEOUT_S = 900
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def run_playbook(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=folder,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_S,
        check=False,
    )


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The PLAY RECAP line of the only host, e.g. {"ok": 30, "changed": 0, ...}."""
    found = RECAP.findall(result.stdout)
    assert len(found) == 1, f"no single PLAY RECAP line in:\n{result.stdout}\n{result.stderr}"
    _host, *counts = found[0]
    return dict(zip(["ok", "changed", "unreachable", "failed"], map(int, counts), strict=True))


def recap_line(result: subprocess.CompletedProcess[str]) -> str:
    match = RECAP.search(result.stdout)
    return " ".join(match.group(0).split()) if match else "(no PLAY RECAP)"


def write_yaml(path: Path, data: object) -> Path:
    # JSON is YAML, and leaves no doubt about quoting.
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


@dataclass
class Deployment:
    base: Path
    port: int
    user: str
    first_run: subprocess.CompletedProcess[str]
    elapsed_s: float

    @property
    def prefix(self) -> Path:
        return self.base / "opt"

    @property
    def etc(self) -> Path:
        return self.base / "etc"

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def start_command(self) -> Path:
        return self.prefix / "bin" / "naic-hub-start"

    def run_again(self) -> subprocess.CompletedProcess[str]:
        return run_playbook(self.base / "ansible", "-i", "hosts.yml", "play.yml")


def build_wheel(dest: Path) -> Path:
    """The release as an operator builds it, from a copy (no build/ left in the repo)."""
    src = dest / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "node_modules",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".naic-data",
        ),
    )
    subprocess.run(
        [str(BIN / "pip"), "wheel", "--quiet", "--no-deps", "-w", str(dest / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (dest / "dist").glob("naic_hub-*.whl")
    return wheel


def write_play(play_dir: Path, base: Path, *, user: str, wheel: Path, port: int, **hostvars):
    """hosts.yml and play.yml that apply naic_hub to this machine, into `base` (service
    manager none, no nginx), with `hostvars` on top."""
    write_yaml(
        play_dir / "hosts.yml",
        {
            "all": {
                "hosts": {
                    "hub-under-test": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": "/usr/bin/python3",
                        "naic_hub_service_manager": "none",
                        "naic_hub_nginx_enabled": False,
                        "naic_hub_prefix": str(base / "opt"),
                        "naic_hub_config_dir": str(base / "etc"),
                        "naic_hub_data_dir": str(base / "data"),
                        "naic_hub_log_dir": str(base / "log"),
                        "naic_hub_logrotate_dir": str(base / "logrotate.d"),
                        "naic_hub_user": user,
                        "naic_hub_wheel_src": str(wheel),
                        "naic_hub_port": port,
                        **hostvars,
                    }
                }
            }
        },
    )
    write_yaml(
        play_dir / "play.yml",
        [{"name": "Deploy naic-hub here", "hosts": "all", "roles": ["naic_hub"]}],
    )


def stop_process_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class DeployedHub:
    base: Path
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    def admin_api(self) -> httpx.Client:
        token = (self.data / "admin-token").read_text().strip()
        return httpx.Client(
            base_url=self.url + "hub/api", headers={"Authorization": f"token {token}"}, timeout=30
        )

    def user_names(self) -> set[str]:
        with self.admin_api() as api:
            return {u["name"] for u in api.get("/users").json()}
