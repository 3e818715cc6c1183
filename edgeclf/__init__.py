"""edgeclf: turn a folder of images into a fast, small, accurate on-device image classifier.

The Python API mirrors the CLI, one function per command::

    import edgeclf
    report = edgeclf.doctor("dataset/")
    run = edgeclf.train("dataset/", model="efficientnet_lite0", out="runs/lite0")
    path = edgeclf.export(run, format="tflite", quantize="int8")
    metrics = edgeclf.evaluate(path, data="dataset/")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Heavy modules (torch, LiteRT) load on first use, so `edgeclf doctor` and `--help` stay fast.
_API = {
    "doctor": "edgeclf.api",
    "scan": "edgeclf.data.dataset",
    "list_models": "edgeclf.models.zoo",
    "create_model": "edgeclf.models.zoo",
    "train": "edgeclf.api",
    "export": "edgeclf.api",
    "evaluate": "edgeclf.api",
    "predict": "edgeclf.api",
    "benchmark": "edgeclf.api",
    "compare": "edgeclf.api",
    "verify": "edgeclf.api",
    "EdgeclfError": "edgeclf.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgeclf' has no attribute {name!r}")
