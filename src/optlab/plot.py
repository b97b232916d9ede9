"""``comparison.png``: the notebook's closing plot, for any sweep.

Training loss per epoch, one line per configuration; jobs that differ only by seed are
drawn as their mean with a band of ± one standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optlab.sweeps import Group

FIGURE_SIZE = (12.0, 4.8)  # inches; at DPI 100 the PNG is 1200 x 480 pixels
DPI = 100
# (tag, title, y label, bounds the ± std band is clipped to)
PANELS = (
    ("train/loss_epoch", "Training loss per epoch", "epoch mean BCE loss", (0.0, np.inf)),
    ("val/acc", "Validation accuracy per epoch", "accuracy on held-out rows", (0.0, 1.0)),
)


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


def draw_panel(
    axes: Axes, groups: Sequence[Group], tag: str, title: str, ylabel: str, bounds: tuple[float, float]
) -> None:
    curves_by_group = [(group, series(group, tag)) for group in groups]
    curves_by_group = [(group, curves) for group, curves in curves_by_group if curves.size]
    log_scale = "loss" in tag and spans_decades(np.concatenate([c.ravel() for _, c in curves_by_group] or [np.empty(0)]))
    for group, curves in curves_by_group:
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        failed = any(job.status != "ok" for job in group.jobs)
        name = group.label + (f" (n={len(curves)})" if len(curves) > 1 else "") + (" (failed)" if failed else "")
        (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=name, linestyle="--" if failed else "-")
        if len(curves) > 1:
            std = curves.std(axis=0, ddof=1)
            low, high = np.clip(mean - std, *bounds), np.clip(mean + std, *bounds)
            if log_scale:  # mean - std can reach zero or below, which a log axis cannot show
                low = np.maximum(low, curves.min(axis=0))
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if log_scale:
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if curves_by_group:
        axes.legend(fontsize="small")


def plot_comparison(groups: Sequence[Group], path: Path, title: str) -> None:
    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    for axes, panel in zip(figure.subplots(1, len(PANELS)), PANELS):
        draw_panel(axes, groups, *panel)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
