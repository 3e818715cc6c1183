"""What `train` settles before any work: the run folder, the weights id, versions."""

from __future__ import annotations

import platform
from importlib import metadata as importlib_metadata
from pathlib import Path

from ..artifacts.run import MANIFEST, is_complete
from ..data.dataset import Dataset, class_counts
from ..errors import ConfigError, DatasetError
from ..models.weights import locate, sha256_file


def next_run_dir(out: Path, exist_ok: bool = False) -> Path:
    """`out` itself, or the first free `out2`, `out3`, ... when `out` holds a finished run and not `exist_ok`.

    Ultralytics' rule; an interrupted run holds nothing worth keeping, so its rerun reuses the folder.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose another --out")
    if exist_ok or not is_complete(out):
        return out
    n = 2
    # An earlier run that failed or was interrupted in out2 holds nothing worth keeping either: reuse it
    # (a folder that is not an edgeclf run is never written into).
    while (cand := out.with_name(f"{out.name}{n}")).exists() and not (
            (cand / MANIFEST).is_file() and not is_complete(cand)):
        n += 1
    return cand


def weights_id(spec_weights: str | None, weights: str, seed: int) -> str:
    """The identity of the backbone weights for cache keys: the checkpoint SHA-256, or random-seedN."""
    if weights == "none":
        return f"random-seed{seed}"  # a random backbone differs per seed, so its features do too
    if weights == "imagenet":
        _, src = locate(spec_weights) if spec_weights else (None, None)
        return src.sha256 if src else "none"
    return sha256_file(weights)


def check_trainable(ds: Dataset) -> None:
    """Refuse a dataset whose training split lacks a class (it could never be learned)."""
    counts = class_counts(ds.split("train"), len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        raise DatasetError(f"class(es) {', '.join(empty)} have no image in the train split of {ds.root}; "
                           "add images or lower --val-percent/--test-percent")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers, recorded in the manifest."""
    out = {"python": platform.python_version()}
    for pkg in ("edgeclf", "torch", "numpy", "pillow", "litert-torch", "ai-edge-litert"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out
