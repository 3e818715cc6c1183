"""What a training run writes beside its model: per-epoch history (CSV, TensorBoard) and curves.png."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

from .._io import write_text
from ..plots import new_figure, save_png


def write_history_csv(path: Path, history: list[dict]) -> None:
    """Per-epoch metrics as CSV."""
    if not history:
        return
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for row in history for k in row))
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text(path, buf.getvalue())


class LiveLog:
    """The epoch callback of a run: history.csv and TensorBoard grow as each epoch ends (watch a run
    while it trains: `tensorboard --logdir RUN_DIR/tensorboard`); fine-tuning epochs, minutes each
    on a CPU, print a progress line. `stage` names the stage the next epochs belong to.
    """

    def __init__(self, out: Path | None, log: Callable[..., None] | None = None,
                 user: Callable[[dict], None] | None = None) -> None:
        from .tensorboard import ScalarWriter

        self.out, self.log, self.user = out, log, user
        self.rows: list[dict] = []
        self.stage = "head"
        self.tb = ScalarWriter(out / "tensorboard") if out is not None else None

    def __call__(self, row: dict) -> None:
        """Keep the row (history.csv, TensorBoard), print it past the head stage, pass it to the user's callback."""
        full = dict(row, epoch=len(self.rows) + 1, stage=self.stage)
        self.rows.append(full)
        if self.out is not None and self.tb is not None:
            write_history_csv(self.out / "history.csv", self.rows)
            self.tb.add(full)
        if self.log is not None and self.stage != "head":
            val = f", val acc {row['val_acc']:.4f}" if "val_acc" in row else ""
            self.log(f"{self.stage} epoch {row['epoch']}: train acc {row['train_acc']:.4f}{val}")
        if self.user is not None:
            self.user(row)


def plot_curves(path: Path, history: list[dict], title: str) -> None:
    """curves.png: accuracy and loss per epoch, train vs validation."""
    fig, axes = new_figure((10, 4), ncols=2)
    for ax, metric in zip(axes, ("acc", "loss")):
        for split, name in (("train", "train"), ("val", "validation")):
            pts = [(r["epoch"], r[f"{split}_{metric}"]) for r in history if f"{split}_{metric}" in r]
            if pts:
                ax.plot(*zip(*pts), label=name)
        ft = [r["epoch"] for r in history if r.get("stage") == "fine-tune"]
        if ft:
            ax.axvline(min(ft) - 0.5, color="grey", ls="--", lw=1, label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)


def _blocks(n: int | str) -> str:
    """What --fine-tune N unfroze, in words: 'all blocks' or 'top 3 block(s)'."""
    return "all blocks" if n == "all" else f"top {n} block(s)"


def summary(log: Callable[[str], None], out: Path, metrics: dict, manifest: dict) -> None:
    """The lines `train` prints at the end: times, accuracies, where the run went."""
    t = manifest["timings_s"]
    # How many photos a held-out figure rests on: 0.800 on 5 test photos is not 0.800 on 500.
    acc = {sp: f"{metrics[sp]['accuracy']:.3f}" + (f" ({metrics[sp]['n']:,} photos)" if sp != "train" else "")
           for sp in ("train", "val", "test") if sp in metrics}
    ft = metrics.get("fine_tune")
    log(f"trained {metrics['model']} head (best epoch {metrics['best_epoch']}) in {t['total']:.1f}s "
        f"(features {t['features']:.1f}s, head {t['head']:.1f}s"
        + (f", fine-tune {t.get('fine_tune', 0):.1f}s)" if ft else ")"))
    if ft:
        # The run keeps whichever did better on validation; a user who asked for fine-tuning must see
        # when it was not the one kept.
        kept = ("kept" if ft["kept"] == "fine-tuned"
                else "not better than the head, so the head was kept")
        log(f"fine-tune {_blocks(ft['blocks'])}, {ft['epochs']} epochs: val {ft['val_acc_fine_tuned']:.3f} "
            f"(head {ft['val_acc_head']:.3f}) — {kept}")
    log("accuracy  " + "  ".join(f"{k} {v}" for k, v in acc.items()))
    r = manifest.get("recipe")
    if r:
        ft = (f", fine-tune {_blocks(r['fine_tune'])} x {r['fine_tune_epochs'] or 'default'} epochs"
              if r["fine_tune"] else "")
        pool = f", {r['pool_blocks']} pooled blocks" if r.get("pool_blocks") else ""
        log(f"recipe    {r['aug_views']} augmented views, hidden {r['hidden']}{pool}{ft} — {r['why']}")
    d = metrics.get("distillation")
    if d:
        log(f"teacher   {d['model']} (val {d['val_accuracy']:.3f}): head val {d['val_acc_head_without_teacher']:.3f} "
            f"without it, {d['val_acc_head_with_teacher']:.3f} with it")
    log(f"run dir   {out}  (model.pt, labels.txt, metrics.json, curves.png)")
