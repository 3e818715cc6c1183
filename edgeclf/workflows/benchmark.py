"""`edgeclf benchmark`: files at several thread counts; a run directory timed in each runtime (exported on demand)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..artifacts.run import load_run
from ..errors import ConfigError
from ..params import BOOL, COUNT, Options, POSITIVE_INT, THREADS, as_list, check, check_path
from ..runtime.benchmark import benchmark_file, format_benchmark
from ..runtime.engine import require_model

RUNTIMES = ("litert", "onnxruntime", "torch")


def runtime_files(run_dir: Path, runtimes: list[str]) -> list[Path]:
    """The same trained model for each runtime: float32 .tflite / .onnx exported on demand, or the run dir (torch)."""
    for rt in runtimes:  # every name checked before the first export
        check("--runtime", rt, Options(*RUNTIMES))
    from .export import export  # converting needs torch; timing files does not

    _, meta = load_run(run_dir)
    out = []
    for rt in runtimes:
        if rt == "torch":
            out.append(run_dir)
            continue
        fmt = "tflite" if rt == "litert" else "onnx"
        f = run_dir / "export" / f"{meta['model']}_float32.{fmt}"
        out.append(f if f.is_file() else export(run_dir, fmt, verbose=False))
    return out


def benchmark(paths: str | os.PathLike[str] | list[str | os.PathLike[str]], threads: int | list[int] | None = None,
              runs: int = 100, warmup: int = 10, runtimes: str | list[str] | None = None,
              verbose: bool = True) -> list[dict[str, Any]]:
    """Benchmark every file at every thread count; a run dir with `runtimes` is timed in each runtime. Prints a table."""
    paths, threads, runtimes = as_list(paths) or [], as_list(threads), as_list(runtimes)
    for t in threads or [1]:
        check("--threads", t, THREADS)
    check("--runs", runs, POSITIVE_INT)
    check("--warmup", warmup, COUNT)
    check("verbose", verbose, BOOL)
    if not paths:
        raise ConfigError("benchmark needs a .tflite/.onnx file or a run directory; none was given")
    given = [require_model(check_path("MODEL", p)) for p in paths]  # every path checked before the first is timed
    lone = [p for p in given if runtimes and not p.is_dir()]
    if lone:  # a file runs in its own runtime only; silently timing it there would answer another question
        raise ConfigError(f"--runtime compares runtimes on a run directory; {lone[0]} is a file, timed in its own "
                          "runtime: pass the run directory or drop --runtime")
    files: list[Path] = []
    for p in given:
        files += runtime_files(p, runtimes) if p.is_dir() and runtimes else [p]
    rows = [benchmark_file(f, t, runs, warmup) for f in files for t in (threads or [1])]
    if verbose:
        print(format_benchmark(rows))
    return rows
