"""Order-preserving parallel map for decoding that must use every core."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes to use: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _fork_is_safe() -> bool:
    # JAX (pulled in by the LiteRT converter) runs its own threads and deadlocks when forked; macOS's system
    # libraries start threads too (Python's docs call fork unsafe there), and Windows has no fork at all.
    return sys.platform != "darwin" and "fork" in mp.get_all_start_methods() and "jax" not in sys.modules


def _map_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(x) for x in chunk]


def _bounded(submit: Callable[[list[T]], Any], items: Iterable[T], chunksize: int, depth: int) -> Iterator[R]:
    """Keep at most `depth` chunks in flight: results wait for a slow consumer in bounded memory.

    Pool.imap and Executor.map queue every task up front and keep every result until it is read,
    so a consumer slower than the decoders (the backbone) would hold the whole dataset in RAM.
    """
    it = iter(items)
    pending: deque = deque()
    while True:
        while len(pending) < depth:
            chunk = list(islice(it, chunksize))
            if not chunk:
                break
            pending.append(submit(chunk))
        if not pending:
            return
        done = pending.popleft()
        yield from (done.get() if hasattr(done, "get") else done.result())


def imap(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, chunksize: int = 16) -> Iterator[R]:
    """Yield fn(item) for each item in order, on `workers` processes (1 = in this process).

    At most a few chunks per worker are in flight, so memory stays bounded however many items.

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
            yield from _bounded(lambda c: ex.submit(_map_chunk, fn, c), items, chunksize, 4 * workers)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's idle pool threads are safe to fork
        pool = mp.get_context("fork").Pool(workers)
    with pool:
        yield from _bounded(lambda c: pool.apply_async(_map_chunk, (fn, c)), items, chunksize, 4 * workers)
