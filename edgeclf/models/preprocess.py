"""The preprocessing that travels with a backbone: training, export and metadata all read it.

Pixels are produced the way MediaPipe Tasks' ImageClassifier produces them on a CPU, so the number
edgeclf reports is the number an app gets: one bilinear ``cv2.warpAffine`` from a source rectangle
of the full-resolution RGB image to size x size, replicated borders, no antialiasing. Fed the whole
image (``resize="squash"``) this is bit-identical to what MediaPipe gives the model; ``"crop"`` is the
centre square an app selects with ``ImageProcessingOptions(region_of_interest=...)``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..params import Options, check

if TYPE_CHECKING:  # torch loads where a model runs in PyTorch, not for a .tflite file's preprocessing
    import torch

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # torchvision's (0.485, 0.456, 0.406) x 255
IMAGENET_STD = (58.395, 57.12, 57.375)
TF_LITE_MEAN = (127.0, 127.0, 127.0)  # EfficientNet-Lite's TF preprocessing: (x - 127) / 128
TF_LITE_STD = (128.0, 128.0, 128.0)
INCEPTION_MEAN = (127.5, 127.5, 127.5)  # TF-slim's float preprocessing: [-1, 1]
INCEPTION_STD = (127.5, 127.5, 127.5)
# MobileNet V1's weights come from Google's uint8 .tflite files, whose input quantization
# (scale 1/128, zero point 128) is the normalization the network was trained to see.
TF_QUANT_MEAN = (128.0, 128.0, 128.0)
TF_QUANT_STD = (128.0, 128.0, 128.0)

# squash: the whole image to size x size, aspect not kept (what MediaPipe Tasks, the LiteRT Task
# Library and Model Maker feed a classifier); crop: the centre square of side crop_pct x shorter side.
RESIZE_MODES = ("squash", "crop")
DEFAULT_RESIZE = "squash"
# Files exported before the mode existed were trained on a centre crop.
LEGACY_RESIZE = "crop"

Rect = tuple[float, float, float, float]  # left, top, width, height in source pixels


def check_resize(resize: str) -> str:
    """The mode, or a one-line ConfigError naming the option and its allowed values."""
    return check("--resize", resize, Options(*RESIZE_MODES))


def warp(pixels: np.ndarray, rect: Rect, size: int) -> np.ndarray:
    """uint8 [h, w, 3] → uint8 [size, size, 3]: `rect` scaled onto the output, as MediaPipe's CPU path does.

    This is OpenCV's classic fixed-point ``warpAffine`` (bilinear, 1/32-pixel positions, 15-bit
    weights, replicated border), the code MediaPipe's ImageClassifier runs on a CPU; written out
    because OpenCV's own warpAffine changed its arithmetic in later releases. With the whole image
    as `rect` the result equals MediaPipe's input tensor bit for bit (tests/test_fidelity.py).
    """
    x0, y0, rw, rh = rect
    sx, sy = size / rw, size / rh
    # The inverse map (output → source), in double as OpenCV's invertAffineTransform computes it.
    ax, ay = 1.0 / sx, 1.0 / sy
    bx, by = -ax * (-x0 * sx), -ay * (-y0 * sy)
    i = np.arange(size, dtype=np.float64)
    # Source positions in 1/32 pixel: OpenCV rounds in 1/1024 first, then shifts (AB_BITS=10, INTER_BITS=5).
    px = (np.rint(bx * 1024).astype(np.int64) + 16 + np.rint(ax * i * 1024).astype(np.int64)) >> 5
    py = (np.rint((ay * i + by) * 1024).astype(np.int64) + 16) >> 5
    h, w = pixels.shape[:2]
    x, fx = px >> 5, (px & 31)[None, :, None]
    y, fy = py >> 5, (py & 31)[:, None, None]
    xa, xb = np.clip(x, 0, w - 1), np.clip(x + 1, 0, w - 1)
    ya, yb = np.clip(y, 0, h - 1)[:, None], np.clip(y + 1, 0, h - 1)[:, None]
    p = np.asarray(pixels, dtype=np.int32)
    v = ((p[ya, xa] * (32 - fx) + p[ya, xb] * fx) * (32 - fy)
         + (p[yb, xa] * (32 - fx) + p[yb, xb] * fx) * fy) * 32
    return np.clip((v + (1 << 14)) >> 15, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Preprocess:
    """Fit the image to size x size (`resize`: squash or centre crop), then (x - mean) / std.

    mean and std are in pixel units (0..255), the convention of TFLite NormalizationOptions.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875
    resize: str = DEFAULT_RESIZE

    @property
    def resize_to(self) -> int:
        """Length of the shorter side the centre crop corresponds to (crop mode)."""
        return int(round(self.size / self.crop_pct))

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        """Inverse of to_dict; a record without `resize` predates the mode and is a centre crop."""
        pre = cls(size=int(d["size"]), mean=tuple(float(m) for m in d["mean"]),
                  std=tuple(float(s) for s in d["std"]), crop_pct=float(d.get("crop_pct", 0.875)),
                  resize=str(d.get("resize", LEGACY_RESIZE)))
        if not (8 <= pre.size <= 4096 and len(pre.mean) == len(pre.std) == 3 and min(pre.std) > 0
                and 0 < pre.crop_pct <= 1 and pre.resize in RESIZE_MODES):
            raise ValueError(f"not a valid preprocessing: {d}")
        return pre

    @classmethod
    def from_record(cls, record: dict, source: object) -> "Preprocess":
        """from_dict, saying on stderr when `source`'s record predates the resize mode (centre crop assumed)."""
        if isinstance(record, dict) and "resize" not in record:
            print(f"note: {source} was made before edgeclf recorded the resize mode; assuming resize=crop "
                  "(centre crop). Retrain (or re-export) to record it.", file=sys.stderr)
        return cls.from_dict(record)

    def region(self, w: int, h: int) -> Rect:
        """The source rectangle the model sees of a w x h image."""
        if self.resize == "squash":
            return 0.0, 0.0, float(w), float(h)
        side = min(w, h) * self.crop_pct
        return (w - side) / 2, (h - side) / 2, side, side

    def roi(self, w: int, h: int) -> tuple[float, float, float, float]:
        """region() normalized to (left, top, right, bottom) in 0..1, MediaPipe's region_of_interest."""
        x0, y0, rw, rh = self.region(w, h)
        return x0 / w, y0 / h, (x0 + rw) / w, (y0 + rh) / h

    def to_uint8(self, img: Image.Image | np.ndarray) -> np.ndarray:
        """RGB image → uint8 array [size, size, 3] (what an exported uint8 model takes)."""
        arr = np.asarray(img, dtype=np.uint8)
        return warp(arr, self.region(arr.shape[1], arr.shape[0]), self.size)

    def normalize(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NHWC → float32 NCHW, normalized."""
        import torch

        x = torch.as_tensor(batch).permute(0, 3, 1, 2).float()
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - mean) / std
