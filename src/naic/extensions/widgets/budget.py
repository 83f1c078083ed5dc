"""ProjectBudget: GPU-hours used against each project's budget, from the hub."""

from __future__ import annotations

from datetime import datetime

import ipywidgets as w

from naic.extensions.sources.hubclient import HubClient, HubSource, ProjectUsage
from naic.extensions.widgets._parts import (
    Bar,
    RowsPanel,
    bar_style,
    escape,
    fullness,
    labelled,
    number,
    percent,
    show,
)


def warning(p: ProjectUsage) -> str:
    """The bar's red in words: "nearly used up" from 90 %, "used up" from 100 %."""
    if p.gpu_hours is None:
        return ""
    if p.gpu_hours and p.used >= p.gpu_hours:
        return "used up"
    return fullness(p.used, p.gpu_hours, nearly="nearly used up", over="used up")


def budget_text(p: ProjectUsage) -> str:
    """`12.5 of 100 GPU-hours used · 87.5 left · resets 1 Jan 2027`, and "— nearly used up"
    or "— used up" where the bar is red."""
    if p.gpu_hours is None:
        return f"{p.used:.1f} GPU-hours used; no budget limit"
    used = f"{p.used:.1f} of {number(p.gpu_hours)} GPU-hours used"
    parts = [f"{used} — {warning(p)}" if warning(p) else used]
    if p.left is not None:
        parts.append(f"{p.left:.1f} left")
    if p.resets:
        try:
            when = datetime.fromisoformat(p.resets.replace("Z", "+00:00"))
            parts.append(f"resets {when.day} {when:%b %Y}")
        except ValueError:
            pass
    return " · ".join(parts)


def bar_words(p: ProjectUsage) -> str:
    """What a screen reader says of the bar: `12.5 of 1000 GPU-hours used, 1 %`."""
    budget = p.gpu_hours or 0.0
    words = f"{p.used:.1f} of {number(budget)} GPU-hours used, {percent(p.used, budget)} %"
    return f"{words}, {warning(p)}" if warning(p) else words


class BudgetRow(w.VBox):
    def __init__(self, p: ProjectUsage):
        self.project = p
        self.title = labelled(
            w.HTML(f"<b>{escape(p.title)}</b> <code>{escape(p.name)}</code>"), "naic-budget-title"
        )
        budget = p.gpu_hours or 0.0
        self.bar = Bar("naic-budget-bar", f"GPU-hours of project {p.title} ({p.name})")
        if p.gpu_hours is not None:
            self.bar.set(p.used, budget, bar_words(p), bar_style(p.used, budget))
        self.label = labelled(w.Label(budget_text(p)), "naic-budget-label")
        mine = "" if p.mine is None else f"{p.mine:.1f} GPU-hours of it are yours"
        self.mine = labelled(w.Label(mine), "naic-budget-mine")
        show(self.bar, p.gpu_hours is not None)
        show(self.mine, bool(mine))
        super().__init__([self.title, w.HBox([self.bar, self.label]), self.mine])
        self.add_class("naic-budget-project")


class ProjectBudget(RowsPanel):
    """One bar per project the user may charge: used vs budget this period."""

    def __init__(self, source: HubClient | None = None):
        super().__init__(source, HubSource, css="naic-budget", heading="GPU-hour budgets")

    def read(self) -> tuple[dict[str, BudgetRow], str]:
        budgets = self.source.budget()
        if not budgets.available:
            return {}, escape(budgets.message)
        rows = {p.name: BudgetRow(p) for p in budgets.projects}
        if not rows:
            return rows, "You are in no project yet; your project leader can add you."
        return rows, ""
