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

# Heavy modules (torch, LiteRT) load on first use, and only the stage asked for: `edgeclf.doctor`
# and `--help` never import torch.
_API = {
    "doctor": ("edgeclf.workflows.doctor", "doctor"),  # the command's: embeddings, --label-issues, --suggest
    "scan": ("edgeclf.data.dataset", "scan"),
    "list_models": ("edgeclf.models.zoo", "list_models"),
    "create_model": ("edgeclf.models.zoo", "create_model"),
    "train": ("edgeclf.training.trainer", "train"),
    "export": ("edgeclf.workflows.export", "export"),
    "evaluate": ("edgeclf.runtime.evaluate", "evaluate"),
    "predict": ("edgeclf.runtime.predict", "predict"),
    "benchmark": ("edgeclf.workflows.benchmark", "benchmark"),
    "compare": ("edgeclf.workflows.compare", "compare"),
    "search": ("edgeclf.workflows.search", "search"),
    "verify": ("edgeclf.runtime.verify", "verify"),
    "demo": ("edgeclf.workflows.demo", "demo"),
    # What a caller catches or filters: every error is an EdgeclfError, warnings an EdgeclfWarning.
    "EdgeclfError": ("edgeclf.errors", "EdgeclfError"),
    "ConfigError": ("edgeclf.errors", "ConfigError"),
    "DatasetError": ("edgeclf.errors", "DatasetError"),
    "ModelError": ("edgeclf.errors", "ModelError"),
    "EdgeclfWarning": ("edgeclf.errors", "EdgeclfWarning"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'edgeclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazily loaded API too: tab completion (IPython, Jupyter, editors) lists what dir() returns."""
    return sorted(set(globals()) | set(_API))
