"""``comparison.png``: the notebook's closing plot, for any sweep.

One panel per metric (``report.panels``, or every training and validation metric the
jobs logged per epoch), one line per configuration; jobs that differ only by seed are drawn
as their mean with a band for the mean's 95 % confidence interval over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optlab.uncertainty import interval_bands
from optlab.sweeps import Group, Job, ReportSettings, epoch_metrics, logged_tags

PANEL_SIZE = (6.0, 4.8)  # inches per panel; at DPI 100 two panels make a 1200 x 480 PNG
DPI = 100
MAX_PANELS = 4


@dataclass(frozen=True)
class Panel:
    tag: str
    bounds: tuple[float, float]  # what the confidence band is clipped to

    @property
    def title(self) -> str:
        return f"{self.tag} per epoch"


def panel_for(tag: str) -> Panel:
    """A loss is never below zero, an accuracy stays within [0, 1]: the band is clipped to match."""
    name = tag.rsplit("/", 1)[-1]
    if "acc" in name:
        return Panel(tag, (0.0, 1.0))
    if "loss" in name:
        return Panel(tag, (0.0, np.inf))
    return Panel(tag, (-np.inf, np.inf))


def plot_panels(jobs: Sequence[Job], settings: ReportSettings) -> list[Panel]:
    """``report.panels``, or every training and validation metric the jobs logged per epoch."""
    tags = settings.panels or [tag for tag in epoch_metrics(logged_tags(jobs)) if tag.startswith(("train/", "val/"))]
    return [panel_for(tag) for tag in list(tags)[:MAX_PANELS]]


def series(group: Group, tag: str) -> np.ndarray:
    """Members' curves as rows, cut to the shortest (a failed job may stop early)."""
    curves = [job.scalars[tag] for job in group.jobs if job.scalars.get(tag)]
    if not curves:
        return np.empty((0, 0))
    length = min(len(curve) for curve in curves)
    return np.array([curve[:length] for curve in curves], dtype=float)


def spans_decades(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return bool(positive.size > 1 and positive.max() / positive.min() > 100)


def draw_panel(axes: Axes, groups: Sequence[Group], panel: Panel) -> None:
    tag, bounds = panel.tag, panel.bounds
    curves_by_group = [(group, series(group, tag)) for group in groups]
    curves_by_group = [(group, curves) for group, curves in curves_by_group if curves.size]
    log_scale = "loss" in tag and spans_decades(np.concatenate([c.ravel() for _, c in curves_by_group] or [np.empty(0)]))
    for group, curves in curves_by_group:
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        failed = any(job.status != "ok" for job in group.jobs)
        name = group.label + (f" (n={len(curves)}, 95% CI)" if len(curves) > 1 else "") + (" (failed)" if failed else "")
        (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=name, linestyle="--" if failed else "-")
        if len(curves) > 1:
            _, low, high = (np.array(values) for values in interval_bands(curves.tolist()))
            low, high = np.clip(low, *bounds), np.clip(high, *bounds)
            if log_scale:  # the interval can reach zero or below, which a log axis cannot show
                low = np.maximum(low, curves.min(axis=0))
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if log_scale:
        axes.set_yscale("log")
    axes.set_title(panel.title)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(tag)
    axes.grid(True, alpha=0.3)
    if curves_by_group:
        axes.legend(fontsize="small")


def plot_comparison(groups: Sequence[Group], panels: Sequence[Panel], path: Path, title: str) -> None:
    panels = panels or [panel_for("train/loss")]  # nothing logged per epoch: an empty panel says so
    figure = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]), dpi=DPI)
    FigureCanvasAgg(figure)
    for axes, panel in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels):
        draw_panel(axes, groups, panel)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
