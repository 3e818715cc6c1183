"""Fine-tuning: after the head converges on cached features, unfreeze the top of the backbone.

Images are decoded and augmented on the fly (a fresh random view every epoch). BatchNorm layers
stay in inference mode with their ImageNet statistics, as Keras advises for fine-tuning: CPU
batches are small, and re-estimating statistics from them hurts more than it helps. Their affine
parameters still train inside the unfrozen blocks.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.augment import Augment
from ..errors import ConfigError
from ..data.crops import Crops
from ..data.parallel import imap
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from ..progress import bar
from .distributed import World
from .loop import WeightedCrossEntropy, fit, step, warmup_cosine


@dataclass
class FineTuneConfig:
    """Knobs of the fine-tuning stage."""

    blocks: int | str = "all"  # top N units of the backbone to unfreeze, or "all"
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    seed: int = 0


def backbone_units(model: Classifier) -> list[nn.Module]:
    """The backbone as an ordered list of units, input to output: stem, each block, head conv (+ pre-logits)."""
    b = model.backbone
    return [b.stem, *b.blocks, nn.ModuleList([b.head, b.pre_logits])]


def parse_blocks(value: str | int | None, units: int | None = None) -> int | str | None:
    """'--fine-tune' value: None/'0' → off, 'all', or a count of top units below `units` (the backbone's)."""
    if value in (None, "", 0, "0", "none"):
        return None
    if value == "all":
        return "all"
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--fine-tune takes a number of top blocks or 'all', got {value!r}") from None
    if n < 0:
        raise ConfigError(f"--fine-tune takes a positive number of top blocks or 'all', got {n}")
    if units is not None and n >= units:  # silently training the stem too would not be the recipe asked for
        raise ConfigError(f"--fine-tune must be 'all' or an int in [1, {units - 1}] (this backbone has {units} "
                          f"units: the stem, its blocks and the head), got {n}")
    return n


def set_trainable(model: Classifier, blocks: int | str) -> int:
    """Freeze the backbone except its top `blocks` units (all for 'all'); returns trainable parameter count."""
    units = backbone_units(model)
    n = len(units) if blocks == "all" else min(int(blocks), len(units))
    for i, u in enumerate(units):
        u.requires_grad_(i >= len(units) - n)
    model.head.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _train_mode(model: Classifier) -> None:
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _batches(paths: list[str], labels: np.ndarray, order: np.ndarray, pre: Preprocess, augment: Augment | None,
             batch_size: int, seed: int, workers: int | None):
    # A fresh random view of every image each epoch: seeded by (epoch seed, image index).
    jobs = [(paths[i], [seed * 1_000_003 + int(i)]) for i in order]
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for i, res in zip(order, imap(Crops(pre, augment), jobs, workers, chunksize=4)):
        if isinstance(res, str):
            continue
        xs.append(res[0])
        ys.append(int(labels[i]))
        if len(xs) == batch_size:
            yield np.stack(xs), np.array(ys)
            xs, ys = [], []
    if xs:
        yield np.stack(xs), np.array(ys)


def _input(pre: Preprocess, xb: np.ndarray, device: str) -> torch.Tensor:
    return pre.normalize(xb).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _autocast(device: str) -> contextlib.AbstractContextManager:
    """bfloat16 mixed precision on GPUs that have it (no loss scaling needed); full float32 elsewhere."""
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_device(device: str) -> str:
    """'cpu' or an available 'cuda[:N]'; anything else is a one-line error saying what to use."""
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: PyTorch sees no CUDA GPU here (torch {torch.__version__}); "
                             "use --device cpu, or install a CUDA build of torch on a machine with a GPU")
        return device
    raise ConfigError(f"--device takes 'cpu' or 'cuda[:N]', got {device!r}")


def predict_logits(model: Classifier, pre: Preprocess, paths: list[str], batch_size: int = 32,
                   workers: int | None = 1, device: str = "cpu") -> np.ndarray:
    """Logits of the plain centre crops (eval mode)."""
    model.eval()
    out = []
    order = np.arange(len(paths))
    with torch.inference_mode(), _autocast(device):
        for xb, _ in _batches(paths, np.zeros(len(paths), int), order, pre, None, batch_size, 0, workers):
            out.append(model(_input(pre, xb, device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fine_tune(model: Classifier, pre: Preprocess, train_paths: list[str], ytr: np.ndarray,
              val_paths: list[str], yval: np.ndarray, cfg: FineTuneConfig, augment: Augment | None,
              workers: int | None = None, on_epoch: Callable[[dict], None] | None = None,
              class_weights: torch.Tensor | None = None, world: World = World(),
              device: str = "cpu") -> tuple[Classifier, list[dict], float]:
    """Train the unfrozen top of `model` on the fly; returns (best model by val accuracy, history, best val acc).

    Epoch 0 is the starting point (the converged head), so the result is never worse on validation.
    Under torchrun every rank takes its share of each global batch (same global batches as one
    process: rank r gets images r, r+N, ... of it) and DistributedDataParallel averages gradients.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)  # same seed on every rank: same permutation, disjoint shares
    # Decoding (~2 ms/image) is tiny next to a training step; decode processes beside torch's own
    # threads oversubscribe the cores and cost more than they save (measured: 3.5 min of sys time).
    workers = 1 if workers is None else workers
    model = model.to(device).to(memory_format=torch.channels_last)
    set_trainable(model, cfg.blocks)
    net: nn.Module = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers (frozen BatchNorm statistics) are the same on every rank: no sync on each forward.
        # broadcast_buffers=False did the same and is deprecated in torch 2.13 (a warning from every rank).
        net = DistributedDataParallel(model, forward_sync_buffers=False,
                                      device_ids=[torch.cuda.current_device()] if device.startswith("cuda") else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = max(1, cfg.batch_size // world.size)
    steps = cfg.epochs * max(1, math.ceil(len(train_paths) / world.size / batch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, 0))
    loss_fn = WeightedCrossEntropy(class_weights, cfg.label_smoothing)
    mine = np.arange(len(val_paths))[world.rank::world.size]

    def val_score() -> tuple[float, float]:
        if not len(val_paths):
            return 0.0, 0.0
        logits = torch.from_numpy(predict_logits(model, pre, [val_paths[i] for i in mine], workers=workers,
                                                 device=device))
        hits, loss = world.all_sum(hits_and_loss(logits, yval[mine]) if len(mine) else [0.0, 0.0])
        return hits / len(val_paths), loss / len(val_paths)

    def train_epoch(epoch: int) -> list[float]:
        order = rng.permutation(len(train_paths))
        # Global batch k is order[k*B:(k+1)*B]; this rank's part of it is every size-th image.
        share = np.concatenate([order[s:s + cfg.batch_size][world.rank::world.size]
                                for s in range(0, len(order), cfg.batch_size)]) if len(order) else order
        totals = [0.0, 0.0, 0.0]
        pbar = bar(f"fine-tune epoch {epoch}/{cfg.epochs}", len(share), "img") if world.main else None
        # join() lets a rank that runs out of batches (an unreadable image skipped) stop without a hang.
        with net.join() if world.distributed else contextlib.nullcontext():  # type: ignore[operator]
            for xb, yb in _batches(train_paths, ytr, share, pre, augment, batch, cfg.seed * 1000 + epoch, workers):
                y = torch.from_numpy(yb.astype(np.int64)).to(device)
                with _autocast(device):
                    logits = net(_input(pre, xb, device))
                    loss = loss_fn(logits.float(), y)
                step(opt, loss, logits, y, totals)
                sched.step()
                if pbar:
                    pbar.update(len(y) * world.size)
        if pbar:
            pbar.close()
        return world.all_sum(totals)

    history, best_acc = keep_best(model, cfg.epochs, opt, train_epoch, val_score, on_epoch)
    return model.eval().cpu().to(memory_format=torch.contiguous_format), history, best_acc


def hits_and_loss(logits: torch.Tensor, y: np.ndarray) -> list[float]:
    """[correct predictions, summed cross-entropy] of a batch: what ranks add up for a validation score."""
    yt = torch.from_numpy(y.astype(np.int64))
    return [float((logits.argmax(1) == yt).sum()), float(nn.functional.cross_entropy(logits, yt, reduction="sum"))]


def keep_best(model: nn.Module, epochs: int, opt: torch.optim.Optimizer, train_epoch: Callable[[int], list[float]],
              val_score: Callable[[], tuple[float, float]],
              on_epoch: Callable[[dict], None] | None = None) -> tuple[list[dict], float]:
    """The fit loop (training/loop.py) for fine-tuning: epoch 0 is the starting point, the best epoch is kept.

    So the result is never worse on validation than the converged head it started from. Each
    `train_epoch(epoch)` returns [summed loss, correct, images] over all ranks. Returns (history,
    best val accuracy).
    """
    history, best = fit(model, epochs, train_epoch, val_score, lambda: opt.param_groups[0]["lr"],
                        [lambda row, _: on_epoch(row)] if on_epoch else [], train_mode=lambda: _train_mode(model),
                        baseline=True, lr_option=f"--fine-tune-lr (got {opt.defaults['lr']:g})")
    model.requires_grad_(True)
    return history.rows, best.accuracy
