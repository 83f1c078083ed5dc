"""DaskLauncher: start, scale and stop a Dask cluster from buttons, with its dashboard link.

The cluster comes from a factory: any callable returning an object with `scale(n)`,
`close()` and `dashboard_link` (a dask-jobqueue cluster is one). The default factory is
`naic.extensions.dask.slurm_cluster`, imported when Start is pressed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import ipywidgets as w

from naic.extensions.widgets._parts import escape, labelled, show


def default_factory() -> Any:
    """A Dask cluster on this session's Slurm site (`naic.extensions.dask.slurm_cluster()`)."""
    return importlib.import_module("naic.extensions.dask").slurm_cluster()


def proxied_dashboard(link: str, environ: Mapping[str, str] | None = None) -> str:
    """The dashboard through the hub: `http://10.1.2.3:8787/status` becomes
    `/user/<name>/proxy/8787/status` (jupyter-server-proxy in this server). Outside a hub,
    the link as it is."""
    env = os.environ if environ is None else environ
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix or not link:
        return link
    url = urlparse(link)
    port = url.port or 8787
    path = url.path if url.path not in ("", "/") else "/status"
    return f"{prefix.rstrip('/')}/proxy/{port}{path}"


class DaskLauncher(w.VBox):
    """Buttons for a Dask cluster; `launcher.cluster` is what `Client(...)` connects to."""

    def __init__(
        self,
        factory: Callable[[], Any] | None = None,
        *,
        workers: int = 2,
        max_workers: int = 64,
        environ: Mapping[str, str] | None = None,
    ):
        super().__init__()
        self.add_class("naic-dask")
        self.factory = factory if factory is not None else default_factory
        self.environ = environ
        self.cluster: Any = None
        self.workers = labelled(
            w.BoundedIntText(value=workers, min=0, max=max_workers, description="Workers"),
            "naic-dask-workers",
        )
        self.start_button = labelled(
            w.Button(description="Start cluster", button_style="success", icon="play"),
            "naic-dask-start",
        )
        self.scale_button = labelled(
            w.Button(description="Scale", icon="arrows-v"), "naic-dask-scale"
        )
        self.stop_button = labelled(
            w.Button(description="Stop cluster", button_style="danger", icon="stop"),
            "naic-dask-stop",
        )
        self.status = labelled(w.HTML(), "naic-dask-status")
        self.dashboard = labelled(w.HTML(), "naic-dask-dashboard")
        self.start_button.on_click(lambda _: self.start())
        self.scale_button.on_click(lambda _: self.scale())
        self.stop_button.on_click(lambda _: self.stop())
        self.children = [
            w.HTML("<h3>Dask cluster</h3>"),
            self.workers,
            w.HBox([self.start_button, self.scale_button, self.stop_button]),
            self.status,
            self.dashboard,
        ]
        self.refresh()

    def start(self) -> None:
        if self.cluster is not None:
            return
        self._say("Starting the cluster…")
        try:
            self.cluster = self.factory()
            self.cluster.scale(self.workers.value)
        except Exception as exc:  # the user reads why; the notebook keeps running
            self.cluster = None
            self.refresh()
            self._say(f"The cluster did not start: {escape(exc)}")
            return
        self.refresh()

    def scale(self, n: int | None = None) -> None:
        if self.cluster is None:
            return
        if n is not None:
            self.workers.value = n
        try:
            self.cluster.scale(self.workers.value)
        except Exception as exc:
            self._say(f"Scaling failed: {escape(exc)}")
            return
        self.refresh()

    def stop(self) -> None:
        if self.cluster is None:
            return
        cluster, self.cluster = self.cluster, None
        try:
            cluster.close()
        except Exception as exc:
            self.refresh()
            self._say(f"The cluster did not stop cleanly: {escape(exc)}")
            return
        self.refresh()

    def refresh(self) -> None:
        running = self.cluster is not None
        self.start_button.disabled = running
        self.scale_button.disabled = not running
        self.stop_button.disabled = not running
        if not running:
            self._say("No cluster running.")
            self.dashboard.value = ""
        else:
            n = self.workers.value
            self._say(f"Running, {n} worker{'s' if n != 1 else ''} asked for.")
            link = proxied_dashboard(
                getattr(self.cluster, "dashboard_link", "") or "", self.environ
            )
            self.dashboard.value = (
                f'<a href="{escape(link)}" target="_blank">Dask dashboard</a>' if link else ""
            )
        show(self.dashboard, bool(self.dashboard.value))

    def _say(self, html: str) -> None:
        self.status.value = html
