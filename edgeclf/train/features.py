"""Backbone features, computed once and cached on disk by image content.

The cache key holds everything that changes a feature: the model variant, the weights' hash, the
preprocessing and the view (0 = plain centre crop). A second run, another head or another sweep
on the same images re-uses every vector already computed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_path
from ..data.images import ImageDecodeError, load_rgb
from ..data.parallel import imap
from ..models.preprocess import Preprocess
from ..progress import progress


@dataclass(frozen=True)
class _Decode:
    """Picklable worker: file → (content hash, uint8 crop) or (None, reason)."""

    pre: Preprocess

    def __call__(self, path: str) -> tuple[str | None, np.ndarray | str]:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return None, f"cannot read file ({exc.strerror})"
        digest = hashlib.sha1(data).hexdigest()
        try:
            return digest, self.pre.to_uint8(load_rgb(path, min_side=self.pre.resize_to))
        except ImageDecodeError as exc:
            return None, exc.reason


def cache_key(model_name: str, weights_id: str, pre: Preprocess, view: int = 0) -> str:
    """A short stable id for one (backbone, weights, preprocessing, view) combination."""
    blob = json.dumps([model_name, weights_id, pre.to_dict(), view], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """content-hash → feature vector for one cache key, stored as one .npz file."""

    def __init__(self, root: Path, key: str) -> None:
        self.path = Path(root) / f"{key}.npz"
        self.index: dict[str, int] = {}
        self.feats = np.zeros((0, 0), np.float32)
        if self.path.is_file():
            try:
                with np.load(self.path) as z:
                    self.feats = z["feats"]
                    self.index = {h: i for i, h in enumerate(z["hashes"].tolist())}
            except (OSError, ValueError, KeyError):  # a damaged cache is rebuilt, never trusted
                self.index, self.feats = {}, np.zeros((0, 0), np.float32)

    def get(self, digest: str) -> np.ndarray | None:
        """The cached vector of an image, if any."""
        i = self.index.get(digest)
        return None if i is None else self.feats[i]

    def add(self, hashes: list[str], feats: np.ndarray) -> None:
        """Append new vectors and save atomically."""
        if not hashes:
            return
        base = len(self.index)
        self.feats = feats.astype(np.float32) if self.feats.size == 0 else np.concatenate([self.feats, feats])
        for i, h in enumerate(hashes):
            self.index[h] = base + i
        ordered = sorted(self.index, key=self.index.get)
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, feats=self.feats, hashes=np.array(ordered))


def extract(backbone: torch.nn.Module, pre: Preprocess, paths: list[str], cache: FeatureCache | None,
            batch_size: int = 32, workers: int | None = None, desc: str = "features"
            ) -> tuple[np.ndarray, list[str | None], dict[str, str]]:
    """Features for `paths` (cached ones re-used); returns (features [N, F], hashes, {bad path: reason})."""
    backbone.eval()
    n = len(paths)
    hashes: list[str | None] = [None] * n
    rows: dict[int, np.ndarray] = {}
    bad: dict[str, str] = {}
    pending_idx: list[int] = []
    pending_arr: list[np.ndarray] = []
    new_hashes: list[str] = []
    new_feats: list[np.ndarray] = []

    def flush() -> None:
        if not pending_arr:
            return
        with torch.inference_mode():
            out = backbone(pre.normalize(np.stack(pending_arr))).numpy()
        for j, i in enumerate(pending_idx):
            rows[i] = out[j]
            new_hashes.append(hashes[i])  # type: ignore[arg-type]
            new_feats.append(out[j])
        pending_idx.clear()
        pending_arr.clear()

    for i, (digest, arr) in enumerate(progress(imap(_Decode(pre), paths, workers, chunksize=8), desc, n, "img")):
        if digest is None:
            bad[paths[i]] = str(arr)
            continue
        hashes[i] = digest
        hit = cache.get(digest) if cache else None
        if hit is not None:
            rows[i] = hit
            continue
        pending_idx.append(i)
        pending_arr.append(arr)  # type: ignore[arg-type]
        if len(pending_arr) >= batch_size:
            flush()
    flush()
    if cache is not None and new_hashes:
        cache.add(new_hashes, np.stack(new_feats))
    dim = next(iter(rows.values())).shape[0] if rows else 0
    feats = np.zeros((n, dim), np.float32)
    for i, v in rows.items():
        feats[i] = v
    return feats, hashes, bad


def default_cache_root() -> Path:
    """$EDGECLF_HOME/features."""
    from ..models.weights import home

    return Path(os.environ.get("EDGECLF_FEATURE_CACHE") or home() / "features")
