"""A real `jupyter lab` with the prebuilt notices extension and a stand-in for the notices
endpoints (tests/browser/_fake_notices.py), isolated from the user's Jupyter settings: what
the `lab` fixture (conftest.py) starts for test_lab_notices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naic.extensions.launch import quiet_lab_defaults

REPO = Path(__file__).resolve().parents[2]
LABEXTENSIONS = REPO / "extensions" / "labextension"
JUPYTER = str(Path(sys.executable).parent / "jupyter")
BASE_URL = "/user/alice/"  # a hub-like prefix, so the plugin must use serverSettings.baseUrl
START_TIMEOUT_S = 60
GRANTED = "Done: this session now ends at 15:40."


@dataclass
class Lab:
    url: str  # ends with BASE_URL
    token: str
    script: Path
    process: subprocess.Popen
    log: Path

    def answer(
        self,
        notices: list[dict[str, Any]],
        *,
        extend: tuple[int, str] = (200, GRANTED),
        notices_status: int = 200,
    ) -> None:
        """What the fake endpoints say from the next request on."""
        body = {
            "notices": {"notices": notices, "poll_s": 2},
            "notices_status": notices_status,
            "extend": {"status": extend[0], "message": extend[1]},
        }
        tmp = self.script.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.script)  # whole, never half-written, when the server reads it


def isolated_env(root: Path) -> dict[str, str]:
    """Jupyter's dirs under `root`: nothing of the user's config or settings leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    for name, var in [
        ("home", "HOME"),
        ("home/.jupyter", "JUPYTER_CONFIG_DIR"),  # where a session has it
        ("data", "JUPYTER_DATA_DIR"),
        ("runtime", "JUPYTER_RUNTIME_DIR"),
        ("ipython", "IPYTHONDIR"),
    ]:
        (root / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / name)
    env["PYTHONPATH"] = str(REPO)  # for tests.browser._fake_notices
    # As a session starts: no "official Jupyter news?" toast among the notices.
    quiet_lab_defaults(root / "home")
    return env
