"""``comparison.png``: the notebook's closing plot, for any sweep.

One panel per metric (``report.panels``, or ``optimized_metric`` and the other curves the
jobs logged, validation first), one line per configuration; jobs that differ only by seed
are drawn as their mean with a band for the mean's 95 % confidence interval over seeds. A
metric logged once an epoch is drawn against epochs, one logged per step against steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optlab.report.jobs import Group, Job, ReportSettings, default_metrics
from optlab.uncertainty import interval_bands

PANEL_SIZE = (6.0, 4.8)  # inches per panel; at DPI 100 two panels make a 1200 x 480 PNG
DPI = 100
MAX_PANELS = 4


def is_curve(jobs: Sequence[Job], tag: str) -> bool:
    """Logged more than once by some job: a test metric's single point is a number, not a curve."""
    return any(len(job.history.values(tag)) > 1 for job in jobs)


def plot_panels(jobs: Sequence[Job], settings: ReportSettings) -> list[str]:
    """``report.panels``, or ``optimized_metric`` and the other curves the jobs logged, validation first."""
    tags = settings.panels or [tag for tag in default_metrics(jobs, settings.metric) if is_curve(jobs, tag)]
    return list(tags)[:MAX_PANELS]


def per_epoch(group: Group, tag: str) -> bool:
    return all(job.history.per_epoch(tag) for job in group.jobs if job.history.values(tag))


def series(group: Group, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """The x values (epochs counted from 1, or steps) and the members' curves as rows, cut to the shortest."""
    points = [job.history.points(tag) for job in group.jobs if job.history.values(tag)]
    if not points:
        return np.empty(0), np.empty((0, 0))
    length = min(len(curve) for curve in points)
    epochs = per_epoch(group, tag)
    x = np.array([(point.epoch + 1 if epochs else point.step) for point in points[0][:length]], dtype=float)
    return x, np.array([[point.value for point in curve[:length]] for curve in points], dtype=float)


def spans_decades(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return bool(positive.size > 1 and positive.max() / positive.min() > 100)


def loss_scale(axes: Axes, tag: str, values: np.ndarray) -> None:
    """A loss that spans decades on a log axis (symmetric-log, linear near zero, when a value is exactly zero)."""
    finite = values[np.isfinite(values)]
    if "loss" not in tag or not spans_decades(finite):
        return
    if (finite <= 0).any():
        axes.set_yscale("symlog", linthresh=float(finite[finite > 0].min()))
        axes.set_ylim(bottom=min(0.0, float(finite.min())))
    else:
        axes.set_yscale("log")


def draw_panel(axes: Axes, groups: Sequence[Group], tag: str) -> None:
    curves_by_group = [(group, *series(group, tag)) for group in groups]
    curves_by_group = [(group, x, curves) for group, x, curves in curves_by_group if curves.size]
    by_epoch = all(per_epoch(group, tag) for group, _, _ in curves_by_group)
    for group, epochs, curves in curves_by_group:
        mean = curves.mean(axis=0)
        failed = any(job.status != "ok" for job in group.jobs)
        diverged = sum(job.status == "diverged" for job in group.jobs)
        name = group.label + (f" (n={len(curves)}, 95% CI)" if len(curves) > 1 else "")
        name += f" ({diverged} of {len(group.jobs)} diverged)" if diverged else " (failed)" if failed else ""
        (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=name, linestyle="--" if failed else "-")
        if len(curves) > 1:  # the bootstrap interval lies within the seeds' values: within the metric's range
            _, low, high = (np.array(values) for values in interval_bands(curves.tolist()))
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    loss_scale(axes, tag, np.concatenate([c.ravel() for _, _, c in curves_by_group] or [np.empty(0)]))
    axes.set_title(f"{tag} per {'epoch' if by_epoch else 'step'}")
    axes.set_xlabel("epoch" if by_epoch else "step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(tag)
    axes.grid(True, alpha=0.3)
    if curves_by_group:
        axes.legend(fontsize="small")


def plot_comparison(groups: Sequence[Group], panels: Sequence[str], path: Path, title: str, metric: str = "") -> None:
    panels = panels or [metric or "nothing logged"]  # no curve at all: an empty panel says so
    figure = Figure(figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]), dpi=DPI)
    FigureCanvasAgg(figure)
    for axes, panel in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels):
        draw_panel(axes, groups, panel)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
