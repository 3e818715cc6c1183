"""`edgeclf evaluate`: accuracy of the exported file itself on the split training held out."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, read_json, write_json, write_text
from ..data.dataset import scan
from ..data.images import ImageDecodeError, load_rgb
from ..data.parallel import imap
from ..models.preprocess import Preprocess
from ..progress import progress
from ..report.table import format_table
from .engine import Engine, load_engine
from .metrics import classification_metrics


@dataclass(frozen=True)
class LoadCrop:
    """Picklable worker: path → uint8 crop, or the reason it cannot be decoded."""

    pre: Preprocess

    def __call__(self, path: str) -> np.ndarray | str:
        try:
            return self.pre.to_uint8(load_rgb(path, min_side=self.pre.resize_to))
        except ImageDecodeError as exc:
            return exc.reason


def _run_dir(engine: Engine) -> Path | None:
    """The run directory that produced the model, when it is still there."""
    if engine.kind == "torch":
        return engine.path
    side = engine.path.with_suffix(".json")
    run_dir = Path(read_json(side).get("run_dir", "")) if side.is_file() else None
    return run_dir if run_dir and (run_dir / "model.pt").is_file() else None


def _split_percents(engine: Engine) -> tuple[float, float]:
    """The split percentages of the run that produced the model, so the test split is the same files."""
    run_dir = _run_dir(engine)
    split = run_dir / "split.json" if run_dir else None
    if split and split.is_file():
        rec = read_json(split)
        return float(rec["val_percent"]), float(rec["test_percent"])
    return 10.0, 10.0


def predict_files(engine: Engine, paths: list[str], workers: int | None = None, desc: str = "predicting"
                  ) -> tuple[np.ndarray, dict[str, str], list[int]]:
    """Probabilities for the decodable files; returns (probs, {bad path: reason}, indices of good files)."""
    good, arrays, bad = [], [], {}
    for i, res in enumerate(progress(imap(LoadCrop(engine.preprocess), paths, workers), "decoding", len(paths), "img")):
        if isinstance(res, str):
            bad[paths[i]] = res
        else:
            good.append(i)
            arrays.append(res)
    probs = []
    for s in progress(range(0, len(arrays), 32), desc, (len(arrays) + 31) // 32, "batch"):
        probs.append(engine.predict(np.stack(arrays[s:s + 32])))
    out = np.concatenate(probs) if probs else np.zeros((0, len(engine.labels)), np.float32)
    return out, bad, good


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str = "test", top_k: int = 5,
             out: str | os.PathLike[str] | None = None, threads: int | None = None, workers: int | None = None,
             compare_to_run: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Evaluate a .tflite file or run directory on one split of DATA; optionally write reports to `out`."""
    engine = load_engine(model, threads)
    val_p, test_p = _split_percents(engine)
    ds = scan(data, val_p, test_p)
    samples = ds.split(split)
    index = {c: i for i, c in enumerate(engine.labels)}
    missing = [c for c in ds.classes if c not in index]
    if missing:
        from ..errors import DatasetError

        raise DatasetError(f"{data} has classes the model does not know: {', '.join(missing)}; "
                           "evaluate on the dataset the model was trained on")
    paths = [str(s.path) for s in samples]
    probs, bad, good = predict_files(engine, paths, workers)
    y = np.array([index[ds.classes[samples[i].label]] for i in good], dtype=np.int64)
    m = classification_metrics(y, probs, engine.labels, top_k)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    m.update({
        "model": str(model), "kind": engine.kind, "split": split, "data": str(ds.root),
        "skipped": [{"path": p, "reason": r} for p, r in bad.items()],
        "misclassified": [{"path": paths[good[j]], "true": engine.labels[y[j]], "predicted": engine.labels[pred[j]],
                           "score": round(float(probs[j, pred[j]]), 4)} for j in np.nonzero(pred != y)[0]],
    })
    run_dir = _run_dir(engine)
    if compare_to_run and run_dir is not None and engine.kind != "torch":
        ref, _, _ = predict_files(load_engine(run_dir, threads), [paths[i] for i in good], workers,
                                         desc="PyTorch reference")
        if len(ref) == len(pred):
            m["top1_agreement_with_pytorch"] = round(float((ref.argmax(1) == pred).mean()), 4)
            m["pytorch_run"] = str(run_dir)
    if out:
        write_reports(Path(out), m, engine.labels)
    if verbose:
        print(format_metrics(m))
    return m


def write_reports(out: Path, m: dict[str, Any], labels: list[str]) -> None:
    """metrics.json, confusion_matrix.csv and confusion_matrix.png."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", m)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true\\predicted", *labels])
    for lab, row in zip(labels, m["confusion_matrix"]):
        w.writerow([lab, *row])
    write_text(out / "confusion_matrix.csv", buf.getvalue())
    plot_confusion(out / "confusion_matrix.png", np.array(m["confusion_matrix"]), labels)


def plot_confusion(path: Path, cm: np.ndarray, labels: list[str]) -> None:
    """A labelled confusion-matrix heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def format_metrics(m: dict[str, Any]) -> str:
    """Human-readable evaluation summary."""
    topk = next(k for k in m if k.startswith("top") and k.endswith("_accuracy"))
    rows = [[p["class"], p["precision"], p["recall"], p["f1"], p["support"]] for p in m["per_class"]]
    lines = [f"{m['model']} ({m['kind']}) on the {m['split']} split of {m['data']}: {m['n']} images",
             f"accuracy {m['accuracy']:.4f}   {topk.replace('_', ' ')} {m[topk]:.4f}   loss {m['loss']:.4f}"
             + (f"   top-1 agreement with PyTorch {m['top1_agreement_with_pytorch']:.4f}"
                if "top1_agreement_with_pytorch" in m else ""), "",
             format_table(["class", "precision", "recall", "f1", "support"], rows)]
    if m["skipped"]:
        lines.append(f"\nskipped {len(m['skipped'])} unreadable image(s)")
    if m["misclassified"]:
        lines.append(f"\n{len(m['misclassified'])} misclassified (first 10):")
        lines += [f"  {x['path']}: {x['true']} → {x['predicted']} ({x['score']:.2f})" for x in m["misclassified"][:10]]
    return "\n".join(lines)
