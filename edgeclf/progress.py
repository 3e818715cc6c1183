"""Progress bars for a terminal or a notebook; quiet when output goes elsewhere (CI, pipes, files)."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Iterable, Iterator, TypeVar

with warnings.catch_warnings():
    # In a notebook without ipywidgets tqdm.auto says "IProgress not found" and draws text bars, which serve.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

T = TypeVar("T")


def _in_notebook() -> bool:
    """Whether stderr is a Jupyter/Colab kernel's stream: no terminal, yet a person watches the cell."""
    return type(sys.stderr).__module__.split(".")[0] == "ipykernel"


def enabled() -> bool:
    """Whether progress bars should be drawn (a terminal or a notebook, and EDGECLF_PROGRESS not 0)."""
    flag = os.environ.get("EDGECLF_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty() or _in_notebook()


def progress(it: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar on stderr."""
    return iter(tqdm(it, desc=desc, total=total, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True))


def bar(desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A progress bar to update by hand (call .update(n) and .close())."""
    return tqdm(desc=desc, total=total, unit=unit, disable=not enabled(), leave=False, dynamic_ncols=True)
