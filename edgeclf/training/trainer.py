"""`edgeclf train`: dataset → cached features → head → run directory."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._io import write_json, write_text
from ..data.dataset import Dataset, scan
from ..data.exclusions import apply_exclusions, read_exclusions
from ..errors import ConfigError
from ..models.builder import Classifier
from ..models.preprocess import DEFAULT_RESIZE, check_resize
from ..models.zoo import get_spec
from ..metrics import classification_metrics, softmax
from .calibrate import apply_calibration
from ..data.augment import Augment
from .backends import make_backend
from .features import FeatureCache, cache_key, default_cache_root
from .distill import Distill, Teacher, compare_teacher, load_teacher, teacher_logits
from .distributed import World, extract_shared, setup, teardown
from .finetune import FineTuneConfig, check_device, fine_tune, parse_blocks, predict_logits
from .finetune_cached import Bottom, activation_shape, split_point
from .finetune_cached import fine_tune_cached as train_top_cached
from .head import HeadConfig, class_weight_vector, predict_probs, train_head
from ..artifacts.run import MANIFEST, MODEL_FILE, SPLIT_FILE, save_model
from .run_setup import check_options, check_trainable, next_run_dir, versions, weights_id
from .outputs import plot_curves, summary, write_history_csv, write_tensorboard


def train(data: str | os.PathLike[str], model: str = "efficientnet_lite0", out: str | os.PathLike[str] = "runs/train",
          *, weights: str = "imagenet", epochs: int = 30, steps: int | None = None, batch_size: int = 32,
          lr: float = 1e-3, dropout: float = 0.2, label_smoothing: float = 0.1, hidden: int = 0,
          weight_decay: float = 1e-4, val_percent: float = 10.0, test_percent: float = 10.0,
          class_weights: str = "auto", patience: int = 10, seed: int = 0, aug_views: int = 0,
          flip: bool = True, random_crop: float = 10.0, random_scale: float = 20.0, random_brightness: float = 20.0,
          fine_tune: int | str | None = None, fine_tune_epochs: int | None = None, fine_tune_lr: float = 1e-4,
          fine_tune_cached: bool = True, resize: str | None = None,
          feature_backend: str = "auto", cache_dir: str | os.PathLike[str] | None = None,
          workers: int | None = None, device: str = "cpu", on_epoch: Callable[[dict], None] | None = None,
          calibrate: bool = True, exclude: str | os.PathLike[str] | None = None, exist_ok: bool = False,
          teacher: str | os.PathLike[str] | None = None, distill_weight: float = 0.5,
          distill_temperature: float = 2.0, verbose: bool = True) -> Path:
    """Train a classifier on DATA/<class>/ images; returns the run directory.

    The head trains on cached backbone features (plus `aug_views` cached augmented views per
    training image); `fine_tune` then optionally unfreezes the top N blocks, trained on their
    cached input activations (`fine_tune_cached`, default 20 epochs), or all of the network on the
    fly (default 3 epochs) on `device` ("cpu" or "cuda", with bfloat16 mixed precision). Launched
    by torchrun, the processes share the work (edgeclf/training/distributed.py) and rank 0 writes the run directory.
    `on_epoch(row)` is called after every epoch of either stage with that epoch's metrics.
    `calibrate` fits a temperature on the validation split and folds it into the head, so the
    probabilities of the model and of every export are calibrated (metrics.json: ECE before/after).
    `teacher` (a finished run on the same dataset) distils its soft labels into the head and the
    cached fine-tune: loss = (1 - distill_weight) x labels + distill_weight x teacher at
    `distill_temperature` (edgeclf/training/distill.py).
    An `out` that already holds a run is never overwritten: the run goes to `out2`, `out3`, ...
    unless `exist_ok` (returned path = where it went).
    """
    t0 = time.perf_counter()
    check_options(locals())
    spec = get_spec(model)  # unknown model names fail before any scanning
    # The input-fit mode is part of the preprocessing: it reaches the cache keys, the run and every export.
    resize = check_resize(resize or DEFAULT_RESIZE)
    spec = replace(spec, preprocess=replace(spec.preprocess, resize=resize))
    ft_blocks = parse_blocks(fine_tune)
    device = check_device(device)
    augment = Augment(flip, random_crop, random_scale, random_brightness)
    ds = scan(data, val_percent, test_percent)
    excluded = None
    if exclude is not None:  # doctor's suggestions, read by the user: files left out, never touched
        names, digest = read_exclusions(exclude)
        excluded = {"file": str(Path(exclude).resolve()), "sha256": digest, "listed": len(names),
                    "excluded": apply_exclusions(ds, names)}
    check_trainable(ds)
    distill = Distill(distill_weight, distill_temperature)
    if teacher is not None and ft_blocks is not None and (ft_blocks == "all" or not fine_tune_cached or device != "cpu"):
        raise ConfigError("--teacher works with head training and cached fine-tuning of the top N blocks on the "
                          f"CPU; --fine-tune {ft_blocks} {'on ' + device if device != 'cpu' else 'on the fly'} "
                          "cannot use it: pick --fine-tune N")
    tutor = load_teacher(teacher, ds) if teacher is not None else None
    asked, out = Path(out), next_run_dir(Path(out), exist_ok)  # before setup(): every rank sees the same folders
    world = setup(device)
    try:
        log = print if verbose and world.main else (lambda *a, **k: None)
        if out != asked:
            log(f"{asked} holds a finished run; this one goes to {out} (--exist-ok to replace it)")
        if ds.skipped_links:
            log(f"skipped {len(ds.skipped_links)} folder link(s) that loop or leave their class folder: "
                f"{', '.join(ds.skipped_links[:3])}", file=sys.stderr)
        if world.main:
            out.mkdir(parents=True, exist_ok=True)
        config = {"data": str(ds.root), "model": spec.name, "resize": resize, "weights": weights, "epochs": epochs,
                  "steps": steps,
                  "batch_size": batch_size, "lr": lr, "dropout": dropout, "label_smoothing": label_smoothing,
                  "hidden": hidden, "weight_decay": weight_decay, "val_percent": val_percent,
                  "test_percent": test_percent, "class_weights": class_weights, "patience": patience, "seed": seed,
                  "aug_views": aug_views, "augment": augment.to_dict(), "fine_tune": ft_blocks,
                  "fine_tune_epochs": fine_tune_epochs, "fine_tune_lr": fine_tune_lr,
                  "fine_tune_cached": fine_tune_cached, "feature_backend": feature_backend, "calibrate": calibrate,
                  "exclude": excluded, "teacher": str(tutor.run_dir) if tutor else None,
                  "distill_weight": distill_weight, "distill_temperature": distill_temperature,
                  "device": device, "processes": world.size}
        manifest: dict[str, Any] = {
            "status": "running",
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgeclf") else None,
            "config": config, "versions": versions(), "dataset_fingerprint": ds.fingerprint(),
        }
        # Written first, finished last: an interrupted run is visibly marked incomplete.
        if world.main:
            for stale in ("metrics.json", MODEL_FILE):
                (out / stale).unlink(missing_ok=True)
            write_json(out / MANIFEST, manifest)
        try:
            return _train(ds, spec, out, manifest, log, t0, world, device, weights=weights, epochs=epochs,
                          steps=steps, batch_size=batch_size, lr=lr, dropout=dropout, label_smoothing=label_smoothing,
                          hidden=hidden, weight_decay=weight_decay, class_weights=class_weights, patience=patience,
                          seed=seed, aug_views=aug_views, augment=augment, ft_blocks=ft_blocks,
                          fine_tune_epochs=fine_tune_epochs, fine_tune_lr=fine_tune_lr,
                          fine_tune_cached=fine_tune_cached, feature_backend=feature_backend, calibrate=calibrate,
                          cache_dir=cache_dir, teacher=tutor, distill=distill,
                          workers=workers, on_epoch=on_epoch)
        except KeyboardInterrupt:
            manifest["status"] = "interrupted"
            if world.main:
                write_json(out / MANIFEST, manifest)
            log(f"interrupted: {out} is marked incomplete; rerun the same command to resume from the feature cache",
                file=sys.stderr)
            raise
    finally:
        teardown(world)


def _train(ds: Dataset, spec, out: Path, manifest: dict, log, t0: float, world: World, device: str, *,
           weights: str, epochs: int,
           steps: int | None, batch_size: int, lr: float, dropout: float, label_smoothing: float, hidden: int,
           weight_decay: float, class_weights: str, patience: int, seed: int, aug_views: int, augment: Augment,
           ft_blocks: int | str | None, fine_tune_epochs: int | None, fine_tune_lr: float, fine_tune_cached: bool,
           feature_backend: str, calibrate: bool, teacher: Teacher | None, distill: Distill,
           cache_dir: str | os.PathLike[str] | None, workers: int | None,
           on_epoch: Callable[[dict], None] | None) -> Path:
    torch.manual_seed(seed)
    from ..models.pretrained import build_pretrained

    # A .tflite file may adapt the spec: TF padding, the input normalization of its quantization.
    loaded = build_pretrained(spec, weights)
    spec, backbone = loaded.spec, loaded.backbone
    backbone.eval()
    wid = weights_id(spec.weights, weights, seed)
    root = Path(cache_dir) if cache_dir else default_cache_root()
    views = list(range(aug_views + 1))
    caches = {v: FeatureCache(root, cache_key(spec.name, wid, spec.preprocess, v, augment)) for v in views}
    paths = [str(s.path) for s in ds.samples]
    split = np.array([s.split for s in ds.samples])
    labels = np.array([s.label for s in ds.samples])
    views_of = [tuple(views) if sp == "train" else (0,) for sp in split]
    t_feat = time.perf_counter()
    used: list[str] = []

    threads = world.cores()
    ft_workers = workers  # fine-tuning decodes in-process unless asked: beside torch's threads, workers oversubscribe
    workers = workers if workers is not None else (threads if world.distributed else None)

    def backend():  # built only when some feature is missing: a warm run never converts anything
        fn = make_backend(feature_backend, backbone, spec.preprocess, caches[0].key, root, threads)
        used.append(fn.name)
        return fn

    feats, hashes, bad = extract_shared(world, backend, feature_backend != "torch", spec.preprocess, paths, caches,
                                   views_of, augment, workers,
                                   f"{spec.name} features ({len(views)} view{'s' if len(views) > 1 else ''})")
    backend_name = used[0] if used else "cache"
    t_feat = time.perf_counter() - t_feat
    for p, reason in bad.items():
        log(f"skipped {p}: {reason}", file=sys.stderr)
    ok = np.array([p not in bad for p in paths])
    sel = {sp: ok & (split == sp) for sp in ("train", "val", "test")}
    n_train = int(sel["train"].sum())
    if steps:
        epochs = max(1, math.ceil(steps / max(1, math.ceil(n_train / batch_size))))
    cfg = HeadConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, dropout=dropout,
                     label_smoothing=label_smoothing, hidden=hidden, class_weights=class_weights, patience=patience,
                     seed=seed)
    soft = None
    if teacher is not None:  # train and val only: the teacher never sees the test split
        soft = teacher_logits(teacher, paths, [views_of[i] if sp != "test" else () for i, sp in enumerate(split)],
                              augment, root, feature_backend, threads, workers, (hashes, bad), world)
    t_head = time.perf_counter()
    result = None
    if world.main:  # seconds of work: one rank trains the head, every rank gets it
        args = (feats[0].subset(sel["train"]), labels[sel["train"]], feats[0].subset(sel["val"]), labels[sel["val"]],
                len(ds.classes), cfg)
        banks = [feats[v].subset(sel["train"]) for v in views[1:]]
        if soft is not None:
            metrics_distill = compare_teacher(teacher, distill, soft[0].subset(sel["val"]), labels[sel["val"]],
                                              train_head(*args, views=banks), log)
        result = train_head(*args, views=banks, on_epoch=on_epoch, distill=distill,
                            soft=[soft[v].subset(sel["train"]) for v in views] if soft is not None else None)
    result = world.broadcast(result)
    t_head = time.perf_counter() - t_head
    clf = Classifier(backbone, len(ds.classes), dropout, hidden)
    clf.head.load_state_dict(result.head.state_dict())
    clf.eval()
    history = [dict(r, stage="head") for r in result.history]
    metrics: dict[str, Any] = {"model": spec.name, "best_epoch": result.best_epoch, "classes": ds.classes}
    if soft is not None and world.main:
        metrics["distillation"] = dict(metrics_distill, val_acc_head_with_teacher=_best_val(result.history))
    probs_of: dict[str, np.ndarray] = {}
    for sp in ("train", "val", "test"):
        if sel[sp].any() and world.main:
            probs_of[sp] = predict_probs(result.head, feats[0].subset(sel[sp]))
    t_ft = 0.0
    if ft_blocks is not None:
        t_ft = time.perf_counter()
        head_val = world.broadcast(_accuracy(probs_of.get("val"), labels[sel["val"]]))
        # Top blocks train on their cached input activations (on CPU); the whole network, or a GPU,
        # trains on the fly.
        k = split_point(backbone, ft_blocks) if fine_tune_cached and device == "cpu" else None
        ft_cfg = FineTuneConfig(blocks=ft_blocks, epochs=fine_tune_epochs or (20 if k else 3), lr=fine_tune_lr,
                                batch_size=batch_size, weight_decay=weight_decay, label_smoothing=label_smoothing,
                                seed=seed)
        idx = {sp: np.flatnonzero(sel[sp]) for sp in sel}
        weights_ft = class_weight_vector(labels[idx["train"]], len(ds.classes), class_weights)
        if k:
            shape = activation_shape(backbone, k, spec.preprocess.size)
            taps = {v: FeatureCache(root, cache_key(spec.name, wid, spec.preprocess, v, augment, tap=k)) for v in views}
            acts, _, _ = extract_shared(
                world, lambda: make_backend(feature_backend, Bottom(backbone, k), spec.preprocess, taps[0].key, root,
                                            threads),
                feature_backend != "torch", spec.preprocess, paths, taps,
                [views_of[i] if sp != "test" else () for i, sp in enumerate(split)], augment, workers,
                f"activations into the top {ft_blocks} blocks", hashed=(hashes, bad))
            clf, ft_hist, ft_val = train_top_cached(
                clf, k, shape, [acts[v].subset(sel["train"]) for v in views], labels[sel["train"]],
                acts[0].subset(sel["val"]), labels[sel["val"]], ft_cfg, class_weights=weights_ft, head_lr=lr,
                on_epoch=on_epoch, world=world, distill=distill,
                soft=[soft[v].subset(sel["train"]) for v in views] if soft is not None else None)
        else:
            clf, ft_hist, ft_val = fine_tune(
                clf, spec.preprocess, [paths[i] for i in idx["train"]], labels[idx["train"]],
                [paths[i] for i in idx["val"]], labels[idx["val"]], ft_cfg, augment, workers=ft_workers,
                on_epoch=on_epoch, class_weights=weights_ft, world=world, device=device)
        base = len(history)
        history += [dict(r, epoch=base + r["epoch"], stage="fine-tune") for r in ft_hist[1:]]
        improved = ft_val > head_val
        metrics["fine_tune"] = {"blocks": ft_blocks, "mode": "cached activations" if k else "on the fly",
                                "epochs": ft_cfg.epochs, "val_acc_head": head_val, "val_acc_fine_tuned": ft_val,
                                "kept": "fine-tuned" if improved else "head"}
        if improved and world.main:
            for sp in ("val", "test"):
                if sel[sp].any():
                    probs_of[sp] = softmax(predict_logits(clf, spec.preprocess, [paths[i] for i in idx[sp]]))
            probs_of.pop("train", None)  # train accuracy after fine-tuning is the history's, not re-run
        t_ft = time.perf_counter() - t_ft
    if not world.main:
        return out
    metrics["calibration"] = apply_calibration(clf, probs_of, labels, sel, len(ds.classes), calibrate, log,
                                               reliability=out / "reliability.png", model=spec.name)
    for sp, probs in probs_of.items():
        m = classification_metrics(labels[sel[sp]], probs, ds.classes)
        metrics[sp] = m if sp == "test" else {k: m[k] for k in ("n", "accuracy", "loss")}
    metrics["skipped_images"] = [{"path": p, "reason": r} for p, r in bad.items()]
    meta = {"model": spec.name, "pad": spec.arch.pad, "classes": ds.classes, "preprocess": spec.preprocess.to_dict(),
            "head": {"dropout": dropout, "hidden": hidden}, "weights": weights, "features": clf.backbone.num_features}
    save_model(out, clf, meta)
    write_text(out / "labels.txt", "\n".join(ds.classes) + "\n")
    write_json(out / SPLIT_FILE, ds.split_record())
    write_json(out / "metrics.json", metrics)
    write_history_csv(out / "history.csv", history)
    write_tensorboard(out / "tensorboard", history)
    plot_curves(out / "curves.png", history, f"{spec.name}: head on cached features"
                + (" + fine-tuning" if ft_blocks is not None else ""))
    manifest["status"] = "complete"
    manifest["feature_backend"] = backend_name
    manifest["timings_s"] = {"features": round(t_feat, 2), "head": round(t_head, 2), "fine_tune": round(t_ft, 2),
                             "total": round(time.perf_counter() - t0, 2)}
    manifest["head_config"] = asdict(cfg)
    if teacher is not None:
        manifest["teacher"] = teacher.record(distill)
    write_json(out / MANIFEST, manifest)
    summary(log, out, metrics, manifest)
    return out


def _best_val(history: list[dict]) -> float:
    return max((r.get("val_acc", 0.0) for r in history), default=0.0)


def _accuracy(probs: np.ndarray | None, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean()) if probs is not None and len(y) else 0.0
