"""`edgeclf predict`: top-k labels for new images, using the preprocessing the model was trained with."""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import is_image_file, is_picture, misnamed_images, rgb_array
from .._io import to_json
from ..artifacts.run import failed_int8_check
from ..errors import ConfigError, DatasetError, EdgeclfWarning
from ..params import NONE, POSITIVE_INT, THREADS, as_list, check, check_path, shown
from .engine import load_engine
from .evaluate import predict_files


def _is_pattern(item: str | os.PathLike[str]) -> bool:
    """A wildcard pattern that names no file itself (a shell would have expanded it)."""
    return any(ch in str(item) for ch in "*?[") and not Path(item).exists()


def collect_images(inputs: list[str | os.PathLike[str]]) -> list[str]:
    """Files given directly, image files found (recursively, sorted) in given folders, and a pattern's matches."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if _is_pattern(item):
            # A pattern the shell did not expand (quoted, or Windows' cmd, which never does): expand it here.
            hits = sorted(glob.glob(str(item), recursive=True))
            if hits:
                out += collect_images([h for h in hits if Path(h).is_dir() or is_image_file(h)])
                continue
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_file(f)
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(str(p))
    return out


ImageInput = Any  # an image file's path, a folder of them, or an image in memory (Pillow image, uint8 numpy array)


def predict(model: str | os.PathLike[str], inputs: ImageInput | list[ImageInput], top_k: int = 3,
            threads: int | None = None) -> list[dict[str, Any]]:
    """Top-k predictions per image (a path, a folder, a Pillow image or a uint8 RGB array); unreadable files get an `error`.

    Rows of files carry their `path`; rows of in-memory images carry `image`, their position in `inputs`.
    """
    check_path("MODEL", model)
    check("--top-k", top_k, POSITIVE_INT)
    check("--threads", threads, NONE, THREADS)
    # One path or picture, not its characters or pixel rows (a "/" would walk the disk).
    inputs = [inputs] if is_picture(inputs) else as_list(inputs) or []
    pictures = {i: rgb_array(x, f"IMAGES[{i}]") for i, x in enumerate(inputs) if is_picture(x)}
    for i, x in enumerate(inputs):
        if not is_picture(x) and not (isinstance(x, (str, os.PathLike)) and str(x)):
            raise ConfigError(f"IMAGES[{i}] must be a path (a file or a folder), a Pillow image or a uint8 "
                              f"numpy array, got {shown(x)}")
        if isinstance(x, str) and "://" in x:
            raise ConfigError(f"IMAGES[{i}] {x} is a URL; edgeclf reads local files only (no downloads): save the "
                              "image and pass its path")
    found = {i: collect_images([x]) for i, x in enumerate(inputs) if i not in pictures}
    paths = [f for fs in found.values() for f in fs]
    if not paths and not pictures:
        others = [str(f) for x in inputs if Path(x).is_dir() for f in sorted(Path(x).rglob("*")) if f.is_file()]
        named = misnamed_images(others)
        raise DatasetError(f"no image files in {', '.join(map(str, inputs)) or 'the inputs'}; "
                           + (f"{named}, or pass the files by name" if named else
                              "pass image files or folders that hold them"))
    failed = failed_int8_check(model)
    if failed:  # a warning, not print: an app calling predict per photo hears it once per call site
        warnings.warn(failed, EdgeclfWarning, stacklevel=2)
    engine = load_engine(model, threads)
    probs, bad, good = predict_files(engine, paths) if paths else (np.zeros((0, 0)), {}, [])
    for p in bad:  # a pattern collect_images could not expand is no missing file: say what it is
        if _is_pattern(p):
            bad[p] = "no file matches this pattern"
    k = min(top_k, len(engine.labels))

    def row(key: dict[str, Any], p: np.ndarray) -> dict[str, Any]:
        order = np.argsort(-p)[:k]
        r = {**key, "top": [{"label": engine.labels[c], "score": round(float(p[c]), 4)} for c in order]}
        if engine.threshold is not None:  # the file's own threshold, as MediaPipe applies it
            r["unknown"] = bool(p.max() < engine.threshold)
        return r

    by_path: dict[str, dict[str, Any]] = {p: {"path": p, "error": bad[p]} for p in paths if p in bad}
    by_path.update({paths[i]: row({"path": paths[i]}, probs[j]) for j, i in enumerate(good)})
    rows: list[dict[str, Any]] = []
    for i in range(len(inputs)):  # inputs' order; a folder's files where the folder was given
        if i in pictures:
            rows.append(row({"image": i}, engine.predict(engine.preprocess.to_uint8(pictures[i])[None])[0]))
        else:
            rows += [by_path[f] for f in found[i]]
    return rows


def _name(row: dict[str, Any]) -> str:
    """A row's file path, or `image N` for the N-th input given in memory."""
    return row["path"] if "path" in row else f"image {row['image']}"


def format_predictions(rows: list[dict[str, Any]], style: str = "text") -> str:
    """predict()'s rows as JSON, CSV (path,rank,label,score,unknown,error) or one readable line per image."""
    if style == "json":
        return to_json(rows)
    if style == "csv":
        import csv
        import io

        buf = io.StringIO()  # class names and paths may hold commas and quotes: RFC 4180 quoting
        w = csv.writer(buf, lineterminator="\n")
        # A photo answered "unknown" and one that could not be read must not pass as answered, or vanish.
        w.writerow(["path", "rank", "label", "score", "unknown", "error"])
        for r in rows:
            if "error" in r:
                w.writerow([_name(r), "", "", "", "", r["error"]])
            w.writerows([_name(r), k, t["label"], t["score"], str(r.get("unknown", False)).lower(), ""]
                        for k, t in enumerate(r.get("top", []), 1))
        return buf.getvalue().rstrip("\n")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"{_name(r)}: ERROR {r['error']}")
            continue
        best = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top"])
        lines.append(f"{_name(r)}: " + (f"unknown (best: {best})" if r.get("unknown") else best))
    return "\n".join(lines)
