"""Stable train/val/test assignment from a hash of the file name, as TF Hub's retrain.py does.

Adding images never moves an existing image to another split, and files named `x_nohash_1.jpg`,
`x_nohash_2.jpg` (near-identical shots) always land together.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..params import check_split

SPLITS = ("train", "val", "test")
_MAX_PER_CLASS = 2**27 - 1  # retrain.py's constant, kept so percentages match its behaviour
_NOHASH = re.compile(r"_nohash_.*$")


@dataclass(frozen=True)
class SplitSpec:
    """Percentages of the validation and test splits; train gets the rest."""

    val_percent: float = 10.0
    test_percent: float = 10.0

    def __post_init__(self) -> None:
        check_split(self.val_percent, self.test_percent)


def hash_key(rel_path: str) -> str:
    """The part of a path the split hashes: `_nohash_` suffixes of the file stem are dropped."""
    head, _, name = rel_path.replace("\\", "/").rpartition("/")
    stem = _NOHASH.sub("", name)
    return f"{head}/{stem}" if head else stem


def percentage(rel_path: str) -> float:
    """A stable pseudo-random number in [0, 100] for a file."""
    digest = hashlib.sha1(hash_key(rel_path).encode("utf-8")).hexdigest()
    return (int(digest, 16) % (_MAX_PER_CLASS + 1)) * (100.0 / _MAX_PER_CLASS)


def assign(rel_path: str, spec: SplitSpec) -> str:
    """The split ('train', 'val' or 'test') a file belongs to under `spec`."""
    p = percentage(rel_path)
    if p < spec.val_percent:
        return "val"
    if p < spec.val_percent + spec.test_percent:
        return "test"
    return "train"
