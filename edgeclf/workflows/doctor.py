"""`edgeclf doctor`: every check on a dataset in one call — counts, unreadable files, duplicates that
are confirmed, outliers, likely label errors — with an optional HTML page and exclusion list.

The backbone features come from the cache `train` fills (EfficientNet-Lite0 by default, the default
training backbone), so a doctor run warms the cache for training and a trained dataset's doctor
run is warm. Nothing in the dataset is moved, renamed or deleted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.doctor import diagnose
from .._io import check_outside, make_dir
from ..errors import EdgeclfError
from ..params import BOOL, FOLDS, NONE, POSITIVE_INT, check, check_path


class _Embeddings:
    """`embed(paths)` for diagnose: cached backbone features; remembers the rows for later steps."""

    def __init__(self, model: str, workers: int | None, cache_dir: str | os.PathLike[str] | None) -> None:
        self.model, self.workers, self.cache_dir = model, workers, cache_dir
        self.paths: list[str] = []
        self.x: Any = None  # FeatureRows: read from the on-disk cache a chunk at a time
        self.error: str | None = None

    def __call__(self, paths: list[str]) -> Any:
        from .label_issues import plain_features

        try:
            rows, _, _ = plain_features(self.model, paths, self.workers, self.cache_dir)
        except EdgeclfError as exc:  # e.g. no ImageNet weights installed: hash-only checks still run
            self.error = str(exc)
            return None
        self.paths, self.x = list(paths), rows
        return rows


def _neighbours(r: dict[str, Any], emb: _Embeddings | None, class_of: dict[str, str], per: int = 3) -> None:
    """For each listed label suspect: the photos of its suspected class that look most like it."""
    if emb is None or emb.x is None or not r.get("label_issues"):
        return
    from ..data.near_dups import unit_rows

    row = {p: k for k, p in enumerate(emb.paths)}
    cls = np.array([class_of.get(p, "") for p in emb.paths])
    for s in r["label_issues"]["suspects"]:
        k = row.get(s["path"])
        if k is None:
            continue
        same = np.flatnonzero(cls == s["predicted"])
        if not len(same):
            continue
        me = unit_rows(emb.x.take(np.array([k])))[0]
        sims = np.concatenate([unit_rows(emb.x.take(same[c:c + 4096])) @ me for c in range(0, len(same), 4096)])
        s["neighbours"] = [emb.paths[int(same[j])] for j in np.argsort(-sims)[:per]]


def doctor(data: str | os.PathLike[str], val_percent: float = 10.0, test_percent: float = 10.0, *,
           embeddings: bool = True, model: str = "efficientnet_lite0", label_issues: bool = False,
           folds: int = 5, top: int = 20, html: str | os.PathLike[str] | None = None,
           suggest: str | os.PathLike[str] | None = None, workers: int | None = None,
           cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Check a dataset: the report `edgeclf doctor` prints (JSON-able); optionally write an HTML page and exclusions."""
    check_path("DATA", data)
    check("--workers", workers, NONE, POSITIVE_INT)
    check("--top", top, POSITIVE_INT)
    check("embeddings", embeddings, BOOL)
    check("--label-issues", label_issues, BOOL)
    for option, path in (("--html", html), ("--suggest", suggest), ("--cache-dir", cache_dir)):
        check_path(option, path, optional=True)
    check("--folds", folds, FOLDS)
    if label_issues and not embeddings:
        raise EdgeclfError("--label-issues needs the backbone features; drop --no-embeddings")
    if html is not None:  # before minutes of checks, not after
        check_outside("--html", html, data)
        make_dir(html, "--html")
    emb = _Embeddings(model, workers, cache_dir) if embeddings else None
    if emb is not None:
        from ..models.zoo import get_spec

        get_spec(model)  # an unknown --model is a one-line error before any image is read
    r = diagnose(data, val_percent, test_percent, workers=workers, embed=emb)
    r["embeddings"] = {"model": model if emb is not None and emb.x is not None else None,
                       "note": emb.error if emb is not None else "off (--no-embeddings)"}
    if label_issues:
        from .label_issues import label_issues as find_issues

        from ..data.dataset import scan

        r["label_issues"] = find_issues(data, model, folds, top, workers, cache_dir, verbose=False)
        ds = scan(data, val_percent, test_percent)
        _neighbours(r, emb, {str(s.path): ds.classes[s.label] for s in ds.samples})
    if html is not None:
        from ..report.doctor_page import write_page

        r["html"] = str(write_page(Path(html), r))
    if suggest is not None:
        from ..data.exclusions import write_suggestions

        r["suggested"] = {"file": str(suggest), "count": len(write_suggestions(suggest, r)["exclude"])}
    return r
