"""`edgeclf export`: one table of formats, sidecar files next to every exported model."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .._io import write_json, write_text
from ..errors import EdgeclfError
from ..train.run import load_run, run_preprocess

FORMATS = {"tflite": ".tflite"}


def export(run_dir: str | os.PathLike[str], format: str = "tflite", quantize: str = "float32",
           out: str | os.PathLike[str] | None = None, verbose: bool = True) -> Path:
    """Export a trained run; writes FILE, labels.txt and FILE-stem.json (preprocessing) beside it."""
    if format not in FORMATS:
        raise EdgeclfError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    model, meta = load_run(run_dir)
    pre = run_preprocess(meta)
    dest = Path(out) if out else Path(run_dir) / "export" / f"{meta['model']}_{quantize}{FORMATS[format]}"
    t = time.perf_counter()
    if format == "tflite":
        from .tflite import to_tflite

        to_tflite(model, pre, dest, quantize)
    write_text(dest.parent / "labels.txt", "\n".join(meta["classes"]) + "\n")
    write_json(dest.with_suffix(".json"), {
        "model": meta["model"], "format": format, "quantize": quantize, "classes": meta["classes"],
        "input": {"layout": "NHWC", "dtype": "uint8", "size": pre.size, "range": [0, 255]},
        "preprocess": pre.to_dict(), "output": "probabilities", "run_dir": str(Path(run_dir).resolve()),
    })
    if verbose:
        print(f"exported {dest} ({dest.stat().st_size / 1e6:.2f} MB, {format} {quantize}) "
              f"in {time.perf_counter() - t:.1f}s")
    return dest
