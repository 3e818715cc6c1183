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
import re
from pathlib import Path

from typing import Callable, Iterable, Iterator

import numpy as np

from .._io import write_fix, write_json
from ..data.augment import Augment, view_seed
from ..data.crops import Crops
from ..data.images import ImageDecodeError, file_size
from ..data.parallel import imap
from ..data.rowfile import read_rows
from ..errors import EdgeclfError
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


def cache_key(model_name: str, weights_id: str, pre: Preprocess, view: int = 0,
              augment: Augment | None = None, tap: int | None = None) -> str:
    """A short stable id for one (backbone, weights, preprocessing, view[, tap]) combination.

    `tap=k` names the activations after the backbone's first k units instead of its features.
    """
    aug = augment.to_dict() if view and augment else None
    blob = json.dumps([model_name, weights_id, pre.to_dict(), view] + ([aug] if aug else [])
                      + ([f"tap{tap}"] if tap is not None else []), sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def feature_name(model_name: str, pool_blocks: int) -> str:
    """The name a backbone's features are cached under: pooled blocks make other features."""
    return f"{model_name}+pool{pool_blocks}" if pool_blocks else model_name


def view_caches(root: str | os.PathLike[str], model_name: str, weights_id: str, pre: Preprocess,
                views: Iterable[int], augment: Augment | None, tap: int | None = None) -> dict[int, FeatureCache]:
    """One FeatureCache per view of the same (backbone, weights, preprocessing[, tap]): every reader's keys agree."""
    return {v: FeatureCache(root, cache_key(model_name, weights_id, pre, v, augment, tap=tap)) for v in views}


_HASH_LINE = 41  # a sha1 hex digest and a newline: fixed width, so row counts come from file sizes
_HEX = re.compile(rb"[0-9a-f]{40}")


class FeatureCache:
    """content-hash → feature vector for one cache key, as an append-only on-disk array.

    ``<root>/<key>/`` holds ``feats.f32`` (rows of float32), ``hashes.txt`` (row i's image hash on
    line i) and ``meta.json`` (the row width). Rows are read on demand, never all loaded: memory
    stays flat however large the dataset. Writers append under a lock, features before hashes, so
    a killed writer leaves at most a tail of unlisted rows that the next writer cuts off.
    """

    def __init__(self, root: Path, key: str) -> None:
        self.dir = Path(root) / key
        self._reset()
        self.refresh()

    @property
    def key(self) -> str:
        """The cache key (the folder's name)."""
        return self.dir.name

    def __len__(self) -> int:
        return len(self.index)

    def refresh(self) -> None:
        """Read the rows other writers appended since the last look (or everything, the first time)."""
        try:
            self.dim = int(json.loads((self.dir / "meta.json").read_text(encoding="utf-8"))["dim"])
            rows = (self.dir / "feats.f32").stat().st_size // (4 * self.dim)
            with open(self.dir / "hashes.txt", "rb") as f:
                f.seek(self._lines * _HASH_LINE)
                tail = f.read(max(0, rows - self._lines) * _HASH_LINE)
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            self._reset()  # missing or damaged: rebuilt, never trusted
            return
        for k in range(0, len(tail) - _HASH_LINE + 1, _HASH_LINE):
            line = tail[k:k + _HASH_LINE]
            if line[-1:] != b"\n" or not _HEX.fullmatch(line[:-1]):
                self._reset()
                return
            self.index.setdefault(line[:-1].decode("ascii"), self._lines)
            self._lines += 1

    def _reset(self) -> None:
        self.index, self.dim, self._lines = {}, 0, 0

    def row(self, digest: str) -> int | None:
        """The row holding an image's vector, if cached."""
        return self.index.get(digest)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Vectors of the given rows, [len(rows), dim], read from disk (no memory map stays behind)."""
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return np.empty((0, self.dim), np.float32)
        with open(self.dir / "feats.f32", "rb", buffering=0) as f:
            return read_rows(f.fileno(), rows, 4 * self.dim).view(np.float32)

    def add(self, hashes: list[str], feats: np.ndarray) -> list[int]:
        """Append new vectors; returns each hash's row (a hash already stored keeps its first row).

        Runs sharing the cache take a lock and pick up what the others appended meanwhile, so
        concurrent runs never lose or overwrite each other's vectors.
        """
        try:
            return self._add(hashes, np.ascontiguousarray(feats, np.float32))
        except OSError as exc:
            # The rows written so far stay unlisted (no hash line): the next writer cuts them off.
            fix = write_fix(exc, "pass --cache-dir (or set EDGECLF_HOME) to a writable folder")
            raise EdgeclfError(f"cannot write the feature cache {self.dir}: {exc.strerror}; {fix}") from None

    def _add(self, hashes: list[str], feats: np.ndarray) -> list[int]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.dir / "lock"):
            self.refresh()
            if not self.dim:
                self._reset()
                self.dim = int(feats.shape[1])
                for name in ("feats.f32", "hashes.txt"):
                    (self.dir / name).write_bytes(b"")
                write_json(self.dir / "meta.json", {"dim": self.dim, "dtype": "float32", "format": 1})
            if feats.shape[1] != self.dim:
                raise ValueError(f"feature width {feats.shape[1]} does not match the cache's {self.dim} in {self.dir}")
            keep: list[int] = []
            fresh: dict[str, None] = {}  # insertion-ordered set
            for i, h in enumerate(hashes):
                if h not in self.index and h not in fresh:
                    keep.append(i)
                    fresh[h] = None
            if keep:
                n = self._lines
                with open(self.dir / "feats.f32", "r+b") as f:
                    f.truncate(n * 4 * self.dim)  # drop a killed writer's unlisted tail
                    f.seek(0, os.SEEK_END)
                    f.write(feats[keep].tobytes())
                with open(self.dir / "hashes.txt", "r+b") as f:
                    f.truncate(n * _HASH_LINE)
                    f.seek(0, os.SEEK_END)
                    f.write("".join(h + "\n" for h in fresh).encode("ascii"))
                for h in fresh:
                    self.index[h] = self._lines
                    self._lines += 1
        return [self.index[h] for h in hashes]


class FeatureRows:
    """Feature vectors of some images, one row per image, read from a cache on demand (-1 = zeros)."""

    def __init__(self, cache: FeatureCache, rows: np.ndarray) -> None:
        self.cache = cache
        self.rows = np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        """Width of a vector."""
        return self.cache.dim

    def subset(self, select: np.ndarray) -> "FeatureRows":
        """The rows picked by a boolean mask or index array."""
        return FeatureRows(self.cache, self.rows[select])

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Vectors of images idx, [len(idx), dim] float32."""
        rows = self.rows[np.asarray(idx, np.int64)]
        out = np.zeros((len(rows), self.cache.dim), np.float32)
        ok = rows >= 0
        out[ok] = self.cache.take(rows[ok])
        return out

    def numpy(self) -> np.ndarray:
        """All vectors in memory (small sets and tests)."""
        return self.take(np.arange(len(self)))


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
            caches: dict[int, FeatureCache], views_of: list[tuple[int, ...]] | None = None,
            augment: Augment | None = None, batch_size: int = 32, workers: int | None = None,
            desc: str = "features", save_every: int = 512, shard: tuple[int, int] = (0, 1),
            hashed: tuple[list[str | None], dict[str, str]] | None = None,
            ) -> tuple[dict[int, FeatureRows], list[str | None], dict[str, str]]:
    """Features of every (path, view) asked for, cached ones re-used, new ones appended to the cache.

    `make_fn()` gives the function mapping uint8 NHWC crops to features (called only if a feature
    is missing); `views_of[i]` lists the views path i needs (default: only view 0); `caches[v]`
    stores view v. New vectors are saved every `save_every` crops, so a killed run resumes where
    it stopped, and memory holds only that many. `shard=(k, n)` computes only the missing images
    k, k+n, ... (one process of n). `hashed` passes the (hashes, unreadable) of an earlier call on
    the same paths, so the files are not read again just to hash them. Returns ({view: rows of
    every path, zeros where not asked or unreadable}, content hashes, {unreadable path: reason}).
    """
    n = len(paths)
    views_of = views_of or [(0,)] * n
    bad: dict[str, str] = {}
    hashes: list[str | None] = [None] * n
    rows = {v: np.full(n, -1, np.int64) for v in caches}
    jobs: list[tuple[int, tuple[str, str, tuple[int, ...]]]] = []
    for i, p in enumerate(paths):
        digest, why = (hashed[0][i], hashed[1].get(p, "")) if hashed else content_hash(p)
        if digest is None:
            bad[p] = why
            continue
        hashes[i] = digest
        missing = []
        for v in views_of[i]:
            r = caches[v].row(digest)
            if r is None:
                missing.append(v)
            else:
                rows[v][i] = r
        if missing:
            jobs.append((i, (p, digest, tuple(missing))))
    jobs = jobs[shard[0]::shard[1]]
    new: dict[int, list[tuple[int, np.ndarray]]] = {v: [] for v in caches}
    pending: list[tuple[int, int, np.ndarray]] = []
    fn = make_fn() if jobs else None

    def flush() -> None:
        if pending:
            for (i, v, _), f in zip(pending, fn(np.stack([a for _, _, a in pending]))):
                new[v].append((i, f))
            pending.clear()

    def save() -> None:
        for v, done in new.items():
            if done:
                got = caches[v].add([hashes[i] for i, _ in done], np.stack([f for _, f in done]))  # type: ignore[misc]
                rows[v][[i for i, _ in done]] = got
                done.clear()

    pbar = bar(desc, sum(len(j[1][2]) for j in jobs), "img")
    try:
        decoded = imap(Crops(pre, augment), [(p, [view_seed(d, v) for v in vs]) for _, (p, d, vs) in jobs], workers,
                       chunksize=4)
        for (i, (p, _, missing)), crops in zip(jobs, decoded):
            if isinstance(crops, str):
                bad[p] = crops
                hashes[i] = None
                continue
            pending.extend((i, v, arr) for v, arr in zip(missing, crops))
            if len(pending) >= batch_size:
                flush()
            if sum(map(len, new.values())) >= save_every:
                save()
            pbar.update(len(missing))
        flush()
    finally:
        pbar.close()
        save()  # even an interrupted extraction keeps what it computed: a rerun resumes from there
    return {v: FeatureRows(caches[v], r) for v, r in rows.items()}, hashes, bad


def default_cache_root(given: str | os.PathLike[str] | None = None) -> Path:
    """The feature cache: `given` (--cache-dir) if any, else $EDGECLF_HOME/features."""
    if given:
        return Path(given)
    from ..models.weights import home

    return Path(os.environ.get("EDGECLF_FEATURE_CACHE") or home() / "features")
