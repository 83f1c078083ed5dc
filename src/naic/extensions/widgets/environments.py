"""OwnEnvironments: the user's own environments (kernels), and a form that makes one on top
of a site module, installs packages into it and registers it, in one step."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from naic.extensions import envs
from naic.extensions.kernels import catalogue_kernels
from naic.extensions.widgets._parts import escape, labelled


def module_choices(environ: dict[str, str]) -> list[str]:
    """The modules this session's catalogue environments load, to build on."""
    found: list[str] = []
    for k in catalogue_kernels(environ)[0]:
        found += [m for m in k.modules if m not in found]
    return found


def folder_mb(path: str) -> float | None:
    """Size of a folder in MB (None when it is gone)."""
    if not Path(path).is_dir():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 1e6


def environments_html(listed: list[dict]) -> str:
    """Pure: one line per environment: name, modules, size, folder."""
    if not listed:
        return "You have no environments of your own yet."
    lines = []
    for e in listed:
        size = folder_mb(e["path"])
        where = (
            f"{size:.0f} MB in <code>{escape(e['path'])}</code>"
            if size is not None
            else (f"<b>missing</b>: <code>{escape(e['path'])}</code>")
        )
        mods = escape(", ".join(e["modules"]) or "no modules")
        lines.append(f"<b>{escape(e['name'])} (own)</b> — {mods} — {where}")
    return "<br>".join(lines)


class OwnEnvironments(w.VBox):
    """List, create and remove the user's own environments."""

    def __init__(
        self,
        lister: Callable[[], list[dict]] = envs.listed,
        creator: Callable[[str, list[str], list[str], Path], Path] = envs.create,
        modules: list[str] | None = None,
    ):
        super().__init__()
        self.add_class("naic-envs")
        self.lister, self.creator = lister, creator
        mods = module_choices(dict(os.environ)) if modules is None else modules
        # Each field has a label (its description), not only a placeholder: screen readers.
        self.name = labelled(
            w.Text(description="Name", placeholder="a name, e.g. thesis"), "naic-envs-name"
        )
        self.module = labelled(
            w.Dropdown(options=[("no module", ""), *((m, m) for m in mods)], description="On"),
            "naic-envs-module",
        )
        self.packages = labelled(
            w.Text(
                description="Packages",
                placeholder="packages for pip, e.g. seaborn transformers==4.40",
            ),
            "naic-envs-packages",
        )
        self.create_button = labelled(
            w.Button(description="Create and add as a kernel", icon="plus"), "naic-envs-create"
        )
        self.create_button.on_click(lambda _: self.create())
        self.status = labelled(w.HTML(), "naic-envs-status")
        self.table = labelled(w.HTML(), "naic-envs-list")
        self.children = [
            w.HTML("<h3>Your environments</h3>"),
            self.table,
            w.HBox([self.name, self.module]),
            self.packages,
            self.create_button,
            self.status,
        ]
        self.refresh()

    def refresh(self) -> None:
        self.table.value = environments_html(self.lister())

    def create(self) -> None:
        name = self.name.value.strip()
        modules = [self.module.value] if self.module.value else []
        self.status.value = f"Creating {escape(name)}… (installing packages can take minutes)"
        self.create_button.disabled = True
        try:
            target = self.creator(
                name, modules, self.packages.value.split(), Path.home() / ".naic" / "envs"
            )
        except envs.EnvError as exc:
            self.status.value = f"<span class='naic-envs-error'>{escape(exc)}</span>"
        else:
            self.status.value = (
                f"{escape(name)} is ready in <code>{escape(target)}</code>: choose the kernel "
                f"<b>{escape(name)} (own)</b> (it is there in your next sessions too)."
            )
        finally:
            self.create_button.disabled = False
            self.refresh()
