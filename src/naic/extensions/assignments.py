"""`naic-assignment`: a workshop's assignments from inside a session, with the session's
own token (the hub is the exchange: naic.hub.workshops.assignment_api).

    naic-assignment list                  what is released, and what you submitted when
    naic-assignment fetch A               A into ~/WORKSHOP/assignments/A/ (your files stay)
    naic-assignment submit A              ~/WORKSHOP/assignments/A/ to the hub (again: replaces)
    naic-assignment collect WORKSHOP A [--to DIR]   the staff: every student's latest
                                          submission into DIR/USER/ (~/WORKSHOP-submissions/A)

The workshop is this session's (NAIC_SESSION), or `--workshop`. `pack` and `unpack` are
also what `naic workshop release|collect` use on the instructor's machine.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from naic.extensions.sources.hubclient import HubError, HubSource

#: What the hub takes (naic.hub.workshops.assignments), checked here first to say it sooner.
MAX_FILES = 500
MAX_UNPACKED = 100_000_000
#: Folders a session keeps for itself: never sent.
SKIPPED = {".ipynb_checkpoints", "__pycache__"}


class AssignmentError(Exception):
    """What went wrong, as one sentence for the user."""


def pack(folder: Path) -> tuple[bytes, list[str], list[str]]:
    """A zip of the files under `folder` (checkpoints and caches left out, links not
    followed); (zip bytes, the files in it, what was left out)."""
    if not folder.is_dir():
        raise AssignmentError(f"There is no folder {folder}.")
    files, skipped, total = [], [], 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIPPED for part in rel.parts):
            continue
        if path.is_symlink():
            skipped.append(f"{rel.as_posix()} (a link)")
        elif path.is_file():
            files.append(rel.as_posix())
            total += path.stat().st_size
    if not files:
        raise AssignmentError(f"{folder} has no files to send.")
    if len(files) > MAX_FILES or total > MAX_UNPACKED:
        raise AssignmentError(
            f"{folder} has {len(files)} files, {total / 1e6:.1f} MB; the hub takes at most "
            f"{MAX_FILES} files and {MAX_UNPACKED // 10**6} MB."
        )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(folder / name, name)
    return out.getvalue(), files, skipped


def unpack(data: bytes, dest: Path, *, overwrite: bool = False) -> tuple[list[str], list[str]]:
    """Write the archive's files under `dest`; a file already there stays unless
    `overwrite`. (written, kept). A member that would land outside `dest` is refused."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written, kept = [], []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            name = PurePosixPath(member.filename)
            target = (dest / name).resolve()
            if name.is_absolute() or ".." in name.parts or not target.is_relative_to(root):
                raise AssignmentError(f"The archive's file {member.filename!r} is outside it.")
            if target.exists() or target.is_symlink():
                if not overwrite:
                    kept.append(member.filename)
                    continue
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            written.append(member.filename)
    return written, kept


def session_workshop(environ: Mapping[str, str]) -> str | None:
    """The workshop of this session (NAIC_SESSION), as naic.extensions.launch reads it."""
    try:
        ws = json.loads(environ.get("NAIC_SESSION") or "{}").get("workshop") or {}
    except (ValueError, AttributeError):
        return None
    return ws.get("name") or None


def _files(names: list[str], limit: int = 8) -> str:
    more = f", and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") + " UTC" if iso else "-"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="naic-assignment", description=__doc__.split("\n\n")[0])
    act = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("list", "the workshop's assignments"),
        ("fetch", "an assignment into ~/WORKSHOP/assignments/NAME (your files stay)"),
        ("submit", "send ~/WORKSHOP/assignments/NAME to the hub (again: replaces)"),
    ):
        sub = act.add_parser(name, help=text)
        if name != "list":
            sub.add_argument("name", help="the assignment, e.g. a1")
        sub.add_argument("--workshop", default=None, help="default: this session's workshop")
    c = act.add_parser("collect", help="the staff: every student's latest submission")
    c.add_argument("workshop")
    c.add_argument("name")
    c.add_argument("--to", type=Path, default=None, help="default ~/WORKSHOP-submissions/NAME")
    c.add_argument("--overwrite", action="store_true", help="replace files already collected")
    return p


def collect_into(submissions: list[dict], dest: Path, overwrite: bool) -> list[str]:
    """Each submission into dest/USER/; a line per student."""
    lines = []
    for s in submissions:
        data = base64.b64decode(s["archive"])
        written, kept = unpack(data, dest / s["user"], overwrite=overwrite)
        note = f"; {len(kept)} kept (already there; --overwrite replaces)" if kept else ""
        lines.append(
            f"{s['user']} (submitted {_when(s['submitted_at'])}): "
            f"{len(written)} files into {dest / s['user']}{note}"
        )
    return lines


def run(args: argparse.Namespace, hub: HubSource, environ: Mapping[str, str], home: Path) -> str:
    """What the command prints, or AssignmentError/HubError."""
    if args.action == "collect":
        got = hub.submissions(args.workshop, args.name)["submissions"]
        dest = args.to or home / f"{args.workshop}-submissions" / args.name
        if not got:
            return f"No submissions of {args.name} yet."
        lines = collect_into(got, dest, args.overwrite)
        return "\n".join([*lines, f"Collected {len(got)} submissions of {args.name} into {dest}"])
    workshop = args.workshop or session_workshop(environ)
    if not workshop:
        raise AssignmentError("This is not a workshop session; name one with --workshop.")
    if args.action == "list":
        got = hub.assignments(workshop)["assignments"]
        if not got:
            return f"{workshop} has no assignments released yet."
        rows = []
        for a in got:
            if "submissions" in a:  # the staff's view
                rows.append(f"{a['name']:<20} released {_when(a['released_at'])}, "
                            f"{a['submissions']} submitted")  # fmt: skip
            else:
                done = _when(a["submitted_at"]) if a["submitted_at"] else "not submitted"
                rows.append(f"{a['name']:<20} released {_when(a['released_at'])}, {done}")
        return "\n".join(rows)
    folder = home / workshop / "assignments" / args.name
    if args.action == "fetch":
        got = hub.assignment(workshop, args.name)
        written, kept = unpack(base64.b64decode(got["archive"]), folder)
        out = f"Fetched {args.name} into {folder}: {len(written)} new files"
        out += f" ({_files(written)})" if written else ""
        if kept:
            out += f"; kept {len(kept)} you already have ({_files(kept)})"
        return out
    if not folder.is_dir():
        raise AssignmentError(
            f"There is no folder {folder}; fetch it first: naic-assignment fetch {args.name}"
        )
    data, files, skipped = pack(folder)
    sent = hub.submit_assignment(workshop, args.name, base64.b64encode(data).decode("ascii"))
    lines = [f"Submitted {args.name} at {_when(sent.get('submitted_at'))}: {len(files)} files, "
             f"{len(data) / 1000:.1f} kB packed"]  # fmt: skip
    lines += [f"  {name}" for name in files]
    lines += [f"  left out: {name}" for name in skipped]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    hub = HubSource(timeout_s=300)
    try:
        print(run(args, hub, os.environ, Path.home()))
    except (AssignmentError, HubError) as exc:
        print(f"naic-assignment {args.action}: {exc}", file=sys.stderr)
        return 1
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"naic-assignment {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
