"""Plots shared by training and evaluation (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._io import atomic_path
from .metrics import expected_calibration_error, reliability, risk_coverage


def plot_reliability(path: Path, y: np.ndarray, curves: dict[str, np.ndarray], title: str = "") -> None:
    """Reliability diagram: accuracy against confidence per bin, one curve per probability set, ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for name, probs in curves.items():
        conf, acc, count = reliability(y, probs)
        used = count > 0
        ax.plot(conf[used], acc[used], marker="o",
                label=f"{name} (ECE {expected_calibration_error(y, probs):.3f})")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "reliability (15 bins)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_risk_coverage(path: Path, y: np.ndarray, probs: np.ndarray, threshold: float | None, title: str = "") -> None:
    """Error among the answered photos against the share answered, as the score threshold rises; the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cov, risk = risk_coverage(probs, y)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(cov, risk, lw=1.5, label="answered photos")
    if threshold is not None and len(y):
        c = float((probs.max(1) >= threshold).mean())
        r = float(risk[max(0, int(round(c * len(y))) - 1)]) if c > 0 else 0.0
        ax.scatter([c], [r], color="crimson", zorder=3, label=f"threshold {threshold:.3f}: {c:.0%} answered")
    ax.set_xlabel("coverage (share of photos answered)")
    ax.set_ylabel("error rate among answered")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(0.05, float(risk.max()) * 1.1) if len(y) else 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "risk-coverage")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
