"""An "unknown" answer: a threshold on the calibrated top probability, chosen on validation.

`--unknown-rate R` picks the threshold that turns away R of the validation photos (all of known
classes, so R is the price paid in coverage); photos of something never seen score lower and are
turned away far more often (bench/open_set.py measures how often). The threshold goes into the
exported file's metadata as MediaPipe's score threshold, so an ImageClassifier with default
options returns no category for such a photo, and into the sidecar, where `predict` and
`evaluate` read it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..metrics import coverage_report

# Below this many validation photos a quantile is noise: warn and leave the model without a threshold.
MIN_VAL_IMAGES = 20


def choose_threshold(val_probs: np.ndarray | None, val_y: np.ndarray, rate: float,
                     log: Callable[..., Any] = print) -> float | None:
    """The top-probability threshold that rejects `rate` of the validation photos, or None if too few."""
    if val_probs is None or len(val_y) < MIN_VAL_IMAGES:
        n = 0 if val_probs is None else len(val_y)
        log(f"warning: --unknown-rate needs at least {MIN_VAL_IMAGES} validation images to choose a threshold, "
            f"got {n}; the model keeps answering every photo (raise --val-percent)")
        return None
    top = np.sort(val_probs.max(1))
    # The k-th smallest score: the k photos below it are rejected, every other one accepted (score >= t).
    k = int(np.floor(rate * len(top)))
    if k > 0 and top[k] >= 1.0:
        # float32 softmax rounds to 1: a threshold there would turn away nothing (score >= 1 passes)
        log(f"warning: --unknown-rate {rate:g}: {np.mean(top >= 1.0):.0%} of the validation photos "
            "score a top probability of 1.0, so no threshold turns away that share; the model keeps answering "
            "every photo (a harder validation split, or --hidden 0 --dropout 0.2, gives softer scores)")
        return None
    return float(top[k]) if k > 0 else 0.0


def unknown_record(probs_of: dict[str, np.ndarray], labels: np.ndarray, sel: dict[str, np.ndarray], rate: float,
                   log: Callable[..., Any] = print) -> dict[str, Any] | None:
    """Choose the threshold on validation and report coverage/accuracy per split (metrics.json "unknown")."""
    t = choose_threshold(probs_of.get("val"), labels[sel["val"]], rate, log)
    if t is None:
        return None
    out: dict[str, Any] = {"rate": rate, "threshold": round(t, 6), "score": "calibrated top probability"}
    for sp in ("val", "test"):
        if sp in probs_of:
            out[sp] = coverage_report(probs_of[sp], labels[sel[sp]], t)
    log(f"unknown: photos whose top probability is below {t:.3f} are answered 'unknown' "
        f"(validation: {out['val']['coverage']:.1%} answered, accuracy on those "
        f"{out['val']['accuracy_accepted']:.3f} vs {out['val']['accuracy_all']:.3f} on all)")
    return out
