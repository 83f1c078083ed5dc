"""`naic workshop check`, pure: the job that runs a workshop's material in its preset
session, what its log and executed notebooks say, and whether Slurm's reservation is the
one the workshop needs. The hub's side (naic.hub.workshops.check) does the I/O."""

from __future__ import annotations

import json
from datetime import datetime

from naic.hub.workshops.rules import _slurm_time

#: Run in the job, from the instructor's home, in the workshop's environment: fetch the
#: material the way sessions do (naic.extensions.launch.fetch_material: nbgitpuller for a
#: repository, a copy for a folder) into a fresh folder, then run every notebook headless
#: (naic.extensions.batch, nbclient), each whatever the one before did. `$1` material,
#: `$2` the folder (below the home).
JOB_SCRIPT = " ".join(
    (
        'rm -rf -- "$2" && mkdir -p -- "$(dirname -- "$2")" || exit 3;',
        'python -c "import sys, pathlib; from naic.extensions.launch import fetch_material;',
        "print('naic-check: material', fetch_material(sys.argv[1], pathlib.Path(sys.argv[2])))\"",
        '"$1" "$2" || { echo "naic-check: material FAILED"; exit 3; };',
        'cd -- "$2" || exit 3; status=0;',
        'while IFS= read -r nb; do echo "naic-check: notebook $nb";',
        'if python -m naic.extensions.batch run "$nb" </dev/null;',
        'then echo "naic-check: PASS $nb"; else echo "naic-check: FAIL $nb"; status=1; fi;',
        "done < <(find . -name '*.ipynb' -not -path '*/.*' -not -name '*.batch-*.ipynb'",
        "| sed 's|^\\./||' | LC_ALL=C sort); exit $status",
    )
)
PREFIX = "naic-check: "


def begin_line(start: datetime) -> str:
    """Pure: `sbatch --test-only` of a job in a reservation that has not begun is refused
    ("Invalid time specified") unless the job begins no earlier than the reservation."""
    return f"#SBATCH --begin={_slurm_time(start)}"


def check_folder(name: str) -> str:
    """Where the job puts the material, below the instructor's home."""
    return f".naic-check/{name}"


def job_command(material: str, name: str) -> list[str]:
    """Pure: the job's command (the material and folder as arguments, never in the text)."""
    return ["bash", "-c", JOB_SCRIPT, "naic-check", material, check_folder(name)]


def shared_verdict(path: str, stat_out: str) -> tuple[bool, str]:
    """Pure: whether `stat -L -c '%a %U %F' PATH`'s answer is a fit shared course folder
    (a folder no group or other can write: students could change it for everyone)."""
    words = stat_out.strip().split(maxsplit=2)
    try:
        mode, owner, kind = int(words[0], 8), words[1], words[2]
    except (IndexError, ValueError):
        return False, f"{path} could not be read on the site ({stat_out.strip()[:200]})"
    if kind != "directory":
        return False, f"{path} is a {kind}, not a folder"
    if mode & 0o022:
        return False, (
            f"{path} (mode {mode & 0o7777:o}, owner {owner}) is writable by group or others: "
            "students could change it for everyone; make it read-only (e.g. chmod go-w)"
        )
    return True, f"{path} is there, read-only for students (mode {mode & 0o7777:o}, owner {owner})"


def notebook_results(log: str) -> list[tuple[str, bool]]:
    """Pure: (notebook, whether every cell ran) for each notebook the job's log reports."""
    out = []
    for line in log.splitlines():
        for word, ok in (("PASS ", True), ("FAIL ", False)):
            if line.startswith(PREFIX + word):
                out.append((line.removeprefix(PREFIX + word), ok))
    return out


def material_failed(log: str) -> bool:
    return f"{PREFIX}material FAILED" in log


def progress_lines(log: str) -> list[str]:
    """Pure: the job log's lines worth showing while it runs (which notebook, which cell)."""
    return [
        line
        for line in log.splitlines()
        if line.startswith((PREFIX + "notebook ", "naic-batch: cell "))
    ]


def failing_cell(notebook_json: str) -> str | None:
    """Pure: which cell of an executed notebook broke, its first line and the error:
    `cell 2 (index 1) `raise …`: RuntimeError: …`; None if no cell shows an error."""
    try:
        cells = json.loads(notebook_json).get("cells", [])
    except (ValueError, AttributeError):
        return None
    for index, cell in enumerate(cells):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "error":
                source = cell.get("source", "")
                text = "".join(source) if isinstance(source, list) else source
                first = next((s.strip() for s in text.splitlines() if s.strip()), "")
                error = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".rstrip(": ")
                return f"cell {index + 1} (index {index}) `{first[:80]}`: {error[:300]}"
    return None


def reservation_fields(shown: str) -> dict[str, str]:
    """Pure: `scontrol show reservation NAME`'s `Key=Value` words."""
    return dict(w.split("=", 1) for w in shown.split() if "=" in w)


def reservation_problems(
    shown: str,
    *,
    start: datetime,
    end: datetime,
    nodes: int,
    cores: int,
    accounts: tuple[str, ...],
) -> list[str]:
    """Pure: how the reservation Slurm shows differs from the workshop's (empty: none)."""
    f = reservation_fields(shown)
    problems = []
    for key, want in (("StartTime", _slurm_time(start)), ("EndTime", _slurm_time(end))):
        if f.get(key) != want:
            problems.append(f"its {key} is {f.get(key)}, not {want}")
    if nodes and int(f.get("NodeCnt", "0") or 0) < nodes:
        problems.append(f"it holds {f.get('NodeCnt')} nodes, not {nodes}")
    if cores and int(f.get("CoreCnt", "0") or 0) < cores:
        problems.append(f"it holds {f.get('CoreCnt')} cores, not {cores}")
    have = set(filter(None, f.get("Accounts", "").replace("(null)", "").split(",")))
    if set(accounts) - have:
        problems.append(f"it is for the accounts {sorted(have)}, not {list(accounts)}")
    return problems
