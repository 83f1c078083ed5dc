"""BatchJob: run this notebook as a Slurm batch job, see the script first, follow the job.

The hub renders the job from the session (naic.hub.sessions.batch): the same site,
resources, environment and project, with the hours and GPUs the user types here. What the
hub refuses (hours or GPUs out of the resource's bounds, a budget spent) is its sentence.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import ipywidgets as w

from naic.extensions.session import SessionFacts
from naic.extensions.sources.hubclient import HubClient, HubError, HubSource
from naic.extensions.widgets._parts import FollowsJob, escape, labelled, show

FINAL = ("done", "failed")


def this_notebook(environ=os.environ, home: Path | None = None) -> str:
    """The notebook this kernel belongs to, relative to the home ("" when not known):
    JupyterLab tells the kernel its notebook's path in `JPY_SESSION_NAME`."""
    path = environ.get("JPY_SESSION_NAME", "")
    if not path.endswith(".ipynb"):
        return ""
    home = home or Path.home()
    try:
        return str(Path(path).resolve().relative_to(home.resolve()))
    except ValueError:
        return ""


def _number(text: str) -> float | str:
    """What the user typed, as a number where it is one; else as typed (the hub says why)."""
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


class BatchJob(FollowsJob, w.VBox):
    """Notebook, hours and GPUs; "Show the script", then "Submit"; the job's state until it
    ends, with the executed notebook's path."""

    def __init__(
        self,
        hub: HubClient | None = None,
        facts: SessionFacts | None = None,
        *,
        notebook: str | None = None,
        follow_every_s: float | None = 10.0,
    ):
        super().__init__()
        self.add_class("naic-batch")
        self.hub = hub if hub is not None else HubSource()
        facts = facts if facts is not None else SessionFacts.from_env(ask_scheduler=False)
        self.site = facts.site
        self.follow_every_s = follow_every_s
        self.notebook = labelled(
            w.Text(value=this_notebook() if notebook is None else notebook, description="Notebook"),
            "naic-batch-notebook",
        )
        self.hours = labelled(
            w.Text(value=f"{facts.hours:g}", description="Hours"), "naic-batch-hours"
        )
        self.gpus = labelled(w.Text(value=str(facts.gpus), description="GPUs"), "naic-batch-gpus")
        self.preview_button = labelled(
            w.Button(description="Show the script", icon="file-text-o"), "naic-batch-preview"
        )
        self.submit_button = labelled(
            w.Button(description="Submit", button_style="primary", icon="play", disabled=True),
            "naic-batch-submit",
        )
        self.script = labelled(w.HTML(), "naic-batch-script")
        self.status = labelled(w.HTML(), "naic-batch-status")
        self.preview_button.on_click(lambda _: self.preview())
        self.submit_button.on_click(lambda _: self.submit())
        for field in (self.notebook, self.hours, self.gpus):  # a change needs a new look
            field.observe(lambda _: setattr(self.submit_button, "disabled", True), "value")
        self.children = [
            w.HTML(
                "<b>Run a notebook as a batch job</b>: it runs headless on the same site, "
                "resources and environment, and the executed copy is saved next to it."
            ),
            self.notebook,
            w.HBox([self.hours, self.gpus]),
            w.HBox([self.preview_button, self.submit_button]),
            self.script,
            self.status,
        ]
        self.job: dict | None = None
        self._stop = threading.Event()
        show(self.status, False)

    def _options(self) -> dict:
        return {
            "hours": _number(self.hours.value.strip()),
            "gpus": _number(self.gpus.value.strip()),
        }

    def preview(self) -> None:
        try:
            shown = self.hub.batch(self.notebook.value, **self._options())
        except HubError as exc:
            self.script.value = ""
            self.submit_button.disabled = True
            return self._say(f"⚠ {escape(exc)}", error=True)
        self.script.value = (
            f"<pre class='naic-batch-script-text'>{escape(shown['script'])}</pre>"
            f"The executed notebook will be <code>~/{escape(shown['output'])}</code>."
        )
        self.submit_button.disabled = False
        self._say("")

    def submit(self) -> None:
        if self.submit_button.disabled:
            return  # only what was shown is submitted
        self.submit_button.disabled = True
        try:
            self.job = self.hub.batch(self.notebook.value, submit=True, **self._options())
        except HubError as exc:
            return self._say(f"⚠ {escape(exc)}", error=True)
        self._say(f"Job {escape(self.job['job_id'])}: submitted.")
        if self.follow_every_s:
            threading.Thread(target=self._follow, daemon=True).start()

    def check(self) -> str:
        """Ask the hub once where the job stands; its state (queued, running, done, failed)."""
        if self.job is None:
            return ""
        try:
            got = self.hub.batch_state(self.job["site"], self.job["job_id"])
        except HubError as exc:
            self._say(f"Job {escape(self.job['job_id'])}: {escape(exc)}")
            return "unknown"
        words = f"Job {escape(self.job['job_id'])}: {escape(got['words'])}"
        if got["state"] in FINAL:
            words += f". The executed notebook: <code>~/{escape(self.job['output'])}</code>"
            if got["state"] == "failed":
                words += f"; the log: <code>{escape(self.job['log'])}</code>"
        self._say(words, error=got["state"] == "failed")
        return got["state"]

    def _follow(self) -> None:
        while not self._stop.is_set():
            if self.check() in FINAL:
                return
            self._stop.wait(self.follow_every_s)
