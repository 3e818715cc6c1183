"""The one decode job: an image file → the model's uint8 input(s), in a worker process.

Training features, augmented views, fine-tuning batches, evaluation and int8 calibration all
decode through it, so every stage feeds the model the same pixels (full-resolution decode, the
run's resize mode, the augmentation's warp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from ..models.preprocess import Preprocess
from .augment import Augment
from .images import ImageDecodeError, load_rgb

# None = the plain view (pre.to_uint8); otherwise the seed of an augmented view, anything
# np.random.default_rng takes: (image hash, k) makes view k of an image the same pixels every run.
ViewSeed = Union[None, int, Sequence[int]]


@dataclass(frozen=True)
class Crops:
    """Picklable: (path, view seeds) → one uint8 [size, size, 3] array per view, or why the file cannot be read."""

    pre: Preprocess
    augment: Augment | None = None

    def __call__(self, job: tuple[str, Sequence[ViewSeed]]) -> list[np.ndarray] | str:
        """The crops of one (path, view seeds) job, or the reason the file cannot be read."""
        path, views = job
        try:
            # Full resolution, as an app hands the image to MediaPipe: a JPEG draft would change the pixels.
            img = np.asarray(load_rgb(path))
        except ImageDecodeError as exc:
            return exc.reason
        return [self.pre.to_uint8(img) if v is None or self.augment is None
                else self.augment.view(img, self.pre, np.random.default_rng(v)) for v in views]


def plain(path: str) -> tuple[str, list[ViewSeed]]:
    """The job for a file's plain view."""
    return path, [None]
