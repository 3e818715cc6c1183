"""The one fit loop: epochs, a validation score, and callbacks (keep-best, early stopping, reporting).

Head training, cached fine-tuning and on-the-fly fine-tuning differ only in what one epoch of
training does and how validation is scored; the loop, the learning-rate schedule and the
weights kept at the end are this module's, as in Keras' `fit` with its callbacks.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

# One epoch of training: (epoch number) → [summed loss, correct predictions, images seen].
TrainEpoch = Callable[[int], "list[float]"]
# The validation score: (accuracy, mean loss), or None where there is no validation split.
ValScore = Callable[[], "tuple[float, float] | None"]


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with label smoothing, where a class weight scales each sample's whole loss (Keras' class_weight).

    torch's ``CrossEntropyLoss(weight=w, label_smoothing=e)`` weights the smoothing term of every
    sample by every class's weight: with imbalanced classes the majority's photos are pulled toward
    the minority's labels (182 photos against 1: the head answered the one for all of them).
    """

    def __init__(self, weight: "torch.Tensor | None" = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight, self.label_smoothing = weight, label_smoothing

    def forward(self, logits: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        """The batch's weighted mean loss (divided by the summed weights of its labels, as torch does)."""
        per = nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)
        if self.weight is None:
            return per.mean()
        w = self.weight.to(logits.device)[y]
        return (w * per).sum() / w.sum()


def _score(row: dict) -> tuple[float, float] | None:
    """What "better" means for every callback: validation accuracy, then lower loss (None without validation)."""
    return (row["val_acc"], -row["val_loss"]) if "val_acc" in row else None


class Callback(Protocol):
    """Called after every epoch with its row of metrics; returns True to stop training."""

    def __call__(self, row: dict, model: nn.Module) -> bool | None:
        """React to one epoch's row; True stops training."""


@dataclass
class KeepBest:
    """Remember the weights of the best epoch (validation accuracy, then loss); `restore` puts them back.

    Without a validation score the last epoch counts as the best.
    """

    best: tuple[float, float] = (-math.inf, -math.inf)
    epoch: int = 0
    state: dict | None = None

    def __call__(self, row: dict, model: nn.Module) -> None:
        """Copy the weights when this epoch scores better than every earlier one."""
        score = _score(row)
        if score is None or score > self.best:
            self.best = score or (math.inf, math.inf)
            self.epoch, self.state = row["epoch"], copy.deepcopy(model.state_dict())

    @property
    def accuracy(self) -> float:
        """Validation accuracy of the kept epoch (0 without validation)."""
        return self.best[0] if math.isfinite(self.best[0]) else 0.0

    def restore(self, model: nn.Module) -> None:
        """Load the kept weights into `model`."""
        if self.state is not None:
            model.load_state_dict(self.state)


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without a better validation score (0 = never)."""

    patience: int
    best: tuple[float, float] = (-math.inf, -math.inf)
    stale: int = 0

    def __call__(self, row: dict, model: nn.Module) -> bool:
        """True once `patience` epochs in a row have not improved the score."""
        score = _score(row)
        if score is None or not self.patience:
            return False
        self.best, self.stale = (score, 0) if score > self.best else (self.best, self.stale + 1)
        return self.stale >= self.patience


@dataclass
class History:
    """Every epoch's row, in order."""

    rows: list[dict] = field(default_factory=list)

    def __call__(self, row: dict, model: nn.Module) -> None:
        """Keep the row."""
        self.rows.append(row)


def step(opt: "torch.optim.Optimizer", loss: "torch.Tensor", logits: "torch.Tensor", y: "torch.Tensor",
         totals: list[float]) -> None:
    """One optimizer step on a batch's loss; adds the batch's [summed loss, correct, images] to `totals`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    totals[0] += loss.item() * len(y)
    totals[1] += float((logits.argmax(1) == y).sum())
    totals[2] += len(y)


def warmup_cosine(total: int, warm: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up over `warm` steps, then cosine decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, total - warm) / max(1, total - warm)))
    return factor


def fit(model: nn.Module, epochs: int, train_epoch: TrainEpoch, val_score: ValScore, lr: Callable[[], float],
        callbacks: list[Callable[[dict, nn.Module], bool | None]] = (), train_mode: Callable[[], None] | None = None,
        baseline: bool = False, lr_option: str = "the learning rate") -> tuple[History, KeepBest]:
    """Train for up to `epochs`, scoring validation after each; the best epoch's weights are restored.

    `baseline=True` scores the starting weights as epoch 0 (fine-tuning starts from a converged
    head, so its result is never worse on validation than that). Callbacks run in order after
    each epoch; any that returns True stops training. `lr()` reads the current learning rate for
    the row; `train_mode()` puts the model in training mode (default model.train()). A loss that
    turns NaN or infinite is a ConfigError naming `lr_option` (e.g. "--learning-rate (got 10)").
    """
    history, best = History(), KeepBest()
    if baseline:
        score = val_score()
        row = {"epoch": 0, **({"val_acc": score[0], "val_loss": score[1]} if score else {})}
        history(row, model)
        best(row, model)
    for epoch in range(1, epochs + 1):
        (train_mode or model.train)()
        loss, correct, seen = train_epoch(epoch)
        row = {"epoch": epoch, "train_loss": loss / max(1, seen), "train_acc": correct / max(1, seen), "lr": lr()}
        if not math.isfinite(row["train_loss"]):
            # Weights that have gone NaN answer one class for every photo; without this the run went on to
            # calibrate and export them and crashed later in a histogram, far from the cause.
            raise ConfigError(f"training diverged: the loss became {row['train_loss']} in epoch {epoch} of "
                              f"{epochs}; lower {lr_option}")
        score = val_score()
        if score:
            row["val_acc"], row["val_loss"] = score
        history(row, model)
        best(row, model)
        if any([bool(cb(row, model)) for cb in callbacks]):
            break
    best.restore(model)
    model.eval()
    return history, best
