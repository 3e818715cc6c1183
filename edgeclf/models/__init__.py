"""The mobile backbone zoo: one builder, a registry of variants, ImageNet weights that load offline."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: predict/evaluate/benchmark of a .tflite file reach models.preprocess through this
# package and never need torch (~1.5 s and ~200 MB to import).
_NAMES = {"ArchDef": "builder", "Backbone": "builder", "Classifier": "builder", "make_head": "builder",
          "Preprocess": "preprocess", "REGISTRY": "zoo", "ModelSpec": "zoo", "create_model": "zoo", "describe": "zoo",
          "get_spec": "zoo", "list_models": "zoo"}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
