"""OnboardingChecklist: one checkbox per onboarding notebook, remembered in the home.

The state lives in `~/.naic/onboarding.json` (`{"done": {"00-start-here": true, ...}}`),
written atomically (a temporary file renamed over the old one), so a kernel that dies
mid-write never leaves a broken file; an unreadable file counts as nothing done yet.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import ipywidgets as w

from naic.extensions.widgets._parts import labelled

log = logging.getLogger("naic.extensions")

#: The onboarding notebooks (file names without `.ipynb`) and what the checklist calls them.
NOTEBOOKS: tuple[tuple[str, str], ...] = (
    ("00-start-here", "Start here"),
    ("01-storage-and-data", "Storage and data"),
    ("02-compute-and-gpus", "Compute and GPUs"),
    ("03-scale-out-with-dask", "Scale out with Dask"),
    ("04-from-notebook-to-batch-job", "From notebook to batch job"),
    ("05-data-in-and-out", "Data in and out"),
)


def default_state_file() -> Path:
    return Path.home() / ".naic" / "onboarding.json"


def load_done(path: Path) -> dict[str, bool]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        done = data["done"]
        return {str(k): bool(v) for k, v in done.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("Ignoring the unreadable onboarding state %s: %s", path, exc)
        return {}


def save_done(path: Path, done: dict[str, bool]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".onboarding-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"done": done}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mark_done(name: str, done: bool = True, path: Path | None = None) -> None:
    """For a notebook's last cell: `mark_done("01-storage-and-data")`."""
    path = path or default_state_file()
    state = load_done(path)
    state[name] = done
    save_done(path, state)


class OnboardingChecklist(w.VBox):
    def __init__(
        self,
        path: Path | str | None = None,
        notebooks: tuple[tuple[str, str], ...] = NOTEBOOKS,
    ):
        super().__init__()
        self.add_class("naic-onboarding")
        self.path = Path(path) if path is not None else default_state_file()
        self.boxes: dict[str, w.Checkbox] = {}
        for name, title in notebooks:
            box = labelled(
                w.Checkbox(description=f"{title} ({name}.ipynb)", indent=False),
                "naic-onboarding-item",
            )
            box.observe(lambda change, name=name: self._changed(name, change["new"]), "value")
            self.boxes[name] = box
        self.summary = labelled(w.Label(), "naic-onboarding-summary")
        self.children = [w.HTML("<h3>Getting started</h3>"), *self.boxes.values(), self.summary]
        self._loading = False
        self.refresh()

    def refresh(self) -> None:
        """Show what the state file says (another kernel may have ticked something)."""
        done = load_done(self.path)
        self._loading = True
        try:
            for name, box in self.boxes.items():
                box.value = done.get(name, False)
        finally:
            self._loading = False
        self._summarise()

    def mark(self, name: str, done: bool = True) -> None:
        self.boxes[name].value = done

    def _changed(self, name: str, value: bool) -> None:
        if self._loading:
            return
        state = load_done(self.path)
        state[name] = value
        save_done(self.path, state)
        self._summarise()

    def _summarise(self) -> None:
        n = sum(box.value for box in self.boxes.values())
        total = len(self.boxes)
        self.summary.value = (
            "All done: you know your way around." if n == total else f"{n} of {total} done"
        )
