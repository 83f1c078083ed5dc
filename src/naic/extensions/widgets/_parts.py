"""Small pieces the widgets share: numbers in words, bar colours, showing and hiding, and
the panel of rows with a Refresh button that the budget and storage widgets both are."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w


def number(x: float) -> str:
    """`20`, `19.5`, `457` (no trailing `.0`, one decimal below 100)."""
    if x >= 100 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.1f}"


def bar_style(used: float, limit: float | None) -> str:
    """Bootstrap style of a usage bar: red from 90 %, orange from 75 %."""
    if not limit:
        return ""
    share = used / limit
    return "danger" if share >= 0.9 else "warning" if share >= 0.75 else "success"


def show(widget: w.Widget, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"


def visible(widget: w.Widget) -> bool:
    return widget.layout.display != "none"


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def labelled(widget: w.DOMWidget, css: str) -> w.DOMWidget:
    widget.add_class(css)
    return widget


def close_tree(widget: w.Widget) -> None:
    """Close a widget and every widget inside it (the front end forgets them all)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


class RowsPanel(w.VBox):
    """A heading, a message, one row per item and a Refresh button, read again from
    `source` (`default()` when None) at each refresh. `css` names the panel and its parts
    (`{css}-message`, `{css}-refresh`); a subclass says what the rows and the message are
    in `read()`."""

    def __init__(self, source: Any, default: Callable[[], Any], *, css: str, heading: str):
        super().__init__()
        self.add_class(css)
        self.source = source if source is not None else default()
        self.rows: dict[str, w.Widget] = {}
        self.message = labelled(w.HTML(), f"{css}-message")
        self.refresh_button = labelled(
            w.Button(description="Refresh", icon="refresh"), f"{css}-refresh"
        )
        self.refresh_button.on_click(lambda _: self.refresh())
        self.heading = w.HTML(f"<h3>{escape(heading)}</h3>")
        self.refresh()

    def read(self) -> tuple[dict[str, w.Widget], str]:
        """The rows by name, and the message to show above them (HTML; "" for none)."""
        raise NotImplementedError

    def refresh(self) -> None:
        for row in self.rows.values():
            close_tree(row)
        self.rows, self.message.value = self.read()
        show(self.message, bool(self.message.value))
        self.children = [self.heading, self.message, *self.rows.values(), self.refresh_button]
