"""`edgeclf export`: the exported file, then its golden vectors (computed by running it)."""

from __future__ import annotations

import os
from pathlib import Path

from .._io import read_json
from ..exporting.exporter import export as export_file
from ..runtime.golden import pick_images, remove_stale, write_golden


def export(run_dir: str | os.PathLike[str], format: str = "tflite", quantize: str = "float32",
           out: str | os.PathLike[str] | None = None, io: str = "uint8", calibration_size: int = 100,
           calibration_data: str | os.PathLike[str] | None = None, verbose: bool = True) -> Path:
    """Export a trained run (FILE, labels.txt, FILE-stem.json) and write FILE.golden.json beside it."""
    dest = export_file(run_dir, format, quantize, out, io, calibration_size, calibration_data, verbose)
    golden = golden_vectors(dest, run_dir, quantize, calibration_data)
    if verbose and golden is not None:
        print(f"golden vectors {golden}")
    return dest


def golden_vectors(dest: Path, run_dir: str | os.PathLike[str], quantize: str,
                   data: str | os.PathLike[str] | None = None) -> Path | None:
    """Golden vectors of an exported file on a few of the run's test images (None when the images are gone)."""
    rec = read_json(Path(run_dir) / "split.json")
    root = Path(data or rec["root"])
    rels = pick_images(root, rec.get("files", {}).get("test", []), rec.get("classes", [])) if root.is_dir() else []
    golden = write_golden(dest, root, rels, quantize) if rels else None
    if golden is None:
        remove_stale(dest)  # an older file's vectors would describe another model
    return golden
