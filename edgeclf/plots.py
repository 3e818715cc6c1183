"""Plots shared by training and evaluation (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_path
from .metrics import expected_calibration_error, reliability, risk_coverage

if TYPE_CHECKING:  # matplotlib loads only when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_reliability(path: Path, y: np.ndarray, curves: dict[str, np.ndarray], title: str = "") -> None:
    """Reliability diagram: accuracy against confidence per bin, one curve per probability set, ECE in the legend."""
    fig, ax = new_figure((5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, probs in curves.items():
        conf, acc, count = reliability(y, probs)
        used = count > 0
        ax.plot(conf[used], acc[used], marker="o",
                label=f"{name} (ECE {expected_calibration_error(y, probs):.3f})")
    _save(fig, ax, path, "confidence (top-1 probability)", "accuracy", 1.0, title or "reliability (15 bins)")


def plot_risk_coverage(path: Path, y: np.ndarray, probs: np.ndarray, threshold: float | None, title: str = "") -> None:
    """Error among the answered photos against the share answered, as the score threshold rises; the chosen one marked."""
    cov, risk = risk_coverage(probs, y)
    fig, ax = new_figure((5, 4))
    ax.plot(cov, risk, lw=1.5, label="answered photos")
    if threshold is not None and len(y):
        c = float((probs.max(1) >= threshold).mean())
        r = float(risk[max(0, int(round(c * len(y))) - 1)]) if c > 0 else 0.0
        ax.scatter([c], [r], color="crimson", zorder=3, label=f"threshold {threshold:.3f}: {c:.0%} answered")
    _save(fig, ax, path, "coverage (share of photos answered)", "error rate among answered",
          max(0.05, float(risk.max()) * 1.1) if len(y) else 1.0, title or "risk-coverage")


def new_figure(size: tuple[float, float], ncols: int = 1) -> tuple[Figure, Any]:
    """A figure and its axes outside pyplot: no backend is switched and nothing needs closing.

    matplotlib.use("Agg") switched the caller's backend: after edgeclf.train() in a notebook, the user's own
    plt.show() drew nothing. A bare Figure belongs to no backend until it is saved.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(1, ncols)


def save_png(fig: Figure, path: Path, dpi: int = 100) -> None:
    """Write the figure as a PNG, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _save(fig: Figure, ax: Axes, path: Path, xlabel: str, ylabel: str, ytop: float, title: str) -> None:
    """Label, grid and legend the axes, then write the PNG atomically."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, ytop)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path)
