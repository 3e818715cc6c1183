"""Progress bars that stay quiet when output is not a terminal (CI, pipes)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """Whether progress bars should be drawn (a terminal, and EDGECLF_PROGRESS not 0)."""
    flag = os.environ.get("EDGECLF_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()


def progress(it: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar on stderr."""
    return iter(tqdm(it, desc=desc, total=total, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True))


def bar(desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A progress bar to update by hand (call .update(n) and .close())."""
    return tqdm(desc=desc, total=total, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True)
