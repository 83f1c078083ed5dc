"""The `naic` command: `naic catalogue check FILE`, `naic up`, `naic doctor`, `naic workshop …`,
`naic slurm accounts`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from naic.hub import catalogue
from naic.hub.app import db as db_cli
from naic.hub.app.doctor import options as doctor_options
from naic.hub.app.summary import render_summary
from naic.hub.usage import slurm_accounts
from naic.hub.workshops import cli as workshop_cli


def check(file: str) -> int:
    """Print every problem and return 1, or a summary and return 0."""
    try:
        cat = catalogue.load(file)
    except catalogue.CatalogueError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    sys.stdout.write(render_summary(cat, file))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="naic", description="naic-hub: notebooks on GPU sites.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cat = sub.add_parser("catalogue", help="work with a service catalogue file")
    cat_sub = cat.add_subparsers(dest="action", required=True, metavar="ACTION")
    chk = cat_sub.add_parser("check", help="validate a catalogue and summarise what it offers")
    chk.add_argument("file", help="the catalogue YAML file")

    up = sub.add_parser("up", help="run the hub in the foreground on 127.0.0.1")
    up.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue YAML (default: the embedded one, this machine only)",
    )
    up.add_argument("--port", type=int, default=8000, help="port of the hub (default 8000)")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the database, secrets and user homes live "
        "(default: /var/lib/naic-hub as root, else ~/.local/share/naic-hub)",
    )
    up.add_argument(
        "--hub-ip",
        default="127.0.0.1",
        help="address the hub's API listens on; Slurm nodes other than this machine must "
        "reach it (default 127.0.0.1; the public proxy stays on 127.0.0.1)",
    )
    up.add_argument(
        "--admin",
        action="append",
        default=[],
        metavar="NAME",
        help="make NAME an admin user (repeatable)",
    )
    up.add_argument(
        "--dev-login",
        action="store_true",
        help="log in with the dev login's shared password even though the catalogue has an "
        "identity: section (e.g. before the provider's client is set up); without it such a "
        "hub uses the institutional login and refuses to start when jupyterhub_config.d/ sets "
        "naic-dev. For plain `jupyterhub -f src/naic/hub/jupyterhub_config.py`: NAIC_DEV_LOGIN=1",
    )
    up.add_argument(
        "--db-url",
        default=None,
        metavar="URL",
        help="JupyterHub's own database, and naic's tables in it: PostgreSQL for a hub of many "
        "users, e.g. postgresql://naic@db.example.org/naic (default: SQLite in the data dir). "
        "Kept in DATA_DIR/jupyterhub_config.d/00-db-url.py (0600) for later starts and "
        "`naic db`. NAIC_DB_URL says the same without a command line others can see",
    )
    doctor_options.add_parser(sub)
    workshop_cli.add_parser(sub)
    db_cli.add_parser(sub)
    slurm_accounts.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "catalogue":
        return check(args.file)
    if args.command == "doctor":
        from naic.hub.app.doctor.runner import main as doctor

        return doctor(args)
    if args.command == "workshop":
        return workshop_cli.run(args)
    if args.command == "db":
        return db_cli.run(args)
    if args.command == "slurm":
        return slurm_accounts.run(args)
    from naic.hub.app.up import run_up

    db_url = args.db_url or os.environ.get("NAIC_DB_URL") or None
    return run_up(
        args.catalogue, args.port, args.data_dir, args.admin, args.hub_ip, args.dev_login, db_url
    )


if __name__ == "__main__":
    sys.exit(main())
