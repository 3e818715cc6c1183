"""Feature backends: the same backbone run by PyTorch eager or, exported once, by LiteRT (XNNPACK).

Both take uint8 NHWC crops and return the pooled float32 features; the LiteRT path is several
times faster on a CPU (bench/README.md) and its vectors match PyTorch's to float rounding,
so both share one feature cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._io import write_bytes
from ..litert import convert, open_interpreter, run_each
from ..models.preprocess import Preprocess

BACKENDS = ("auto", "litert", "torch")

FeatureFn = Callable[[np.ndarray], np.ndarray]


def torch_backend(backbone: torch.nn.Module, pre: Preprocess) -> FeatureFn:
    """PyTorch eager, channels-last (faster convolutions on CPU)."""
    backbone = backbone.eval().to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return backbone(pre.normalize(batch).contiguous(memory_format=torch.channels_last)).numpy()

    run.name = "torch"  # type: ignore[attr-defined]
    return run


def backbone_tflite(backbone: torch.nn.Module, pre: Preprocess, dest: Path, batch: int = 1) -> Path:
    """Export backbone + normalization (uint8 NHWC in, features out) to a float32 .tflite, atomically."""
    from ..models.deploy import Deployable

    data = convert(Deployable(backbone, pre, softmax=False).eval(),
                   torch.zeros(batch, pre.size, pre.size, 3, dtype=torch.uint8))
    write_bytes(dest, data)
    return dest


def litert_backend(path: Path, threads: int | None = None) -> FeatureFn:
    """Run an exported backbone with ai-edge-litert; batches are fed one image at a time."""
    it = open_interpreter(path, threads or os.cpu_count())

    def run(batch: np.ndarray) -> np.ndarray:
        return run_each(it, batch, name=path)

    run.name = "litert"  # type: ignore[attr-defined]
    return run


def make_backend(kind: str, backbone: torch.nn.Module, pre: Preprocess, key: str, root: Path,
                 threads: int | None = None) -> FeatureFn:
    """The feature function for `kind` ("auto" = LiteRT, falling back to PyTorch if conversion fails)."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown feature backend {kind!r}; use one of {', '.join(BACKENDS)}")
    if kind == "torch":
        return torch_backend(backbone, pre)
    path = Path(root) / "backbones" / f"{key}.tflite"
    try:
        if not path.is_file():
            backbone_tflite(backbone, pre, path)
        return litert_backend(path, threads)
    except Exception as exc:  # noqa: BLE001 - any converter failure: the torch path gives the same features
        if kind == "litert":
            raise
        import sys

        print(f"LiteRT feature path unavailable ({type(exc).__name__}: {str(exc)[:120]}); using PyTorch",
              file=sys.stderr)
        return torch_backend(backbone, pre)
