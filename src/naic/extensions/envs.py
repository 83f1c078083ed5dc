"""A user's own environments as kernels: `naic-env create|list|remove`, in a session.

    naic-env create NAME [--module M]... [--install PKG]... [--in DIR]
    naic-env list
    naic-env remove NAME

`create` makes a venv on top of the modules (`module load M; python -m venv
--system-site-packages`), so the module's packages stay visible and what the user installs
goes on top; it installs the packages, then registers the kernel ("NAME (own)") in the
user's Jupyter data folder, where every later session finds it. Environments live in
`~/.naic/envs/NAME` unless `--in` names another folder (a project area).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from naic.extensions.kernels import OWN_PREFIX, KernelEnv, write_spec

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MARKER = "naic-env.json"


class EnvError(Exception):
    """A sentence for the user."""


def kernels_dir() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kernels"


def create_script(target: Path, modules: list[str], packages: list[str]) -> str:
    """Pure: the bash that builds the venv on top of `modules` and installs `packages`."""
    lines = ["set -e"]
    if modules:
        lines.append("type module >/dev/null 2>&1 || source /etc/profile >/dev/null 2>&1")
        lines.append("naic_err=$(mktemp)")  # Lmod's own words, on one line, when it cannot
        for m in map(shlex.quote, modules):
            lines.append(f'module load {m} 2>"$naic_err" || true')
            lines.append(
                f'module is-loaded {m} || {{ echo "naic-env: the module {m} cannot '
                f"be loaded here: $(tr -s '\\n ' ' ' <\"$naic_err\")\"; "
                'rm -f "$naic_err"; exit 1; }'
            )
        lines.append('rm -f "$naic_err"')
        # The module's Python, not the session's (whose bin/ may come first on PATH).
        lines.append('[ -z "${VIRTUAL_ENV:-}" ] || PATH=${PATH//"$VIRTUAL_ENV/bin:"/}')
    t = shlex.quote(str(target))
    lines.append(f"env -u VIRTUAL_ENV python3 -m venv --system-site-packages {t}")
    lines.append(f"{t}/bin/python -c 'import ipykernel' 2>/dev/null || "
                 f"{t}/bin/pip install --quiet ipykernel")  # fmt: skip
    if packages:
        lines.append(f"{t}/bin/pip install --quiet " + " ".join(map(shlex.quote, packages)))
    return "\n".join(lines) + "\n"


def create(name: str, modules: list[str], packages: list[str], parent: Path) -> Path:
    if not NAME.fullmatch(name):
        raise EnvError(f"{name!r} is not a name for an environment: use a-z, 0-9, _ and -")
    target = parent / name
    if target.exists():
        raise EnvError(f"{target} exists: choose another name, or `naic-env remove {name}`")
    parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(["bash", "-c", create_script(target, modules, packages)], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if run.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)  # nothing half-made stays
        lines = run.stdout.strip().splitlines()
        ours = [line.removeprefix("naic-env: ") for line in lines if line.startswith("naic-env: ")]
        raise EnvError(f"could not create {name}: {(ours or [' '.join(lines[-3:])])[0]}")
    (target / MARKER).write_text(json.dumps({"name": name, "modules": modules}) + "\n")
    write_spec(kernels_dir(), own_kernel(name, modules, target))
    return target


def own_kernel(name: str, modules: list[str], target: Path) -> KernelEnv:
    return KernelEnv(OWN_PREFIX + name, f"{name} (own)", tuple(modules), venv=str(target))


def listed() -> list[dict]:
    """The user's environments: their kernel specs' names, modules and folders."""
    out = []
    for spec in sorted(kernels_dir().glob(f"{OWN_PREFIX}*/kernel.json")):
        try:
            meta = json.loads(spec.read_text()).get("metadata", {}).get("naic", {})
        except (OSError, ValueError):
            continue  # not one naic-env wrote
        venv = meta.get("venv") or ""
        out.append({"name": spec.parent.name.removeprefix(OWN_PREFIX),
                    "modules": meta.get("modules", []), "path": venv,
                    "present": (Path(venv) / "bin" / "python").exists()})  # fmt: skip
    return out


def remove(name: str) -> None:
    spec = kernels_dir() / (OWN_PREFIX + name)
    found = [e for e in listed() if e["name"] == name]
    if not found:
        raise EnvError(f"there is no environment {name!r} of yours (see `naic-env list`)")
    folder = Path(found[0]["path"])
    if (folder / MARKER).is_file():  # only what `create` made
        shutil.rmtree(folder)
    shutil.rmtree(spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="naic-env", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="a venv on top of modules, registered as a kernel")
    c.add_argument("name")
    c.add_argument("--module", action="append", default=[], help="an Lmod module to build on")
    c.add_argument("--install", action="append", default=[], help="a package for pip")
    c.add_argument("--in", dest="parent", type=Path, default=Path.home() / ".naic" / "envs",
                   help="the folder it goes in (default: ~/.naic/envs)")  # fmt: skip
    sub.add_parser("list", help="your environments")
    r = sub.add_parser("remove", help="delete an environment and its kernel")
    r.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            target = create(args.name, args.module, args.install, args.parent)
            print(f"{args.name}: created in {target}; pick the kernel '{args.name} (own)'")
        elif args.command == "list":
            for e in listed():
                state = "" if e["present"] else "  (missing)"
                mods = ", ".join(e["modules"]) or "no modules"
                print(f"{e['name']}\t{mods}\t{e['path']}{state}")
        else:
            remove(args.name)
            print(f"{args.name}: removed")
    except EnvError as exc:
        print(f"naic-env: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
