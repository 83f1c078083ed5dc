"""The session launcher: material never overwrites, the port report is exactly {"port": N}."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from naic.extensions import launch
from naic.extensions.launch import (
    LAB_NOTIFICATION_SETTINGS,
    copy_missing,
    quiet_lab_defaults,
    report_port,
)


def test_material_fills_gaps_and_never_overwrites(tmp_path: Path) -> None:
    src, home = tmp_path / "material", tmp_path / "home"
    (src / "sub").mkdir(parents=True)
    (src / "00.ipynb").write_text("new")
    (src / "sub" / "data.csv").write_text("a,b")
    (src / ".hidden").write_text("x")
    home.mkdir()
    (home / "00.ipynb").write_text("my edits")
    (home / "sub").mkdir()
    (home / "sub" / "data.csv").symlink_to("/nonexistent")  # a user's dangling link stays

    copied = copy_missing(src, home)

    assert copied == []  # both names exist in the home already
    assert (home / "00.ipynb").read_text() == "my edits"
    assert not (home / ".hidden").exists()
    (home / "00.ipynb").unlink()
    assert copy_missing(src, home) == [home / "00.ipynb"]


def test_the_port_report_sends_only_the_port_with_the_servers_token() -> None:
    seen: dict = {}

    class Hub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["path"] = self.path
            seen["auth"] = self.headers["Authorization"]
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    env = {
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{server.server_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": "tok",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:0/user/alice/",
    }
    port = report_port(env)
    thread.join(5)
    server.server_close()

    assert seen == {"path": "/hub/api/batchspawner", "auth": "token tok", "body": {"port": port}}
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://0.0.0.0:{port}/user/alice/"


def test_jupyterlab_is_told_not_to_ask_about_news_unless_the_user_chose(tmp_path: Path) -> None:
    assert quiet_lab_defaults(tmp_path)
    setting = json.loads((tmp_path / LAB_NOTIFICATION_SETTINGS).read_text())
    assert setting == {"fetchNews": "false", "checkForUpdates": False}
    (tmp_path / LAB_NOTIFICATION_SETTINGS).write_text('{"fetchNews": "true"}')
    assert not quiet_lab_defaults(tmp_path)  # the user's own choice stays
    assert json.loads((tmp_path / LAB_NOTIFICATION_SETTINGS).read_text()) == {"fetchNews": "true"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@x", *args],
        check=True,
        capture_output=True,
    )


def test_workshop_material_from_a_git_repository_keeps_a_students_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    course = tmp_path / "course"
    course.mkdir()
    _git(course, "init", "-q", "-b", "main")
    (course / "intro.ipynb").write_text('{"cells": []}')
    _git(course, "add", ".")
    _git(course, "commit", "-q", "-m", "first")
    home = tmp_path / "home"
    env = {"NAIC_SESSION": json.dumps({"workshop": {"name": "ml-intro", "material": str(course)}})}
    name, material = launch.workshop_material(env)
    assert (name, material) == ("ml-intro", str(course))

    launch.fetch_material(material, home / name)
    notebook = home / "ml-intro" / "intro.ipynb"
    assert notebook.read_text() == '{"cells": []}'
    notebook.write_text('{"cells": ["mine"]}')  # the student's work
    (course / "extra.ipynb").write_text("{}")  # the instructor adds a notebook
    _git(course, "add", ".")
    _git(course, "commit", "-q", "-m", "more")

    launch.fetch_material(material, home / name)  # the second spawn
    assert notebook.read_text() == '{"cells": ["mine"]}'
    assert (home / "ml-intro" / "extra.ipynb").exists()
    assert "GIT_CONFIG_GLOBAL" not in os.environ  # the session's git is the user's again


def test_workshop_material_from_a_folder_is_copied_where_missing(tmp_path: Path) -> None:
    folder = tmp_path / "material"
    folder.mkdir()
    (folder / "a.ipynb").write_text("upstream")
    target = tmp_path / "home" / "ws"
    assert launch.fetch_material(str(folder), target).startswith("1 new file(s)")
    (target / "a.ipynb").write_text("mine")
    launch.fetch_material(str(folder), target)
    assert (target / "a.ipynb").read_text() == "mine"
    assert launch.workshop_material({"NAIC_SESSION": "{}"}) is None
