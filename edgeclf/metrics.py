"""Classification metrics shared by training and evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: list[str], top_k: int = 5) -> dict[str, Any]:
    """Top-1/top-k accuracy, log loss, per-class precision/recall/F1 and the confusion matrix."""
    n = len(classes)
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(1)
    k = min(top_k, n)
    topk = np.argsort(-probs, axis=1)[:, :k]
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y, pred), 1)
    per_class = []
    for i, c in enumerate(classes):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class.append({"class": c, "precision": round(float(prec), 4), "recall": round(float(rec), 4),
                          "f1": round(float(f1), 4), "support": int(cm[i].sum()), "predicted": int(cm[:, i].sum())})
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1.0)))) if len(y) else float("nan")
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 4) if len(y) else float("nan"),
        f"top{k}_accuracy": round(float((topk == y[:, None]).any(1).mean()), 4) if len(y) else float("nan"),
        "loss": round(loss, 4),
        "ece": round(expected_calibration_error(y, probs), 4) if len(y) else float("nan"),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


ECE_BINS = 15


def reliability(y: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin (equal width on [0, 1]): mean confidence, accuracy and count of the top-1 predictions."""
    conf = probs.max(1)
    hit = (probs.argmax(1) == np.asarray(y)).astype(np.float64)
    idx = np.minimum((conf * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, bins) / count
        acc = np.bincount(idx, hit, bins) / count
    return mean_conf, acc, count


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width confidence bins (15, Guo et al. 2017)."""
    mean_conf, acc, count = reliability(y, probs, bins)
    used = count > 0
    return float((count[used] * np.abs(acc[used] - mean_conf[used])).sum() / max(count.sum(), 1))


def coverage_report(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    """Coverage (share accepted) and accuracy on the accepted photos at a threshold, beside the plain accuracy."""
    accepted = probs.max(1) >= threshold
    hits = probs.argmax(1) == y
    return {"n": int(len(y)), "coverage": round(float(accepted.mean()), 4) if len(y) else 0.0,
            "accuracy_accepted": round(float(hits[accepted].mean()), 4) if accepted.any() else 0.0,
            "accuracy_all": round(float(hits.mean()), 4) if len(y) else 0.0}


def risk_coverage(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, error rate among the accepted) as the threshold sweeps from the most to the least confident."""
    order = np.argsort(-probs.max(1), kind="stable")
    wrong = (probs.argmax(1) != y)[order].astype(np.float64)
    n = np.arange(1, len(y) + 1)
    return n / max(1, len(y)), np.cumsum(wrong) / n


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Area under the ROC curve of telling known (higher score) from unknown photos: P(known > unknown)."""
    scores = np.concatenate([known, unknown])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):  # ties share their mean rank
        m = scores == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    r = ranks[:len(known)].sum()
    return float((r - len(known) * (len(known) + 1) / 2) / max(1, len(known) * len(unknown)))
