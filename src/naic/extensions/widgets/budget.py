"""ProjectBudget: GPU-hours used against each project's budget, from the hub."""

from __future__ import annotations

from datetime import datetime

import ipywidgets as w

from naic.extensions.sources.hubclient import HubClient, HubSource, ProjectUsage
from naic.extensions.widgets._parts import RowsPanel, bar_style, escape, labelled, number, show


def budget_text(p: ProjectUsage) -> str:
    """`12.5 of 100 GPU-hours used · 87.5 left · resets 1 Jan 2027`."""
    if p.gpu_hours is None:
        return f"{p.used:.1f} GPU-hours used; no budget limit"
    parts = [f"{p.used:.1f} of {number(p.gpu_hours)} GPU-hours used"]
    if p.left is not None:
        parts.append(f"{p.left:.1f} left")
    if p.resets:
        try:
            when = datetime.fromisoformat(p.resets.replace("Z", "+00:00"))
            parts.append(f"resets {when.day} {when:%b %Y}")
        except ValueError:
            pass
    return " · ".join(parts)


class BudgetRow(w.VBox):
    def __init__(self, p: ProjectUsage):
        self.project = p
        self.title = labelled(
            w.HTML(f"<b>{escape(p.title)}</b> <code>{escape(p.name)}</code>"), "naic-budget-title"
        )
        budget = p.gpu_hours or 0.0
        self.bar = labelled(
            w.FloatProgress(
                value=min(p.used, budget) if budget else 0.0,
                min=0.0,
                max=budget or 1.0,
                bar_style=bar_style(p.used, budget),
            ),
            "naic-budget-bar",
        )
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
