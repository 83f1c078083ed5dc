"""`naic doctor`'s options (light: `naic` builds its parser without importing the hub)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = {
    "--catalogue": "catalogue YAML (default: $NAIC_CATALOGUE, else the embedded one)",
    "--data-dir": "the hub's data dir (default: $NAIC_DATA_DIR, else as naic up)",
    "--port": "the hub's port (default: $NAIC_PORT, else 8000)",
    "--hub-ip": "the address the hub's API listens on (default: $NAIC_HUB_IP, else 127.0.0.1)",
    "--test-user": "run the test jobs as this account (default: the hub's own at the site)",
    "--quick": "only what naic up checks at start: no test jobs, identity provider or SSH",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a deployment before users do: sites, scheduler, slurmdbd, nodes, "
        "identity provider, ports, secrets (exit status 1 on any problem)",
    )
    p.add_argument("--catalogue", type=Path, help=HELP["--catalogue"])
    p.add_argument("--data-dir", type=Path, help=HELP["--data-dir"])
    p.add_argument("--port", type=int, help=HELP["--port"])
    p.add_argument("--hub-ip", help=HELP["--hub-ip"])
    p.add_argument("--test-user", metavar="NAME", help=HELP["--test-user"])
    p.add_argument("--quick", action="store_true", help=HELP["--quick"])
