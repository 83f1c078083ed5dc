"""Small pieces the widgets share: numbers in words, bar colours, showing and hiding."""

from __future__ import annotations

import html

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
