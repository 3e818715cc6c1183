"""PyTorch → .tflite through litert-torch."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._io import atomic_path, quiet_fds
from ..errors import EdgeclfError
from ..models.builder import Classifier
from ..models.preprocess import Preprocess
from .wrapper import Deployable

QUANTIZE = ("float32",)


def to_tflite(model: Classifier, pre: Preprocess, dest: str | os.PathLike[str], quantize: str = "float32") -> Path:
    """Convert to a uint8-input NHWC .tflite with probabilities out; written atomically."""
    if quantize not in QUANTIZE:
        raise EdgeclfError(f"--quantize {quantize} for .tflite is not supported yet; use one of {', '.join(QUANTIZE)}")
    module = Deployable(model, pre).eval()
    sample = (torch.zeros(1, pre.size, pre.size, 3, dtype=torch.uint8),)
    with quiet_fds():
        import litert_torch

        edge = litert_torch.convert(module, sample)
        with atomic_path(dest) as tmp:
            edge.export(str(tmp))
    return Path(dest)
