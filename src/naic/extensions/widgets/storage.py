"""StorageOverview: one bar per storage area, "12.3 of 20 GB", with the area's rules."""

from __future__ import annotations

import os
from collections.abc import Callable

import ipywidgets as w

from naic.extensions import envs
from naic.extensions.session import SessionFacts
from naic.extensions.sources.storage import LocalStorageSource, StorageSource, StorageUsage
from naic.extensions.widgets._parts import (
    Bar,
    RowsPanel,
    bar_style,
    escape,
    fullness,
    labelled,
    number,
    percent,
    session_help_html,
    show,
    this_session,
)
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
    words = warning(u)
    words = f" — {words}" if words else ""
    if u.scope == "file system":
        return f"{used} of {number(u.limit_gb)} GB used on the shared file system{words}"
    return f"{used} of {number(u.limit_gb)} GB{words}"


def warning(u: StorageUsage) -> str:
    """The bar's red in words: "nearly full" from 90 %, "over the quota" above it."""
    return fullness(u.used_gb or 0.0, u.limit_gb, nearly="nearly full", over="over the quota")


def bar_words(u: StorageUsage) -> str:
    """What a screen reader says of the bar: `12.3 of 20 GB used, 62 %, nearly full`."""
    used, limit = u.used_gb or 0.0, u.limit_gb or 0.0
    where = " on the shared file system" if u.scope == "file system" else ""
    words = f"{used:.1f} of {number(limit)} GB used{where}, {percent(used, limit)} %"
    return f"{words}, {warning(u)}" if warning(u) else words


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
        self.bar = Bar("naic-storage-bar", f"{area.title} ({area.path}): storage used")
        if usage.available and limit:
            self.bar.set(used, limit, bar_words(usage), bar_style(used, limit))
        self.label = labelled(w.Label(usage_text(usage)), "naic-storage-label")
        self.notes = labelled(w.Label(notes_text(usage)), "naic-storage-notes")
        show(self.bar, usage.available and bool(usage.limit_gb))
        show(self.notes, bool(self.notes.value))
        super().__init__([self.title, w.HBox([self.bar, self.label]), self.notes])
        self.add_class("naic-storage-area")
        if not usage.available:
            self.add_class("naic-storage-unavailable")


def datasets_link(facts: SessionFacts) -> str:
    """Pure: the hub's datasets page (naic.hub.data), "" outside a hub's session."""
    if not facts.is_naic:
        return ""
    base = escape(os.environ.get("JUPYTERHUB_BASE_URL", "/"))
    return (
        f'<a href="{base}hub/naic/datasets" target="_blank" rel="noopener" '
        'style="text-decoration: underline">Datasets</a> (copy one here: '
        "<code>naic-data stage NAME</code>)"
    )


class StorageOverview(RowsPanel):
    """Usage against quota for each storage area of this session, the user's own
    environments (what they hold and where), and the site's help links (`facts`: this
    session's by default)."""

    def __init__(
        self,
        source: StorageSource | None = None,
        environments: Callable[[], list[dict]] = envs.listed,
        facts: SessionFacts | None = None,
    ):
        self.environments = environments
        facts = facts if facts is not None else this_session()
        links = " · ".join(x for x in (datasets_link(facts), session_help_html(facts)) if x)
        self.help = labelled(w.HTML(links), "naic-storage-help")
        show(self.help, bool(self.help.value))
        super().__init__(
            source,
            default_storage_source,
            css="naic-storage",
            heading="Storage",
            footer=[self.help],
        )

    def read(self) -> tuple[dict[str, w.Widget], str]:
        rows: dict[str, w.Widget] = {u.area.name: StorageRow(u) for u in self.source.usage()}
        own = self.environments()
        if own:
            rows["environments"] = labelled(
                w.HTML("<b>Your environments</b><br>" + environments_html(own)),
                "naic-storage-environments",
            )
        return rows, "" if rows else "This session has no storage areas to show."
