"""`train --time-budget`: plan the recipe that fits a wall-clock budget on this machine.

The costs come from a probe on the run's own data and backbone (a few seconds): decoding a
handful of its photos, the backbone's features on them, a training step of the top blocks on
activations of the right shape. The caches count: a feature or activation already cached costs
nothing, so a warm rerun can afford more than a cold one. The ladder is the evidence's order
(bench/README.md, "Accuracy by default"): head on plain features < head on augmented views <
the top blocks fine-tuned on cached activations, for as many epochs as fit. Planning is a pure
function of the measured costs (`plan`), so it is tested without timing anything.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

MIN_FT_EPOCHS = 3  # fewer epochs of the top blocks did not beat the head on validation (bench/finetune.py)
MAX_FT_EPOCHS = 20  # the cached fine-tune's default: more did not help validation
FT_BLOCKS = 3
AUG_VIEWS_MAX = 4  # augmented views a budget buys when --aug-views is left at its default
CONVERT_S = 25.0  # converting a backbone to LiteRT on 2 cores (EfficientNet-Lite0: ~20 s; measured once, not probed)
SAFETY = 0.85  # plan to 85 % of the budget: the probe's estimates are rough, overruns are what users notice


@dataclass
class Costs:
    """Measured seconds of each unit of work (per image, per view, per sample)."""

    decode: float  # one photo decoded and resized (spread over the decode workers)
    feature: float  # one view through the backbone (the feature backend)
    activation: float  # one view through the frozen bottom (cached fine-tune input)
    ft_sample: float  # one training sample of the top blocks, forward and backward
    predict: float  # one photo through the whole network in PyTorch (after fine-tuning)
    head_sample: float  # one sample-epoch of head training
    convert: float  # converting a backbone to LiteRT, when not cached (per converted graph)
    fixed: float = 8.0  # calibration, export of the model files, metrics, plots


@dataclass
class Work:
    """What the dataset asks for and what the caches already hold."""

    n_train: int
    n_val: int
    n_test: int
    missing_plain: int  # photos without a cached plain feature
    missing_aug: dict[int, int]  # augmented views wanted -> (image, view) features missing
    missing_act: dict[int, int]  # augmented views wanted -> (image, view) activations missing
    converted: bool  # backbone .tflite already cached
    converted_bottom: bool  # bottom .tflite already cached
    epochs: int = 30


@dataclass
class Plan:
    """The recipe chosen for a budget, its estimated time per stage, and why."""

    budget_s: float
    aug_views: int
    fine_tune: int | None
    fine_tune_epochs: int | None
    estimate_s: float
    stages: dict[str, float] = field(default_factory=dict)
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, as manifest.json records it."""
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()} | {
            "stages": {k: round(v, 1) for k, v in self.stages.items()}}


def _head_stages(c: Costs, w: Work, views: int) -> dict[str, float]:
    """Seconds of the head-only recipe with `views` augmented views."""
    decode_imgs = w.missing_plain + (w.n_train if w.missing_aug.get(views, 0) else 0)
    return {"convert": 0.0 if w.converted else c.convert,
            "features": decode_imgs * c.decode + (w.missing_plain + w.missing_aug.get(views, 0)) * c.feature,
            "head": w.n_train * w.epochs * c.head_sample,
            "finish": c.fixed}


def _ft_stages(c: Costs, w: Work, views: int, epochs: int) -> dict[str, float]:
    """Seconds the cached fine-tune adds: activations, epochs, and the final predictions."""
    act = w.missing_act.get(views, 0)
    return {"convert bottom": 0.0 if w.converted_bottom or not act else c.convert,
            "activations": (w.n_train + w.n_val if act else 0) * c.decode + act * c.activation,
            "fine-tune": epochs * (w.n_train * c.ft_sample + w.n_val * c.ft_sample / 3),
            "predict": (w.n_val + w.n_test) * (c.decode + c.predict)}


def plan(budget_s: float, c: Costs, w: Work, aug_views: int, spent: float = 0.0) -> Plan:
    """The most accurate recipe of the ladder whose estimate fits `budget_s` (already `spent` on the probe)."""
    room = budget_s * SAFETY - spent
    head = {v: _head_stages(c, w, v) for v in sorted({0, aug_views})}
    cheapest = sum(head[0].values())
    if cheapest > room:
        need = (cheapest + spent) / SAFETY
        raise ConfigError(f"--time-budget {_fmt(budget_s)} is too small for this dataset and model: the fastest "
                          f"recipe (head on plain features) needs about {_fmt(need)} here; give at least "
                          f"{_fmt(math.ceil(need / 10) * 10)}")
    base = head[aug_views]
    if sum(base.values()) > room:
        return Plan(budget_s, 0, None, None, sum(head[0].values()) + spent, head[0],
                    f"the budget fits only the head on plain features (augmented views need ~"
                    f"{_fmt(sum(base.values()) + spent)}); no fine-tuning")
    fixed = sum(_ft_stages(c, w, aug_views, 0).values())
    per_epoch = _ft_stages(c, w, aug_views, 1)["fine-tune"]
    epochs = int((room - sum(base.values()) - fixed) // per_epoch) if per_epoch > 0 else MAX_FT_EPOCHS
    if epochs < MIN_FT_EPOCHS:
        need = sum(base.values()) + fixed + MIN_FT_EPOCHS * per_epoch + spent
        return Plan(budget_s, aug_views, None, None, sum(base.values()) + spent, base,
                    f"the budget is too small for fine-tuning ({MIN_FT_EPOCHS} epochs of the top {FT_BLOCKS} "
                    f"blocks need ~{_fmt(need / SAFETY)}): head only, on {aug_views} augmented views")
    epochs = min(epochs, MAX_FT_EPOCHS)
    stages = base | _ft_stages(c, w, aug_views, epochs)
    return Plan(budget_s, aug_views, FT_BLOCKS, epochs, sum(stages.values()) + spent, stages,
                f"head on {aug_views} augmented views, then the top {FT_BLOCKS} blocks fine-tuned on cached "
                f"activations for {epochs} epoch(s)" + (" (the most that help)" if epochs == MAX_FT_EPOCHS else
                                                        " (as many as fit)"))


def _fmt(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}".rstrip("0").rstrip(".") + "m"


def probe_costs(backbone: Any, pre: Any, augment: Any, paths: list[str], feature_fn: Any, k: int | None,
                threads: int, workers: int, hidden: int, n_classes: int, n: int = 12) -> Costs:
    """Time each unit of work on a few of the run's own photos (seconds in all)."""
    import copy

    import numpy as np
    import torch

    from ..data.crops import Crops
    from ..models.builder import make_head
    from .finetune_cached import activation_shape

    backbone = copy.deepcopy(backbone).eval()  # the probe's training steps must not touch the run's weights
    sample = paths[:: max(1, len(paths) // n)][:n]
    t = time.perf_counter()
    crops = []
    for p in sample:
        got = Crops(pre, augment)((p, [[0, 1]]))  # an augmented view: the costlier decode
        if not isinstance(got, str):
            crops += got
    decode = (time.perf_counter() - t) / max(1, len(sample)) / max(1, workers)
    batch = np.stack(crops) if crops else np.zeros((1, pre.size, pre.size, 3), np.uint8)
    feature_fn(batch[:2])  # first call pays one-off set-up
    t = time.perf_counter()
    dim = int(feature_fn(batch).shape[1])
    feature = (time.perf_counter() - t) / len(batch)
    x = pre.normalize(batch)
    with torch.inference_mode():
        backbone(x[:2])
        t = time.perf_counter()
        backbone(x)
        predict = (time.perf_counter() - t) / len(batch)
    ft_sample = 0.0
    if k is not None:
        from ..models.builder import Classifier
        from .finetune import set_trainable

        shape = activation_shape(backbone, k, pre.size)
        model = Classifier(backbone, n_classes, 0.2, hidden)
        set_trainable(model, FT_BLOCKS)
        model.train()
        acts = torch.randn(32, *shape)
        for i in range(3):  # the first step pays allocation; time the next two
            if i == 1:
                t = time.perf_counter()
            model.head(backbone.top(acts, k)).logsumexp(1).mean().backward()
        ft_sample = (time.perf_counter() - t) / 64
    head = make_head(dim, n_classes, 0.2, hidden)
    t = time.perf_counter()
    for _ in range(3):
        head(torch.randn(32, dim)).logsumexp(1).mean().backward()
    head_sample = (time.perf_counter() - t) / 96
    # Activations: the bottom is nearly the whole backbone; its converted graph runs like the features.
    return Costs(decode=decode, feature=feature, activation=feature, ft_sample=ft_sample, predict=predict,
                 head_sample=head_sample, convert=CONVERT_S)


def plan_for_run(cfg: Any, ds: Any, spec: Any, backbone: Any, wid: str, root: Any, augment: Any, threads: int,
                 workers: int | None, t0: float, log: Any) -> tuple[Plan, Any, tuple[list, dict]]:
    """Probe this run's costs, count what its caches hold, and plan within cfg.time_budget.

    Returns the plan, the feature backend the probe built (converting the backbone, if it was
    not cached, is part of the run's work anyway) and the files' (content hashes, unreadable), so
    extraction does not read every file again to hash it.
    """
    import os
    from pathlib import Path

    from ..params import parse_duration
    from .backends import make_backend
    from .features import content_hash, feature_name, view_caches
    from .finetune_cached import split_point

    budget = parse_duration("--time-budget", cfg.time_budget)
    pre = spec.preprocess
    aug = AUG_VIEWS_MAX if cfg.aug_views == 0 else cfg.aug_views
    feats = view_caches(root, feature_name(spec.name, backbone.pool_blocks), wid, pre, range(aug + 1), augment)
    k = split_point(backbone, FT_BLOCKS)
    taps = view_caches(root, spec.name, wid, pre, range(aug + 1), augment, tap=k) if k else {}
    converted = (Path(root) / "backbones" / f"{feats[0].key}.tflite").is_file()
    bottom_ready = bool(taps) and (Path(root) / "backbones" / f"{taps[0].key}.tflite").is_file()
    t = time.perf_counter()
    fn = make_backend(cfg.feature_backend, backbone, pre, feats[0].key, root, threads)
    convert = time.perf_counter() - t if not converted else CONVERT_S
    n_classes = len(ds.classes)
    paths = [str(s.path) for s in ds.samples]
    costs = probe_costs(backbone, pre, augment, paths, fn, k, threads, workers or os.cpu_count() or 1, cfg.hidden,
                        n_classes)
    costs.convert = convert
    splits = [s.split for s in ds.samples]
    hashed = [content_hash(p) for p in paths]
    digests = [d for d, _ in hashed]
    unreadable = {p: why for p, (d, why) in zip(paths, hashed) if d is None}
    missing_plain = sum(d is not None and feats[0].row(d) is None for d in digests)

    def missing(caches: dict, views: int, with_val: bool) -> int:
        return sum(caches[v].row(d) is None for d, sp in zip(digests, splits) if d is not None
                   for v in range(views + 1) if (sp == "train" and (v > 0 or with_val)) or (
                       with_val and v == 0 and sp == "val"))

    work = Work(n_train=splits.count("train"), n_val=splits.count("val"), n_test=splits.count("test"),
                missing_plain=missing_plain, missing_aug={v: missing(feats, v, False) for v in {0, aug}},
                missing_act={v: missing(taps, v, True) for v in {0, aug}} if taps else {0: 0, aug: 0},
                converted=True, converted_bottom=bottom_ready, epochs=cfg.epochs)
    p = plan(budget, costs, work, aug, spent=time.perf_counter() - t0)
    p.stages = {"probe": round(time.perf_counter() - t0, 1)} | p.stages
    log(f"time budget {_fmt(budget)}: {p.why}; estimated {_fmt(p.estimate_s)}")
    return p, fn, (digests, unreadable)
