"""`edgeclf train`: dataset → cached features → head → run directory."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import write_json, write_text
from ..data.dataset import Dataset, class_counts, scan
from ..errors import DatasetError
from ..models.builder import Classifier
from ..models.weights import locate, sha256_file
from ..models.zoo import get_spec
from ..runtime.metrics import classification_metrics, softmax
from .features import FeatureCache, cache_key, default_cache_root, extract
from .head import HeadConfig, train_head
from .run import MANIFEST, plot_curves, save_model, write_history_csv


def _weights_id(spec_weights: str | None, weights: str, seed: int) -> str:
    if weights == "none":
        return f"random-seed{seed}"  # a random backbone differs per seed, so its features do too
    if weights == "imagenet":
        _, src = locate(spec_weights) if spec_weights else (None, None)
        return src.sha256 if src else "none"
    return sha256_file(weights)


def _check_trainable(ds: Dataset) -> None:
    counts = class_counts(ds.split("train"), len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise DatasetError(f"class(es) {', '.join(empty)} have no image in the train split of {ds.root}; "
                           "add images or lower --val-percent/--test-percent")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("edgeclf", "torch", "numpy", "pillow", "litert-torch", "ai-edge-litert"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def train(data: str | os.PathLike[str], model: str = "efficientnet_lite0", out: str | os.PathLike[str] = "runs/train",
          *, weights: str = "imagenet", epochs: int = 30, batch_size: int = 32, lr: float = 1e-3,
          dropout: float = 0.2, label_smoothing: float = 0.1, hidden: int = 0, weight_decay: float = 1e-4,
          val_percent: float = 10.0, test_percent: float = 10.0, class_weights: str = "auto", patience: int = 10,
          seed: int = 0, cache_dir: str | os.PathLike[str] | None = None, workers: int | None = None,
          verbose: bool = True) -> Path:
    """Train a classifier on DATA/<class>/ images; returns the run directory."""
    t0 = time.perf_counter()
    log = print if verbose else (lambda *a, **k: None)
    spec = get_spec(model)  # unknown model names fail before any scanning
    ds = scan(data, val_percent, test_percent)
    _check_trainable(ds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "status": "running",
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgeclf") else None,
        "config": {"data": str(ds.root), "model": spec.name, "weights": weights, "epochs": epochs,
                   "batch_size": batch_size, "lr": lr, "dropout": dropout, "label_smoothing": label_smoothing,
                   "hidden": hidden, "weight_decay": weight_decay, "val_percent": val_percent,
                   "test_percent": test_percent, "class_weights": class_weights, "patience": patience, "seed": seed},
        "versions": _versions(),
        "dataset_fingerprint": ds.fingerprint(),
    }
    # Written first, finished last: an interrupted run is visibly marked incomplete.
    write_json(out / MANIFEST, manifest)
    torch.manual_seed(seed)
    from ..models.weights import load_pretrained

    backbone = spec.build()
    if weights != "none":
        load_pretrained(backbone, spec, weights)
    backbone.eval()
    key = cache_key(spec.name, _weights_id(spec.weights, weights, seed), spec.preprocess)
    root = Path(cache_dir) if cache_dir else default_cache_root()
    cache = FeatureCache(root, key)
    paths = [str(s.path) for s in ds.samples]
    t_feat = time.perf_counter()
    feats, _hashes, bad = extract(backbone, spec.preprocess, paths, cache, workers=workers,
                                  desc=f"{spec.name} features")
    t_feat = time.perf_counter() - t_feat
    for p, reason in bad.items():
        log(f"skipped {p}: {reason}", file=sys.stderr)
    ok = np.array([str(s.path) not in bad for s in ds.samples])
    labels = np.array([s.label for s in ds.samples])
    split = np.array([s.split for s in ds.samples])
    sel = {sp: ok & (split == sp) for sp in ("train", "val", "test")}
    cfg = HeadConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, dropout=dropout,
                     label_smoothing=label_smoothing, hidden=hidden, class_weights=class_weights, patience=patience,
                     seed=seed)
    t_head = time.perf_counter()
    result = train_head(feats[sel["train"]], labels[sel["train"]], feats[sel["val"]], labels[sel["val"]],
                        len(ds.classes), cfg)
    t_head = time.perf_counter() - t_head
    clf = Classifier(backbone, len(ds.classes), dropout, hidden)
    clf.head.load_state_dict(result.head.state_dict())
    clf.eval()
    metrics: dict[str, Any] = {"model": spec.name, "best_epoch": result.best_epoch, "classes": ds.classes}
    for sp in ("train", "val", "test"):
        if sel[sp].any():
            with torch.no_grad():
                probs = softmax(result.head(torch.from_numpy(feats[sel[sp]])).numpy())
            m = classification_metrics(labels[sel[sp]], probs, ds.classes)
            metrics[sp] = m if sp == "test" else {k: m[k] for k in ("n", "accuracy", "loss")}
    metrics["skipped_images"] = [{"path": p, "reason": r} for p, r in bad.items()]
    meta = {"model": spec.name, "classes": ds.classes, "preprocess": spec.preprocess.to_dict(),
            "head": {"dropout": dropout, "hidden": hidden}, "weights": weights, "features": backbone.num_features}
    save_model(out, clf, meta)
    write_text(out / "labels.txt", "\n".join(ds.classes) + "\n")
    write_json(out / "split.json", ds.split_record())
    write_json(out / "metrics.json", metrics)
    write_history_csv(out / "history.csv", result.history)
    plot_curves(out / "curves.png", result.history, f"{spec.name} head on cached features")
    manifest["status"] = "complete"
    manifest["timings_s"] = {"features": round(t_feat, 2), "head": round(t_head, 2),
                             "total": round(time.perf_counter() - t0, 2)}
    manifest["head_config"] = asdict(cfg)
    write_json(out / MANIFEST, manifest)
    _summary(log, out, metrics, manifest)
    return out


def _summary(log, out: Path, metrics: dict, manifest: dict) -> None:
    t = manifest["timings_s"]
    acc = {sp: metrics[sp]["accuracy"] for sp in ("train", "val", "test") if sp in metrics}
    log(f"trained {metrics['model']} head (best epoch {metrics['best_epoch']}) in {t['total']:.1f}s "
        f"(features {t['features']:.1f}s, head {t['head']:.1f}s)")
    log("accuracy  " + "  ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    log(f"run dir   {out}  (model.pt, labels.txt, metrics.json, curves.png)")
