"""Temperature scaling: one scalar T fitted on validation logits makes the probabilities mean what they say.

Label smoothing, class weights and early stopping leave a classifier's softmax over- or
under-confident. Dividing the logits by T (fitted by minimising validation log loss; Guo et al.
2017) changes no prediction, only the scores. T is folded into the last linear layer, so every
export — and MediaPipe's scores and `score_threshold` — carry calibrated probabilities.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..metrics import ECE_BINS, expected_calibration_error
from ..models.builder import Classifier
from ..plots import plot_reliability

# A temperature is one number: what it needs is validation images in all, not per class. Below 3 per class
# *and* below MIN_VAL_IMAGES in all it is noise, not calibration. Fitted on random subsets of a run's
# validation split, 30 images never left test ECE worse than the raw softmax (200 draws each: flowers 0.109 ->
# 0.056, a 100-class set 0.264 -> 0.067); many classes with few validation images each are where label
# smoothing leaves the softmax most under-confident (bench/README.md, "Calibration with few images per class").
MIN_PER_CLASS = 3
MIN_VAL_IMAGES = 30


def _nll(log_p: np.ndarray, y: np.ndarray, t: float) -> float:
    z = log_p / t
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] minimising the log loss of softmax(log(probs) / T) on (probs, y)."""
    log_p = np.log(np.clip(probs, 1e-12, 1.0))  # = logits minus a per-row constant, which softmax ignores
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = grid[int(np.argmin([_nll(log_p, y, t) for t in grid]))]
    lo, hi = best / 1.06, best * 1.06  # the grid step is ~5 %; refine inside it (the loss is convex in 1/T)
    for _ in range(40):
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if _nll(log_p, y, m1) < _nll(log_p, y, m2):
            hi = m2
        else:
            lo = m1
    return float((lo + hi) / 2)


def rescale(probs: np.ndarray, t: float) -> np.ndarray:
    """softmax(log(probs) / t): the probabilities after dividing the logits by t."""
    z = np.log(np.clip(probs, 1e-12, 1.0)) / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fold_temperature(head: torch.nn.Sequential, t: float) -> None:
    """Divide the head's last linear layer by t in place: the model's logits become logits / t."""
    last = head[-1]
    with torch.no_grad():
        last.weight.div_(t)
        last.bias.div_(t)


def calibrate(val_probs: np.ndarray | None, val_y: np.ndarray, classes: int) -> tuple[float | None, str]:
    """(T, why): T fitted on the validation split, or None with the reason it was not (too few images)."""
    n = 0 if val_probs is None else len(val_y)
    if n < min(MIN_PER_CLASS * classes, MIN_VAL_IMAGES):
        return None, (f"not calibrated: {n} validation images for {classes} classes (needs {MIN_VAL_IMAGES} in all, or "
                      f"{MIN_PER_CLASS} per class); probabilities are the raw softmax")
    if bool((val_probs.argmax(1) == val_y).all()):
        # With no error to explain, the log loss keeps falling as T -> 0: the 'fit' would claim certainty
        # (every score 1.0, wrong test answers included), the over-confidence calibration exists to remove.
        return None, (f"not calibrated: all {len(val_y)} validation images are classified correctly, so no "
                      "temperature can be fitted (it would make every score 1.0); probabilities are the raw softmax")
    t = fit_temperature(val_probs, val_y)
    return t, f"temperature {t:.3f} fitted on {len(val_y)} validation images"


def apply_calibration(clf: Classifier, probs_of: dict[str, np.ndarray], labels: np.ndarray,
                      sel: dict[str, np.ndarray], classes: int, enabled: bool, log: Callable[..., None],
                      reliability: Path | None = None, model: str = "") -> dict[str, Any]:
    """Fit a temperature on validation, fold it into the head, rescale every split's probabilities (in place).

    `reliability`: where to draw the test split's reliability diagram (raw vs scaled) of `model`.
    """
    if not enabled:
        return {"temperature": None, "note": "--no-calibrate"}
    t, why = calibrate(probs_of.get("val"), labels[sel["val"]], classes)
    if t is None:
        log(f"warning: {why}", file=sys.stderr)
        return {"temperature": None, "note": why}
    fold_temperature(clf.head, t)
    raw = dict(probs_of)
    probs_of.update({sp: rescale(p, t) for sp, p in raw.items()})
    before = {sp: round(expected_calibration_error(labels[sel[sp]], p), 4) for sp, p in raw.items()}
    after = {sp: round(expected_calibration_error(labels[sel[sp]], probs_of[sp]), 4) for sp in raw}
    log(why + "; ECE " + ", ".join(f"{sp} {before[sp]:.4f} → {after[sp]:.4f}" for sp in ("val", "test") if sp in raw))
    if reliability is not None and "test" in raw:
        plot_reliability(reliability, labels[sel["test"]],
                         {"raw softmax": raw["test"], "temperature-scaled": probs_of["test"]}, f"{model}: test split")
    return {"temperature": round(t, 4), "fitted_on": "val", "bins": ECE_BINS, "ece_before": before, "ece_after": after}
