"""Training seeds torch's generator for repeatable runs; a caller's own random stream is not ours to move."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def own_rng(fn: F) -> F:
    """`fn` run on a fork of torch's CPU generator: it may seed it; the caller's state is restored after."""
    @functools.wraps(fn)
    def forked(*args: Any, **kwargs: Any) -> Any:
        # CPU only: forking CUDA generators would create a context on every visible GPU in each DDP process.
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)
    return forked  # type: ignore[return-value]
