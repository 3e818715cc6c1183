"""Knowledge distillation: a teacher run's soft labels, computed once per image and view, cached like features.

The teacher is a finished run of the same dataset (any model). Its logits for every training
image and every cached augmented view are computed once — on the same view (same crop window,
flip and brightness, drawn from the view's seed) at the teacher's own input size — and stored in
the feature cache, so every student, seed and epoch reads them back for free. The student then
trains on (1 - weight) x cross-entropy with the labels + weight x T² x KL(teacher_T || student_T),
Hinton et al.'s mix, in head training and in cached fine-tuning alike.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..artifacts.run import MODEL_FILE, is_complete, load_run, not_a_run, read_split, run_preprocess
from ..data.augment import Augment
from ..data.dataset import Dataset, label_form
from ..errors import ConfigError
from ..table import short_list
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from ..models.weights import sha256_file
from .backends import make_backend
from .distributed import World, extract_shared
from .features import FeatureRows, view_caches
from .head import HeadResult


@dataclass(frozen=True)
class Distill:
    """How much the teacher counts (`weight` in [0, 1]) and how soft its labels are (`temperature` > 0)."""

    weight: float = 0.5
    temperature: float = 2.0

    def loss(self, hard: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Mix the hard-label loss with the KL divergence to the teacher's softened distribution."""
        t = self.temperature
        # T² keeps the soft term's gradients on the scale of the hard term's whatever T is (Hinton et al.).
        soft = nn.functional.kl_div(torch.log_softmax(student / t, 1), torch.log_softmax(teacher / t, 1),
                                    reduction="batchmean", log_target=True) * t * t
        return (1 - self.weight) * hard + self.weight * soft


@dataclass
class Teacher:
    """A finished run used as teacher: its model, preprocessing, identity and validation accuracy."""

    run_dir: Path
    model: Classifier
    pre: Preprocess
    name: str
    sha256: str
    val_accuracy: float | None  # on the student's validation split, once its logits are computed

    def record(self, distill: Distill) -> dict[str, Any]:
        """What the manifest keeps of the teacher."""
        return {"run": str(self.run_dir), "model": self.name, "sha256": self.sha256,
                "val_accuracy": self.val_accuracy, "weight": distill.weight, "temperature": distill.temperature}


def load_teacher(run_dir: str | os.PathLike[str], ds: Dataset) -> Teacher:
    """Load a teacher run and check it fits this dataset: same classes, same images, none of val/test trained on."""
    run_dir = Path(run_dir)
    problem = not_a_run(run_dir, "--teacher")
    if problem:
        raise ConfigError(problem)
    if not is_complete(run_dir) or not (run_dir / MODEL_FILE).is_file():
        raise ConfigError(f"--teacher {run_dir} is not a finished edgeclf run; train the teacher first "
                          f"(`edgeclf train DATA --model efficientnet_lite2 --out {run_dir}`)")
    model, meta = load_run(run_dir)
    if [label_form(c) for c in meta["classes"]] != list(ds.classes):
        raise ConfigError(f"--teacher {run_dir} was trained on classes {short_list(meta['classes'])}; "
                          f"this dataset has {short_list(ds.classes)}: train the teacher on this dataset")
    record = read_split(run_dir) if (run_dir / "split.json").is_file() else {}
    theirs = record.get("files", {})
    seen = {f for files in theirs.values() for f in files}
    held_out = {ds.name(s) for s in ds.samples if s.split in ("val", "test")}
    mine = {ds.name(s) for s in ds.samples}
    if len(mine & seen) < len(mine) / 2:
        raise ConfigError(f"--teacher {run_dir} was trained on another dataset ({record.get('root', 'unknown')}: "
                          f"{len(mine & seen)} of this dataset's {len(mine)} images in its split); "
                          "train the teacher on this dataset")
    leaked = held_out & set(theirs.get("train", []))
    if leaked:
        raise ConfigError(f"--teacher {run_dir} trained on {len(leaked)} image(s) this run holds out for "
                          f"validation/test (e.g. {sorted(leaked)[0]}): train the teacher with the same "
                          "--val-percent/--test-percent")
    return Teacher(run_dir.resolve(), model, run_preprocess(meta, run_dir), meta["model"],
                   sha256_file(run_dir / MODEL_FILE), None)


def teacher_logits(teacher: Teacher, paths: list[str], views_of: list[tuple[int, ...]], augment: Augment,
                   root: Path, backend: str, threads: int | None, workers: int | None,
                   hashed: tuple | None = None, world: World = World()) -> dict[int, FeatureRows]:
    """The teacher's logits for each (path, view) asked for, from the cache or computed once and cached.

    Under torchrun the ranks share the missing ones out, as they do for features.
    """
    views = sorted({v for vs in views_of for v in vs} | {0})
    caches = view_caches(root, "teacher:" + teacher.name, teacher.sha256, teacher.pre, views, augment)
    rows, _, _ = extract_shared(
        world, lambda: make_backend(backend, teacher.model, teacher.pre, caches[0].key, root, threads),
        backend != "torch", teacher.pre, paths, caches, views_of, augment, workers,
        f"teacher {teacher.name} soft labels", hashed=hashed)
    return rows


def accuracy(rows: FeatureRows, labels: np.ndarray) -> float:
    """Top-1 accuracy of cached logits."""
    return float((rows.take(np.arange(len(rows))).argmax(1) == labels).mean()) if len(rows) else 0.0


def compare_teacher(teacher: Teacher, distill: Distill, val_logits: FeatureRows, yval: np.ndarray,
                    alone: HeadResult, log: Any) -> dict[str, Any]:
    """Score the teacher on the student's validation split against the student's head trained without it.

    A teacher below the student's own baseline pulls it towards its mistakes: say so.
    """
    teacher.val_accuracy = accuracy(val_logits, yval) if len(yval) else None
    base = alone.val_accuracy
    if teacher.val_accuracy is not None and teacher.val_accuracy < base:
        log(f"warning: teacher {teacher.name} ({teacher.run_dir}) scores {teacher.val_accuracy:.3f} on validation, "
            f"below this student's head without it ({base:.3f}); distillation will pull the student towards its "
            "mistakes: use a more accurate teacher", file=sys.stderr)
    return dict(teacher.record(distill), val_acc_head_without_teacher=base)
