"""Fixed-width rows on disk, read a few at a time: how per-image arrays stay out of memory.

The feature cache (training/features.py) and doctor's thumbnails both keep one row per image in
a file and read only the rows a step needs, so memory does not grow with the dataset.
"""

from __future__ import annotations

import os
import tempfile
from typing import Protocol, Union

import numpy as np


def read_rows(fd: int, rows: np.ndarray, row_bytes: int) -> np.ndarray:
    """Rows `rows` of the file open as `fd`, [len(rows), row_bytes] uint8, in the order asked."""
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows), row_bytes), np.uint8)
    if not len(rows):
        return out
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    # One read per run of consecutive rows: sequential scans cost one syscall per run, not per row.
    breaks = np.flatnonzero(np.diff(srt) != 1) + 1
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(srt)]):
        buf = os.pread(fd, row_bytes * int(b - a), int(srt[a]) * row_bytes)
        if len(buf) != row_bytes * int(b - a):
            raise OSError(f"short read: rows {int(srt[a])}..{int(srt[b - 1])} are not all in the file")
        out[order[a:b]] = np.frombuffer(buf, np.uint8).reshape(b - a, row_bytes)
    return out


class TempRows:
    """An anonymous temporary file of fixed-shape rows (deleted when closed or collected)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self._file = tempfile.TemporaryFile(prefix="edgeclf-rows-")

    def __len__(self) -> int:
        return os.fstat(self._file.fileno()).st_size // self.row_bytes

    def put(self, i: int, row: np.ndarray) -> None:
        """Write row i."""
        data = np.ascontiguousarray(row, self.dtype)
        assert data.shape == self.shape, (data.shape, self.shape)
        os.pwrite(self._file.fileno(), data.tobytes(), i * self.row_bytes)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows idx, [len(idx), *shape]."""
        raw = read_rows(self._file.fileno(), idx, self.row_bytes)
        return raw.view(self.dtype).reshape(len(raw), *self.shape)

    def close(self) -> None:
        """Delete the file."""
        self._file.close()


class Rows(Protocol):
    """Per-image vectors read on demand (FeatureRows, TempRows, or an array through as_rows)."""

    def __len__(self) -> int: ...
    def take(self, idx: np.ndarray) -> np.ndarray:
        """The vectors of rows `idx`, [len(idx), dim]."""


class _ArrayRows:
    def __init__(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, np.float32)

    def __len__(self) -> int:
        return len(self.a)

    def take(self, idx: np.ndarray) -> np.ndarray:
        return self.a[idx]


def as_rows(x: Union[np.ndarray, Rows]) -> Rows:
    """Arrays (as float32) and on-disk rows behind one interface."""
    return _ArrayRows(x) if isinstance(x, np.ndarray) else x
