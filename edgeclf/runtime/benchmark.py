"""`edgeclf benchmark`: latency of a model file at batch 1, after warm-up, per thread count."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import progress
from ..report.table import format_table
from .engine import load_engine


def _stats(ms: np.ndarray) -> dict[str, float]:
    return {"mean_ms": round(float(ms.mean()), 3), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "min_ms": round(float(ms.min()), 3)}


def benchmark_file(path: str | os.PathLike[str], threads: int = 1, runs: int = 100, warmup: int = 10,
                   seed: int = 0) -> dict[str, Any]:
    """Time one model file: batch-1 latency statistics over `runs` after `warmup` runs."""
    engine = load_engine(path, threads)
    size = engine.preprocess.size
    x = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    if engine.kind == "torch":
        import torch

        torch.set_num_threads(threads)
    for _ in range(warmup):
        engine.predict(x)
    ms = np.empty(runs)
    for i in progress(range(runs), f"{Path(path).name} x{threads} threads", runs, "run"):
        t = time.perf_counter()
        engine.predict(x)
        ms[i] = (time.perf_counter() - t) * 1e3
    p = Path(path)
    size_bytes = p.stat().st_size if p.is_file() else (p / "model.pt").stat().st_size
    return {"file": str(path), "runtime": {"tflite": "litert", "onnx": "onnxruntime"}.get(engine.kind, engine.kind), "threads": threads,
            "size_mb": round(size_bytes / 1e6, 3), "input": f"{size}x{size}x3 uint8", "runs": runs,
            **_stats(ms), "throughput_ips": round(1e3 / float(ms.mean()), 1)}


def benchmark(paths: list[str], threads: list[int] | None = None, runs: int = 100, warmup: int = 10,
              verbose: bool = True) -> list[dict[str, Any]]:
    """Benchmark every file at every thread count; prints a table."""
    rows = [benchmark_file(p, t, runs, warmup) for p in paths for t in (threads or [1])]
    if verbose:
        print(format_benchmark(rows))
    return rows


def format_benchmark(rows: list[dict[str, Any]]) -> str:
    """One row per file x runtime x threads."""
    return format_table(
        ["file", "runtime", "threads", "size MB", "mean ms", "p50 ms", "p90 ms", "p99 ms", "min ms", "img/s"],
        [[Path(r["file"]).name, r["runtime"], r["threads"], r["size_mb"], r["mean_ms"], r["p50_ms"], r["p90_ms"],
          r["p99_ms"], r["min_ms"], r["throughput_ips"]] for r in rows])
