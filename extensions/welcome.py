"""Session prologue: put the course/onboarding material into the home, then start the server.

Runs as the user (after the spawner dropped privileges), so a user's own symlinks or
files can never trick the hub into writing elsewhere. Existing files are never replaced:
a student's edited notebook survives every restart.

    python -m naic.extensions.welcome --material DIR -- jupyterhub-singleuser [args]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def copy_missing(src: Path, dest: Path) -> list[Path]:
    """Copy files under `src` that `dest` lacks; return what was copied."""
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        target = dest / rel
        if target.exists() or target.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="naic.extensions.welcome")
    parser.add_argument("--material", type=Path, action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server command after --")
    home = Path(os.environ.get("HOME") or Path.cwd())
    for folder in args.material:
        if folder.is_dir():
            n = len(copy_missing(folder, home))
            print(f"naic: {n} new file(s) from {folder} in {home}", file=sys.stderr)
    os.execvp(command[0], command)  # noqa: S606 - the spawner's own server command


if __name__ == "__main__":
    main()
