"""Order-preserving parallel map over processes, for decoding that must use every core."""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def imap(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, chunksize: int = 16) -> Iterator[R]:
    """Yield fn(item) for each item in order, on `workers` processes (1 = in this process)."""
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        yield from map(fn, items)
        return
    # fork, as torch's DataLoader does on Linux: spawn would demand an `if __name__ == "__main__"`
    # guard from every script that calls the API. Workers only run Pillow/numpy, never torch ops.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with live threads: safe, see above
        pool = mp.get_context("fork").Pool(workers)
    with pool:
        yield from pool.imap(fn, items, chunksize=chunksize)
