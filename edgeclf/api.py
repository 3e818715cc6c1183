"""The Python API: one function per CLI command, same names, same defaults."""

from __future__ import annotations

from .workflows.doctor import doctor
from .workflows.export import export
from .workflows.compare import compare
from .workflows.search import search
from .workflows.demo import demo
from .workflows.benchmark import benchmark
from .runtime.evaluate import evaluate
from .runtime.predict import predict
from .runtime.verify import verify
from .training.trainer import train

__all__ = ["doctor", "train", "export", "evaluate", "predict", "benchmark", "compare", "search", "verify", "demo"]
