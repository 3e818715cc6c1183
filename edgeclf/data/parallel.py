"""Order-preserving parallel map for decoding that must use every core."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _fork_is_safe() -> bool:
    # JAX (pulled in by the LiteRT converter) runs its own threads and deadlocks when forked.
    return "jax" not in sys.modules


def imap(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, chunksize: int = 16) -> Iterator[R]:
    """Yield fn(item) for each item in order, on `workers` processes (1 = in this process).

    Processes are forked, as torch's DataLoader does on Linux (spawn would demand an
    `if __name__ == "__main__"` guard from every script using the API; workers run only Pillow and
    numpy). Where forking is unsafe, threads take over: Pillow releases the GIL while decoding, so
    they reach ~90% of the process speed (bench/decode.py).
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        yield from map(fn, items)
        return
    if not _fork_is_safe():
        with ThreadPoolExecutor(workers) as ex:
            yield from ex.map(fn, items)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's idle pool threads are safe to fork
        pool = mp.get_context("fork").Pool(workers)
    with pool:
        yield from pool.imap(fn, items, chunksize=chunksize)
