"""DataStaging: copy one of the site's datasets to fast storage, here or as a Slurm job,
with a progress bar, and say where the copy is (naic.extensions.data, data_jobs).

The datasets are the hub's (those this user may read that live at this session's site);
the destinations are the session's writable storage areas. "Copy here" copies in this
kernel's background; "As a Slurm job" (Slurm sessions) submits the copy as its own job and
follows it every few seconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import ipywidgets as w

from naic.extensions import data, data_jobs
from naic.extensions.session import SessionFacts
from naic.extensions.sources.hubclient import HubError, HubSource
from naic.extensions.widgets._parts import Bar, FollowsJob, escape, labelled, show

PERCENT = re.compile(r"\((\d+) %\)")


class DataStaging(FollowsJob, w.VBox):
    def __init__(
        self,
        hub=None,
        facts: SessionFacts | None = None,
        *,
        follow_every_s: float = 5.0,
        follow: Callable[[str], tuple[str, bool]] = data_jobs.follow,
    ):
        super().__init__()
        self.add_class("naic-data-staging")
        self.hub = hub if hub is not None else HubSource()
        self.facts = facts if facts is not None else SessionFacts.from_env(ask_scheduler=False)
        self.follow_every_s, self._follow_job = follow_every_s, follow
        self.datasets = labelled(w.Dropdown(description="Dataset"), "naic-data-dataset")
        areas = [a.name for a in self.facts.storage if not a.read_only]
        self.to = labelled(
            w.Dropdown(options=areas, value="scratch" if "scratch" in areas else None,
                       description="To"),
            "naic-data-to",
        )  # fmt: skip
        self.here = labelled(
            w.Button(description="Copy here", button_style="primary", icon="download"),
            "naic-data-here",
        )
        self.as_job = labelled(
            w.Button(description="As a Slurm job", icon="server"), "naic-data-job"
        )
        self.bar = Bar("naic-data-bar", "Copy")
        self.status = labelled(w.HTML(), "naic-data-status")
        self.here.on_click(lambda _: self.copy_here())
        self.as_job.on_click(lambda _: self.submit())
        show(self.as_job, self.facts.backend == "slurm")
        self.children = [
            w.HTML("<b>Copy a dataset to fast storage</b> (checked against its manifest)"),
            w.HBox([self.datasets, self.to]),
            w.HBox([self.here, self.as_job]),
            self.bar,
            self.status,
        ]
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        show(self.bar, False)
        self.refresh()

    def refresh(self) -> None:
        try:
            offered = self.hub.datasets()["datasets"]
        except HubError as exc:
            return self._say(f"⚠ {escape(exc)}", error=True)
        here = [(f"{d['title']} ({d['name']})", d["name"]) for d in offered
                if d["may_read"] and d["site"] == self.facts.site]  # fmt: skip
        self.datasets.options = here
        self.datasets.value = here[0][1] if here else None
        if not here:
            self._say("No dataset you may read lives at this session's site.")

    def copy_here(self) -> threading.Thread | None:
        name, to = self.datasets.value, self.to.value
        if not name or not to:
            return self._say("Choose a dataset and where to copy it.")
        self.here.disabled = self.as_job.disabled = True
        self.thread = threading.Thread(target=self._copy, args=(name, to), daemon=True)
        self.thread.start()
        return self.thread

    def _copy(self, name: str, to: str) -> None:
        try:
            ds = self.hub.dataset(name)
            target = data.destination(to, name, {a.name: a.path for a in self.facts.storage})
            self._say(f"Copying {escape(ds['title'])} to <code>{escape(target)}</code>…")
            lines: list[str] = []
            data.copy_checked(ds["path"], target, name, ds.get("manifest"), lines.append,
                              on_progress=self._progress)  # fmt: skip
            self.bar.set(1, 1, "copied", name="Copy")
            self._say(f"Done: <code>{escape(target)}</code>. {escape(lines[-1])}. In code: "
                      f"<code>staged_path({name!r})</code>.")  # fmt: skip
        except (HubError, data.DataError) as exc:
            self._say(f"⚠ {escape(exc)}", error=True)
        finally:
            self.here.disabled = self.as_job.disabled = False

    def _progress(self, p: dict) -> None:
        show(self.bar, True)
        total = p["total_bytes"] or 1
        self.bar.set(p["bytes"], total, data.progress_words(p), name="Copy")

    def submit(self) -> str | None:
        name, to = self.datasets.value, self.to.value
        if not name or not to:
            return self._say("Choose a dataset and where to copy it.")
        try:
            ds = self.hub.dataset(name)
            areas = {a.name: a.path for a in self.facts.storage}
            argv = data_jobs.job_argv(ds["path"], data.destination(to, name, areas), name=name,
                                      manifest=ds.get("manifest"), facts=data_jobs.session(),
                                      hours=2.0)  # fmt: skip
            job = data_jobs.submit(argv)
        except (HubError, data.DataError, data_jobs.JobError) as exc:
            return self._say(f"⚠ {escape(exc)}", error=True)
        self._say(f"Job {escape(job)}: submitted.")
        self.thread = threading.Thread(target=self._follow, args=(job,), daemon=True)
        self.thread.start()
        return job

    def _follow(self, job: str) -> None:
        while not self._stop.is_set():
            words, over = self._follow_job(job)
            pct = PERCENT.search(words)
            if pct or over:
                show(self.bar, True)
                done = 100 if over and words.startswith("done") else int(pct.group(1)) if pct else 0
                self.bar.set(done, 100, words, name="Copy")
            self._say(f"Job {escape(job)}: {escape(words)}", error=words.startswith("failed"))
            if over:
                return
            self._stop.wait(self.follow_every_s)
