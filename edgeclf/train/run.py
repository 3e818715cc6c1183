"""The run directory: everything needed to rebuild, export and evaluate a trained classifier."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path, read_json, write_bytes, write_text
from ..errors import EdgeclfError
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from ..models.zoo import get_spec

MODEL_FILE = "model.pt"
MANIFEST = "manifest.json"


def save_model(run_dir: Path, model: Classifier, meta: dict[str, Any]) -> Path:
    """Write model.pt: backbone + head weights and what is needed to rebuild them."""
    payload = {"meta": meta, "backbone": model.backbone.state_dict(), "head": model.head.state_dict()}
    buf = io.BytesIO()
    # Serialized in memory, then written by Python: torch's own file writer reports a full disk as
    # a RuntimeError, where write_bytes gives the one-line "free disk space" error.
    torch.save(payload, buf)
    return write_bytes(Path(run_dir) / MODEL_FILE, buf.getvalue())


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the trained classifier of a run directory (eval mode) and its metadata."""
    run_dir = Path(run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise EdgeclfError(f"{run_dir} is not a finished edgeclf run (no {MODEL_FILE}); run `edgeclf train` first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = payload["meta"]
        spec = get_spec(meta["model"])
        if meta.get("pad", spec.arch.pad) != spec.arch.pad:  # weights imported from a TF-padded .tflite
            spec = replace(spec, arch=replace(spec.arch, pad=meta["pad"]))
        model = Classifier(spec.build(), len(meta["classes"]), meta["head"]["dropout"], meta["head"]["hidden"])
        model.backbone.load_state_dict(payload["backbone"])
        model.head.load_state_dict(payload["head"])
    except (KeyError, RuntimeError, OSError) as exc:
        raise EdgeclfError(f"{path} is damaged or from another edgeclf version ({exc}); retrain") from None
    return model.eval(), meta


def run_preprocess(meta: dict[str, Any], run_dir: object = "this run") -> Preprocess:
    """The preprocessing recorded in a run's metadata."""
    return Preprocess.from_record(meta["preprocess"], run_dir)


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


def write_tensorboard(log_dir: Path, history: list[dict]) -> None:
    """TensorBoard scalars of the history (`tensorboard --logdir RUN_DIR/tensorboard`)."""
    from ..report.tensorboard import write_scalars

    if history:
        write_scalars(log_dir, history)


def plot_curves(path: Path, history: list[dict], title: str) -> None:
    """curves.png: accuracy and loss per epoch, train vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a run finished (its manifest says so)."""
    p = Path(run_dir) / MANIFEST
    return p.is_file() and read_json(p).get("status") == "complete"
