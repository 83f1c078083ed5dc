"""Small pieces the widgets share: numbers in words, bars that screen readers read, the
site's help links, showing and hiding, and the panel of rows with a Refresh button that the
budget and storage widgets both are."""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import ipywidgets as w

from naic.extensions.session import SessionFacts


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


def fullness(used: float, limit: float | None, *, nearly: str, over: str) -> str:
    """The warning a bar's colour gives, in words (red from 90 %): `nearly`, `over` (above the
    limit) or "" (colour is never the only sign)."""
    if not limit:
        return ""
    share = used / limit
    return over if share > 1 else nearly if share >= 0.9 else ""


def percent(used: float, limit: float) -> int:
    return round(used / limit * 100) if limit else 0


#: The bar's fill for each `bar_style`: dark enough for 3:1 against the light track.
FILLS = {"": "#1565c0", "success": "#2e7d32", "warning": "#a35200", "danger": "#c62828"}


def _aria_number(x: float) -> str:
    r = round(float(x), 1)
    return str(int(r)) if r.is_integer() else str(r)


def bar_html(now: float | None, maximum: float, *, name: str, words: str, style: str = "") -> str:
    """Pure: a bar that screen readers read as one (ipywidgets' FloatProgress is a bare
    div): `role="progressbar"` with its numbers (aria-valuenow within 0..maximum; none when
    `now` is unknown, an indeterminate bar), its name (aria-label) and its value in words
    (aria-valuetext, also the tooltip). The fill inside is drawn, not read."""
    maximum = maximum if maximum > 0 else 1.0
    shown = min(max(now or 0.0, 0.0), maximum)
    value = "" if now is None else f' aria-valuenow="{_aria_number(shown)}"'
    return (
        f'<div class="naic-bar" role="progressbar" aria-label="{escape(name)}"{value} '
        f'aria-valuemin="0" aria-valuemax="{_aria_number(maximum)}" '
        f'aria-valuetext="{escape(words)}" title="{escape(words)}" style="display: '
        "inline-block; box-sizing: border-box; width: 200px; height: 14px; margin: 0 8px 0 0; "
        "vertical-align: middle; background: #e8e8e8; border: 1px solid #6e6e6e; "
        'border-radius: 3px; overflow: hidden"><div class="naic-bar-fill" style="width: '
        f'{shown / maximum * 100:.0f}%; height: 100%; background: {FILLS.get(style, FILLS[""])}">'
        "</div></div>"
    )


class Bar(w.HTML):
    """A usage bar as HTML (`bar_html`): `bar_now`, `bar_max`, `bar_style` and `bar_words`
    are what it shows now; `set` changes them."""

    def __init__(self, css: str, name: str = "") -> None:
        super().__init__()
        self.add_class(css)
        self.bar_name, self.bar_now, self.bar_max = name, None, 1.0
        self.bar_style, self.bar_words = "", ""

    def set(
        self,
        now: float | None,
        maximum: float,
        words: str,
        style: str = "",
        name: str | None = None,
    ) -> None:
        if name is not None:
            self.bar_name = name
        self.bar_now, self.bar_max, self.bar_style, self.bar_words = now, maximum, style, words
        self.value = bar_html(now, maximum, name=self.bar_name, words=words, style=style)


def help_html(
    docs_url: str | None, support_url: str | None, facts: dict[str, str] | None = None
) -> str:
    """Pure: "Site documentation · Report a problem", the links the site's catalogue names
    ("" when it names none). A `mailto:` report says `facts` (site, resource, job) in its
    subject and body, so support knows which session without asking."""
    links = []
    if docs_url:
        links.append(f'<a href="{escape(docs_url)}" target="_blank" rel="noopener" '
                     'style="text-decoration: underline">Site documentation</a>')  # fmt: skip
    if support_url:
        href = support_url
        if support_url.startswith("mailto:") and facts:
            site = facts.get("Site", "")
            subject = f"naic-hub: a problem in a session at {site}" if site else "naic-hub"
            body = "".join(f"{k}: {v}\n" for k, v in facts.items() if v) + "\nWhat happened:\n"
            joiner = "&" if "?" in support_url else "?"
            href += f"{joiner}subject={quote(subject)}&body={quote(body)}"
        links.append(f'<a href="{escape(href)}" target="_blank" rel="noopener" '
                     'style="text-decoration: underline">Report a problem</a>')  # fmt: skip
    return " · ".join(links)


def session_help_html(facts: SessionFacts) -> str:
    """Pure: `help_html` for a session's facts, which its report names."""
    if not facts.is_naic:
        return ""
    about = {
        "Site": facts.site_title,
        "Resource": f"{facts.resource_title} ({facts.resources_text()})",
        "Job": facts.job_id or "",
    }
    return help_html(facts.docs_url, facts.support_url, about)


def this_session() -> SessionFacts:
    """This session's facts from `NAIC_SESSION`, with its Slurm job (no scheduler asked)."""
    facts = SessionFacts.from_env(ask_scheduler=False)
    job = os.environ.get("SLURM_JOB_ID")
    return dataclasses.replace(facts, job_id=job) if facts.is_naic and job else facts


class FollowsJob:
    """Mixed into a widget (first) that follows a job in a thread until `_stop` is set, and
    says where it stands in its `status` HTML: an error as an alert, which screen readers
    read out at once, anything else as a status."""

    status: w.HTML
    _stop: Any  # a threading.Event

    def close(self) -> None:
        self._stop.set()
        super().close()

    def _say(self, html: str, *, error: bool = False) -> None:
        role = "alert" if error else "status"
        self.status.value = f"<span role='{role}'>{html}</span>" if html else ""
        show(self.status, bool(html))


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
    in `read()`. `footer`: widgets under the button (the site's help links)."""

    def __init__(
        self,
        source: Any,
        default: Callable[[], Any],
        *,
        css: str,
        heading: str,
        footer: list[w.Widget] | None = None,
    ):
        super().__init__()
        self.footer = list(footer or [])
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
        self.children = [
            self.heading,
            self.message,
            *self.rows.values(),
            self.refresh_button,
            *self.footer,
        ]
