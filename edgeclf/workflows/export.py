"""`edgeclf export`: the exported file, its int8 accuracy check, then its golden vectors (computed by running it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .._io import read_json, write_json
from ..artifacts.run import read_split
from ..errors import EdgeclfError
from ..exporting.exporter import export as export_file
from ..params import NONE, Interval, check
from ..runtime.evaluate import evaluate
from ..runtime.golden import pick_images, remove_stale, write_golden

DEFAULT_MAX_DROP = 1.0  # points of validation accuracy an int8 file may lose against the float model
MIN_VAL_IMAGES = 100  # below this one image is > 1 point: the check would judge noise, so it is skipped
RETRY_CALIBRATION = 400  # images the second calibration uses when the first misses --max-drop


class Int8DropError(EdgeclfError):
    """The int8 file loses more validation accuracy than --max-drop allows (the file is kept, marked)."""


def export(run_dir: str | os.PathLike[str], format: str = "tflite", quantize: str = "float32",
           out: str | os.PathLike[str] | None = None, io: str = "uint8", calibration_size: int = 100,
           calibration_data: str | os.PathLike[str] | None = None, max_drop: float | None = DEFAULT_MAX_DROP,
           verbose: bool = True) -> Path:
    """Export a trained run (FILE, labels.txt, FILE-stem.json) and write FILE.golden.json beside it.

    An int8 file is checked on the validation split against the float model: when it loses more
    than `max_drop` points it is re-calibrated on more images; if it still does, the file is kept,
    its sidecar says so, and Int8DropError is raised (the CLI exits non-zero). None skips the check.
    """
    check("--max-drop", max_drop, NONE, Interval(float, 0, 100))
    dest = export_file(run_dir, format, quantize, out, io, calibration_size, calibration_data, verbose)
    if quantize == "int8" and max_drop is not None:
        dest = _int8_guarantee(dest, run_dir, out, io, calibration_size, calibration_data, max_drop, verbose)
    golden = golden_vectors(dest, run_dir, quantize, calibration_data)
    if verbose and golden is not None:
        print(f"golden vectors {golden}")
    result = read_json(dest.with_suffix(".json")).get("int8_check", {})
    if result and not result.get("passed", True):
        raise Int8DropError(f"{dest} loses {result['drop_points']:.2f} points of validation accuracy against the "
                            f"float model (> --max-drop {max_drop:g}) even with {result['calibration_images']} "
                            "calibration images; the file is kept and marked in its .json; use float16/dynamic, "
                            "or raise --max-drop")
    return dest


def int8_check(dest: Path, run_dir: str | os.PathLike[str], data: str | os.PathLike[str] | None,
               max_drop: float) -> dict[str, Any]:
    """Validation accuracy of the float model and the int8 file, their top-1 agreement, and the verdict."""
    rec = read_split(run_dir)
    root = Path(data or rec["root"])
    n_val = len(rec.get("files", {}).get("val", []))
    if not root.is_dir() or n_val < MIN_VAL_IMAGES:
        why = f"{root} is gone" if not root.is_dir() else f"{n_val} validation images (< {MIN_VAL_IMAGES})"
        return {"checked": False, "note": f"int8 not checked against float: {why}"}
    q = evaluate(dest, root, split="val", verbose=False)  # runs the run's PyTorch model on the same images too
    if "pytorch_accuracy" not in q:
        return {"checked": False, "note": f"int8 not checked against float: no PyTorch run beside {dest.name}"}
    drop = 100 * (q["pytorch_accuracy"] - q["accuracy"])
    return {"checked": True, "split": "val", "n": q["n"], "val_acc_float": q["pytorch_accuracy"],
            "val_acc_int8": q["accuracy"], "drop_points": round(drop, 2),
            "top1_agreement": q.get("top1_agreement_with_pytorch"), "max_drop": max_drop, "passed": drop <= max_drop}


def _int8_guarantee(dest: Path, run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None, io: str,
                    calibration_size: int, data: str | os.PathLike[str] | None, max_drop: float,
                    verbose: bool) -> Path:
    result = int8_check(dest, run_dir, data, max_drop)
    if result["checked"] and not result["passed"] and calibration_size < RETRY_CALIBRATION:
        if verbose:
            print(f"int8 loses {result['drop_points']:.2f} points on validation (> --max-drop {max_drop:g}); "
                  f"re-calibrating on up to {RETRY_CALIBRATION} training images")
        dest = export_file(run_dir, "tflite", "int8", out, io, RETRY_CALIBRATION, data, verbose)
        first = result
        result = int8_check(dest, run_dir, data, max_drop)
        result["first_try"] = {k: first[k] for k in ("val_acc_int8", "drop_points", "top1_agreement")}
        calibration_size = RETRY_CALIBRATION
    result["calibration_images"] = calibration_size
    side = dest.with_suffix(".json")
    write_json(side, {**read_json(side), "int8_check": result})
    if verbose:
        if not result["checked"]:
            print(f"warning: {result['note']}", file=sys.stderr)
        else:
            print(f"int8 check on {result['n']} validation images: float {result['val_acc_float']:.4f}, int8 "
                  f"{result['val_acc_int8']:.4f} ({result['drop_points']:+.2f} points lost), top-1 agreement "
                  f"{result['top1_agreement']} — {'within' if result['passed'] else 'OVER'} --max-drop {max_drop:g}")
    return dest


def golden_vectors(dest: Path, run_dir: str | os.PathLike[str], quantize: str,
                   data: str | os.PathLike[str] | None = None) -> Path | None:
    """Golden vectors of an exported file on a few of the run's test images (None when the images are gone)."""
    rec = read_split(run_dir)
    root = Path(data or rec["root"])
    rels = pick_images(root, rec.get("files", {}).get("test", []), rec.get("classes", [])) if root.is_dir() else []
    golden = write_golden(dest, root, rels, quantize) if rels else None
    if golden is None:
        remove_stale(dest)  # an older file's vectors would describe another model
    return golden
