"""Train the classification head on cached features: seconds, not minutes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Union

import numpy as np
import torch
from torch import nn

from ..data.rowfile import Rows, as_rows
from ..models.builder import make_head
from .loop import EarlyStopping, WeightedCrossEntropy, fit, step, warmup_cosine
from .rng import own_rng

if TYPE_CHECKING:
    from .distill import Distill


@dataclass
class HeadConfig:
    """Knobs of head training (Model Maker / retrain.py equivalents in the README)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    label_smoothing: float = 0.1
    hidden: int = 0
    warmup_epochs: float = 1.0
    class_weights: str = "auto"  # "auto" (balanced when imbalance >= 1.5:1) | "none" | "balanced"
    patience: int = 10  # epochs without validation improvement before stopping (0 = never)
    mixup: float = 0.0  # Beta(a, a) feature-level mixup of batch pairs (0 = off)
    seed: int = 0


@dataclass
class HeadResult:
    """The best head (by validation accuracy) and its per-epoch history."""

    head: nn.Module
    best_epoch: int
    history: list[dict] = field(default_factory=list)

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy of the best epoch (0 without validation)."""
        return max((r.get("val_acc", 0.0) for r in self.history), default=0.0)


def predict_probs(head: nn.Module, x: Union[np.ndarray, Rows], chunk: int = 4096) -> np.ndarray:
    """Softmax outputs of a head over features, read a chunk at a time."""
    rows = as_rows(x)
    head.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), chunk):
            out.append(torch.softmax(head(torch.from_numpy(rows.take(np.arange(s, min(s + chunk, len(rows)))))), 1))
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def class_weight_vector(labels: np.ndarray, n: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1) when asked for, or when 'auto' sees imbalance."""
    counts = np.bincount(labels, minlength=n).astype(np.float64)
    if mode == "none" or (mode == "auto" and counts.max() / max(1.0, counts[counts > 0].min()) < 1.5):
        return None
    w = np.where(counts > 0, counts.sum() / (n * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)


def _evaluate(head: nn.Module, x: Rows, y: torch.Tensor, chunk: int = 4096) -> tuple[float, float]:
    head.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            logits = head(torch.from_numpy(x.take(np.arange(s, min(s + chunk, len(x))))))
            yb = y[s:s + chunk]
            loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += float((logits.argmax(1) == yb).sum())
    return loss / len(x), correct / len(x)


def _gather(banks: list[Rows], pick: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """Row idx[j] of bank pick[idx[j]] for each j: one augmented view per image."""
    if len(banks) == 1:
        return torch.from_numpy(banks[0].take(idx))
    which = pick[idx]
    out = None
    for b in np.unique(which):
        m = which == b
        got = banks[int(b)].take(idx[m])
        if out is None:
            out = np.empty((len(idx), got.shape[1]), np.float32)
        out[m] = got
    return torch.from_numpy(out)


def bank_loss(loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor, soft: list[Rows] | None,
              distill: "Distill | None", pick: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """The batch's label loss, mixed with a teacher's cached logits of the same views when distilling."""
    loss = loss_fn(logits, y)
    return distill.loss(loss, logits, _gather(soft, pick, idx)) if soft and distill else loss


@own_rng
def train_head(xtr: Union[np.ndarray, Rows], ytr: np.ndarray, xval: Union[np.ndarray, Rows, None],
               yval: np.ndarray | None, n_classes: int, cfg: HeadConfig,
               views: list[Union[np.ndarray, Rows]] | None = None,
               on_epoch: Callable[[dict], None] | None = None,
               soft: list[Rows] | None = None, distill: "Distill | None" = None) -> HeadResult:
    """AdamW + warm-up/cosine schedule + label smoothing; keeps the weights of the best validation epoch.

    Features are arrays or on-disk rows read a batch at a time (memory stays flat with dataset
    size). `views` are extra feature banks (augmented views) aligned with xtr; each epoch draws one
    view per image. `soft` are a teacher's logits aligned with [xtr, *views]; with `distill` the
    loss mixes them in (edgeclf.training.distill).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    banks = [as_rows(xtr)] + [as_rows(v) for v in (views or [])]
    dim = banks[0].take(np.arange(min(1, len(banks[0])))).shape[1]
    head = make_head(dim, n_classes, cfg.dropout, cfg.hidden)
    weights = class_weight_vector(ytr, n_classes, cfg.class_weights)
    loss_fn = WeightedCrossEntropy(weights, cfg.label_smoothing)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(banks[0])
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)))
    y_t = torch.from_numpy(ytr.astype(np.int64))
    xv = as_rows(xval) if xval is not None and len(xval) else None
    yv = torch.from_numpy(yval.astype(np.int64)) if xv is not None else None

    def train_epoch(epoch: int) -> list[float]:
        perm = rng.permutation(n)
        pick = rng.integers(0, len(banks), n)
        totals = [0.0, 0.0, 0.0]
        for s in range(0, n, cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            yb = y_t[torch.from_numpy(idx)]
            xb = _gather(banks, pick, idx)
            if cfg.mixup > 0 and len(idx) > 1:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                other = torch.from_numpy(rng.permutation(len(idx)))
                logits = head(lam * xb + (1 - lam) * xb[other])
                loss = lam * bank_loss(loss_fn, logits, yb, soft, distill, pick, idx) + (1 - lam) * bank_loss(
                    loss_fn, logits, yb[other], soft, distill, pick, idx[other.numpy()])
            else:
                logits = head(xb)
                loss = bank_loss(loss_fn, logits, yb, soft, distill, pick, idx)
            step(opt, loss, logits, yb, totals)
            sched.step()
        return totals

    def val_score() -> tuple[float, float] | None:
        return None if xv is None else _evaluate(head, xv, yv)[::-1]

    callbacks: list = [EarlyStopping(cfg.patience)]
    if on_epoch:
        callbacks.insert(0, lambda row, _: on_epoch(row))
    history, best = fit(head, cfg.epochs, train_epoch, val_score, lambda: opt.param_groups[0]["lr"], callbacks,
                          lr_option=f"--learning-rate (got {cfg.lr:g})")
    return HeadResult(head, best.epoch, history.rows)
