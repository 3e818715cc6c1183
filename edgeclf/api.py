"""The Python API: one function per CLI command, same names, same defaults."""

from __future__ import annotations

from .data.doctor import diagnose as doctor
from .export.exporter import export
from .report.compare import compare
from .runtime.benchmark import benchmark
from .runtime.evaluate import evaluate
from .runtime.predict import predict
from .runtime.verify import verify
from .train.trainer import train

__all__ = ["doctor", "train", "export", "evaluate", "predict", "benchmark", "compare", "verify"]
