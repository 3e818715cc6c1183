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
                          "f1": round(float(f1), 4), "support": int(cm[i].sum())})
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1.0)))) if len(y) else float("nan")
    return {
        "n": int(len(y)),
        "accuracy": round(float((pred == y).mean()), 4) if len(y) else float("nan"),
        f"top{k}_accuracy": round(float((topk == y[:, None]).any(1).mean()), 4) if len(y) else float("nan"),
        "loss": round(loss, 4),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
