"""`edgeclf predict`: top-k labels for new images, using the preprocessing the model was trained with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import is_image_file
from ..errors import DatasetError
from ..params import NONE, POSITIVE_INT, as_list, check, check_path
from .engine import load_engine
from .evaluate import predict_files


def collect_images(inputs: list[str | os.PathLike[str]]) -> list[str]:
    """Files given directly, plus image files found (recursively, sorted) in given folders."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_file(f)
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(str(p))
    return out


def predict(model: str | os.PathLike[str], inputs: str | os.PathLike[str] | list[str | os.PathLike[str]],
            top_k: int = 3, threads: int | None = None) -> list[dict[str, Any]]:
    """Top-k predictions per image; unreadable images get an `error` instead."""
    check_path("MODEL", model)
    check("--top-k", top_k, POSITIVE_INT)
    check("--threads", threads, NONE, POSITIVE_INT)
    inputs = as_list(inputs) or []  # one path, not its characters (a "/" would walk the disk)
    for x in inputs:
        check_path("IMAGES", x)
    paths = collect_images(inputs)
    if not paths:
        raise DatasetError(f"no image files in {', '.join(map(str, inputs)) or 'the inputs'}; "
                           "pass image files or folders that hold them")
    engine = load_engine(model, threads)
    probs, bad, good = predict_files(engine, paths)
    k = min(top_k, len(engine.labels))
    rows: list[dict[str, Any]] = [{"path": p, "error": bad[p]} for p in paths if p in bad]
    for j, i in enumerate(good):
        order = np.argsort(-probs[j])[:k]
        rows.append({"path": paths[i], "top": [{"label": engine.labels[c], "score": round(float(probs[j, c]), 4)}
                                                for c in order]})
        if engine.threshold is not None:  # the file's own threshold, as MediaPipe applies it
            rows[-1]["unknown"] = bool(probs[j].max() < engine.threshold)
    order = {p: n for n, p in enumerate(paths)}
    return sorted(rows, key=lambda r: order[r["path"]])


def format_predictions(rows: list[dict[str, Any]], style: str = "text") -> str:
    """predict()'s rows as JSON, CSV (path,rank,label,score) or one readable line per image."""
    if style == "json":
        import json

        return json.dumps(rows, indent=2)
    if style == "csv":
        import csv
        import io

        buf = io.StringIO()  # class names and paths may hold commas and quotes: RFC 4180 quoting
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["path", "rank", "label", "score"])
        w.writerows([r["path"], k, t["label"], t["score"]] for r in rows for k, t in enumerate(r.get("top", []), 1))
        return buf.getvalue().rstrip("\n")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"{r['path']}: ERROR {r['error']}")
            continue
        best = ", ".join(f"{t['label']} {t['score']:.3f}" for t in r["top"])
        lines.append(f"{r['path']}: " + (f"unknown (best: {best})" if r.get("unknown") else best))
    return "\n".join(lines)
