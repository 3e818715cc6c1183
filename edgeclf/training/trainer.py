"""`edgeclf train`: dataset → cached features → head → run directory."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._io import check_outside, make_dir, write_json
from ..data.dataset import Dataset, scan
from ..data.exclusions import apply_exclusions, read_exclusions
from ..data.images import misnamed_images, unreadable_photos
from ..errors import ConfigError, EdgeclfError
from ..models.builder import Classifier
from ..models.preprocess import DEFAULT_RESIZE, check_resize
from ..models.zoo import get_spec
from ..metrics import classification_metrics, softmax
from ..params import BOOL, check, check_path, shown
from .calibrate import apply_calibration
from ..data.augment import Augment
from .backends import make_backend
from .features import default_cache_root, feature_name, view_caches
from .unknown import unknown_record
from .distill import Distill, Teacher, compare_teacher, load_teacher, teacher_logits
from .distributed import World, extract_shared, setup, teardown
from .finetune import FineTuneConfig, check_device, fine_tune, parse_blocks, predict_logits
from .finetune_cached import Bottom, activation_shape, split_point
from .finetune_cached import fine_tune_cached as train_top_cached
from .rng import own_rng
from .head import HeadConfig, class_weight_vector, predict_probs, train_head
from ..artifacts.run import MANIFEST, MODEL_FILE, is_complete, write_model_files
from .config import TrainConfig
from .run_setup import check_trainable, next_run_dir, versions, weights_id
from .outputs import LiveLog, plot_curves, summary


_RECIPE = ("aug_views", "hidden", "fine_tune", "fine_tune_epochs", "epochs", "pool_blocks")
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
DEFAULT_WHY = "defaults, chosen on validation (bench/README.md, Accuracy by default)"


def train(data: str | os.PathLike[str], model: str | None = None, out: str | os.PathLike[str] = "runs/train",
          *, config: TrainConfig | dict[str, Any] | None = None, exist_ok: bool = False,
          on_epoch: Callable[[dict], None] | None = None, verbose: bool = True, **options: Any) -> Path:
    """Train a classifier on DATA/<class>/ images; returns the run directory.

    `options` are TrainConfig's fields (edgeclf/training/config.py: the CLI's options, same names
    and defaults), over `config` (a TrainConfig, or a manifest's "config" to replay a run).
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
    check_path("DATA", data)
    check_path("--out", out)
    check("verbose", verbose, BOOL)
    check("exist_ok", exist_ok, BOOL)
    if not (config is None or isinstance(config, (TrainConfig, dict))):
        raise ConfigError(f"config must be a TrainConfig, a dict of train options or None, got {shown(config)}")
    if on_epoch is not None and not callable(on_epoch):
        raise ConfigError(f"on_epoch must be a function called with each epoch's row, or None, got {shown(on_epoch)}")
    if model is not None:
        options["model"] = model
    cfg = TrainConfig.build(options, config.to_dict() if isinstance(config, TrainConfig) else config)
    spec = get_spec(cfg.model)  # unknown model names fail before any scanning
    # The input-fit mode is part of the preprocessing: it reaches the cache keys, the run and every export.
    cfg.resize = check_resize(cfg.resize or DEFAULT_RESIZE)
    spec = replace(spec, preprocess=replace(spec.preprocess, resize=cfg.resize))
    # The default --pool-blocks and both ranges (--pool-blocks, --fine-tune N) depend on the backbone's blocks.
    with torch.random.fork_rng():  # building initializes weights: the caller's random stream stays untouched
        probe = spec.build()
    defaults = dict(_DEFAULTS, pool_blocks=probe.default_pool_blocks)
    if cfg.pool_blocks is None:  # a number from here on: the manifest's config, the recipe and the cache name
        cfg.pool_blocks = defaults["pool_blocks"]
    probe.set_pool_blocks(cfg.pool_blocks)  # checked before any scanning
    ft_blocks = parse_blocks(cfg.fine_tune, probe.n_units if cfg.fine_tune != "all" else None)
    check_device(cfg.device)
    if cfg.time_budget is not None:
        _check_budget_options(cfg, options)
    augment = Augment(cfg.flip, cfg.random_crop, cfg.random_scale, cfg.random_brightness)
    ds = scan(data, cfg.val_percent, cfg.test_percent)
    excluded, absent = None, []
    if cfg.exclude is not None:  # doctor's suggestions, read by the user: files left out, never touched
        names, digest = read_exclusions(cfg.exclude)
        dropped, absent = apply_exclusions(ds, names)
        excluded = {"file": str(Path(cfg.exclude).resolve()), "sha256": digest, "listed": len(names),
                    "excluded": dropped}
    check_trainable(ds)
    distill = Distill(cfg.distill_weight, cfg.distill_temperature)
    if cfg.teacher is not None and ft_blocks is not None and (
            ft_blocks == "all" or not cfg.fine_tune_cached or cfg.device != "cpu"):
        raise ConfigError("--teacher works with head training and cached fine-tuning of the top N blocks on the "
                          f"CPU; --fine-tune {ft_blocks} {'on ' + cfg.device if cfg.device != 'cpu' else 'on the fly'}"
                          " cannot use it: pick --fine-tune N")
    tutor = load_teacher(cfg.teacher, ds) if cfg.teacher is not None else None
    check_outside("--out", out, ds.root)
    # A cache that cannot be written fails here, before a run folder exists, not after the backbone converts.
    make_dir(default_cache_root(cfg.cache_dir), "--cache-dir")
    world = setup(cfg.device)
    claim = None
    try:
        # Rank 0 picks and holds the run folder; every rank writes (or reads) that one.
        asked, picked = Path(out), None
        if world.main:
            try:
                claim = next_run_dir(asked, exist_ok)
                picked = str(claim.path)
            except EdgeclfError as exc:
                picked = exc
        picked = world.broadcast(picked)
        if isinstance(picked, Exception):
            raise picked
        out = Path(picked)
        log = print if verbose and world.main else (lambda *a, **k: None)
        if out != asked:
            why = "holds a finished run" if is_complete(asked) else "is being written by another run"
            log(f"{asked} {why}; this one goes to {out} (--exist-ok to replace a finished run)")
        used = ("val_percent",) if ds.val_from_train else ()
        ignored = [f"--{k.replace('_', '-')} {options[k]:g}" for k in ("val_percent", "test_percent")
                   if k in options and k not in used]
        if ds.layout == "presplit" and ignored:
            log(f"warning: {ds.root} is pre-split (train/val/test folders): {' and '.join(ignored)} ignored; the "
                "folders decide the split", file=sys.stderr)
        for warning in ds.notes():
            log(f"warning: {warning}", file=sys.stderr)
        if ds.val_from_train:
            log(f"{ds.root} has no val folder: {cfg.val_percent:g} % of its training photos (hashed, the same every "
                f"run) validate ({len(ds.split('val'))} photos; --val-percent sets the share)")
        for note in (unreadable_photos(ds.ignored_non_images), misnamed_images(ds.ignored_non_images)):
            if note:
                log(f"warning: {note}", file=sys.stderr)
        if ds.skipped_links:
            log(f"skipped {len(ds.skipped_links)} folder link(s) that loop or leave their class folder: "
                f"{', '.join(ds.skipped_links[:3])}", file=sys.stderr)
        if excluded:
            log(f"excluded {excluded['excluded']} file(s) listed in {cfg.exclude}")
            if absent:  # a list written for another dataset (or a moved one) would otherwise exclude nothing
                log(f"warning: {len(absent)} of {excluded['listed']} file(s) listed in {cfg.exclude} are not in "
                    f"{ds.root} (first: {absent[0]}); was the list written for another dataset?", file=sys.stderr)
        if world.main:
            make_dir(out)
        if tutor:
            cfg.teacher = str(tutor.run_dir)
        # The config replays as it is (`train --config manifest.json`); the rest records what it resolved to.
        config_record = dict(cfg.to_dict(), data=str(ds.root), augment=augment.to_dict(), processes=world.size)
        manifest: dict[str, Any] = {
            "status": "running",
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgeclf") else None,
            "config": config_record, "exclusions": excluded, "versions": versions(),
            "dataset_fingerprint": ds.fingerprint(),
            # A recipe option set to its default (the demo's epochs, a replayed default run) is still the default.
            "recipe": {"why": "as given (options or --config)" if any(
                getattr(cfg, k) != defaults[k] for k in _RECIPE) else DEFAULT_WHY},
        }
        # Written first, finished last: an interrupted run is visibly marked incomplete.
        if world.main:
            for stale in ("metrics.json", MODEL_FILE):
                (out / stale).unlink(missing_ok=True)
            write_json(out / MANIFEST, manifest)
        # Files exported from the model this run replaces stay (they are the user's), but would now lie.
        old = sorted(p.name for p in (out / "export").glob("*") if p.suffix in (".tflite", ".onnx"))
        try:
            done = _train(ds, spec, cfg, out, manifest, log, t0, world, augment, ft_blocks, tutor, distill, on_epoch)
            if old:
                log(f"warning: {out / 'export'} holds {len(old)} file(s) exported from the replaced run "
                    f"({', '.join(old[:3])}{', …' if len(old) > 3 else ''}); re-export them with `edgeclf export "
                    f"{out}`", file=sys.stderr)
            return done
        except KeyboardInterrupt:
            manifest["status"] = "interrupted"
            if world.main:
                write_json(out / MANIFEST, manifest)
            log(f"interrupted: {out} is marked incomplete; rerun the same command to resume from the feature cache",
                file=sys.stderr)
            raise
        except Exception as exc:
            if isinstance(exc, ConfigError) and claim is not None and claim.discard():
                raise  # refused before any work (the budget's probe): no folder left behind
            # A failed run must not read as one still running; its folder is reused by the next attempt.
            manifest.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            if world.main:
                try:
                    write_json(out / MANIFEST, manifest)
                except OSError:  # e.g. the disk that failed the run is still full: its own error is the one to show
                    pass
            raise
    finally:
        if claim is not None:
            claim.release()
        teardown(world)


@own_rng
def _train(ds: Dataset, spec: Any, cfg: TrainConfig, out: Path, manifest: dict, log: Callable, t0: float,
           world: World, augment: Augment, ft_blocks: int | str | None, teacher: Teacher | None, distill: Distill,
           on_epoch: Callable[[dict], None] | None) -> Path:
    torch.manual_seed(cfg.seed)
    from ..models.pretrained import build_pretrained

    # A .tflite file may adapt the spec: TF padding, the input normalization of its quantization.
    loaded = build_pretrained(spec, cfg.weights)
    spec, backbone = loaded.spec, loaded.backbone
    backbone.set_pool_blocks(cfg.pool_blocks)
    backbone.eval()
    wid = weights_id(spec.weights, cfg.weights, cfg.seed)
    root = default_cache_root(cfg.cache_dir)
    threads = world.cores()
    # Fine-tuning decodes in-process unless asked (cfg.workers): beside torch's threads, workers oversubscribe.
    workers = cfg.workers if cfg.workers is not None else (threads if world.distributed else None)
    ready: list = []  # a feature backend the budget probe already built (and converted)
    hashed = None  # the budget probe's (content hashes, unreadable files), re-used by extraction
    recipe: dict[str, Any] = manifest["recipe"]
    if cfg.time_budget is not None:
        from .budget import plan_for_run

        if world.distributed:  # every rank must follow one plan; the probe times one process
            raise ConfigError("--time-budget plans for one process on this machine: run it without torchrun")

        budget_plan, fn, hashed = plan_for_run(cfg, ds, spec, backbone, wid, root, augment, threads, workers, t0,
                                               log)
        ready.append(fn)
        cfg.aug_views, cfg.fine_tune_epochs = budget_plan.aug_views, budget_plan.fine_tune_epochs
        ft_blocks = budget_plan.fine_tune
        recipe.update(budget_plan.to_dict(), why=budget_plan.why)
    recipe.update(aug_views=cfg.aug_views, hidden=cfg.hidden, pool_blocks=cfg.pool_blocks, fine_tune=ft_blocks,
                  fine_tune_epochs=cfg.fine_tune_epochs)
    views = list(range(cfg.aug_views + 1))
    caches = view_caches(root, feature_name(spec.name, cfg.pool_blocks), wid, spec.preprocess, views, augment)
    paths = [str(s.path) for s in ds.samples]
    split = np.array([s.split for s in ds.samples])
    labels = np.array([s.label for s in ds.samples])
    views_of = [tuple(views) if sp == "train" else (0,) for sp in split]
    t_feat = time.perf_counter()
    used: list[str] = []

    def backend():  # built only when some feature is missing: a warm run never converts anything
        fn = ready[0] if ready else make_backend(cfg.feature_backend, backbone, spec.preprocess, caches[0].key, root,
                                                 threads)
        used.append(fn.name)
        return fn

    feats, hashes, bad = extract_shared(world, backend, cfg.feature_backend != "torch", spec.preprocess, paths,
                                        caches, views_of, augment, workers,
                                        f"{spec.name} features ({len(views)} view{'s' if len(views) > 1 else ''})",
                                        hashed=hashed)
    backend_name = used[0] if used else "cache"
    t_feat = time.perf_counter() - t_feat
    for p, reason in bad.items():
        log(f"skipped {p}: {reason}", file=sys.stderr)
    ok = np.array([p not in bad for p in paths])
    sel = {sp: ok & (split == sp) for sp in ("train", "val", "test")}
    n_train = int(sel["train"].sum())
    epochs = cfg.epochs
    if cfg.steps:
        epochs = max(1, math.ceil(cfg.steps / max(1, math.ceil(n_train / cfg.batch_size))))
    head_cfg = HeadConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          dropout=cfg.dropout, label_smoothing=cfg.label_smoothing, hidden=cfg.hidden,
                          class_weights=cfg.class_weights, patience=cfg.patience, seed=cfg.seed)
    soft = None
    if teacher is not None:  # train and val only: the teacher never sees the test split
        soft = teacher_logits(teacher, paths, [views_of[i] if sp != "test" else () for i, sp in enumerate(split)],
                              augment, root, cfg.feature_backend, threads, workers, (hashes, bad), world)
    t_head = time.perf_counter()
    result = None
    live = LiveLog(out if world.main else None, log, on_epoch)  # history.csv and TensorBoard, epoch by epoch
    if world.main:  # seconds of work: one rank trains the head, every rank gets it
        args = (feats[0].subset(sel["train"]), labels[sel["train"]], feats[0].subset(sel["val"]), labels[sel["val"]],
                len(ds.classes), head_cfg)
        banks = [feats[v].subset(sel["train"]) for v in views[1:]]
        if soft is not None:
            metrics_distill = compare_teacher(teacher, distill, soft[0].subset(sel["val"]), labels[sel["val"]],
                                              train_head(*args, views=banks), log)
        result = train_head(*args, views=banks, on_epoch=live, distill=distill,
                            soft=[soft[v].subset(sel["train"]) for v in views] if soft is not None else None)
    result = world.broadcast(result)
    t_head = time.perf_counter() - t_head
    clf = Classifier(backbone, len(ds.classes), cfg.dropout, cfg.hidden)
    clf.head.load_state_dict(result.head.state_dict())
    clf.eval()
    history = [dict(r, stage="head") for r in result.history]
    metrics: dict[str, Any] = {"model": spec.name, "best_epoch": result.best_epoch, "classes": ds.classes}
    if soft is not None and world.main:
        metrics["distillation"] = dict(metrics_distill, val_acc_head_with_teacher=result.val_accuracy)
    probs_of: dict[str, np.ndarray] = {}
    for sp in ("train", "val", "test"):
        if sel[sp].any() and world.main:
            probs_of[sp] = predict_probs(result.head, feats[0].subset(sel[sp]))
    t_ft = 0.0
    if ft_blocks is not None:
        t_ft = time.perf_counter()
        live.stage = "fine-tune"
        head_val = world.broadcast(_accuracy(probs_of.get("val"), labels[sel["val"]]))
        # Top blocks train on their cached input activations (on CPU); the whole network, or a GPU,
        # trains on the fly.
        k = split_point(backbone, ft_blocks) if cfg.fine_tune_cached and cfg.device == "cpu" else None
        ft_cfg = FineTuneConfig(blocks=ft_blocks, epochs=cfg.fine_tune_epochs or (20 if k else 3),
                                lr=cfg.fine_tune_lr, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay,
                                label_smoothing=cfg.label_smoothing, seed=cfg.seed)
        idx = {sp: np.flatnonzero(sel[sp]) for sp in sel}
        weights_ft = class_weight_vector(labels[idx["train"]], len(ds.classes), cfg.class_weights)
        if k:
            shape = activation_shape(backbone, k, spec.preprocess.size)
            taps = view_caches(root, spec.name, wid, spec.preprocess, views, augment, tap=k)
            acts, _, _ = extract_shared(
                world, lambda: make_backend(cfg.feature_backend, Bottom(backbone, k), spec.preprocess, taps[0].key,
                                            root, threads),
                cfg.feature_backend != "torch", spec.preprocess, paths, taps,
                [views_of[i] if sp != "test" else () for i, sp in enumerate(split)], augment, workers,
                f"activations into the top {ft_blocks} block{'s' if ft_blocks > 1 else ''}", hashed=(hashes, bad))
            clf, ft_hist, ft_val = train_top_cached(
                clf, k, shape, [acts[v].subset(sel["train"]) for v in views], labels[sel["train"]],
                acts[0].subset(sel["val"]), labels[sel["val"]], ft_cfg, class_weights=weights_ft, head_lr=cfg.lr,
                on_epoch=live, world=world, distill=distill,
                soft=[soft[v].subset(sel["train"]) for v in views] if soft is not None else None)
        else:
            clf, ft_hist, ft_val = fine_tune(
                clf, spec.preprocess, [paths[i] for i in idx["train"]], labels[idx["train"]],
                [paths[i] for i in idx["val"]], labels[idx["val"]], ft_cfg, augment, workers=cfg.workers,
                on_epoch=live, class_weights=weights_ft, world=world, device=cfg.device)
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
    metrics["calibration"] = apply_calibration(clf, probs_of, labels, sel, len(ds.classes), cfg.calibrate, log,
                                               reliability=out / "reliability.png", model=spec.name)
    unknown = unknown_record(probs_of, labels, sel, cfg.unknown_rate, log) if cfg.unknown_rate else None
    if unknown:
        metrics["unknown"] = unknown
    for sp, probs in probs_of.items():
        m = classification_metrics(labels[sel[sp]], probs, ds.classes)
        metrics[sp] = m if sp == "test" else {k: m[k] for k in ("n", "accuracy", "loss")}
    metrics["skipped_images"] = [{"path": p, "reason": r} for p, r in bad.items()]
    write_model_files(out, clf, spec, ds.classes, ds.split_record(), cfg.weights, cfg.dropout, cfg.hidden,
                      unknown["threshold"] if unknown else None)
    write_json(out / "metrics.json", metrics)
    plot_curves(out / "curves.png", history, f"{spec.name}: head on cached features"
                + (" + fine-tuning" if ft_blocks is not None else ""))
    manifest["status"] = "complete"
    manifest["feature_backend"] = backend_name
    manifest["timings_s"] = {"features": round(t_feat, 2), "head": round(t_head, 2), "fine_tune": round(t_ft, 2),
                             "total": round(time.perf_counter() - t0, 2)}
    manifest["head_config"] = asdict(head_cfg)
    if teacher is not None:
        manifest["teacher"] = teacher.record(distill)
    write_json(out / MANIFEST, manifest)
    summary(log, out, metrics, manifest)
    return out


def _check_budget_options(cfg: TrainConfig, options: dict[str, Any]) -> None:
    """--time-budget chooses the recipe: the options it plans cannot be given beside it."""
    planned = [f"--{k.replace('_', '-')}" for k in ("aug_views", "fine_tune", "fine_tune_epochs") if k in options]
    if planned:
        raise ConfigError(f"--time-budget plans {', '.join(planned)} itself: drop {planned[0]} or --time-budget")
    if cfg.device != "cpu" or not cfg.fine_tune_cached:
        raise ConfigError("--time-budget plans for this machine's CPU with cached fine-tuning: drop --device "
                          f"{cfg.device}" if cfg.device != "cpu" else "--time-budget plans cached fine-tuning: "
                          "drop --fine-tune-on-the-fly")


def _accuracy(probs: np.ndarray | None, y: np.ndarray) -> float:
    return float((probs.argmax(1) == y).mean()) if probs is not None and len(y) else 0.0
