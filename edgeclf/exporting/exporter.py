"""`edgeclf export`: one table of formats, sidecar files next to every exported model."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from .._io import read_json, write_json, write_text
from ..errors import ConfigError, EdgeclfError
from ..table import short_list
from ..params import POSITIVE_INT, Options, check
from ..models.preprocess import Preprocess
from ..artifacts.run import dataset_root, load_run, model_digest, read_split, run_preprocess, sidecar_of
from .int8_layers import short_name

FORMATS = {"tflite": ".tflite", "onnx": ".onnx"}


def layers_report(dest: str | os.PathLike[str]) -> Path:
    """Where the per-layer int8 error table of exported file `dest` goes (FILE-stem.layers.csv)."""
    return Path(dest).with_suffix(".layers.csv")


def calibration_images(run_dir: str | os.PathLike[str], pre: Preprocess, n: int = 100,
                       data: str | os.PathLike[str] | None = None, seed: int = 0) -> np.ndarray:
    """Up to `n` uint8 crops from the run's training split (evenly over classes) for int8 calibration."""
    from ..data.crops import Crops, plain
    from ..data.dataset import label_form, scan

    rec = read_split(run_dir)
    root = dataset_root(rec, data)
    if not root.is_dir():
        raise EdgeclfError(f"int8 calibration needs the training images, but {root} is gone; "
                           "pass --calibration-data DATA")
    ds = scan(root, rec["val_percent"], rec["test_percent"])
    # Another dataset: not what the model will see. A class folder added since training is no reason to refuse:
    # the run's own training photos are all still there.
    lacking = [c for c in map(label_form, rec.get("classes") or []) if c not in ds.classes]
    if lacking:
        given = "--calibration-data " if data is not None else "the run's dataset "
        raise EdgeclfError(f"{given}{root} lacks this run's classes {short_list(lacking)} (it has "
                           f"{short_list(ds.classes)}); pass the folder the run was trained on (moved or copied)"
                           + ("" if data is not None else " with --calibration-data"))
    train = ds.recorded("train", rec)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for s in rng.permutation(len(train)):
        by_class.setdefault(train[s].label, []).append(train[s])
    picked = [by_class[c][i] for i in range(max(map(len, by_class.values()))) for c in sorted(by_class)
              if i < len(by_class[c])][:n]
    crops = [Crops(pre)(plain(str(s.path))) for s in picked]
    return np.stack([c[0] for c in crops if not isinstance(c, str)])  # a bad image is simply not used


def names_folder(out: str | os.PathLike[str] | None) -> bool:
    """Whether --output names a folder (one that exists, or written with a trailing slash) for the default file name."""
    return out is not None and (Path(out).is_dir() or str(out).endswith(("/", os.sep)))


def check_replaceable(dest: Path, run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Refuse to replace a model file that is not this run's: another run's export, or a file edgeclf did not write.

    Returns the JSON of the file being replaced (None when there is none).

    Two runs of one backbone share a default name: `export A -o app/` then `export B -o app/` replaced A's
    model without a word, and with A's run gone it was the only copy.
    """
    if not dest.is_file():
        return None
    side = sidecar_of(dest)
    try:
        rec = read_json(side) if side.is_file() else None
    except (OSError, ValueError):
        rec = None
    if not isinstance(rec, dict) or not rec.get("run_dir"):
        raise ConfigError(f"--output {dest} exists and is not an edgeclf export (no {side.name} beside it); "
                          "name another file, or move that one away first")
    if Path(rec["run_dir"]) == Path(run_dir).resolve() or (rec.get("model_sha256")
                                                          and rec["model_sha256"] == model_digest(run_dir)):
        return rec  # this run's own file (or this run moved): a re-export replaces it
    other = dest.with_name(f"{Path(run_dir).resolve().name}_{dest.name}")
    raise ConfigError(f"--output {dest} holds a model exported from another run ({rec['run_dir']}); name another "
                      f"file (e.g. -o {other}), or move that one away first")


def write_labels(dest: Path, classes: list[str], before: Any = None) -> Path:
    """labels.txt beside the exported file, or STEM.labels.txt where labels.txt there describes another model.

    Two runs exported into one folder (an app's assets) shared one labels.txt: the second export replaced
    the first model's labels with its own, silently, and an app reading labels.txt named the first model's
    answers wrong. labels.txt is replaced only when absent, identical, or written for the file being replaced,
    whose classes `before` are (from check_replaceable's record).
    """
    text = "\n".join(classes) + "\n"
    shared = dest.parent / "labels.txt"
    try:
        found = shared.read_text(encoding="utf-8") if shared.is_file() else None
    except (OSError, ValueError):
        found = ""  # unreadable: another model's, as far as anyone can tell
    if found is None or found == text or (isinstance(before, list) and found == "\n".join(before) + "\n"):
        return write_text(shared, text)
    return write_text(dest.with_name(dest.stem + ".labels.txt"), text)


# How an int8 file's weights were rounded (rounding.py), by `window`.
ROUNDINGS = {False: "gptq", True: "gptq within activation windows"}


def export(run_dir: str | os.PathLike[str], format: str = "tflite", quantize: str = "float32",
           out: str | os.PathLike[str] | None = None, io: str = "uint8", calibration_size: int = 100,
           calibration_data: str | os.PathLike[str] | None = None, verbose: bool = True,
           keep_float: Sequence[str] = (), report: bool = False, window: bool = False) -> Path:
    """Export a trained run: FILE (metadata and labels inside), labels.txt and its JSON (sidecar_of) beside it.

    int8 only: `keep_float` (float-graph tensor names, as in the report) leaves those ops in float;
    `report` writes FILE-stem.layers.csv, the error each op adds against the float graph; `window`
    rounds the weights for the error their activations pass on (rounding.round_weights).
    """
    check("--format", format, Options(*FORMATS))
    check("--calibration-size", calibration_size, POSITIVE_INT)
    model, meta = load_run(run_dir)
    pre = run_preprocess(meta, run_dir)
    suffix = "" if io == "uint8" else f"_io{io}"
    name = f"{meta['model']}_{quantize}{suffix}{FORMATS[format]}"
    dest = (Path(out) / name if names_folder(out) else Path(out)) if out else Path(run_dir) / "export" / name
    replaced = check_replaceable(dest, run_dir)
    t = time.perf_counter()
    calib = None
    if format == "tflite":
        from .tflite import to_tflite

        calib = calibration_images(run_dir, pre, calibration_size, calibration_data) if quantize == "int8" else None
        if calib is not None and io == "float32":
            calib = calib.astype(np.float32)
        to_tflite(model, pre, dest, quantize, io, labels=list(meta["classes"]), calibration=calib,
                  score_threshold=meta.get("score_threshold"), keep_float=keep_float,
                  report=layers_report(dest) if report else None, window=window,
                  name=f"{meta['model']} classifier ({len(meta['classes'])} classes)",
                  description=f"Trained with edgeclf {__version__}; {quantize} weights; "
                              f"input {io} NHWC {pre.size}x{pre.size} RGB 0..255, normalization inside; "
                              f"output probabilities.", version=__version__)
    else:
        from .onnx import to_onnx

        if quantize != "float32" or io != "uint8":
            raise EdgeclfError("ONNX export is float32 with uint8 input; drop --quantize/--io or use --format tflite")
        # The "unknown" threshold (train --unknown-rate) travels inside the file, as in a .tflite's metadata.
        threshold = meta.get("score_threshold")
        to_onnx(model, pre, dest, list(meta["classes"]), {"model": meta["model"], "version": __version__,
                                                          **({"score_threshold": repr(float(threshold))}
                                                             if threshold is not None else {})})
    if not report:
        layers_report(dest).unlink(missing_ok=True)  # an older table would describe another file
    labels = write_labels(dest, list(meta["classes"]), (replaced or {}).get("classes"))
    if labels.name != "labels.txt" and verbose:
        print(f"note: {dest.parent / 'labels.txt'} holds another model's classes: {dest.name}'s are in {labels.name} "
              "(and inside the file)")
    write_json(sidecar_of(dest), {
        "model": meta["model"], "format": format, "quantize": quantize, "classes": meta["classes"],
        "labels_file": labels.name,
        "input": {"layout": "NHWC", "dtype": io, "size": pre.size, "range": [0, 255]},
        "preprocess": pre.to_dict(), "output": "probabilities", "run_dir": str(Path(run_dir).resolve()),
        "model_sha256": model_digest(run_dir),
        "score_threshold": meta.get("score_threshold"),
        **({"float_ops": [short_name(t) for t in keep_float]} if keep_float and quantize == "int8" else {}),
        **({"calibration_images": len(calib)} if calib is not None else {}),
        **({"rounding": ROUNDINGS[window]} if quantize == "int8" and format == "tflite" else {}),
    })
    if verbose:
        used = "" if calib is None else f", calibrated on {len(calib):,} training images" + (
            f" (all there are; --calibration-size {calibration_size:,})" if len(calib) < calibration_size else "")
        print(f"exported {dest} ({dest.stat().st_size / 1e6:.2f} MB, {format} {quantize}, {io} input{used}) "
              f"in {time.perf_counter() - t:.1f}s")
    return dest
