"""PNG figures for the command line (matplotlib's Agg canvas; never pyplot, never a GUI backend).

The GUI draws with pyqtgraph; these files are for reports. ``matplotlib.figure.Figure`` with
``FigureCanvasAgg`` renders without selecting a backend, so no Qt module is ever imported.
"""

from __future__ import annotations

import os

import numpy as np


def dice_threshold_plot(path: str | os.PathLike, thresholds: np.ndarray, curves: dict[str, np.ndarray],
                        baselines: dict[str, float], fixed_threshold: float, title: str) -> None:
    """Dice against the residual threshold: one thin line per case, the cohort mean, baselines.

    Args:
        path: the PNG to write (overwritten; callers refuse existing outputs first).
        thresholds: ``(T,)`` residual thresholds (unit intensity).
        curves: ``{case_id: (T,) Dice}``.
        baselines: ``{label: mean Dice}`` drawn as horizontal dashed lines.
        fixed_threshold: the cohort's best fixed threshold (vertical dotted line).
        title: figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for index, (case_id, dice) in enumerate(curves.items()):
        axes.plot(thresholds, dice, color="0.6", linewidth=0.8, label="cases" if index == 0 else None)
    mean = np.mean(np.stack(list(curves.values())), axis=0)
    axes.plot(thresholds, mean, color="C0", linewidth=2.2, label=f"AutoPaint mean (n={len(curves)})")
    for index, (label, value) in enumerate(baselines.items()):
        axes.axhline(value, color=f"C{index + 1}", linestyle="--", linewidth=1.5, label=f"{label}: {value:.3f}")
    axes.axvline(fixed_threshold, color="C0", linestyle=":", linewidth=1.2,
                 label=f"best fixed threshold {fixed_threshold:.2f}")
    axes.set_xlabel("residual threshold (unit intensity)")
    axes.set_ylabel("Dice")
    axes.set_xlim(float(thresholds[0]), float(thresholds[-1]))
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, alpha=0.3)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(os.fspath(path), format="png")
