"""TrainConfig: every option of `edgeclf train`, declared once.

The CLI's options are generated from it (flags, help, choices, groups), `train()` takes its fields
as keywords, every value is checked against the constraint declared beside it, the manifest
stores it, and `edgeclf train --config RUN/manifest.json` replays it (Ultralytics' cfg, declared as
a dataclass the way scikit-learn declares parameter constraints).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, ModelError
from ..params import (BOOL, COUNT, FRACTION, HIDDEN, NONE, PERCENT, POSITIVE, POSITIVE_INT, UNIT, Interval,
                      Options, check, check_split, check_weights, parse_duration)

# Imported by the CLI at start-up: nothing here may pull in torch (no models/ or backends imports).
_GROUPS = {
    "aug": "augmentation (cached as K extra feature views per training image)",
    "ft": "fine-tuning (after the head: top N blocks on cached activations, or all on the fly)",
    "distill": "distillation (a more accurate run on the same dataset teaches this one)",
}


# Each view is a backbone pass over every training image and its features kept on disk: 4 views add 107 s cold
# on flowers (2 cores), so a typo like 400 would cost hours and gigabytes; 8 already scored no better than 4
# (bench/README.md, "Accuracy by default").
AUG_VIEWS = Interval(int, 0, 64)
# torch and numpy take a seed below 2**32 everywhere (numpy's legacy and worker seeds); a larger one
# crashed torch.manual_seed with an overflow.
SEED = Interval(int, 0, 2**32 - 1)
# AdamW shrinks every weight by lr x decay each step; a decay of 1 already halves a weight in 700 steps at the
# default rate, and a typo such as 1e9 (for 1e-9) made the loss NaN while the error blamed --learning-rate.
WEIGHT_DECAY = Interval(float, 0, 1)


def _opt(default: Any, *flags: str, help: str, check: tuple = (), group: str | None = None,  # noqa: A002
         choices: tuple | None = None, metavar: str | None = None, negate: str | None = None) -> Any:
    """A TrainConfig field: its default, CLI flags, help, allowed values and help group."""
    return field(default=default, metadata={"flags": flags, "help": help, "check": check, "group": group,
                                            "choices": choices, "metavar": metavar, "negate": negate})


@dataclass
class TrainConfig:
    """Every option of `edgeclf train` with its default, CLI flags and allowed values."""

    model: str = _opt("efficientnet_lite0", "--model", "--architecture", "--tfhub_module",
                      help="backbone (see `edgeclf models`; retrain.py's TF Hub handles name their counterpart)")
    weights: str = _opt("imagenet", "--weights",
                        help="imagenet | none | PATH to a .pth checkpoint or a .tflite file (MobileNet V1/V2, "
                             "EfficientNet-Lite; `edgeclf models --weights FILE` says which model a file fits)")
    resize: str | None = _opt(None, "--resize", choices=("squash", "crop"),
                              help="how an image is fitted to the model's square input, in training, export and "
                                   "every client: squash = the whole image, aspect not kept (what MediaPipe "
                                   "ImageClassifier and Model Maker do; default), crop = centre crop (an app must "
                                   "then pass MediaPipe a region of interest)")
    exclude: str | None = _opt(None, "--exclude", metavar="FILE.json",
                               help="leave out the files an exclusion list names "
                                    "(`edgeclf doctor DATA --suggest FILE.json`)")
    time_budget: str | None = _opt(None, "--time-budget", metavar="DURATION",
                                   help="plan the recipe (augmented views, cached fine-tune epochs) to finish within "
                                        "this wall time on this machine, e.g. 3m, 10m, 1h")
    epochs: int = _opt(30, "--epochs", check=(POSITIVE_INT,), help="head epochs (Model Maker: epochs)")
    steps: int | None = _opt(None, "--steps", "--how_many_training_steps", check=(NONE, POSITIVE_INT),
                             help="head training steps instead of epochs (retrain.py)")
    batch_size: int = _opt(32, "--batch-size", "--train_batch_size", check=(POSITIVE_INT,), help="batch size")
    lr: float = _opt(1e-3, "--learning-rate", "--learning_rate", "--lr", check=(POSITIVE,),
                     help="head learning rate")
    # Defaults: 4 cached augmented views, a 512-unit hidden layer, dropout 0.5 -- the best validation
    # mean of 10 recipes over 4 seeds on flowers (bench/accuracy_sweep.json), no worse elsewhere
    # (bench/accuracy_others.json). --aug-views 0 --hidden 0 --dropout 0.2 is Model Maker's head.
    dropout: float = _opt(0.5, "--dropout", "--dropout_rate", check=(FRACTION,), help="dropout before the head")
    label_smoothing: float = _opt(0.1, "--label-smoothing", "--label_smoothing", check=(FRACTION,),
                                  help="label smoothing")
    hidden: int = _opt(512, "--hidden", check=(HIDDEN,), help="units of the head's hidden layer (0: linear head)")
    # None: the backbone's default (Backbone.default_pool_blocks), resolved by train() before anything is saved.
    pool_blocks: int | None = _opt(None, "--pool-blocks", check=(NONE, COUNT), metavar="K",
                                   help="also average-pool the outputs of the K blocks below the backbone's last "
                                        "feature map and feed them to the head beside its features (0 = the final "
                                        "features only; default 2 where the backbone ends in a 1x1 head conv: "
                                        "EfficientNet-Lite, MobileNet V2/V3; 0 for MobileNet V1)")
    weight_decay: float = _opt(1e-4, "--weight-decay", check=(WEIGHT_DECAY,), help="AdamW weight decay")
    class_weights: str = _opt("auto", "--class-weights", check=(Options("auto", "balanced", "none"),),
                              help="balanced = each photo's loss scaled by n / (classes x its class's count), as "
                                   "Keras' class_weight; auto = balanced when the classes are imbalanced 1.5:1 or more")
    patience: int = _opt(10, "--patience", check=(COUNT,), help="early-stopping patience in epochs (0 = off)")
    calibrate: bool = _opt(True, "--calibrate",
                           help="fit a temperature on the validation split and fold it into the model, so its "
                                "scores (and MediaPipe's score_threshold) are calibrated probabilities")
    unknown_rate: float = _opt(0.0, "--unknown-rate", check=(FRACTION,), metavar="R",
                               help="answer 'unknown' below a top-probability threshold that turns away R of the "
                                    "validation photos (e.g. 0.05); written into the export, where MediaPipe's "
                                    "ImageClassifier applies it (0 = off)")
    seed: int = _opt(0, "--seed", check=(SEED,), help="random seed")
    aug_views: int = _opt(4, "--aug-views", "--augment", check=(AUG_VIEWS,), group="aug", metavar="K",
                          help="augmented views per training image, cached like the plain one (0 = none)")
    flip: bool = _opt(True, "--flip", "--flip_left_right", group="aug", help="random horizontal flips")
    random_crop: float = _opt(10.0, "--random-crop", "--random_crop", check=(PERCENT,), group="aug", metavar="PCT",
                              help="percent cropped off at most")
    random_scale: float = _opt(20.0, "--random-scale", "--random_scale", check=(PERCENT,), group="aug",
                               metavar="PCT", help="percent the image is scaled up by at most")
    random_brightness: float = _opt(20.0, "--random-brightness", "--random_brightness", check=(PERCENT,),
                                    group="aug", metavar="PCT", help="percent pixels are multiplied up or down by")
    fine_tune: str | None = _opt(None, "--fine-tune", "--do_fine_tuning", group="ft", metavar="N|all",
                                 help="unfreeze the top N backbone blocks (trained on their cached input "
                                      "activations), or all of it (trained on the fly)")
    fine_tune_epochs: int | None = _opt(None, "--fine-tune-epochs", check=(NONE, POSITIVE_INT), group="ft",
                                        help="default 20 for N top blocks (cached activations), 3 for all")
    fine_tune_cached: bool = _opt(True, group="ft", negate="--fine-tune-on-the-fly",
                                  help="train the top N blocks on freshly decoded images each epoch instead of "
                                       "cached activations")
    fine_tune_lr: float = _opt(1e-4, "--fine-tune-lr", check=(POSITIVE,), group="ft",
                               help="learning rate of the unfrozen blocks")
    device: str = _opt("cpu", "--device", group="ft",
                       help="where fine-tuning runs: cpu, or cuda[:N] (bfloat16 mixed precision)")
    teacher: str | None = _opt(None, "--teacher", group="distill", metavar="RUN_DIR",
                               help="a finished run on this dataset (e.g. efficientnet_lite2) whose soft labels, "
                                    "computed once per image and augmented view and cached, train the head and the "
                                    "cached fine-tune too")
    distill_weight: float = _opt(0.5, "--distill-weight", check=(UNIT,), group="distill", metavar="W",
                                 help="share of the loss given to the teacher, in [0, 1]")
    distill_temperature: float = _opt(2.0, "--distill-temperature", check=(POSITIVE,), group="distill",
                                      metavar="T", help="softening of teacher and student outputs")
    feature_backend: str = _opt("auto", "--feature-backend", check=(Options("auto", "litert", "torch"),),
                                help="who computes cached features (auto: the backbone exported to LiteRT, "
                                     "~3.5-5x faster on a CPU)")
    cache_dir: str | None = _opt(None, "--cache-dir", "--bottleneck_dir",
                                 help="feature cache (default $EDGECLF_HOME/features)")
    workers: int | None = _opt(None, "--workers", check=(NONE, POSITIVE_INT),
                               help="decoding processes (default: all cores; 1 for on-the-fly fine-tuning, where "
                                    "a GPU wants more)")
    val_percent: float = _opt(10.0, "--val-percent", "--validation_percentage",
                              help="percent of images for validation")
    test_percent: float = _opt(10.0, "--test-percent", "--testing_percentage", help="percent of images for test")

    def __post_init__(self) -> None:
        # The API takes ints and paths where the CLI gives strings; the record keeps one form.
        if self.fine_tune is not None and not isinstance(self.fine_tune, bool):
            self.fine_tune = str(self.fine_tune)
        for name in ("exclude", "teacher", "cache_dir"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        if isinstance(self.model, str):
            # Another spelling (a TF Hub handle, EfficientNet-Lite0, retrain.py's mobilenet_0.50_160): the run
            # records the zoo's name, and compare/search name folders after it. Unknown names fail where they did.
            from ..models.zoo import get_spec

            try:
                self.model = get_spec(self.model).name
            except ModelError:
                if "/" in self.model:
                    raise
        for f in fields(self):
            checks = f.metadata["check"] or ((BOOL,) if isinstance(f.default, bool) else ())
            if checks:
                flag = f.metadata["flags"][0] if f.metadata["flags"] else f.name  # negate-only: the API's name
                check(flag, getattr(self, f.name), *checks)
        check_split(self.val_percent, self.test_percent)
        self.weights = check_weights(self.weights)
        if self.time_budget is not None:
            parse_duration("--time-budget", self.time_budget)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as the manifest stores it."""
        return asdict(self)

    @classmethod
    def build(cls, options: dict[str, Any], base: dict[str, Any] | None = None, who: str = "train()",
              own: Callable[..., Any] | None = None) -> "TrainConfig":
        """A config from `base` (e.g. a manifest's) overridden by `options`; unknown names are an error naming `who`.

        `own` is the calling workflow (compare, search): its named parameters are listed beside train's in that error.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            mine = {n for n, p in inspect.signature(own).parameters.items()
                    if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} if own else set()
            near = nearest_option(unknown[0], mine)
            raise ConfigError(f"{who} has no option {unknown[0]!r}" + (f" (did you mean {near!r}?)" if near else "")
                              + f"; options: {', '.join(sorted(known | mine))}")
        values = {k: v for k, v in (base or {}).items() if k in known}
        values.update(options)
        return cls(**values)


def nearest_option(name: str, extra: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The train option (or one of `extra`) a misspelt or CLI-styled name most likely means, e.g. 'epoch' -> 'epochs'.

    Model Maker's and retrain.py's spellings are the CLI's aliases ('learning_rate', 'validation_percentage'):
    a Python caller writes them too, and each maps to its field.
    """
    aliases = {flag.lstrip("-").replace("-", "_"): f.name for f in fields(TrainConfig) for flag in f.metadata["flags"]}
    aliases.update({n: n for n in [f.name for f in fields(TrainConfig)] + sorted(extra)})
    key = name.strip().lower().replace("-", "_").lstrip("_")
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, sorted(aliases), n=1, cutoff=0.75)
    return aliases[close[0]] if close else None


def read_config(path: str | Path) -> dict[str, Any]:
    """The config a run's manifest.json (or a JSON of options) holds, for `train --config` to replay."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise ConfigError(f"--config {path} is not JSON: give a run's manifest.json, or a JSON object of train options "
                          'such as {"model": "efficientnet_lite0", "epochs": 30}') from None
    cfg = doc.get("config", doc) if isinstance(doc, dict) else None
    if not isinstance(cfg, dict):
        raise ConfigError(f"--config {path} holds no options object: give a run's manifest.json")
    if cfg is doc:  # a JSON of options: every key must be one (metrics.json once passed, all but `model` ignored)
        unknown = sorted(set(doc) - {f.name for f in fields(TrainConfig)} - {"data"})
        if unknown:
            near = nearest_option(unknown[0])
            raise ConfigError(f"--config {path} is neither a run's manifest.json nor train options ({unknown[0]!r} "
                              "is no option" + (f"; did you mean {near!r}?" if near else "")
                              + "): give RUN/manifest.json or fix the name")
    return cfg


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add every TrainConfig field to `p` as an option; unset options stay absent from the namespace."""
    groups: dict[str | None, Any] = {None: p}
    for f in fields(TrainConfig):
        md = f.metadata
        where = groups.get(md["group"]) or groups.setdefault(md["group"], p.add_argument_group(_GROUPS[md["group"]]))
        default = f.default if f.default is not MISSING else None
        shown = "" if default is None else f" (default {default:g})" if isinstance(default, float) else \
            "" if isinstance(default, bool) else f" (default {default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": md["help"] + shown}
        if md["negate"]:
            where.add_argument(md["negate"], action="store_false", **kw)
            continue
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _type_of(f.type)
            # The CLI's choices are the values the field's own check allows, declared once.
            allowed = next((c.values for c in md["check"] if isinstance(c, Options)), md["choices"])
            if allowed:
                kw["choices"] = allowed
            if md["metavar"]:
                kw["metavar"] = md["metavar"]
        where.add_argument(*md["flags"], **kw)


def _type_of(annotation: Any) -> type:
    text = str(annotation)
    return int if text.startswith("int") else float if text.startswith("float") else str
