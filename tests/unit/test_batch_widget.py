"""The batch-job form of the session panel, through the real hub client (its requests are
answered here as the hub answers them), and the panel's help links."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from urllib.parse import unquote

from naic.extensions.session import FixedSessionSource
from naic.extensions.sources.hubclient import FakeHubSource, HubSource
from naic.extensions.widgets import SessionPanel
from naic.extensions.widgets.batch_job import BatchJob, this_notebook
from naic.extensions.widgets.session_panel import help_links
from tests.unit.test_widgets import NOON, by_class, saga_facts, text

ENV = {
    "JUPYTERHUB_API_URL": "http://hub/hub/api",
    "JUPYTERHUB_API_TOKEN": "t0ken",
    "JUPYTERHUB_USER": "ola",
}
REFUSAL = '"hours" must be a number from 0.25 to 24 for NVIDIA A100 at Saga (Sigma2); you sent 99.'


class Hub:
    """Answers the batch API as naic.hub.sessions.batch does; records what was sent."""

    def __init__(self, states: list[str]) -> None:
        self.sent: list[tuple[str, str, dict | None]] = []
        self.states = states

    def __call__(self, req, timeout_s: float) -> tuple[int, bytes]:
        body = json.loads(req.data) if req.data else None
        self.sent.append((req.get_method(), req.full_url, body))
        assert req.headers["Authorization"] == "token t0ken"
        if req.get_method() == "GET":
            state = self.states.pop(0)
            return 200, json.dumps({"state": state, "words": state}).encode()
        if body["hours"] == 99:
            return 400, json.dumps({"status": 400, "message": REFUSAL}).encode()
        answer = {
            "script": "#!/bin/bash\n#SBATCH --job-name=naic-batch\n",
            "output": "train.batch-JOBID.ipynb",
            "log": "/home/ola/.naic-batch-JOBID.log",
            "site": "saga",
        }
        if body["submit"]:
            answer |= {"job_id": "77", "output": "train.batch-77.ipynb"}
            return 201, json.dumps(answer).encode()
        return 200, json.dumps(answer).encode()


def form(hub: Hub) -> BatchJob:
    return BatchJob(
        HubSource(ENV, transport=hub), saga_facts(), notebook="train.ipynb", follow_every_s=None
    )


def test_the_script_is_shown_before_anything_is_submitted() -> None:
    hub = Hub(["running", "done"])
    job = form(hub)
    assert (job.hours.value, job.gpus.value) == ("4", "1")  # the session's
    assert job.submit_button.disabled
    job.submit()
    assert hub.sent == []  # nothing submitted before the script was shown
    job.hours.value = "1.5"
    job.preview()
    assert "#SBATCH --job-name=naic-batch" in text(job.script)
    assert "~/train.batch-JOBID.ipynb" in text(job.script)
    assert hub.sent[-1] == (
        "POST",
        "http://hub/hub/api/naic/users/ola/batch",
        {"notebook": "train.ipynb", "submit": False, "hours": 1.5, "gpus": 1},
    )
    job.submit()
    assert hub.sent[-1][2]["submit"] is True
    assert text(job.status) == "Job 77: submitted."
    assert job.check() == "running"
    assert job.check() == "done"
    assert hub.sent[-1][:2] == ("GET", "http://hub/hub/api/naic/users/ola/batch/saga/77")
    assert "The executed notebook: ~/train.batch-77.ipynb" in text(job.status)


def test_a_refused_change_says_the_forms_sentence_and_cannot_be_submitted() -> None:
    job = form(Hub([]))
    job.preview()
    job.hours.value = "99"  # a change after the preview needs a new look
    assert job.submit_button.disabled
    job.preview()
    assert html.unescape(text(job.status)) == f"⚠ {REFUSAL}"
    assert job.submit_button.disabled and job.script.value == ""


def test_the_notebook_is_the_kernels_own(tmp_path: Path) -> None:
    book = tmp_path / "work" / "train.ipynb"
    assert this_notebook({"JPY_SESSION_NAME": str(book)}, home=tmp_path) == "work/train.ipynb"
    assert this_notebook({"JPY_SESSION_NAME": "/elsewhere/x.ipynb"}, home=tmp_path) == ""
    assert this_notebook({}, home=tmp_path) == ""


def test_the_panel_offers_batch_jobs_on_slurm_sites_only() -> None:
    p = SessionPanel(
        FixedSessionSource(saga_facts()), FakeHubSource(), clock=lambda: NOON, refresh_every_s=None
    )
    assert by_class(p, "naic-session-batch")
    assert not by_class(p, "naic-batch")
    assert isinstance(p.open_batch_job(), BatchJob) and by_class(p, "naic-batch")
    local = dataclasses.replace(saga_facts(), backend="local")
    q = SessionPanel(
        FixedSessionSource(local), FakeHubSource(), clock=lambda: NOON, refresh_every_s=None
    )
    assert not by_class(q, "naic-session-batch")


def test_help_links_name_the_site_and_prefill_the_report() -> None:
    facts = dataclasses.replace(
        saga_facts(),
        docs_url="https://documentation.sigma2.no/",
        support_url="mailto:support@nris.no",
        job_id="4242",
    )
    links = help_links(facts)
    assert "hub/naic/help" in links and "https://documentation.sigma2.no/" in links
    report = unquote(links.split("mailto:")[1].split("'")[0])
    assert report.startswith("support@nris.no?subject=naic-hub: a problem in a session at Saga")
    assert "Job: 4242" in report and "NVIDIA A100" in report
    assert "Report a problem" not in help_links(saga_facts())  # no support link known
