"""StorageOverview: one bar per storage area, "12.3 of 20 GB", with the area's rules."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from naic.extensions import envs
from naic.extensions.session import SessionFacts
from naic.extensions.sources.storage import LocalStorageSource, StorageSource, StorageUsage
from naic.extensions.widgets._parts import RowsPanel, bar_style, escape, labelled, number, show
from naic.extensions.widgets.environments import environments_html


def default_storage_source() -> StorageSource:
    """This session's areas from `NAIC_SESSION`, measured here as the session's user."""
    import getpass

    facts = SessionFacts.from_env(ask_scheduler=False)
    return LocalStorageSource(facts.storage, getpass.getuser())


def usage_text(u: StorageUsage) -> str:
    """What the label beside the bar says."""
    if not u.available:
        return u.note or "not available here"
    used = f"{u.used_gb:.1f}"
    if u.limit_gb is None:
        return f"{used} GB used, no quota"
    # In words too, not only the bar's colour.
    full = u.used_gb / u.limit_gb if u.limit_gb else 0.0
    words = " — over the quota" if full > 1 else " — nearly full" if full >= 0.9 else ""
    if u.scope == "file system":
        return f"{used} of {number(u.limit_gb)} GB used on the shared file system{words}"
    return f"{used} of {number(u.limit_gb)} GB{words}"


def notes_text(u: StorageUsage) -> str:
    notes = []
    if u.area.read_only:
        notes.append("read-only")
    if u.area.purge_days:
        notes.append(f"files not used for {u.area.purge_days} days are deleted")
    return "; ".join(notes)


class StorageRow(w.VBox):
    def __init__(self, usage: StorageUsage):
        area = usage.area
        self.usage = usage
        self.title = labelled(
            w.HTML(f"<b>{escape(area.title)}</b> <code>{escape(area.path)}</code>"),
            "naic-storage-title",
        )
        limit = usage.limit_gb or 0.0
        used = usage.used_gb or 0.0
        self.bar = labelled(
            w.FloatProgress(
                value=min(used, limit) if limit else 0.0,
                min=0.0,
                max=limit or 1.0,
                bar_style=bar_style(used, limit),
            ),
            "naic-storage-bar",
        )
        self.label = labelled(w.Label(usage_text(usage)), "naic-storage-label")
        self.notes = labelled(w.Label(notes_text(usage)), "naic-storage-notes")
        show(self.bar, usage.available and bool(usage.limit_gb))
        show(self.notes, bool(self.notes.value))
        super().__init__([self.title, w.HBox([self.bar, self.label]), self.notes])
        self.add_class("naic-storage-area")
        if not usage.available:
            self.add_class("naic-storage-unavailable")


class StorageOverview(RowsPanel):
    """Usage against quota for each storage area of this session, and the user's own
    environments (what they hold and where)."""

    def __init__(
        self,
        source: StorageSource | None = None,
        environments: Callable[[], list[dict]] = envs.listed,
    ):
        self.environments = environments
        super().__init__(source, default_storage_source, css="naic-storage", heading="Storage")

    def read(self) -> tuple[dict[str, w.Widget], str]:
        rows: dict[str, w.Widget] = {u.area.name: StorageRow(u) for u in self.source.usage()}
        own = self.environments()
        if own:
            rows["environments"] = labelled(
                w.HTML("<b>Your environments</b><br>" + environments_html(own)),
                "naic-storage-environments",
            )
        return rows, "" if rows else "This session has no storage areas to show."
