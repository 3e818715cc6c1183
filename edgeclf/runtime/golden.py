"""Golden vectors: a few test images with the outputs an exported file must give on them.

`export` writes ``<file name>.golden.json`` beside every file: each image's path, SHA-256 and size,
the resize mode (and the MediaPipe region of interest it implies) and the expected top-k labels and
probabilities, computed by edgeclf's runtime on the file itself. An Android/iOS/web test asserts the
same numbers; `edgeclf verify` checks them through every client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._io import read_json, write_json
from ..data.images import load_rgb
from ..errors import EdgeclfError
from ..models.weights import sha256_file
from .engine import load_engine

N_IMAGES = 8
TOP_K = 3
# Largest |Δ probability| an app's output may differ by: XNNPACK builds differ in float rounding,
# and a uint8 output moves in steps of 1/255.
TOLERANCE = {"float": 0.01, "int8": 0.02}


def golden_path(model_file: Path) -> Path:
    """Where the golden vectors of an exported file live."""
    return model_file.with_name(model_file.name + ".golden.json")  # x.tflite and x.onnx each get their own


def pick_images(root: Path, files: list[str], classes: list[str], presplit: bool = False,
                n: int = N_IMAGES) -> list[str]:
    """Up to n paths under root ('class/file', 'split/class/file' when pre-split), round-robin over classes."""
    by_class: dict[str, list[str]] = {c: [] for c in classes}
    for rel in sorted(files):
        by_class.setdefault(rel.split("/")[1 if presplit else 0], []).append(rel)
    picked: list[str] = []
    for i in range(max(map(len, by_class.values()), default=0)):
        picked += [v[i] for v in by_class.values() if i < len(v) and (root / v[i]).is_file()]
    return picked[:n]


def write_golden(model_file: Path, root: Path, rels: list[str], quantize: str) -> Path | None:
    """Compute and write the golden vectors of `model_file` on root/rels (decodable ones); None if none are left."""
    from .evaluate import predict_files

    engine = load_engine(model_file)
    paths = [str(root / r) for r in rels]
    probs, _, good = predict_files(engine, paths, workers=1, desc="golden vectors")
    if not good:
        return None
    pre = engine.preprocess
    images = []
    for row, i in zip(probs, good):
        p = Path(paths[i])
        w, h = load_rgb(p).size  # upright (EXIF applied), the size the region of interest refers to
        order = np.argsort(-row)[:TOP_K]
        images.append({"file": rels[i], "sha256": sha256_file(p), "width": w, "height": h,
                       "region_of_interest": [round(v, 6) for v in pre.roi(w, h)] if pre.resize == "crop" else None,
                       "expected_top_k": [{"index": int(c), "label": engine.labels[c], "score": round(float(row[c]), 6)}
                                          for c in order],
                       "probabilities": [round(float(v), 6) for v in row]})
    dest = golden_path(model_file)
    write_json(dest, {
        "model_file": model_file.name, "model_sha256": sha256_file(model_file), "quantize": quantize,
        "resize": pre.resize, "input_size": pre.size,
        "how_to_feed": ("MediaPipe ImageClassifier: the whole RGB image" if pre.resize == "squash" else
                        "MediaPipe ImageClassifier: the RGB image with ImageProcessingOptions(region_of_interest="
                        "RectF(left, top, right, bottom)) from each image's region_of_interest")
                       + " (EXIF-rotated, converted to RGB; transparent pixels over white, 16-bit channels divided "
                         "by 257, as edgeclf trained)",
        "tolerance": TOLERANCE["int8" if quantize == "int8" else "float"],
        "images": images,
    })
    return dest


def check_golden(model_file: Path, probs_of: Callable[[list[str]], np.ndarray], data_root: Path | None = None) -> dict[str, Any]:
    """Run the golden images through `probs_of(paths) -> probs` and compare; a dict with status and worst |Δ|."""
    gp = golden_path(model_file)
    if not gp.is_file():
        return {"status": "none",
                "detail": f"no {gp.name} (exported before golden vectors, or with its dataset gone)"}
    try:
        g = read_json(gp)
        tol = float(g["tolerance"])
        images = g["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EdgeclfError(f"{gp} is not a golden-vector file edgeclf wrote ({type(exc).__name__}); re-export") from None
    if data_root is None:
        return {"status": "skipped", "detail": "no dataset folder to find the images in"}
    present = [im for im in images if (data_root / im["file"]).is_file()
               and sha256_file(data_root / im["file"]) == im["sha256"]]
    if not present:
        return {"status": "skipped", "detail": f"none of the {len(images)} golden images is in {data_root} unchanged"}
    probs = probs_of([str(data_root / im["file"]) for im in present])
    expected = np.array([im["probabilities"] for im in present], dtype=np.float32)
    if probs.shape != expected.shape:
        return {"status": "FAIL", "detail": f"output shape {probs.shape} != golden {expected.shape}"}
    top_ok = int((probs.argmax(1) == expected.argmax(1)).sum())
    worst = float(np.abs(probs - expected).max())
    ok = top_ok == len(present) and worst <= tol
    return {"status": "ok" if ok else "FAIL", "images": len(present), "top1_match": top_ok,
            "max_abs_diff": round(worst, 5), "tolerance": tol,
            "detail": f"{top_ok}/{len(present)} top-1, max |Δ| {worst:.4f} (tolerance {tol})"}


def remove_stale(model_file: Path) -> None:
    """Drop golden vectors that no longer describe the file (it was re-exported without data)."""
    golden_path(model_file).unlink(missing_ok=True)
