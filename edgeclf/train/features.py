"""Backbone features, computed once and cached on disk by image content.

The cache key holds everything that changes a feature: the model variant, the weights' hash, the
preprocessing and the view (0 = plain centre crop). A second run, another head or another sweep
on the same images re-uses every vector already computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from typing import Callable, Iterator

import numpy as np

from .._io import atomic_path
from ..data.augment import Augment, view_rng
from ..data.images import ImageDecodeError, file_size, load_rgb
from ..data.parallel import imap
from ..models.preprocess import Preprocess
from ..progress import bar


def content_hash(path: str) -> tuple[str | None, str]:
    """(sha1 of the file's bytes, "") or (None, why it cannot be read)."""
    try:
        file_size(path)  # the same reasons load_rgb gives for missing files and folders
        return hashlib.sha1(Path(path).read_bytes()).hexdigest(), ""
    except ImageDecodeError as exc:
        return None, exc.reason
    except OSError as exc:
        return None, f"cannot read file ({exc.strerror})"


@dataclass(frozen=True)
class _Decode:
    """Picklable worker: (path, hash, views) → uint8 crops, one per view, or the reason it failed.

    View 0 is the plain centre crop; view k > 0 is augmented view k, drawn from (hash, k).
    """

    pre: Preprocess
    augment: Augment | None

    def __call__(self, job: tuple[str, str, tuple[int, ...]]) -> list[np.ndarray] | str:
        path, digest, views = job
        upscale = self.augment.max_upscale if self.augment and any(views) else 1.0
        try:
            img = load_rgb(path, min_side=int(self.pre.resize_to * upscale))
        except ImageDecodeError as exc:
            return exc.reason
        return [self.pre.to_uint8(img) if v == 0 else self.augment.view(img, self.pre, view_rng(digest, v))  # type: ignore[union-attr]
                for v in views]


def cache_key(model_name: str, weights_id: str, pre: Preprocess, view: int = 0,
              augment: Augment | None = None) -> str:
    """A short stable id for one (backbone, weights, preprocessing, view) combination."""
    aug = augment.to_dict() if view and augment else None
    blob = json.dumps([model_name, weights_id, pre.to_dict(), view] + ([aug] if aug else []), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """content-hash → feature vector for one cache key, stored as one .npz file."""

    def __init__(self, root: Path, key: str) -> None:
        self.path = Path(root) / f"{key}.npz"
        self.index, self.feats = self._load()

    def _load(self) -> tuple[dict[str, int], np.ndarray]:
        if self.path.is_file():
            try:
                with np.load(self.path) as z:
                    feats = z["feats"]
                    index = {h: i for i, h in enumerate(z["hashes"].tolist())}
                if len(index) != len(feats):
                    raise ValueError("hashes and features are not aligned")
                return index, feats
            except (OSError, ValueError, KeyError):  # a damaged cache is rebuilt, never trusted
                pass
        return {}, np.zeros((0, 0), np.float32)

    def get(self, digest: str) -> np.ndarray | None:
        """The cached vector of an image, if any."""
        i = self.index.get(digest)
        return None if i is None else self.feats[i]

    def add(self, hashes: list[str], feats: np.ndarray) -> None:
        """Append new vectors and save atomically; a hash already stored (duplicate image) is skipped.

        Runs sharing the cache take a lock and merge what the others saved meanwhile, so concurrent
        runs never lose each other's vectors (and readers only ever see whole files).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.with_suffix(".lock")):
            index, stored = self._load()
            if len(index) > len(self.index):
                self.index, self.feats = index, stored
            keep = []
            for i, h in enumerate(hashes):
                if h not in self.index:
                    self.index[h] = len(self.index)
                    keep.append(i)
            if not keep:
                return
            new = np.asarray(feats, np.float32)[keep]
            self.feats = new if self.feats.size == 0 else np.concatenate([self.feats, new])
            # Row i of feats belongs to hashes[i]: the file stores them aligned, so a reload cannot shift.
            ordered = sorted(self.index, key=self.index.get)
            with atomic_path(self.path) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, feats=self.feats, hashes=np.array(ordered))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX flock) held for the block."""
    with open(path, "a") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX: atomic renames still keep files whole
            pass
        yield


def extract(make_fn: Callable[[], Callable[[np.ndarray], np.ndarray]], pre: Preprocess, paths: list[str],
            caches: dict[int, FeatureCache | None], views_of: list[tuple[int, ...]] | None = None,
            augment: Augment | None = None, batch_size: int = 32, workers: int | None = None,
            desc: str = "features") -> tuple[dict[int, np.ndarray], list[str | None], dict[str, str]]:
    """Features of every (path, view) asked for, cached ones re-used.

    `make_fn()` gives the function mapping uint8 NHWC crops to features (called only if a feature
    is missing); `views_of[i]` lists the views path i needs (default:
    only view 0); `caches[v]` stores view v. Returns ({view: [N, F] array, zero rows where not
    asked}, content hashes, {unreadable path: reason}). Only images with a missing view are decoded.
    """
    n = len(paths)
    views_of = views_of or [(0,)] * n
    bad: dict[str, str] = {}
    hashes: list[str | None] = [None] * n
    rows: dict[int, dict[int, np.ndarray]] = {v: {} for v in caches}
    jobs: list[tuple[int, tuple[str, str, tuple[int, ...]]]] = []
    for i, p in enumerate(paths):
        digest, why = content_hash(p)
        if digest is None:
            bad[p] = why
            continue
        hashes[i] = digest
        missing = []
        for v in views_of[i]:
            hit = caches[v].get(digest) if caches[v] is not None else None
            if hit is None:
                missing.append(v)
            else:
                rows[v][i] = hit
        if missing:
            jobs.append((i, (p, digest, tuple(missing))))
    new: dict[int, tuple[list[str], list[np.ndarray]]] = {v: ([], []) for v in caches}
    pending: list[tuple[int, int, np.ndarray]] = []
    fn = make_fn() if jobs else None

    def flush() -> None:
        if not pending:
            return
        out = fn(np.stack([a for _, _, a in pending]))
        for (i, v, _), f in zip(pending, out):
            rows[v][i] = f
            new[v][0].append(hashes[i])  # type: ignore[arg-type]
            new[v][1].append(f)
        pending.clear()

    n_crops = sum(len(j[1][2]) for j in jobs)
    pbar = bar(desc, n_crops, "img")
    try:
        decoded = imap(_Decode(pre, augment), [j for _, j in jobs], workers, chunksize=4)
        for (i, (p, _, missing)), crops in zip(jobs, decoded):
            if isinstance(crops, str):
                bad[p] = crops
                hashes[i] = None
                continue
            for v, arr in zip(missing, crops):
                pending.append((i, v, arr))
            if len(pending) >= batch_size:
                flush()
            pbar.update(len(missing))
        flush()
    finally:
        pbar.close()
        # Even an interrupted extraction keeps what it computed: a rerun resumes from there.
        for v, (hs, fs) in new.items():
            if caches[v] is not None and hs:
                caches[v].add(hs, np.stack(fs[:len(hs)]))
    dim = next((len(f) for r in rows.values() for f in r.values()), 0)
    out: dict[int, np.ndarray] = {}
    for v, r in rows.items():
        out[v] = np.zeros((n, dim), np.float32)
        for i, f in r.items():
            out[v][i] = f
    return out, hashes, bad


def default_cache_root() -> Path:
    """$EDGECLF_HOME/features."""
    from ..models.weights import home

    return Path(os.environ.get("EDGECLF_FEATURE_CACHE") or home() / "features")
