"""`naic-data`: the site's datasets from inside a session, and copies of them on fast storage.

    naic-data list                         what the hub's catalogue offers, and what you may read
    naic-data stage NAME [--to AREA|DIR]   copy a dataset (default: to the scratch area), with
                                           progress; again: only what is missing or changed
    naic-data verify NAME [--to AREA|DIR]  check a copy against the dataset's manifest
    naic-data staged                       the copies made from this account
    naic-data stage NAME --job [--hours H] the copy as a Slurm job (naic.extensions.data_jobs);
    naic-data job JOBID [--follow]         where it stands, from Slurm and its log
    naic-data remote add NAME --endpoint URL --access-key-id ID   an S3-compatible remote; the
                                           secret is asked for (naic.extensions.remotes)
    naic-data put FOLDER NAME:BUCKET/PATH  to object storage, with progress (and `get` back)

Copies are made by rclone (Debian's), which skips files already copied whole, so a staging
that was interrupted (the session stopped, Ctrl-C, a time limit) resumes where it was. A
dataset with a manifest (`sha256sum` lines) is checked file by file after the copy, with
coreutils' `sha256sum --check`. Each copy is recorded in ~/.naic/staged.json (dataset, path,
when, the Slurm job), so a notebook finds its path with `staged_path(NAME)`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where staged copies go below a storage area.
SUBFOLDER = "datasets"
RECORD = Path(".naic") / "staged.json"


class DataError(Exception):
    pass


def destination(to: str, name: str, areas: dict[str, str]) -> Path:
    """Pure: where a copy of dataset `name` goes: AREA (a storage area's name: its path /
    datasets / NAME) or an absolute folder (used as it is)."""
    if to.startswith("/"):
        return Path(to)
    if to not in areas:
        have = ", ".join(sorted(areas)) or "none"
        raise DataError(f"--to {to}: this session has no storage area {to} (it has: {have}).")
    return Path(areas[to]) / SUBFOLDER / name


def rclone_argv(source: str, target: Path | str, bwlimit: str | None = None) -> list[str]:
    """Pure: the copy. `--stats` as one JSON log line a second, which `progress_of` reads;
    links are copied as links (never followed out of the dataset); `bwlimit` (rclone's
    words: 10M is 10 MiB/s) spares a shared file system."""
    return [
        "rclone", "copy", source, str(target),
        "--links", "--use-json-log", "--stats", "1s", "--stats-log-level", "NOTICE",
        "--log-level", "NOTICE", "--transfers", "4",
        *(["--bwlimit", bwlimit] if bwlimit else []),
    ]  # fmt: skip


def progress_of(line: str) -> dict | None:
    """Pure: (bytes, total bytes, files, total files, bytes/s) of one rclone JSON stats
    line, or None for any other line."""
    try:
        stats = json.loads(line).get("stats")
    except (ValueError, AttributeError):
        return None
    if not isinstance(stats, dict):
        return None
    return {
        "bytes": stats.get("bytes", 0),
        "total_bytes": stats.get("totalBytes", 0),
        "files": stats.get("transfers", 0),
        "total_files": stats.get("totalTransfers", 0),
        "speed": stats.get("speed", 0.0),
    }


def progress_words(p: dict) -> str:
    """Pure: one progress line."""
    done, total = p["bytes"] / 1e6, p["total_bytes"] / 1e6
    pct = f" ({100 * p['bytes'] / p['total_bytes']:.0f} %)" if p["total_bytes"] else ""
    return (
        f"copied {done:.1f} of {total:.1f} MB{pct}, {p['files']} of {p['total_files']} files, "
        f"{p['speed'] / 1e6:.1f} MB/s"
    )


def copy(
    source: str,
    target: Path | str,
    on_progress: Callable[[dict], None] | None = None,
    bwlimit: str | None = None,
) -> dict:
    """Copy `source` into `target` (folders, or `remote:bucket/path`) with rclone; the last
    progress figures (a copy that had nothing to do: zero files). DataError with rclone's
    words when it fails."""
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        rclone_argv(source, target, bwlimit),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = {"bytes": 0, "total_bytes": 0, "files": 0, "total_files": 0, "speed": 0.0}
    errors = []
    try:
        for line in proc.stderr:
            p = progress_of(line)
            if p is not None:
                last = p
                if on_progress:
                    on_progress(p)
            elif line.strip():
                try:
                    errors.append(json.loads(line).get("msg", line.strip()))
                except (ValueError, AttributeError):
                    errors.append(line.strip())
    finally:  # interrupted (Ctrl-C, a time limit): rclone stops too; the next run resumes
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    if proc.wait() != 0:
        raise DataError(
            f"the copy stopped: {'; '.join(errors[-3:]) or f'rclone {proc.returncode}'}"
        )
    return last


def verify(source: Path, target: Path, manifest: str | None) -> str:
    """Check the copy against the dataset's manifest (`sha256sum` lines, relative paths);
    the sentence, or DataError naming the files that differ."""
    if not manifest:
        return "no manifest to check against (the dataset has none)"
    listed = source / manifest
    done = subprocess.run(
        ["sha256sum", "--check", "--quiet", "--strict", str(listed)],
        cwd=target, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        bad = [ln.rsplit(":", 1)[0] for ln in done.stdout.splitlines() if ln.endswith("FAILED")]
        missing = [ln for ln in done.stderr.splitlines() if "No such file" in ln]
        what = ", ".join(bad[:5]) or "; ".join(missing[:3]) or done.stderr.strip()[:300]
        raise DataError(f"the copy differs from the manifest {manifest}: {what}")
    n = sum(1 for ln in listed.read_text().splitlines() if ln.strip())
    return f"all {n} files match the manifest {manifest} (SHA-256)"


def record(home: Path, entry: dict) -> None:
    """Note a copy in ~/.naic/staged.json (one entry per path, the newest)."""
    path = home / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = []
    entries = [e for e in entries if e.get("path") != entry["path"]] + [entry]
    path.write_text(json.dumps(entries, indent=1))


def staged(home: Path | None = None) -> list[dict]:
    try:
        return json.loads(((home or Path.home()) / RECORD).read_text())
    except (OSError, ValueError):
        return []


def staged_path(name: str, home: Path | None = None) -> Path | None:
    """The newest staged copy of dataset `name` (for a notebook), or None."""
    found = [e for e in staged(home) if e.get("dataset") == name]
    return Path(found[-1]["path"]) if found else None


def _storage() -> tuple:
    from naic.extensions.session import SessionFacts

    return SessionFacts.from_env(ask_scheduler=False).storage


def _areas() -> dict[str, str]:
    return {a.name: a.path for a in _storage() if not a.read_only}


def on_node_local(target: Path, storage) -> bool:
    """Pure: whether `target` lies in a node-local storage area (removed at the session's end)."""
    return any(
        a.node_local and (target == Path(a.path) or Path(a.path) in target.parents) for a in storage
    )


def clean_node_local(job: str, home: Path | None = None) -> list[str]:
    """At the session's end (the launcher's exit): remove the copies this job staged on
    node-local storage, and their records; what was removed."""
    import shutil

    home = home or Path.home()
    entries = staged(home)
    gone = [e for e in entries if job and e.get("job") == job and e.get("node_local")]
    for e in gone:
        shutil.rmtree(e["path"], ignore_errors=True)
    if gone:
        kept = [e for e in entries if e not in gone]
        (home / RECORD).write_text(json.dumps(kept, indent=1))
    return [e["path"] for e in gone]


def stage(
    hub, name: str, to: str, say: Callable[[str], None] = print, bwlimit: str | None = None
) -> Path:
    """The library call: copy dataset `name` to `to` (an area or a folder), check it, record
    it; the copy's path (hand it to your code)."""
    ds = hub.dataset(name)
    target = destination(to, name, _areas())
    size = f" ({ds['size_gb']:g} GB)" if ds.get("size_gb") else ""
    say(f"Staging {ds['title']}{size} from {ds['path']} to {target}")
    return copy_checked(ds["path"], target, name, ds.get("manifest"), say, bwlimit)


def copy_checked(
    source: str,
    target: Path,
    name: str,
    manifest: str | None,
    say: Callable[[str], None] = print,
    bwlimit: str | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> Path:
    """Copy (progress at most every second), check against the manifest, record: what a
    staging does, in the session or in its Slurm job."""
    last_shown = [0.0]

    def shown(p: dict) -> None:
        if on_progress:
            on_progress(p)
        if time.monotonic() - last_shown[0] >= 1:
            last_shown[0] = time.monotonic()
            say(progress_words(p))

    last = copy(source, target, shown, bwlimit)
    say(f"copied {last['files']} new or changed files ({last['bytes'] / 1e6:.1f} MB)")
    say(verify(Path(source), target, manifest))
    entry = {"dataset": name, "path": str(target), "source": source,
             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "job": os.environ.get("SLURM_JOB_ID", ""),
             "node_local": on_node_local(target, _storage())}  # fmt: skip
    record(Path.home(), entry)
    return target


def main(argv: list[str] | None = None, hub: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="naic-data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the datasets of the hub's catalogue")
    for verb in ("stage", "verify"):
        p = sub.add_parser(verb, help=f"{verb} a copy of a dataset")
        p.add_argument("name")
        p.add_argument("--to", default="scratch", help="a storage area (scratch) or a folder")
        if verb == "stage":
            p.add_argument("--bwlimit", default=None, help="at most this fast, e.g. 50M (MiB/s)")
            p.add_argument("--job", action="store_true", help="copy in a Slurm job of its own")
            p.add_argument("--hours", type=float, default=2.0, help="the job's time limit")
    c = sub.add_parser("copy", help="copy SOURCE to TARGET and check it (what a job runs)")
    c.add_argument("source")
    c.add_argument("target", type=Path)
    c.add_argument("--dataset", default="")
    c.add_argument("--manifest", default=None)
    j = sub.add_parser("job", help="a staging job: queued, copying (how far), done or failed")
    j.add_argument("job_id")
    j.add_argument("--follow", action="store_true", help="until it ends, every 5 s")
    sub.add_parser("staged", help="the copies made from this account")
    for verb, first, second in (("put", "source", "remote"), ("get", "remote", "target")):
        p = sub.add_parser(verb, help=f"copy to (put) or from (get) object storage: {verb} "
                                      f"{first.upper()} {second.upper()}")  # fmt: skip
        p.add_argument(first)
        p.add_argument(second)
    r = sub.add_parser("remote", help="object storage remotes (S3-compatible)")
    r.add_argument("remote_action", choices=("add", "list", "remove"))
    r.add_argument("remote_name", nargs="?")
    r.add_argument("--endpoint", help="the S3 endpoint, e.g. https://s3.nird.sigma2.no")
    r.add_argument(
        "--access-key-id", help="the key's id (the secret is asked for, never an argument)"
    )
    r.add_argument("--region", default="")
    r.add_argument(
        "--secret-stdin", action="store_true", help="read the secret from standard input"
    )
    args = parser.parse_args(argv)
    # Slurm's time limit and scancel send SIGTERM: stop the copy as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from naic.extensions import data_jobs
    from naic.extensions.remotes import RemoteError
    from naic.extensions.sources.hubclient import HubError, HubSource

    hub = hub or HubSource()
    try:
        if args.action == "list":
            for d in hub.datasets()["datasets"]:
                where = d["path"] if d["may_read"] else f"for {d['readers']}"
                print(f"{d['name']:<20} {d['title']} — {d['licence']}; {where}")
        elif args.action == "stage" and args.job:
            ds = hub.dataset(args.name)
            target = destination(args.to, args.name, _areas())
            argv = data_jobs.job_argv(ds["path"], target, name=args.name,
                                      manifest=ds.get("manifest"), facts=data_jobs.session(),
                                      hours=args.hours)  # fmt: skip
            job = data_jobs.submit(argv)
            print(f"Submitted staging job {job}: {ds['path']} to {target} "
                  f"(log ~/{data_jobs.LOG.format(job=job)}). Follow it: naic-data job {job} "
                  "--follow")  # fmt: skip
        elif args.action == "stage":
            say = lambda s: print(s, flush=True)  # noqa: E731
            print(stage(hub, args.name, args.to, say, args.bwlimit))
        elif args.action == "copy":
            say = lambda s: print(s, flush=True)  # noqa: E731
            print(copy_checked(args.source, args.target, args.dataset, args.manifest, say))
        elif args.action == "job":
            while True:
                words, over = data_jobs.follow(args.job_id)
                print(f"job {args.job_id}: {words}", flush=True)
                if over or not args.follow:
                    return 0 if not words.startswith(("failed", "cancelled")) else 1
                time.sleep(5)
        elif args.action == "verify":
            ds = hub.dataset(args.name)
            print(
                verify(
                    Path(ds["path"]), destination(args.to, args.name, _areas()), ds.get("manifest")
                )
            )
        elif args.action in ("put", "get"):
            src, dst = (
                (args.source, args.remote) if args.action == "put" else (args.remote, args.target)
            )
            say = lambda s: print(s, flush=True)  # noqa: E731
            last = copy(src, dst if ":" in dst else Path(dst), lambda p: say(progress_words(p)))
            say(f"{args.action}: {last['files']} files ({last['bytes'] / 1e6:.1f} MB) to {dst}")
        elif args.action == "remote":
            return remote_command(args)
        else:
            for e in staged():
                print(f"{e['dataset']:<20} {e['path']}  ({e['at']}, job {e.get('job') or '-'})")
    except (DataError, HubError, RemoteError, data_jobs.JobError) as exc:
        print(f"naic-data {args.action}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("naic-data: stopped; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def remote_command(args) -> int:
    """`naic-data remote add|list|remove`."""
    import getpass

    from naic.extensions import remotes

    if args.remote_action == "list":
        for r in remotes.listed():
            print(f"{r['name']:<16} {r.get('type', '?')} {r.get('endpoint', '')}")
        return 0
    if not args.remote_name:
        raise remotes.RemoteError(f"remote {args.remote_action} needs the remote's name.")
    if args.remote_action == "remove":
        gone = remotes.remove(args.remote_name)
        print(f"Removed {args.remote_name}." if gone else f"There is no remote {args.remote_name}.")
        return 0 if gone else 1
    if not (args.endpoint and args.access_key_id):
        raise remotes.RemoteError("remote add needs --endpoint and --access-key-id.")
    if args.secret_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = getpass.getpass(f"Secret access key for {args.access_key_id}: ")
    section = remotes.s3_section(args.endpoint, args.access_key_id, secret, args.region)
    path = remotes.add(args.remote_name, section)
    print(f"Remote {args.remote_name} ({args.endpoint}) saved in {path} (readable by you only). "
          f"Copy with: naic-data put FOLDER {args.remote_name}:BUCKET/PATH")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
