"""`naic-batch`: run a notebook of this session as a Slurm batch job, and follow it.

    naic-batch show train.ipynb [--hours 2] [--gpus 1]    the script the job would run
    naic-batch submit train.ipynb [--hours 2] [--yes]     show it, ask, submit
    naic-batch status 1234 [--follow]                     queued / running / done

The hub renders the job from this session's site, resources, environment and project
(`naic.hub.sessions.batch`); a change of hours or GPUs meets the spawn form's bounds. In
the job, `python -m naic.extensions.batch run NOTEBOOK` executes the notebook headless
(nbclient) and saves the executed copy next to it after every cell.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from naic.extensions.sources.hubclient import HubError, HubSource

#: Job states after which nothing changes any more.
FINAL = ("done", "failed")


def output_path(notebook: str, job_id: str) -> str:
    """Pure: where a batch job writes the executed notebook: next to it, with the job id."""
    return f"{notebook.removesuffix('.ipynb')}.batch-{job_id}.ipynb"


def run(notebook: str, job_id: str | None = None) -> int:
    """Execute `notebook` (relative to the working directory) and save the executed copy
    next to it after every cell; the exit status says whether every cell ran."""
    import nbclient
    import nbformat

    job_id = job_id or os.environ.get("SLURM_JOB_ID") or "local"
    source = Path(notebook)
    target = source.with_name(Path(output_path(source.name, job_id)).name)
    book = nbformat.read(source, as_version=4)
    kernel = book.metadata.get("kernelspec", {}).get("name") or "python3"
    code = [c for c in book.cells if c.cell_type == "code"]
    print(f"naic-batch: running {source} ({len(code)} code cells, kernel {kernel})", flush=True)

    done = 0

    def saved(**_):
        nonlocal done
        done += 1
        nbformat.write(book, target)  # a job stopped at its time limit keeps what it did
        print(f"naic-batch: cell {done}/{len(code)} done", flush=True)

    client = nbclient.NotebookClient(
        book,
        kernel_name=kernel,
        timeout=None,  # the job's time limit bounds it
        resources={"metadata": {"path": str(source.parent.resolve())}},
        on_cell_executed=saved,
    )

    def stopped(signum, frame):  # Slurm's time limit or scancel: keep what the cell printed
        nbformat.write(book, target)
        print(f"naic-batch: stopped by Slurm during cell {done + 1}; saved {target}", flush=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        nbformat.write(book, target)
        print(f"naic-batch: a cell failed; the notebook so far is {target}\n{exc}", flush=True)
        return 1
    except Exception as exc:  # the kernel died (out of memory, the job stopped): keep the rest
        nbformat.write(book, target)
        print(f"naic-batch: {type(exc).__name__} in cell {done + 1}; saved {target}", flush=True)
        return 1
    nbformat.write(book, target)
    print(f"naic-batch: every cell ran; the executed notebook is {target}", flush=True)
    return 0


def _relative_to_home(path: str) -> str:
    home = Path.home().resolve()
    full = Path(path).expanduser().resolve()
    try:
        return str(full.relative_to(home))
    except ValueError:
        raise SystemExit(f"naic-batch: {path} is not below your home {home}.") from None


def _session_site() -> str:
    from naic.extensions.session import SessionFacts

    return SessionFacts.from_env(ask_scheduler=False).site


def main(argv: list[str] | None = None, hub: HubSource | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="naic-batch", description="Run a notebook of this session as a batch job."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("show", "show the job's script"), ("submit", "submit the job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("notebook", help="the notebook, e.g. train.ipynb")
        p.add_argument("--hours", type=float, help="the job's time limit (default: the session's)")
        p.add_argument("--gpus", type=int, help="GPUs for the job (default: the session's)")
        if name == "submit":
            p.add_argument("--yes", action="store_true", help="submit without asking")
            p.add_argument("--follow", action="store_true", help="wait until the job ends")
    p = sub.add_parser("status", help="where a batch job stands")
    p.add_argument("job_id")
    p.add_argument("--site", help="the job's site (default: this session's)")
    p.add_argument("--follow", action="store_true", help="wait until the job ends")
    p = sub.add_parser("run", help="(inside the job) execute the notebook")
    p.add_argument("notebook")
    args = parser.parse_args(argv)

    if args.command == "run":
        return run(args.notebook)
    hub = hub or HubSource()
    try:
        if args.command == "status":
            return _follow(hub, args.site or _session_site(), args.job_id, args.follow)
        notebook = _relative_to_home(args.notebook)
        shown = hub.batch(notebook, hours=args.hours, gpus=args.gpus)
        print(shown["script"], end="")
        print(f"\nThe executed notebook will be ~/{shown['output']}; the log {shown['log']}.")
        if args.command == "show":
            return 0
        if not args.yes and input("Submit this job? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Not submitted.")
            return 1
        job = hub.batch(notebook, hours=args.hours, gpus=args.gpus, submit=True)
        print(f"Submitted batch job {job['job_id']} at {job['site']}.")
        print(f"Follow it with: naic-batch status {job['job_id']} --follow")
        return _follow(hub, job["site"], job["job_id"], args.follow) if args.follow else 0
    except HubError as exc:
        print(f"naic-batch: {exc}", file=sys.stderr)
        return 2


def _follow(hub: HubSource, site: str, job_id: str, follow: bool, every_s: float = 10) -> int:
    said = None
    while True:
        state = hub.batch_state(site, job_id)
        if state["words"] != said:
            said = state["words"]
            print(f"Job {job_id}: {said}", flush=True)
        if not follow or state["state"] in FINAL:
            return 1 if state["state"] == "failed" else 0
        time.sleep(every_s)


if __name__ == "__main__":
    sys.exit(main())
