"""The protocol's pictures: learning-rate sensitivity, the confirmed runs' curves, the performance profile."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from optlab.protocol.analysis import TaskResult, share_within
from optlab.report.plot import loss_scale
from optlab.uncertainty import interval_bands

PANEL = (6.0, 4.5)
DPI = 100


def figure(panels: int) -> tuple[Figure, list[Axes]]:
    drawing = Figure(figsize=(PANEL[0] * panels, PANEL[1]), dpi=DPI)
    FigureCanvasAgg(drawing)
    return drawing, list(np.atleast_1d(drawing.subplots(1, panels)))


def sensitivity(results: Sequence[TaskResult], path: Path) -> None:
    """Final validation metric against learning rate, a curve per optimizer: the mean over the tuning seeds, their
    range as a band, and each learning rate where a seed diverged marked at the top."""
    drawing, panels = figure(len(results))
    for axes, result in zip(panels, results):
        top = blended_transform_factory(axes.transData, axes.transAxes)
        everything: list[float] = []
        for optimizer in dict.fromkeys(seeds.run.optimizer for seeds in result.tuning):
            points = sorted((seeds for seeds in result.tuning if seeds.run.optimizer == optimizer), key=lambda s: s.run.lr)
            rates = np.array([seeds.run.lr for seeds in points], dtype=float)
            finals = [[final for final in seeds.finals() if math.isfinite(final)] for seeds in points]
            mean = np.array([np.mean(values) if values else np.nan for values in finals])
            low = np.array([min(values) if values else np.nan for values in finals])
            high = np.array([max(values) if values else np.nan for values in finals])
            everything += [value for values in finals for value in values]
            (line,) = axes.plot(rates, mean, marker="o", markersize=3, label=optimizer)
            axes.fill_between(rates, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            diverged = [seeds.run.lr for seeds in points if seeds.diverged]
            if diverged:
                axes.plot(diverged, [0.97] * len(diverged), "x", color=line.get_color(), transform=top, clip_on=False)
        if everything:  # a log axis needs a point to draw
            axes.set_xscale("log")
            loss_scale(axes, result.metric, np.array(everything))
        else:
            axes.text(0.5, 0.5, "no tuning seed finished", ha="center", transform=axes.transAxes)
        axes.set_title(
            f"{result.task.name}: final {result.metric} by learning rate\n"
            "(band: range over the tuning seeds; x: a seed diverged)",
            fontsize="medium",
        )
        axes.set_xlabel("learning rate")
        axes.set_ylabel(f"final {result.metric}")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    drawing.tight_layout()
    drawing.savefig(path, dpi=DPI)


def confirmed(results: Sequence[TaskResult], path: Path) -> None:
    """The validation metric per epoch of each tuned optimizer on the fresh seeds: the mean and its 95 % interval."""
    drawing, panels = figure(len(results))
    for axes, result in zip(panels, results):
        everything: list[float] = []
        for seeds in result.confirmed:
            curves = [job.history.values(result.metric) for job in seeds.jobs if job.status in ("ok", "did not learn")]
            curves = [curve for curve in curves if curve]
            if not curves:
                continue
            length = min(len(curve) for curve in curves)
            rows = [curve[:length] for curve in curves]
            mean, low, high = (np.array(values) for values in interval_bands(rows))
            epochs = np.arange(1, length + 1)
            label = f"{seeds.run.optimizer} ({seeds.run.settings}, {len(rows)} seeds" + (
                f", {seeds.diverged} diverged)" if seeds.diverged else ")"
            )
            (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=label)
            axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            everything += [value for row in rows for value in row]
        loss_scale(axes, result.metric, np.array(everything))
        if result.target is not None:
            axes.axhline(result.target, color="grey", linestyle=":", linewidth=1, label=f"target {result.target:.4g}")
        axes.set_title(f"{result.task.name}: tuned optimizers on fresh seeds (95 % CI)")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(result.metric)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    drawing.tight_layout()
    drawing.savefig(path, dpi=DPI)


def profile(ratios: dict[str, list[float]], path: Path) -> None:
    """Dolan and Moré's performance profile: the share of tasks on which each optimizer is within tau of the best."""
    drawing, (axes,) = figure(1)
    finite = [r for values in ratios.values() for r in values if math.isfinite(r)]
    taus = np.linspace(1.0, max(2.0, max(finite, default=1.0) * 1.05), 200)
    for optimizer, values in ratios.items():
        axes.step(taus, [share_within(values, tau) for tau in taus], where="post", label=optimizer)
    axes.set_ylim(0, 1.05)
    axes.set_title("performance profile over tasks")
    axes.set_xlabel("tau: within this factor of the best optimizer's median test value")
    axes.set_ylabel("share of tasks")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    drawing.tight_layout()
    drawing.savefig(path, dpi=DPI)
