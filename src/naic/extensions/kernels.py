"""Kernels for a session: the catalogue's environments and the user's own, as Jupyter
kernel specs whose launcher loads Lmod modules, a venv or a conda prefix first.

The server runs from the site's session environment (naic-hub's `session` extra); a
kernel is a separate process, so an environment only needs Python and ipykernel. A kernel
whose module or environment cannot be loaded on the node still starts, from the session's
own Python, and answers every cell with the sentence saying why (`python -m
naic.extensions.kernels notice`), instead of dying with nothing to read.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

#: Kernel names of catalogue environments and of the user's own ones.
CATALOGUE_PREFIX = "naic-"
OWN_PREFIX = "naic-own-"

#: The launcher's steps, each ending the kernel with the sentence of what failed. `$1` is
#: the connection file; NAIC_SESSION_PYTHON the server's interpreter, for the notice.
_PRELUDE = [
    "NAIC_SESSION_PYTHON=${NAIC_SESSION_PYTHON:-$(command -v python3)}",
    'notice() { export NAIC_KERNEL_PROBLEM="$1"; exec "$NAIC_SESSION_PYTHON" '
    '-m naic.extensions.kernels notice -f "$CONNECTION"; }',
    "CONNECTION=$1",
    # The server's environment goes last (see _EXEC), not before the kernel's own Python.
    "NAIC_SESSION_BIN=${VIRTUAL_ENV:+$VIRTUAL_ENV/bin}",
    '[ -z "$NAIC_SESSION_BIN" ] || PATH=${PATH//"$NAIC_SESSION_BIN:"/}',
    "unset VIRTUAL_ENV PYTHONHOME",
]
#: The session's tools (naic-env) stay at hand after the kernel's own, even where a login
#: profile reset PATH.
_EXEC = [
    '[ -z "$NAIC_SESSION_BIN" ] || PATH=$PATH:$NAIC_SESSION_BIN',
    'exec python -m ipykernel_launcher -f "$CONNECTION"',
]


@dataclass(frozen=True)
class KernelEnv:
    """What a kernel activates, in this order: modules, then a venv or a conda prefix."""

    name: str
    title: str
    modules: tuple[str, ...] = ()
    venv: str | None = None
    conda: str | None = None


def launcher_script(k: KernelEnv) -> str:
    """Pure: the bash program of a kernel's argv (`bash -c SCRIPT naic-kernel {conn}`)."""
    lines = list(_PRELUDE)
    on_node = " on $(hostname)"
    if k.modules:
        # Lmod defines `module` in login shells only; the server's shell is not one.
        lines.append("type module >/dev/null 2>&1 || source /etc/profile >/dev/null 2>&1")
        no_lmod = _dq(f"{k.title}: there is no `module` command (Lmod)") + on_node
        lines.append(f'type module >/dev/null 2>&1 || notice "{no_lmod}"')
        lines.append("naic_err=$(mktemp)")
        for module in k.modules:
            m = shlex.quote(module)
            why = _dq(f"{k.title}: the module {module} cannot be loaded") + on_node
            lines.append(f'module load {m} 2>"$naic_err"')
            lines.append(
                f"module is-loaded {m} || {{ err=$(tr -s '\\n ' ' ' <\"$naic_err\" | head -c 400); "
                f'rm -f "$naic_err"; notice "{why}: $err"; }}'
            )
        lines.append('rm -f "$naic_err"')
    prefix = k.venv or k.conda
    if prefix:
        p = shlex.quote(prefix)
        missing = _dq(f"{k.title}: the environment {prefix} is missing") + on_node
        lines.append(f'[ -x {p}/bin/python ] || notice "{missing}"')
        lines.append(f"export PATH={p}/bin:$PATH {'VIRTUAL_ENV' if k.venv else 'CONDA_PREFIX'}={p}")
    no_ipykernel = _dq(f"{k.title}: its Python has no ipykernel") + on_node
    lines.append(f'python -c "import ipykernel" 2>/dev/null || notice "{no_ipykernel}"')
    lines += _EXEC
    return "\n".join(lines) + "\n"


def _dq(text: str) -> str:
    """`text` literal inside bash double quotes (titles are free text)."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)


def kernel_spec(k: KernelEnv) -> dict:
    """Pure: a kernel.json for `k`."""
    return {
        "argv": ["bash", "-c", launcher_script(k), "naic-kernel", "{connection_file}"],
        "display_name": k.title,
        "language": "python",
        "metadata": {"naic": {"modules": list(k.modules), "venv": k.venv, "conda": k.conda}},
    }


def write_spec(kernels_dir: Path, k: KernelEnv) -> Path:
    target = kernels_dir / k.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "kernel.json").write_text(json.dumps(kernel_spec(k), indent=2) + "\n")
    return target


def catalogue_kernels(environ: dict[str, str]) -> tuple[list[KernelEnv], str | None]:
    """The session's catalogue environments (NAIC_KERNELS, set by the hub) and the name of
    the default kernel (the environment chosen in the spawn form)."""
    try:
        listed = json.loads(environ.get("NAIC_KERNELS") or "{}")
    except ValueError:
        return [], None
    envs = [
        KernelEnv(
            name=CATALOGUE_PREFIX + name,
            title=e.get("title") or name,
            modules=tuple(e.get("modules") or ()),
            venv=e.get("venv"),
            conda=e.get("conda"),
        )
        for name, e in (listed.get("environments") or {}).items()
    ]
    default = listed.get("default")
    return envs, (CATALOGUE_PREFIX + default) if default else None


def install_session_kernels(environ: dict[str, str], parent: Path) -> list[str]:
    """Write the catalogue's kernels (NAIC_KERNELS) under `parent`, put them first on
    JUPYTER_PATH in `environ`; returns the server argument that makes the chosen one the
    default. The session environment's own "Python 3 (ipykernel)" stays listed: it has the
    widgets of the onboarding notebooks."""
    envs, default = catalogue_kernels(environ)
    if not envs:
        return []
    for k in envs:
        write_spec(parent / "kernels", k)
    path = [str(parent), environ.get("JUPYTER_PATH")]
    environ["JUPYTER_PATH"] = os.pathsep.join(p for p in path if p)
    return [f"--MultiKernelManager.default_kernel_name={default}"] if default else []


def notice_kernel(argv: list[str]) -> None:
    """A kernel that answers every cell with NAIC_KERNEL_PROBLEM, on stderr."""
    from ipykernel.kernelapp import IPKernelApp

    problem = os.environ.get("NAIC_KERNEL_PROBLEM") or "this kernel could not start"
    sentence = f"{problem}. Tell the hub operators, or choose another kernel."
    app = IPKernelApp.instance()
    app.initialize(argv)
    line = f"import sys; print({sentence!r}, file=sys.stderr)\n"
    app.shell.input_transformers_cleanup.append(lambda lines: [line])
    app.start()


if __name__ == "__main__":
    if sys.argv[1:2] == ["notice"]:
        notice_kernel(sys.argv[2:])
    else:
        sys.exit("usage: python -m naic.extensions.kernels notice -f CONNECTION_FILE")
