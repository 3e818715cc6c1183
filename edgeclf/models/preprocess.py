"""The preprocessing that travels with a backbone: training, export and metadata all read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # torchvision's (0.485, 0.456, 0.406) x 255
IMAGENET_STD = (58.395, 57.12, 57.375)
TF_LITE_MEAN = (127.0, 127.0, 127.0)  # EfficientNet-Lite's TF preprocessing: (x - 127) / 128
TF_LITE_STD = (128.0, 128.0, 128.0)
INCEPTION_MEAN = (127.5, 127.5, 127.5)  # MobileNetV1 (TF-slim): [-1, 1]
INCEPTION_STD = (127.5, 127.5, 127.5)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to size / crop_pct, centre-crop size x size, then (x - mean) / std.

    mean and std are in pixel units (0..255), the convention of TFLite NormalizationOptions.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875

    @property
    def resize_to(self) -> int:
        """Length of the shorter side before the centre crop."""
        return int(round(self.size / self.crop_pct))

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        """Inverse of to_dict."""
        pre = cls(size=int(d["size"]), mean=tuple(float(m) for m in d["mean"]),
                  std=tuple(float(s) for s in d["std"]), crop_pct=float(d.get("crop_pct", 0.875)))
        if not (8 <= pre.size <= 4096 and len(pre.mean) == len(pre.std) == 3 and min(pre.std) > 0
                and 0 < pre.crop_pct <= 1):
            raise ValueError(f"not a valid preprocessing: {d}")
        return pre

    def crop(self, img: Image.Image) -> Image.Image:
        """Resize + centre crop an RGB image to size x size."""
        w, h = img.size
        scale = self.resize_to / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        """RGB image → uint8 array [size, size, 3] (what an exported uint8 model takes)."""
        return np.asarray(self.crop(img), dtype=np.uint8)

    def normalize(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NHWC → float32 NCHW, normalized."""
        x = torch.as_tensor(batch).permute(0, 3, 1, 2).float()
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - mean) / std
