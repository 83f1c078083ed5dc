"""GPUMonitor: per-GPU utilisation and memory bars, and a small plot of recent utilisation.

The plot is an inline SVG in an HTML widget: no plotting library in the session's
environment. Live mode runs a GPUSampler thread and updates the same bar widgets in place.
"""

from __future__ import annotations

import ipywidgets as w

from naic.extensions.session import SessionFacts
from naic.extensions.sources.gpu import GPUSample, GPUSampler, GPUSource, NVMLSource, Reading
from naic.extensions.widgets._parts import (
    Bar,
    bar_style,
    close_tree,
    escape,
    fullness,
    labelled,
    percent,
    session_help_html,
    show,
    this_session,
)

NO_GPU = "No GPU in this session."
#: Line colours of the plot, one per GPU (repeating).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def utilization_svg(readings: list[Reading], *, width: int = 320, height: int = 64) -> str:
    """A polyline per GPU of utilisation over the readings (0 % at the bottom)."""
    if len(readings) < 2:
        return ""
    count = max(len(r.gpus) for r in readings)
    step = width / (len(readings) - 1)
    lines = []
    for gpu in range(count):
        points = []
        for i, r in enumerate(readings):
            if gpu < len(r.gpus) and r.gpus[gpu].utilization_pct is not None:
                y = height - r.gpus[gpu].utilization_pct / 100 * height
                points.append(f"{i * step:.1f},{y:.1f}")
        if points:
            colour = COLOURS[gpu % len(COLOURS)]
            lines.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                f'points="{" ".join(points)}"><title>GPU {gpu}</title></polyline>'
            )
    return (
        f'<svg class="naic-gpu-plot-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="GPU utilisation over time">'
        f'<rect width="{width}" height="{height}" fill="none" stroke="#ccc"/>{"".join(lines)}</svg>'
    )


class GPURow(w.VBox):
    def __init__(self) -> None:
        self.title = labelled(w.HTML(), "naic-gpu-title")
        self.util_bar = Bar("naic-gpu-util-bar")
        self.util_label = labelled(w.Label(), "naic-gpu-util-label")
        self.memory_bar = Bar("naic-gpu-memory-bar")
        self.memory_label = labelled(w.Label(), "naic-gpu-memory-label")
        super().__init__(
            [
                self.title,
                w.HBox([w.Label("Utilisation"), self.util_bar, self.util_label]),
                w.HBox([w.Label("Memory"), self.memory_bar, self.memory_label]),
            ]
        )
        self.add_class("naic-gpu")

    def update(self, gpu: GPUSample) -> None:
        self.title.value = f"<b>GPU {gpu.index}</b> · {escape(gpu.name)}"
        util = gpu.utilization_pct
        self.util_label.value = "not reported" if util is None else f"{util:.0f} %"
        # Unknown: an indeterminate bar (no aria-valuenow), "not reported" in words.
        self.util_bar.set(util, 100, self.util_label.value, name=f"GPU {gpu.index} utilisation")
        total = max(gpu.memory_total_mb, 1.0)
        used = f"{gpu.memory_used_mb / 1024:.1f} of {gpu.memory_total_mb / 1024:.1f} GB"
        full = fullness(gpu.memory_used_mb, total, nearly="nearly full", over="full")
        self.memory_label.value = f"{used} — {full}" if full else used
        words = f"{used} used, {percent(gpu.memory_used_mb, total)} %"
        self.memory_bar.set(
            gpu.memory_used_mb,
            total,
            f"{words}, {full}" if full else words,
            bar_style(gpu.memory_used_mb, total),
            name=f"GPU {gpu.index} memory",
        )


#: What NVML's utilisation is, under the bars: users read 100 % as "fully used".
EXPLAIN = (
    "Utilisation is NVML's figure: the share of the last sample period in which at least "
    "one kernel ran on the GPU. 100 % means the GPU was never idle, not that all of it was "
    "busy; a low figure while training usually means the GPU waits for data (more "
    "<code>DataLoader</code> workers, <code>pin_memory=True</code>). Memory is what "
    "processes hold, which PyTorch's cache keeps even when tensors are freed."
)


class GPUMonitor(w.VBox):
    """The session's GPUs now, and (live) every `interval_s` seconds."""

    def __init__(
        self,
        source: GPUSource | None = None,
        *,
        sampler: GPUSampler | None = None,
        interval_s: float = 2.0,
        history: int = 60,
        facts: SessionFacts | None = None,
    ):
        super().__init__()
        self.add_class("naic-gpus")
        if sampler is None:
            sampler = GPUSampler(
                source if source is not None else NVMLSource(), interval_s=interval_s
            )
        self.sampler, self.history = sampler, history
        self.rows: list[GPURow] = []
        self.message = labelled(w.HTML(NO_GPU), "naic-gpu-none")
        self.plot = labelled(w.HTML(), "naic-gpu-plot")
        self.explain = labelled(w.HTML(EXPLAIN), "naic-gpu-explain")
        self.rows_box = w.VBox()
        self.live_button = labelled(
            w.Button(description="Start live view", icon="play"), "naic-gpu-live"
        )
        self.live_button.on_click(lambda _: self.stop() if self.live else self.start())
        #: The site's documentation and where to report a problem (`facts`: this session's).
        self.help = labelled(
            w.HTML(session_help_html(facts if facts is not None else this_session())),
            "naic-gpu-help",
        )
        show(self.help, bool(self.help.value))
        self.children = [
            w.HTML("<h3>GPUs</h3>"),
            self.message,
            self.rows_box,
            self.plot,
            self.explain,
            self.live_button,
            self.help,
        ]
        self.refresh()

    @property
    def live(self) -> bool:
        return self.sampler.running

    def refresh(self) -> None:
        """Take a sample now (unless the live sampler takes them) and show it."""
        reading = self.sampler.latest() if self.live else None
        self._show(reading or self.sampler.sample_once())

    def start(self) -> None:
        self.sampler.subscribe(self._show)
        self.sampler.start()
        self.live_button.description, self.live_button.icon = "Stop live view", "stop"

    def stop(self) -> None:
        self.sampler.unsubscribe(self._show)
        self.sampler.stop()
        self.live_button.description, self.live_button.icon = "Start live view", "play"

    def _show(self, reading: Reading) -> None:
        gpus = reading.gpus
        if len(gpus) != len(self.rows):
            for row in self.rows:
                close_tree(row)
            self.rows = [GPURow() for _ in gpus]
            self.rows_box.children = self.rows
        for row, gpu in zip(self.rows, gpus, strict=True):
            row.update(gpu)
        show(self.message, not gpus)
        show(self.live_button, bool(gpus) or self.live)
        show(self.explain, bool(gpus))
        self.plot.value = utilization_svg(self.sampler.readings()[-self.history :]) if gpus else ""
        show(self.plot, bool(self.plot.value))
