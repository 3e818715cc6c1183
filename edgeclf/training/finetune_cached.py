"""Fine-tuning the top blocks on cached activations: many epochs for the price of one extraction.

Unfreezing only the top N units leaves the rest of the network frozen, so what enters the top
never changes: its input activations (per image and augmented view) are computed once, cached
on disk like features, and the top trains on them for as many epochs as it needs. On flowers
with EfficientNet-Lite0 an epoch of the top 3 units takes ~16 s against ~100 s on the fly
(bench/finetune.py). The whole network (`--fine-tune all`) still trains on the fly (finetune.py).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..models.builder import Backbone, Classifier
from ..progress import bar
from .distill import Distill
from .distributed import World
from .loop import WeightedCrossEntropy, step, warmup_cosine
from .finetune import FineTuneConfig, hits_and_loss, keep_best, set_trainable
from .head import Rows, _gather, bank_loss


class _Top(nn.Module):
    """The trainable part as one module (what DistributedDataParallel wraps): top units + head."""

    def __init__(self, model: Classifier, k: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.model, self.k, self.shape = model, k, shape

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Flattened cached activations [N, C*H*W] → logits."""
        return self.model.head(self.model.backbone.top(rows.view(-1, *self.shape), self.k))


class Bottom(nn.Module):
    """The frozen first k units of a backbone, flattened: what the cache stores per image."""

    def __init__(self, backbone: Backbone, k: int) -> None:
        super().__init__()
        self.backbone, self.k = backbone, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images → flattened activations after unit k."""
        return torch.flatten(self.backbone.bottom(x, self.k), 1)


def split_point(backbone: Backbone, blocks: int | str) -> int | None:
    """k such that the top `blocks` units follow bottom(x, k), or None if the stem is unfrozen too.

    Blocks pooled into the features (--pool-blocks) must run in the top: where the trained units start above
    them, the cache is taken below them and they run frozen.
    """
    if blocks == "all" or int(blocks) >= backbone.n_units:
        return None
    return backbone.n_units - max(int(blocks), backbone.min_top_units)


def activation_shape(backbone: Backbone, k: int, size: int) -> tuple[int, int, int]:
    """[C, H, W] of bottom(x, k) for size x size input."""
    with torch.no_grad():
        return tuple(backbone.eval().bottom(torch.zeros(1, 3, size, size), k).shape[1:])  # type: ignore[return-value]


def fine_tune_cached(model: Classifier, k: int, shape: tuple[int, int, int], views: list[Rows], ytr: np.ndarray,
                     val: Rows | None, yval: np.ndarray, cfg: FineTuneConfig,
                     class_weights: torch.Tensor | None = None, head_lr: float | None = None,
                     on_epoch: Callable[[dict], None] | None = None,
                     world: World = World(), soft: list[Rows] | None = None,
                     distill: Distill | None = None) -> tuple[Classifier, list[dict], float]:
    """Train the top of `model` after unit k on cached activations; returns (best model, history, its val acc).

    `views` are the cached activation banks of the training images (plain crop first, then the
    augmented views); each epoch draws one view per image. The unfrozen blocks learn at cfg.lr,
    the head keeps learning at `head_lr` (default cfg.lr). Epoch 0 is the converged head, so the
    result is never worse on validation than what it started from. Under torchrun each rank takes
    its share of every global batch and DistributedDataParallel averages the gradients. `soft`
    (a teacher's logits aligned with `views`) and `distill` mix the teacher into the loss.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    blocks = cfg.blocks
    set_trainable(model, blocks)
    unfrozen = [p for p in model.backbone.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": unfrozen, "lr": cfg.lr},
                             {"params": list(model.head.parameters()), "lr": head_lr or cfg.lr}],
                            weight_decay=cfg.weight_decay)
    n = len(views[0])
    per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.epochs * per_epoch
    # A short warm-up: the head is already trained, the top's first steps should not undo it.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, per_epoch))
    loss_fn = WeightedCrossEntropy(class_weights, cfg.label_smoothing)
    y_t = torch.from_numpy(ytr.astype(np.int64))
    top = _Top(model, k, shape)
    net: nn.Module = top
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(top, broadcast_buffers=False)
    mine = np.arange(len(val) if val is not None else 0)[world.rank::world.size]

    def val_score() -> tuple[float, float]:
        if val is None or not len(val):
            return 0.0, 0.0
        model.eval()
        counts = [0.0, 0.0]
        with torch.no_grad():
            for s in range(0, len(mine), 256):
                part = mine[s:s + 256]
                counts = [a + b for a, b in zip(counts, hits_and_loss(top(torch.from_numpy(val.take(part))),
                                                                       yval[part]))]
        hits, loss = world.all_sum(counts)
        return hits / len(val), loss / len(val)

    def train_epoch(epoch: int) -> list[float]:
        perm = rng.permutation(n)
        pick = rng.integers(0, len(views), n)
        totals = [0.0, 0.0, 0.0]
        pbar = bar(f"fine-tune top {blocks} (cached) epoch {epoch}/{cfg.epochs}", n, "img") if world.main else None
        # join(): a rank whose share of the last global batch is empty steps out without a hang.
        with net.join() if world.distributed else contextlib.nullcontext():  # type: ignore[operator]
            for s in range(0, n, cfg.batch_size):
                idx = perm[s:s + cfg.batch_size][world.rank::world.size]  # this rank's share of global batch
                if len(idx):
                    yb = y_t[torch.from_numpy(idx)]
                    logits = net(_gather(views, pick, idx))
                    step(opt, bank_loss(loss_fn, logits, yb, soft, distill, pick, idx), logits, yb, totals)
                sched.step()
                if pbar is not None:
                    pbar.update(min(cfg.batch_size, n - s))
        if pbar is not None:
            pbar.close()
        return world.all_sum(totals)

    history, best_acc = keep_best(model, cfg.epochs, opt, train_epoch, val_score, on_epoch)
    return model.eval(), history, best_acc
