"""The server extension in a real `jupyter server` process on loopback: its endpoints with
the server's token, and without. Also: the launcher loads it, cheaply."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from naic.extensions import launch
from naic.hub.catalogue import parse
from naic.spawners.request import SessionRequest
from naic.spawners.session_env import session_env
from tests.ports import free_port

TOKEN = "test-token-for-naic-endpoints"
LABEXTENSIONS = Path(launch.__file__).parent / "labextension"


def catalogue(root: Path):
    return parse(
        f"""
name: Extension test
sites:
  local:
    title: This machine
    backend: local
    resources:
      cpu-small: {{title: "1 CPU, 2 GB", cpus: 1, memory_gb: 2, max_hours: 8}}
environments:
  python: {{title: "Python 3", venv: /opt/naic/envs/base}}
storage:
  home: {{path: "{root}/home/{{username}}", quota_gb: 20}}
  scratch: {{path: "{root}/scratch/{{username}}", purge_days: 21}}
  archive: {{title: Tape archive, path: "{root}/archive/{{username}}", quota_gb: 100}}
"""
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("naic-ext")
    (root / "home" / "ola").mkdir(parents=True)
    (root / "home" / "ola" / "model.bin").write_bytes(b"\0" * 2**20)
    (root / "scratch" / "ola").mkdir(parents=True)  # archive/ola does not exist here
    req = SessionRequest(
        site="local",
        resource="cpu-small",
        gpus=0,
        cpus=1,
        memory_gb=2,
        hours=2.0,
        environment="python",
        project=None,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "SLURM_"))}
    env.update(
        session_env(req, catalogue(root), "ola", started_at=datetime.now(UTC)),
        HOME=str(root / "home" / "ola"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_DATA_DIR=str(root / "data"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
    )
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={TOKEN}",
        launch.SERVER_EXTENSION,  # exactly what the launcher adds
    ]
    if os.geteuid() == 0:  # CI runs as root; a session never does
        argv.append("--allow-root")
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter server did not answer: {(root / 'server.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def get(url: str, path: str, **kw) -> httpx.Response:
    return httpx.get(f"{url}/naic/api/{path}", timeout=60, follow_redirects=False, **kw)


AUTH = {"Authorization": f"token {TOKEN}"}


def test_session_facts_and_time_left(server: str) -> None:
    resp = get(server, "session", headers=AUTH)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert (body["naic"], body["site_title"], body["resource_title"]) == (
        True,
        "This machine",
        "1 CPU, 2 GB",
    )
    assert 2 * 3600 - 120 < body["time_left_s"] <= 2 * 3600
    assert body["time_left"] in ("1 h 59 min", "2 h 0 min", "1 h 58 min")
    assert body["ends_at_from"] == "request" and body["job_id"] is None


def test_gpus_answer_what_the_machine_has(server: str) -> None:
    body = get(server, "gpus", headers=AUTH).json()
    if Path("/dev/nvidiactl").exists():  # a GPU machine (the device check): real samples
        assert body["gpus"] and {"index", "name", "memory_total_mb"} <= set(body["gpus"][0])
    else:
        assert (body["gpus"], body["message"]) == ([], "No GPU in this session.")


def test_storage_usage_per_area(server: str) -> None:
    body = get(server, "storage", headers=AUTH).json()
    home, scratch, archive = body["storage"]
    assert (home["name"], home["method"], home["available"], home["limit_gb"]) == (
        "home",
        "du",
        True,
        20.0,
    )
    assert 2**20 <= home["used_gb"] * 2**30 < 2 * 2**20
    assert (scratch["method"], scratch["scope"], scratch["purge_days"]) == ("df", "file system", 21)
    assert scratch["limit_gb"] > 0
    assert (archive["title"], archive["available"], archive["note"]) == (
        "Tape archive",
        False,
        "not available here",
    )


@pytest.mark.parametrize("path", ["session", "gpus", "storage"])
def test_without_the_token_nothing_is_told(server: str, path: str) -> None:
    resp = get(server, path)
    assert resp.status_code == 403
    assert "site_title" not in resp.text and "storage" not in resp.text
    wrong = get(server, path, headers={"Authorization": "token not-the-token"})
    assert wrong.status_code == 403


def test_loading_the_extension_imports_nothing_heavy() -> None:
    heavy = ("ipywidgets", "numpy", "pynvml", "dask", "distributed", "naic.extensions.sources")
    code = (
        "import sys, naic.extensions.server as s; s._jupyter_server_extension_points(); "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_launcher_runs_singleuser_with_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    import jupyterhub.singleuser

    seen: list[list[str]] = []
    monkeypatch.setattr(jupyterhub.singleuser, "main", lambda: seen.append(list(sys.argv)) or 0)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit):
        launch.run_server(["/opt/venv/bin/jupyterhub-singleuser", "--debug"])
    assert seen == [
        [
            "jupyterhub-singleuser",
            "--debug",
            "--ServerApp.jpserver_extensions=naic.extensions.server=True",
            "--ServerApp.jpserver_extensions=nbgitpuller=False",
            f"--LabServerApp.extra_labextensions_path={LABEXTENSIONS}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    ]


def test_notices_say_nothing_hours_before_the_end_and_extending_needs_a_hub(server: str) -> None:
    resp = get(server, "notices", headers=AUTH)
    assert resp.status_code == 200
    assert resp.json() == {"notices": [], "poll_s": 30.0}
    assert get(server, "notices").status_code == 403  # no token, no notices
    asked = httpx.post(f"{server}/naic/api/extend", headers=AUTH, timeout=60)
    assert asked.status_code == 403
    assert asked.json() == {
        "message": "This session does not run under a hub, so it cannot be extended."
    }
