"""`edgeclf export`: the exported file, its int8 accuracy check, then its golden vectors (computed by running it)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from .._io import read_json, write_bytes, write_json
from ..artifacts.run import dataset_root, read_split, sidecar_of
from ..errors import ConfigError, EdgeclfError, EdgeclfWarning
from ..exporting.exporter import FORMATS, ROUNDINGS, export as export_file, layers_report, names_folder
from ..exporting.int8_layers import read_report, worst
from ..exporting.tflite import check_quantize
from ..params import BOOL, NONE, Interval, Options, as_list, check, check_path
from ..runtime.evaluate import evaluate
from ..runtime.golden import pick_images, remove_stale, write_golden
from ..table import format_table

DEFAULT_MAX_DROP = 1.0  # points of validation accuracy an int8 file may lose against the float model
MIN_VAL_IMAGES = 100  # below this one image is > 1 point: the check would judge noise, so training images join
MAX_POOLED_IMAGES = 1000  # ... unless validation + training images exceed this (time: each is scored twice per try)
RETRY_CALIBRATION = 400  # images the second calibration uses when the first misses --max-drop
MAX_FLOAT_OPS = 3  # ops the third try may keep in float: enough for one broken op and its neighbours (bench/README.md)


class Int8DropError(EdgeclfError):
    """The int8 file loses more validation accuracy than --max-drop allows (the file is kept, marked)."""


def export(run_dir: str | os.PathLike[str], format: str = "tflite", quantize: str | list[str] = "float32",
           out: str | os.PathLike[str] | None = None, io: str = "uint8", calibration_size: int = 100,
           calibration_data: str | os.PathLike[str] | None = None, max_drop: float | None = DEFAULT_MAX_DROP,
           verbose: bool = True, max_float_ops: int = MAX_FLOAT_OPS, report: bool = False) -> Any:
    """Export a trained run (FILE, labels.txt, FILE's JSON: sidecar_of) and write FILE.golden.json beside it.

    `quantize` names one quantization (the file's path is returned) or several, as a list or
    comma-separated like the CLI's ("float32,int8"): one file each, their paths returned in a list.
    An int8 file is checked on the validation split (with the training images when it holds under
    MIN_VAL_IMAGES) against the float model: when it loses more
    than `max_drop` points it is re-calibrated on more images, then up to `max_float_ops` of the
    ops that add the most error are kept in float; if it still loses too much, the file is kept,
    its sidecar says so, and Int8DropError is raised (the CLI exits non-zero). None skips the check.
    `report` writes FILE-stem.layers.csv (int8: the error each op adds) and prints its worst rows.
    """
    check_path("RUN", run_dir)
    check_path("--output", out, optional=True)
    check("--format", format, Options(*FORMATS))
    check("verbose", verbose, BOOL)
    folder = names_folder(out)
    if out is not None and not folder and Path(out).suffix != FORMATS[format]:
        # The suffix is how runtimes, MediaPipe and edgeclf itself tell the files apart.
        other = next((f for f, ext in FORMATS.items() if ext == Path(out).suffix.lower()), None)
        raise ConfigError(f"--output {out} must end in {FORMATS[format]} for --format {format}, e.g. "
                          f"{Path(out).with_suffix(FORMATS[format])}"
                          + (f"; for {other}, add --format {other}" if other else
                             "; or name a folder (ending in /) for the default file name there"))
    quants = [q for item in as_list(quantize) or [] for q in (item.split(",") if isinstance(item, str) else [item])]
    if not quants:
        raise ConfigError("--quantize names no quantization; give one of float32, float16, dynamic, int8")
    if len(quants) != 1 or not isinstance(quantize, str):
        if format == "tflite":
            check_quantize(quants)  # every name, before the first file is written
        if out is not None and not folder and len(quants) > 1:
            raise EdgeclfError("--output names one file; export one --quantize at a time with it, name a folder "
                               "(ending in /), or drop --output")
        return [export(run_dir, format, q, out, io, calibration_size, calibration_data, max_drop, verbose,
                       max_float_ops, report) for q in quants]
    check_path("--calibration-data", calibration_data, optional=True)
    check("--max-drop", max_drop, NONE, Interval(float, 0, 100))
    check("--max-float-ops", max_float_ops, Interval(int, 0, 1000))
    check("--report", report, BOOL)
    dest = export_file(run_dir, format, quantize, out, io, calibration_size, calibration_data, verbose,
                       report=report)
    if quantize == "int8" and max_drop is not None:
        dest = _int8_guarantee(dest, run_dir, out, io, calibration_size, calibration_data, max_drop, verbose,
                               max_float_ops, report)
    if report and verbose and layers_report(dest).is_file():
        print_worst(layers_report(dest))
    elif report and quantize != "int8":
        print(f"warning: --report compares an int8 file with its float graph; {dest.name} is {quantize}: "
              "no table written", file=sys.stderr)
    golden = golden_vectors(dest, run_dir, quantize, calibration_data)
    if verbose and golden is not None:
        print(f"golden vectors {golden}")
    result = read_json(sidecar_of(dest)).get("int8_check", {})
    if result and not result.get("passed", True):
        def setting(t: dict[str, Any]) -> str:
            floats = f" + {len(t['float_ops'])} ops in float" if t.get("float_ops") else ""
            return f"{t['calibration_images']} calibration images{floats}"

        tried = ", ".join(f"{setting(t)} ({t['drop_points']:.2f})" for t in result.get("tries", []))
        raise Int8DropError(f"{dest} loses {result['drop_points']:.2f} points of accuracy ({result['split']} split) "
                            f"against the float model (> --max-drop {max_drop:g}) with {setting(result)}"
                            + (f" (tries: {tried})" if tried else "") + "; the file is kept and marked in its "
                            ".json; use float16/dynamic, raise --max-float-ops, or raise --max-drop")
    return dest


def int8_check(dest: Path, run_dir: str | os.PathLike[str], data: str | os.PathLike[str] | None,
               max_drop: float) -> dict[str, Any]:
    """Validation accuracy of the float model and the int8 file, their top-1 agreement, and the verdict.

    Below MIN_VAL_IMAGES validation images (a dataset of a few hundred photos) the training images
    are scored too: there the float model is nearly always right, so what int8 loses is int8's own
    damage, and the check is not skipped for exactly the small datasets most users start with.
    """
    rec = read_split(run_dir)
    root = dataset_root(rec, data)
    files = rec.get("files", {})
    n_val, n_train = len(files.get("val", [])), len(files.get("train", []))
    splits = [sp for sp in (["val"] if n_val >= MIN_VAL_IMAGES else ["val", "train"]) if files.get(sp)]
    why = None
    if not root.is_dir():
        why = f"{root} is gone"
    elif n_val < MIN_VAL_IMAGES and not MIN_VAL_IMAGES <= n_val + n_train <= MAX_POOLED_IMAGES:
        why = (f"{n_val} validation images (< {MIN_VAL_IMAGES}) and {n_train} training images "
               f"({'too few' if n_val + n_train < MIN_VAL_IMAGES else 'too many'} to score with them)")
    if why:
        return {"checked": False, "note": f"int8 not checked against float: {why}"}
    # Each evaluation runs the run's PyTorch model on the same images too.
    with warnings.catch_warnings():  # the file is being checked: a mark left by an earlier export is not news
        warnings.simplefilter("ignore", EdgeclfWarning)
        qs = [evaluate(dest, root, split=sp, verbose=False) for sp in splits]
    if any("pytorch_accuracy" not in q for q in qs):
        return {"checked": False, "note": f"int8 not checked against float: no PyTorch run beside {dest.name}"}
    n = sum(q["n"] for q in qs)

    def pooled(key: str) -> float:
        return round(sum(q[key] * q["n"] for q in qs) / n, 4)

    acc_float, acc_int8 = pooled("pytorch_accuracy"), pooled("accuracy")
    drop = 100 * (acc_float - acc_int8)
    return {"checked": True, "split": "+".join(splits), "n": n, "val_acc_float": acc_float,
            "val_acc_int8": acc_int8, "drop_points": round(drop, 2),
            "top1_agreement": pooled("top1_agreement_with_pytorch"),
            "mean_abs_prob_diff": round(sum(q["mean_abs_prob_diff_vs_pytorch"] * q["n"] for q in qs) / n, 6),
            "max_drop": max_drop, "passed": drop <= max_drop}


def second_rounding_tried(passed: bool, top1_agreement: float) -> bool:
    """Whether export checks the windowed rounding too: a refinement for a file within --max-drop that still
    answers some image differently; a file over it gets the repairs instead (more calibration images, float ops)."""
    return passed and top1_agreement < 1


def closer_to_float(agreement: float, prob_diff: float, other_agreement: float, other_prob_diff: float) -> bool:
    """Whether a file with this top-1 agreement and mean abs. probability error beats the other: agreement first,
    then the error."""
    return (agreement, -prob_diff) > (other_agreement, -other_prob_diff)


def _choose_rounding(dest: Path, first: dict[str, Any], export_int8: Callable[..., Path],
                     run_dir: str | os.PathLike[str], data: str | os.PathLike[str] | None, max_drop: float,
                     verbose: bool) -> tuple[Path, dict[str, Any], bool]:
    """Export the int8 file rounded within its activations' windows too; keep whichever of the two agrees better
    with float on the check's images (top-1, then mean probability error). Returns (file, its check, window).

    Neither rounding is better for every model (bench/README.md: the window halves EfficientNet-Lite0's
    disagreements and adds to MobileNetV2's), so each file is judged on its own validation images.
    """
    kept = {p: p.read_bytes() for p in (dest, sidecar_of(dest), layers_report(dest)) if p.is_file()}
    dest = export_int8(window=True)
    second = int8_check(dest, run_dir, data, max_drop)
    window = closer_to_float(second["top1_agreement"], second["mean_abs_prob_diff"],
                             first["top1_agreement"], first["mean_abs_prob_diff"])
    if not window:  # the first file comes back as it was, byte for byte
        layers_report(dest).unlink(missing_ok=True)
        for path, data_bytes in kept.items():
            write_bytes(path, data_bytes)
    tried = [{"rounding": ROUNDINGS[w], **{k: r[k] for k in ("top1_agreement", "mean_abs_prob_diff", "drop_points")}}
             for w, r in ((False, first), (True, second))]
    if verbose:
        print("int8 rounding (top-1 agreement with float, mean probability error): "
              + ", ".join(f"{t['rounding']} {t['top1_agreement']:.4f}, {t['mean_abs_prob_diff']:.5f}" for t in tried)
              + f" — kept {ROUNDINGS[window]}")
    result = second if window else first
    return dest, {**result, "roundings_tried": tried}, window


def _int8_guarantee(dest: Path, run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None, io: str,
                    calibration_size: int, data: str | os.PathLike[str] | None, max_drop: float,
                    verbose: bool, max_float_ops: int = MAX_FLOAT_OPS, report: bool = False) -> Path:
    """Check the int8 file; within --max-drop, check it rounded within its activations' windows too (the better is
    kept); past --max-drop, re-calibrate on more images, then keep the worst ops in float."""
    result = int8_check(dest, run_dir, data, max_drop)
    window = False
    if result["checked"] and second_rounding_tried(result["passed"], result["top1_agreement"]):
        dest, result, window = _choose_rounding(
            dest, result, lambda window: export_file(run_dir, "tflite", "int8", out, io, calibration_size, data,
                                                     False, report=report, window=window),
            run_dir, data, max_drop, verbose)
    roundings = result.get("roundings_tried")  # later tries check again: the record is carried to the end
    tries: list[dict[str, Any]] = []
    tensors: list[str] = []  # the ops the current file keeps in float

    def record() -> dict[str, Any]:
        return {"calibration_images": calibrated_on(), "float_ops": result.get("float_ops", []),
                "float_tensors": tensors, **{k: result[k] for k in ("val_acc_int8", "drop_points", "top1_agreement")}}

    def retry(why: str, calibration: int, keep: list[str], layers: list[str]) -> None:
        nonlocal dest, result, calibration_size, tensors
        if verbose:
            print(f"int8 loses {result['drop_points']:.2f} points on {result['split']} (> --max-drop {max_drop:g}); "
                  f"{why}")
        tries.append(record())
        dest = export_file(run_dir, "tflite", "int8", out, io, calibration, data, verbose, keep_float=keep,
                           report=True, window=window)
        calibration_size, tensors = calibration, keep
        result = int8_check(dest, run_dir, data, max_drop)
        result["float_ops"] = layers

    def calibrated_on() -> int:
        return int(read_json(sidecar_of(dest)).get("calibration_images", calibration_size))

    # Re-calibrating helps only if the first calibration left training images out.
    if (result["checked"] and not result["passed"] and calibration_size < RETRY_CALIBRATION
            and calibrated_on() >= calibration_size):
        retry(f"re-calibrating on up to {RETRY_CALIBRATION} training images", RETRY_CALIBRATION, [], [])
    if result["checked"] and not result["passed"] and max_float_ops > 0:
        if not layers_report(dest).is_file():  # the first export ran without the report
            dest = export_file(run_dir, "tflite", "int8", out, io, calibration_size, data, False, report=True,
                               window=window)
        keep = worst(read_report(layers_report(dest)), max_float_ops)
        retry(f"keeping the {len(keep)} ops that add the most error in float: "
              f"{', '.join(r['layer'] for r in keep)}", calibration_size, [r["tensor"] for r in keep],
              [r["layer"] for r in keep])
    best = min(tries, key=lambda t: t["drop_points"], default=None)
    if result["checked"] and not result["passed"] and best and best["drop_points"] < result["drop_points"]:
        # A try can lose more than the one before it (ops kept in float shift the ranges around them): the file
        # left behind is the best one tried, not the last.
        if verbose:
            print(f"int8 loses {result['drop_points']:.2f} points on {result['split']}, more than an earlier try "
                  f"({best['drop_points']:.2f}); exporting that one again")
        tries.append(record())
        dest = export_file(run_dir, "tflite", "int8", out, io, best["calibration_images"], data, verbose,
                           keep_float=best["float_tensors"], report=True, window=window)
        result = int8_check(dest, run_dir, data, max_drop)
        result["float_ops"], result["best_of_tries"] = best["float_ops"], True
    if tries:
        for t in tries:
            t.pop("float_tensors")
        result["first_try"] = tries[0]
        result["tries"] = tries
    result["calibration_images"] = calibrated_on()
    if roundings:
        result["roundings_tried"] = roundings
    side = sidecar_of(dest)
    write_json(side, {**read_json(side), "int8_check": result})
    if verbose:
        if not result["checked"]:
            print(f"warning: {result['note']}", file=sys.stderr)
        else:
            where = {"val": "validation images", "train": "training images (no validation split)"}.get(
                result["split"], "validation + training images (too few validation images alone)")
            print(f"int8 check on {result['n']} {where}: float {result['val_acc_float']:.4f}, int8 "
                  f"{result['val_acc_int8']:.4f} ({result['drop_points']:+.2f} points lost), top-1 agreement "
                  f"{result['top1_agreement']} — {'within' if result['passed'] else 'OVER'} --max-drop {max_drop:g}")
    return dest


def print_worst(path: Path, n: int = 5) -> None:
    """Print the `n` ops of a layers report that add the most error, and where the full table is."""
    rows = worst(read_report(path), n)
    print(format_table(["rank", "layer", "op", "SNR dB", "added dB", "cosine"],
                       [[r["rank"], r["layer"], r["op"], f"{r['snr_db']:.1f}", f"{r['added_db']:.1f}",
                         f"{r['cosine']:.4f}"] for r in rows]))
    print(f"per-layer int8 error (every op, graph order): {path}")


def golden_vectors(dest: Path, run_dir: str | os.PathLike[str], quantize: str,
                   data: str | os.PathLike[str] | None = None) -> Path | None:
    """Golden vectors of an exported file on a few of the run's test images (None when the images are gone).

    Without test images (--test-percent 0) they come from validation, else training: an app checks
    its pipeline against the file, not the model's accuracy.
    """
    rec = read_split(run_dir)
    root = dataset_root(rec, data)
    files = rec.get("files", {})
    some = next((files[sp] for sp in ("test", "val", "train") if files.get(sp)), [])
    rels = pick_images(root, some, rec.get("classes", []), rec.get("layout") == "presplit") if root.is_dir() else []
    golden = write_golden(dest, root, rels, quantize) if rels else None
    if golden is None:
        remove_stale(dest)  # an older file's vectors would describe another model
    return golden
