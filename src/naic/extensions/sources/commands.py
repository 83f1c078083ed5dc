"""Running a command with a time limit: what `squeue`, `du` and `lfs quota` go through.

Sources take a `Runner` in their constructor, so tests hand them the output instead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

#: Runs argv with a timeout in seconds and returns stdout; raises on failure or timeout.
Runner = Callable[[Sequence[str], float], str]


def run_argv(argv: Sequence[str], timeout_s: float) -> str:
    """stdout, even after a non-zero exit when there is some: `du` exits 1 when it could
    not read a folder and still prints the total of what it could."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode and not proc.stdout.strip():
        raise OSError(f"{argv[0]} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout
