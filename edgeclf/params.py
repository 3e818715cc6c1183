"""Declared constraints for option values, checked where they enter (CLI and API alike).

As scikit-learn's parameter validation does, a bad value is a one-line error naming the option,
the allowed range and the value given: ``--batch-size must be an int in [1, inf), got 0``.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Interval:
    """Numbers of one kind between two bounds; `closed` says which ends belong to it."""

    kind: type  # int or float (float accepts ints too)
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # both | left | right | neither

    def __contains__(self, v: object) -> bool:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return False
        if self.kind is int and not isinstance(v, numbers.Integral):
            return False
        if not math.isfinite(float(v)):
            return False
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        # An int bound is written out whole: 2**32 - 1 as 4294967295, not 4.29497e+09.
        fmt = "d" if self.kind is int else "g"
        lo = "-inf" if self.low is None else format(self.low, fmt)
        hi = "inf" if self.high is None else format(self.high, fmt)
        return f"{'an int' if self.kind is int else 'a number'} in {left}{lo}, {hi}{right}"


class Options:
    """A fixed set of allowed values (strings)."""

    def __init__(self, *values: str) -> None:
        self.values = values

    def __contains__(self, v: object) -> bool:
        return v in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(self.values)


class Flag:
    """True or False, and nothing else: 'no' or 0 from a hand-written config would pass as truthy or falsy."""

    def __contains__(self, v: object) -> bool:
        return type(v).__name__ in ("bool", "bool_")  # numpy's bool too

    def __str__(self) -> str:
        return "True or False"


NONE = None  # in a constraint list: the value may be None
BOOL = Flag()


def as_list(value: Any) -> list[Any] | None:
    """An option taking several values, given one: a lone str, path or number is a one-item list, not its letters."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike, numbers.Number)) or not isinstance(value, Iterable):
        return [value]  # anything else one item too: the check of its items names the option and the value
    return list(value)


def shown(value: Any, limit: int = 80) -> str:
    """repr(value) for an error message, kept to one short line (an array's repr runs to many)."""
    r = repr(value)
    if "\n" not in r and len(r) <= limit:
        return r
    kind = type(value).__qualname__
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{kind} of shape {tuple(shape)}"
    return f"{kind} {r.splitlines()[0][:limit - 20]}…"


def check_path(option: str, value: Any, optional: bool = False) -> Any:
    """Return `value` if it is a path (str or os.PathLike; None when `optional`), else raise ConfigError."""
    if (value is None and optional) or (isinstance(value, (str, os.PathLike)) and str(value) != ""):
        return value
    raise ConfigError(f"{option} must be a path (str or pathlib.Path), got {shown(value)}")


def check_weights(value: Any) -> str:
    """Return --weights as a str if it is 'imagenet', 'none' or an existing file's path, else raise ConfigError."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"--weights must be imagenet, none or a checkpoint file's path, got {shown(value)}")
    value = os.fspath(value)
    if value in ("imagenet", "none") or os.path.isfile(value):
        return value
    # Checked where the option enters: a mistyped path once failed only after a run folder was made.
    what = "a folder, not a file" if os.path.isdir(value) else "no such file"
    raise ConfigError(f"--weights {value}: {what}; pass imagenet, none, a .pth checkpoint or a .tflite file")


def check(option: str, value: Any, *constraints: Any) -> Any:
    """Return `value` if it meets one of `constraints` (an Interval, Options or NONE), else raise ConfigError."""
    for c in constraints:
        if (c is None and value is None) or (c is not None and value in c):
            return value
    # "None" means nothing on a command line: an option that may be None may be left out.
    allowed = " or ".join(str(c) for c in constraints if c is not None)
    if None in constraints:
        allowed = f"{allowed} or left out (None)" if allowed else "left out (None)"
    raise ConfigError(f"{option} must be {allowed}, got {shown(value)}")


POSITIVE_INT = Interval(int, 1)
COUNT = Interval(int, 0)
PERCENT = Interval(float, 0, 100, "left")
POSITIVE = Interval(float, 0, None, "neither")
NON_NEGATIVE = Interval(float, 0)
FRACTION = Interval(float, 0, 1, "left")
UNIT = Interval(float, 0, 1)
# Interpreter threads: the runtime starts them all at once, and 100000 hung `benchmark` and failed `predict`
# with "Resource temporarily unavailable"; 256 is past the cores of any one CPU edgeclf's files run on.
THREADS = Interval(int, 1, 256)
# The head's hidden layer is features x units floats: 8192 units on a 1792-d backbone is 59 MB; beyond
# that the head outgrows the backbone it sits on, and a typo such as 100000000 asked for 512 GB at once.
HIDDEN = Interval(int, 0, 8192)
FOLDS = Interval(int, 2, 20)  # doctor --label-issues: cross-validation folds


def parse_duration(option: str, text: str) -> float:
    """'90s', '20m', '1.5h' or plain seconds → seconds; anything else is a one-line ConfigError."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = str(text).strip().lower()
    try:
        seconds = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ConfigError(f"{option} takes a duration such as 90s, 20m or 1.5h, got {text!r}")
    return seconds


def check_split(val_percent: float, test_percent: float) -> None:
    """--val-percent and --test-percent: each in [0, 100), their sum below 100."""
    check("--val-percent", val_percent, PERCENT)
    check("--test-percent", test_percent, PERCENT)
    if val_percent + test_percent >= 100:
        raise ConfigError(f"--val-percent + --test-percent must be below 100 to leave images to train on, "
                          f"got {val_percent:g} + {test_percent:g}")
