""" "Run as batch job" from the session panel, in JupyterLab in Chromium: a hostile change of
hours or GPUs is refused with the spawn form's sentence, the script is shown before anything
is queued, and the panel follows the job until it is done and names its output notebook."""

from __future__ import annotations

import pwd
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import ARTIFACTS, log_in, start_session, stop_server
from tests.browser.test_onboarding import run_all
from tests.hub_process import Hub
from tests.integration.helpers import squeue

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SESSION = {"site": "testcluster", "resource": "a100", "gpus": 1, "hours": 1, "project": "demo"}
NOTEBOOK = "batch-hello.ipynb"
CELLS = [
    "from naic.extensions.widgets import SessionPanel\nSessionPanel()",
    "import os\nprint('batch job sees GPU', os.environ.get('CUDA_VISIBLE_DEVICES'),"
    " 'NAIC_BATCH', os.environ.get('NAIC_BATCH'))",
]


def write_notebook(home: Path) -> None:
    """The notebook alice works on, written by alice."""
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    code = "import sys, nbformat; nbformat.write(nbformat.reads(sys.stdin.read(), 4), sys.argv[1])"
    subprocess.run(
        ["runuser", "-u", "alice", "--", sys.executable, "-c", code, str(home / NOTEBOOK)],
        input=nbformat.writes(book),
        text=True,
        check=True,
    )


def test_run_as_batch_job_from_the_session_panel(slurm_hub: Hub, browser: Browser) -> None:
    home = Path(pwd.getpwnam("alice").pw_dir)
    write_notebook(home)
    for old in home.glob("batch-hello.batch-*.ipynb"):
        old.unlink()
    start_session(slurm_hub, "alice", SESSION)

    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    try:
        log_in(page, slurm_hub, "alice")
        page.goto(slurm_hub.url + f"user/alice/lab/workspaces/batch/tree/{NOTEBOOK}")
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        expect(notebook).to_be_visible(timeout=120_000)
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_visible(
            timeout=60_000
        )
        run_all(page, notebook)
        panel = notebook.locator(".naic-session").first
        expect(panel).to_be_visible(timeout=60_000)
        panel.get_by_role("button", name="Run as batch job").click()
        form = panel.locator(".naic-batch")
        expect(form).to_be_visible()
        expect(form.locator(".naic-batch-notebook input")).to_have_value(NOTEBOOK)
        expect(form.locator(".naic-batch-hours input")).to_have_value("1")
        submit = form.get_by_role("button", name="Submit")
        expect(submit).to_be_disabled()  # nothing is queued before the script was shown

        # A hostile edit: the spawn form's own sentence, and still nothing to submit.
        status = form.locator(".naic-batch-status")
        form.locator(".naic-batch-hours input").fill("100")
        form.get_by_role("button", name="Show the script").click()
        expect(status).to_contain_text(
            '"hours" must be a number of hours between 1/60 (one minute) and 24 for '
            "NVIDIA A100 (fake) at Test cluster"
        )
        form.locator(".naic-batch-hours input").fill("0.1")
        form.locator(".naic-batch-gpus input").fill("9")
        form.get_by_role("button", name="Show the script").click()
        expect(status).to_contain_text('"gpus" must be')
        expect(submit).to_be_disabled()
        assert squeue("--user=alice", "--name=naic-batch") == ""

        form.locator(".naic-batch-gpus input").fill("1")
        form.get_by_role("button", name="Show the script").click()
        script = form.locator(".naic-batch-script")
        expect(script).to_contain_text("#SBATCH --gres=gpu:a100:1")
        expect(script).to_contain_text("#SBATCH --time=0:06:00")
        expect(script).to_contain_text(f"exec python -m naic.extensions.batch run {NOTEBOOK}")
        expect(submit).to_be_enabled()
        submit.click()
        expect(status).to_contain_text(re.compile(r"Job \d+: "))  # submitted, queued, …
        job = re.search(r"Job (\d+)", status.inner_text()).group(1)
        expect(status).to_contain_text(f"Job {job}: done: every cell ran", timeout=180_000)
        expect(status).to_contain_text(f"~/batch-hello.batch-{job}.ipynb")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "batch-export.png"))

        output = nbformat.read(home / f"batch-hello.batch-{job}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for o in output.cells[1].outputs)
        assert printed.startswith("batch job sees GPU ") and "NAIC_BATCH 1" in printed
    finally:
        context.close()
        subprocess.run(["scancel", "--user=alice", "--name=naic-batch"], check=False)
        stop_server(slurm_hub, "alice")
