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


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):  # not Linux: memory is not reported
        return float("nan")


def _raw_tflite(path: Path, threads: int):
    """Any .tflite, edgeclf's or not: (invoke one random input, input description)."""
    from ai_edge_litert.interpreter import Interpreter

    from ..errors import ModelError

    try:
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a valid .tflite model ({str(exc).splitlines()[0]})") from None
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(0, 256, d["shape"]).astype(d["dtype"])

    def run() -> None:
        it.set_tensor(d["index"], x)
        it.invoke()

    shape = "x".join(str(v) for v in d["shape"][1:])
    return run, f"{shape} {np.dtype(d['dtype']).name}"


def benchmark_file(path: str | os.PathLike[str], threads: int = 1, runs: int = 100, warmup: int = 10,
                   seed: int = 0) -> dict[str, Any]:
    """Time one model file (.tflite of any origin, .onnx, or a run dir): batch-1 latency after warm-up."""
    p = Path(path)
    rss0 = _rss_mb()
    if p.suffix == ".tflite":
        fn, inp = _raw_tflite(p, threads)
        runtime = "litert"
    else:
        engine = load_engine(path, threads)
        size = engine.preprocess.size
        x = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        if engine.kind == "torch":
            import torch

            torch.set_num_threads(threads)
        fn, inp = (lambda: engine.predict(x)), f"{size}x{size}x3 uint8"
        runtime = {"onnx": "onnxruntime"}.get(engine.kind, engine.kind)
    for _ in range(max(1, warmup)):
        fn()
    mem = _rss_mb() - rss0
    ms = np.empty(runs)
    for i in progress(range(runs), f"{p.name} x{threads} threads", runs, "run"):
        t = time.perf_counter()
        fn()
        ms[i] = (time.perf_counter() - t) * 1e3
    size_bytes = p.stat().st_size if p.is_file() else (p / "model.pt").stat().st_size
    return {"file": str(path), "runtime": runtime, "threads": threads, "size_mb": round(size_bytes / 1e6, 3),
            "input": inp, "runs": runs, **_stats(ms), "throughput_ips": round(1e3 / float(ms.mean()), 1),
            "memory_mb": round(mem, 1)}


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
        ["file", "runtime", "threads", "size MB", "input", "mean ms", "p50 ms", "p90 ms", "p99 ms", "min ms", "img/s",
         "+RSS MB"],
        [[Path(r["file"]).name, r["runtime"], r["threads"], r["size_mb"], r["input"], r["mean_ms"], r["p50_ms"],
          r["p90_ms"], r["p99_ms"], r["min_ms"], r["throughput_ips"], r["memory_mb"]] for r in rows])
