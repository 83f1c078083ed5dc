"""A timed walk in Debian's Chromium (issue #18): a user the hub has never seen opens the
hub, logs in, picks one fake A100 on the spawn form, waits for JupyterLab, opens a new
notebook from the Launcher and runs a GPU cell. Under five minutes on an idle test cluster;
every click, fill and key press is counted, and the report (steps with their time offsets,
clicks, seconds) is printed and kept as an artifact (first-gpu-cell.txt)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.helpers import ARTIFACTS, stop_server
from tests.hub_process import Hub, stop_hub
from tests.integration.helpers import squeue, start_testcluster_hub

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: A test-cluster account no other browser test uses.
USER = "student03"
HOME = Path("/home") / USER
CELL = 'import os; print("GPU", os.environ.get("CUDA_VISIBLE_DEVICES"))'
GPU_OUTPUT = re.compile(r"GPU \d+")
#: Issue #18: from the login page to the first GPU cell's output.
LIMIT_S = 300
#: Measured 5 clicks (Sign in, the A100 card, Start, the Launcher's notebook card, the
#: first cell) in 7 s on an idle cluster → bound 8: room for one kernel dialog and one
#: retried run (a click back into the cell) on a loaded machine.
MAX_CLICKS = 8
#: How long each wait may take; together well within LIMIT_S on an idle cluster.
LAB_TIMEOUT_MS = 180_000
KERNEL_TIMEOUT_MS = 90_000


@dataclass(frozen=True)
class Step:
    at: float  # seconds since the walk began
    kind: str  # open, click, fill, type, press, or seen (a wait, not an action)
    what: str


class Walk:
    """The user's actions, each recorded with its time since the walk began."""

    ACTIONS = ("open", "click", "fill", "type", "press")

    def __init__(self, page: Page) -> None:
        self.page = page
        self.started = time.monotonic()
        self.steps: list[Step] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _record(self, kind: str, what: str) -> None:
        self.steps.append(Step(self.elapsed(), kind, what))

    def open(self, url: str, what: str) -> None:
        self._record("open", what)
        self.page.goto(url)

    def click(self, target: Locator, what: str) -> None:
        self._record("click", what)
        target.click()

    def check(self, target: Locator, what: str) -> None:
        """A click on a radio button or a checkbox."""
        self._record("click", what)
        target.check()

    def fill(self, target: Locator, text: str, what: str) -> None:
        self._record("fill", what)
        target.fill(text)

    def type(self, text: str, what: str) -> None:
        """Keys typed one by one into whatever has the focus."""
        self._record("type", what)
        self.page.keyboard.type(text)

    def press(self, keys: str, what: str) -> None:
        self._record("press", what)
        self.page.keyboard.press(keys)

    def seen(self, what: str) -> None:
        """Something the user waited for appeared."""
        self._record("seen", what)

    def answer_dialogs(self) -> None:
        """Answer any JupyterLab dialog with its default button, as test_onboarding's
        answer_dialogs does (on a loaded machine JupyterLab may ask which kernel to start)."""
        dialog = self.page.locator(".jp-Dialog")
        while dialog.count() and dialog.first.is_visible():
            said = " ".join(dialog.first.inner_text().split())
            accept = dialog.first.locator(".jp-Dialog-button.jp-mod-accept").first
            self.click(accept, f"accept the dialog: {said[:80]}")
            self.page.wait_for_timeout(500)

    def count(self, kind: str) -> int:
        return sum(step.kind == kind for step in self.steps)

    @property
    def actions(self) -> int:
        return sum(step.kind in self.ACTIONS for step in self.steps)

    def report(self, total_s: float) -> str:
        lines = [f"First GPU cell walk: {USER}, fresh hub, test cluster"]
        number = 0
        for step in self.steps:
            if step.kind in self.ACTIONS:
                number += 1
                label = f"{number:2}."
            else:
                label = "   "
            lines.append(f"{label} {step.at:7.1f} s  {step.kind:<5}  {step.what}")
        lines += [
            f"clicks: {self.count('click')}",
            f"actions: {self.actions} ({self.count('click')} clicks, {self.count('fill')} fills, "
            f"{self.count('type')} typed, {self.count('press')} key presses, "
            f"{self.count('open')} URLs opened)",
            f"seconds: {total_s:.1f} (login page to the cell's output; limit {LIMIT_S})",
        ]
        return "\n".join(lines)


def run_first_cell(walk: Walk, notebook: Locator) -> None:
    """Shift+Enter in the first cell, until it really runs: on a cold machine JupyterLab can
    take the keys while its kernel connection is still being made, and run nothing (as
    test_onboarding's run_all retries Run All Cells)."""
    cell = notebook.locator(".jp-Cell").first
    started = cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for attempt in range(3):
        walk.answer_dialogs()
        if attempt:
            walk.click(cell.locator(".cm-content"), "back into the first cell")
        walk.press("Shift+Enter", "run the cell")
        try:
            expect(started).to_be_visible(timeout=30_000)
            return
        except AssertionError:
            continue
    raise AssertionError("Shift+Enter ran the first cell in none of three tries")


def home_entries() -> set[str]:
    return {p.name for p in HOME.iterdir()} if HOME.is_dir() else set()


@pytest.fixture
def fresh_hub(slurm_cluster, hub_dir: Path) -> Iterator[Hub]:
    """A hub on a fresh data dir (no record of USER), USER a member of project demo; what
    the session left in USER's home is removed after, so the next walk is a first one too.
    A walk that was cut short (a killed run) may have left its notebook and JupyterLab's
    layout with it open, which would hide the Launcher: those go first."""
    for left in [*HOME.glob("Untitled*.ipynb"), *HOME.glob(".ipynb_checkpoints/Untitled*"),
                 *HOME.glob(".jupyter/lab/workspaces/*.jupyterlab-workspace")]:  # fmt: skip
        left.unlink()
    before = home_entries()
    hub = start_testcluster_hub(
        hub_dir, lambda cat: cat["projects"]["demo"]["members"].append(USER)
    )
    try:
        yield hub
    finally:
        stop_hub(hub)
        subprocess.run(["scancel", f"--user={USER}"], check=False)
        for name in home_entries() - before:
            path = HOME / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def test_a_new_user_gets_a_gpu_cell_output_within_five_minutes(
    fresh_hub: Hub, browser: Browser
) -> None:
    with fresh_hub.api() as api:
        assert api.get(f"/users/{USER}").status_code == 404, f"the hub already knows {USER}"
    assert not squeue(f"--user={USER}").strip(), f"{USER} already has jobs"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    walk = Walk(page)
    total_s = None
    try:
        # The hub's address, its login page, the dev login's shared password.
        walk.open(fresh_hub.url, "open the hub's address")
        page.wait_for_url(re.compile(r".*/hub/login.*"))
        walk.seen("login page")
        walk.fill(page.locator("#username_input"), USER, "user name")
        walk.fill(page.locator("#password_input"), fresh_hub.password, "password")
        walk.click(page.locator("#login_submit"), "Sign in")

        # The spawn form: one fake A100, charged to demo (the default), Start.
        a100 = page.get_by_label("NVIDIA A100 (fake)", exact=True)
        expect(a100).to_be_visible(timeout=30_000)
        walk.seen("spawn form")
        walk.check(a100, "choose NVIDIA A100 (fake)")
        gpus = page.locator("#naic-testcluster-a100-gpus")
        expect(gpus).to_be_visible()
        expect(gpus).to_have_value("1")  # one GPU is the default: nothing to type
        expect(page.locator("#naic-testcluster-a100-project")).to_have_value("demo")
        walk.click(page.get_by_role("button", name="Start"), "Start")

        # The progress page, until JupyterLab opens.
        page.wait_for_url(re.compile(rf".*/user/{USER}/lab.*"), timeout=LAB_TIMEOUT_MS)
        walk.seen("JupyterLab's address")
        # The Launcher's first notebook kernel (Python 3 on this catalogue's test cluster).
        card = page.locator(".jp-LauncherCard[data-category='Notebook']").first
        expect(card).to_be_visible(timeout=LAB_TIMEOUT_MS)
        walk.seen("the Launcher")
        walk.answer_dialogs()

        # Launcher → a new notebook; type the cell, wait for the kernel, run the cell.
        kernel = card.inner_text().strip()
        walk.click(card, f"Launcher: Notebook, {kernel}")
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        editor = notebook.locator(".jp-Cell .cm-content").first
        expect(editor).to_be_visible(timeout=60_000)
        walk.seen("a new notebook")
        walk.answer_dialogs()
        walk.click(editor, "into the first cell")
        walk.type(CELL, "the GPU cell")
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        expect(idle).to_be_visible(timeout=KERNEL_TIMEOUT_MS)
        walk.seen("kernel idle")
        run_first_cell(walk, notebook)

        output = notebook.locator(".jp-OutputArea-output", has_text=GPU_OUTPUT).first
        expect(output).to_be_visible(timeout=KERNEL_TIMEOUT_MS)
        total_s = walk.elapsed()
        text = output.inner_text().strip()
        walk.seen(f"the output: {text}")
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "first-gpu-cell-failed.png"), full_page=True)
        print(walk.report(walk.elapsed()))
        raise
    finally:
        context.close()
        with fresh_hub.api() as api:
            known = api.get(f"/users/{USER}").status_code == 200
        if known:  # not when the walk failed before the login
            stop_server(fresh_hub, USER)

    report = walk.report(total_s)
    print(report)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "first-gpu-cell.txt").write_text(report + "\n")
    print(f"report: {ARTIFACTS / 'first-gpu-cell.txt'}")

    assert re.fullmatch(r"GPU \d+", text), text
    assert total_s < LIMIT_S, report
    assert walk.count("click") <= MAX_CLICKS, report

    deadline = time.monotonic() + 60
    while jobs := squeue(f"--user={USER}").strip():
        assert time.monotonic() < deadline, f"{USER}'s job was left behind:\n{jobs}"
        time.sleep(1)
