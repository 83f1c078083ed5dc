"""SessionPanel: where this session runs, what it has, how long it has left, and Stop."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import ClassVar

import ipywidgets as w

from naic.extensions.session import (
    EnvSessionSource,
    SessionSource,
    describe_time_left,
    session_notices,
)
from naic.extensions.sources.hubclient import HubClient, HubError, HubSource
from naic.extensions.widgets._parts import escape, labelled, session_help_html, show, visible
from naic.extensions.widgets.batch_job import BatchJob

log = logging.getLogger(__name__)
STOP_QUESTION = (
    "Stop this session now? Running kernels end and unsaved changes in open notebooks are lost."
)


def help_links(facts) -> str:
    """Pure: the hub's help page and the site's documentation and "report a problem" links
    (HTML; "" outside a session)."""
    if not facts.is_naic:
        return ""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    page = f"<a href='{escape(base)}hub/naic/help' target='_blank'>When things go wrong</a>"
    return "Help: " + " · ".join(x for x in (page, session_help_html(facts)) if x)


class SessionPanel(w.VBox):
    """The session's site and resources, time left, a Stop button with a confirmation step,
    and an "Ask for more time" area that appears only when the hub can extend sessions."""

    #: Panels of this kernel that refresh by themselves (at most one: the newest).
    _refreshing: ClassVar[weakref.WeakSet[SessionPanel]] = weakref.WeakSet()

    def __init__(
        self,
        source: SessionSource | None = None,
        hub: HubClient | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tz: tzinfo | None = None,
        refresh_every_s: float | None = 60.0,
    ):
        super().__init__()
        self.add_class("naic-session")
        self.source = source if source is not None else EnvSessionSource()
        self.hub = hub if hub is not None else HubSource()
        self.clock, self.tz = clock, tz
        #: The end the hub answered after an extension (the job-end source may lag a minute).
        self.extended_end: datetime | None = None
        self.extensions_left: int | None = None  # unknown until the hub answered once

        self.site = labelled(w.HTML(), "naic-session-site")
        self.resources = labelled(w.HTML(), "naic-session-resources")
        self.time_left = labelled(w.HTML(), "naic-session-time-left")
        #: The end is near, or the hub's culler will stop the session: said in words here.
        self.notice = labelled(w.HTML(), "naic-session-notice")
        self.refresh_button = labelled(
            w.Button(description="Refresh", icon="refresh"), "naic-session-refresh"
        )
        self.stop_button = labelled(
            w.Button(description="Stop this session", button_style="danger", icon="stop"),
            "naic-session-stop",
        )
        self.confirm_text = w.Label(STOP_QUESTION)
        self.confirm_button = labelled(
            w.Button(description="Yes, stop it", button_style="danger"), "naic-session-stop-confirm"
        )
        self.cancel_button = labelled(w.Button(description="Cancel"), "naic-session-stop-cancel")
        self.confirm_box = labelled(
            w.VBox([self.confirm_text, w.HBox([self.confirm_button, self.cancel_button])]),
            "naic-session-confirm",
        )
        self.status = labelled(w.Label(), "naic-session-status")
        self.extend_button = labelled(
            w.Button(description="Ask for more time", icon="clock-o"), "naic-session-extend-ask"
        )
        self.extend_box = labelled(
            w.VBox([w.Label("Need longer than planned?"), self.extend_button]),
            "naic-session-extend",
        )
        self.batch_button = labelled(
            w.Button(description="Run as batch job", icon="tasks"), "naic-session-batch"
        )
        self.batch_box = w.VBox()  # the BatchJob form, made at the first click
        self.help = labelled(w.HTML(), "naic-session-help")

        self.refresh_button.on_click(lambda _: self.refresh())
        self.stop_button.on_click(lambda _: self.ask_to_stop())
        self.cancel_button.on_click(lambda _: self.cancel_stop())
        self.confirm_button.on_click(lambda _: self.confirm_stop())
        self.extend_button.on_click(lambda _: self.ask_for_more_time())
        self.batch_button.on_click(lambda _: self.open_batch_job())
        show(self.confirm_box, False)
        show(self.status, False)

        self.children = [
            w.HTML("<h3>This session</h3>"),
            self.site,
            self.resources,
            self.time_left,
            self.notice,
            w.HBox([self.refresh_button, self.stop_button, self.batch_button]),
            self.confirm_box,
            self.status,
            self.extend_box,
            self.batch_box,
            self.help,
        ]
        show(self.notice, False)
        self.refresh()
        self._stop_refreshing = threading.Event()
        if refresh_every_s:  # notices must appear without a click
            # A cell run again makes a new panel without closing the old one: only the
            # newest refreshes, so re-runs never pile up squeue calls.
            for older in list(SessionPanel._refreshing):
                older._stop_refreshing.set()
            SessionPanel._refreshing.add(self)
            threading.Thread(target=self._keep_fresh, args=(refresh_every_s,), daemon=True).start()

    def _keep_fresh(self, every_s: float) -> None:
        while not self._stop_refreshing.wait(every_s):
            try:
                self.refresh()
            except Exception:  # a failed refresh must not end the loop
                log.exception("Session panel refresh failed")

    def close(self) -> None:
        for job in self.batch_box.children:
            job.close()
        if hasattr(self, "_stop_refreshing"):
            self._stop_refreshing.set()
        SessionPanel._refreshing.discard(self)
        super().close()

    @property
    def refreshing(self) -> bool:
        """Whether this panel still refreshes by itself."""
        return not self._stop_refreshing.is_set() and self in SessionPanel._refreshing

    def _notices(self, facts, can_extend: bool) -> list[dict]:
        ask = getattr(self.hub, "activity", None)
        hub_notices = []
        if ask is not None and facts.is_naic:
            try:
                hub_notices = ask()["notices"]
            except HubError:
                pass  # the hub is away; the session's own end is still known
        return session_notices(facts, hub_notices, self.clock(), can_extend=can_extend)

    def refresh(self) -> None:
        facts = self.source.facts()
        if self.extended_end and (facts.ends_at is None or facts.ends_at < self.extended_end):
            facts = dataclasses.replace(facts, ends_at=self.extended_end)
        show(self.stop_button, facts.is_naic)
        show(self.batch_button, facts.is_naic and facts.backend == "slurm")
        self.help.value = help_links(facts)
        can_extend = bool(getattr(self.hub, "can_extend", False)) and self.extensions_left != 0
        show(self.extend_box, facts.is_naic and can_extend)
        notices = self._notices(facts, can_extend)
        self.notice.value = "<br>".join(f"⚠ {escape(n['text'])}" for n in notices)
        show(self.notice, bool(notices))
        if not facts.is_naic:
            self.site.value = escape(facts.reason)
            self.resources.value = ""
            self.time_left.value = ""
            return
        site = f"<b>{escape(facts.site_title)}</b>"
        if facts.project:
            site += f" · project {escape(facts.project_title or facts.project)}"
        self.site.value = site
        self.resources.value = (
            f"{escape(facts.resource_title)} · {escape(facts.resources_text())} · "
            f"{escape(facts.environment_title)}"
        )
        left = facts.time_left(self.clock())
        words = describe_time_left(left)
        if facts.ends_at is None:
            self.time_left.value = "Time left: unknown"
        elif words == "ended":
            self.time_left.value = "The session's time is up."
        else:
            end = facts.ends_at.astimezone(self.tz).strftime("%H:%M %Z").strip()
            self.time_left.value = f"<b>{words}</b> left (ends at {escape(end)})"

    def open_batch_job(self) -> BatchJob:
        """Show the batch-job form for this notebook (made once, then shown again)."""
        if not self.batch_box.children:
            facts = self.source.facts()
            self.batch_box.children = [BatchJob(hub=self.hub, facts=facts)]
        show(self.batch_box, True)
        return self.batch_box.children[0]

    def ask_to_stop(self) -> None:
        show(self.confirm_box, True)
        show(self.stop_button, False)

    def cancel_stop(self) -> None:
        show(self.confirm_box, False)
        show(self.stop_button, True)

    def confirm_stop(self) -> None:
        if not visible(self.confirm_box):
            return  # only after the question was asked
        show(self.confirm_box, False)
        try:
            self.hub.stop_server()
        except HubError as exc:
            self._say(str(exc))
            show(self.stop_button, True)
            return
        self._say("Stopping… this page will lose its connection in a moment.")

    def ask_for_more_time(self) -> None:
        extend = getattr(self.hub, "extend", None)
        if extend is None:
            return
        try:
            got = extend()
        except HubError as exc:
            self._say(str(exc))
            return
        if got.ends_at is None:
            said = "The session was extended."
        else:
            self.extended_end = got.ends_at
            end = got.ends_at.astimezone(self.tz).strftime("%H:%M %Z").strip()
            said = f"Extended: the session now ends at {end}."
        self.extensions_left = got.extensions_left
        if got.extensions_left == 0:
            said += " That was the last extension this resource allows."
        self.refresh()
        self._say(said)

    def _say(self, text: str) -> None:
        self.status.value = text
        show(self.status, bool(text))
