"""Train the classification head on cached features: seconds, not minutes."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..models.builder import make_head


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
    seed: int = 0


@dataclass
class HeadResult:
    """The best head (by validation accuracy) and its per-epoch history."""

    head: nn.Module
    best_epoch: int
    history: list[dict] = field(default_factory=list)


def class_weight_vector(labels: np.ndarray, n: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1) when asked for, or when 'auto' sees imbalance."""
    counts = np.bincount(labels, minlength=n).astype(np.float64)
    if mode == "none" or (mode == "auto" and counts.max() / max(1.0, counts[counts > 0].min()) < 1.5):
        return None
    w = np.where(counts > 0, counts.sum() / (n * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)


def _evaluate(head: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> tuple[float, float]:
    head.eval()
    with torch.no_grad():
        logits = head(x)
        return float(loss_fn(logits, y)), float((logits.argmax(1) == y).float().mean())


def train_head(xtr: np.ndarray, ytr: np.ndarray, xval: np.ndarray | None, yval: np.ndarray | None,
               n_classes: int, cfg: HeadConfig, views: list[np.ndarray] | None = None,
               on_epoch=None) -> HeadResult:
    """AdamW + warm-up/cosine schedule + label smoothing; keeps the weights of the best validation epoch.

    `views` are extra feature banks (augmented views) aligned with xtr; each epoch draws one view per image.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = make_head(xtr.shape[1], n_classes, cfg.dropout, cfg.hidden)
    weights = class_weight_vector(ytr, n_classes, cfg.class_weights)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    eval_loss = nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(xtr)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    banks = [torch.from_numpy(xtr)] + [torch.from_numpy(v) for v in (views or [])]
    y_t = torch.from_numpy(ytr.astype(np.int64))
    xv = torch.from_numpy(xval) if xval is not None and len(xval) else None
    yv = torch.from_numpy(yval.astype(np.int64)) if xv is not None else None
    best = (-1.0, math.inf)
    best_state, best_epoch, stale = copy.deepcopy(head.state_dict()), 0, 0
    history = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        perm = torch.from_numpy(rng.permutation(n))
        pick = torch.from_numpy(rng.integers(0, len(banks), n))
        tot_loss = tot_acc = 0.0
        for s in range(0, n, cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            xb = torch.stack([banks[int(pick[i])][i] for i in idx]) if len(banks) > 1 else banks[0][idx]
            logits = head(xb)
            loss = loss_fn(logits, y_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(idx)
            tot_acc += float((logits.argmax(1) == y_t[idx]).sum())
        row = {"epoch": epoch, "train_loss": tot_loss / n, "train_acc": tot_acc / n, "lr": opt.param_groups[0]["lr"]}
        if xv is not None:
            row["val_loss"], row["val_acc"] = _evaluate(head, xv, yv, eval_loss)
            score = (row["val_acc"], -row["val_loss"])
            if score > (best[0], -best[1]):
                best, best_state, best_epoch, stale = (row["val_acc"], row["val_loss"]), \
                    copy.deepcopy(head.state_dict()), epoch, 0
            else:
                stale += 1
        else:
            best_state, best_epoch = copy.deepcopy(head.state_dict()), epoch
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if cfg.patience and xv is not None and stale >= cfg.patience:
            break
    head.load_state_dict(best_state)
    head.eval()
    return HeadResult(head, best_epoch, history)
