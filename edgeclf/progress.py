"""Progress: bars in a terminal or a notebook; a plain line every half minute in pipes, files and CI logs."""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any, Iterable, Iterator, TypeVar

with warnings.catch_warnings():
    # In a notebook without ipywidgets tqdm.auto says "IProgress not found" and draws text bars, which serve.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

T = TypeVar("T")


def _in_notebook() -> bool:
    """Whether stderr is a Jupyter/Colab kernel's stream: no terminal, yet a person watches the cell."""
    return type(sys.stderr).__module__.split(".")[0] == "ipykernel"


def _world() -> tuple[int, int]:
    """(rank, processes) under torchrun, which sets RANK and WORLD_SIZE; (0, 1) otherwise."""
    try:
        return int(os.environ.get("RANK", 0)), max(1, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError:
        return 0, 1


def mode() -> str:
    """'bars' (a terminal or a notebook), 'lines' (a pipe, a file, a CI log, torchrun) or 'off'; EDGECLF_PROGRESS
    overrides."""
    flag = os.environ.get("EDGECLF_PROGRESS")
    if flag is None:
        # torchrun's processes share one terminal: their bars would redraw over each other's.
        alone = _world()[1] == 1
        return "bars" if alone and (sys.stderr.isatty() or _in_notebook()) else "lines"
    flag = flag.strip().lower()
    return "lines" if flag == "lines" else "off" if flag in ("0", "false", "no", "off") else "bars"


def enabled() -> bool:
    """Whether progress bars should be drawn (a terminal or a notebook, and EDGECLF_PROGRESS not 0)."""
    return mode() == "bars"


# A bar's carriage returns pile up into one endless line in a log file; a silent log for the minutes of a
# cold `train` or a `compare` reads as a hung job (docker without -t, nohup, Slurm, CI). Half a minute
# between lines keeps a short command silent and a long one visibly alive.
LINE_EVERY_S = 30.0


class Lines:
    """A progress bar's update()/close() that prints a plain line to stderr at most every `every` seconds."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", every: float = LINE_EVERY_S) -> None:
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        rank, world = _world()
        # Under torchrun every process reports its own share, into one log: the rank tells the lines apart.
        self.prefix = f"[rank {rank}] " if world > 1 else ""
        self.n = 0
        self.t0 = self.last = time.monotonic()
        self.spoke = False

    def update(self, n: int = 1) -> None:
        """Count n more done; print a line if `every` seconds passed since the last one."""
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last, self.spoke = now, True
            print(self.prefix + self._line(now), file=sys.stderr, flush=True)

    def _units(self, count: int) -> str:
        return self.unit if count == 1 or self.unit in ("img", "it") else self.unit + "s"  # '2 models', '2 img'

    def _line(self, now: float) -> str:
        took = now - self.t0
        if not self.total:
            return f"{self.desc}: {self.n:,} {self._units(self.n)} in {took:.0f}s"
        left = f", about {took * (self.total - self.n) / self.n:.0f}s left" if 0 < self.n < self.total else ""
        done = f"{self.n:,}/{self.total:,} {self._units(self.total)} ({100 * self.n / self.total:.0f}%)"
        return f"{self.desc}: {done} in {took:.0f}s{left}"

    def close(self) -> None:
        """Say it finished, if it said anything at all (a short task stays silent)."""
        if self.spoke:
            self.spoke = False
            took = time.monotonic() - self.t0
            print(f"{self.prefix}{self.desc}: {self.n:,} {self._units(self.n)} done in {took:.0f}s", file=sys.stderr,
                  flush=True)


def _lines(it: Iterable[T], desc: str, total: int | None, unit: str) -> Iterator[T]:
    log = Lines(desc, total, unit)
    try:
        for x in it:
            yield x
            log.update()
    finally:
        log.close()


def progress(it: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar on stderr."""
    m = mode()
    if m == "lines":
        return _lines(it, desc, total, unit)
    return iter(tqdm(it, desc=desc, total=total, unit=unit, disable=m == "off", leave=False, dynamic_ncols=True))


def bar(desc: str, total: int | None = None, unit: str = "it") -> Any:
    """A progress bar to update by hand (call .update(n) and .close())."""
    m = mode()
    if m == "lines":
        return Lines(desc, total, unit)
    return tqdm(desc=desc, total=total, unit=unit, disable=m == "off", leave=False, dynamic_ncols=True)
