"""Training-time augmentation as retrain.py defines it: flip, random scale + crop, brightness.

Each augmented *view* is a pure function of (image content, view id, settings): the same image
always gives the same pixels for view k, which is what lets augmented views live in the feature
cache like the plain centre crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ..models.preprocess import Preprocess, warp
from ..params import PERCENT, check


@dataclass(frozen=True)
class Augment:
    """retrain.py's distortions; percentages as its flags take them."""

    flip: bool = True  # --flip_left_right
    random_crop: float = 10.0  # --random_crop: % margin cropped off at random
    random_scale: float = 20.0  # --random_scale: % the image is scaled up by at most
    random_brightness: float = 20.0  # --random_brightness: % pixels are multiplied up or down by at most

    def __post_init__(self) -> None:
        for name in ("random_crop", "random_scale", "random_brightness"):
            check("--" + name.replace("_", "-"), getattr(self, name), PERCENT)

    @property
    def active(self) -> bool:
        """Whether this changes anything at all."""
        return self.flip or any((self.random_crop, self.random_scale, self.random_brightness))

    def to_dict(self) -> dict:
        """JSON-able form (part of the feature cache key)."""
        return asdict(self)

    def view(self, img: Image.Image | np.ndarray, pre: Preprocess, rng: np.random.Generator) -> np.ndarray:
        """One random view: uint8 [size, size, 3], warped the way pre.to_uint8 warps the plain view."""
        arr = np.asarray(img, dtype=np.uint8)
        h, w = arr.shape[:2]
        scale = (1 + self.random_crop / 100) * rng.uniform(1.0, 1 + self.random_scale / 100)
        # A window 1/scale the size of the plain view's region; retrain.py crops anywhere in the
        # image, not only near the centre.
        _, _, rw, rh = pre.region(w, h)
        rw, rh = rw / scale, rh / scale
        left = float(rng.uniform(0, w - rw))
        top = float(rng.uniform(0, h - rh))
        x = warp(arr, (left, top, rw, rh), pre.size).astype(np.float32)
        if self.flip and rng.random() < 0.5:
            x = x[:, ::-1]
        if self.random_brightness:
            x = x * rng.uniform(1 - self.random_brightness / 100, 1 + self.random_brightness / 100)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def view_seed(digest: str, view: int) -> list[int] | None:
    """The seed of view `view` of the image with content hash `digest`: stable across runs and machines (0 = plain)."""
    return None if view == 0 else [int(digest[:16], 16), view]
