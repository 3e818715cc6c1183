"""Resumable folders (compare, search) hold results of one set of settings: a rerun with others is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._io import read_json, user_entries, write_json
from ..errors import ConfigError
from ..table import short_list

SETTINGS_FILE = "settings.json"
# Options that change how fast results come, not what they are: a rerun may change them.
NEUTRAL = frozenset({"workers", "cache_dir", "verbose"})
# Options that name a file or folder: the CLI hands them over as typed, so `--teacher runs/big` and the same
# folder given absolute (or from another working directory) must compare equal.
PATHS = frozenset({"teacher", "exclude", "weights"})
KEYWORDS = frozenset({"imagenet", "none"})  # --weights values that are not paths


def _plain(value: Any, path: bool = False) -> Any:
    """A JSON-able form that compares equal across reruns (paths as absolute strings, lists as lists)."""
    if isinstance(value, os.PathLike) or (path and isinstance(value, str) and value not in KEYWORDS):
        return str(Path(value).expanduser().resolve())
    if isinstance(value, (list, tuple)):
        return [_plain(v, path) for v in value]
    return value


def check_own_folder(out: Path) -> None:
    """Refuse an --out that holds someone else's files: compare and search write report.html, runs/, cells/ there."""
    if (out / SETTINGS_FILE).is_file() or (out / "cells").is_dir():  # ours (older ones too): resumed
        return
    own = user_entries(out)
    if own:
        raise ConfigError(f"--out {out} already holds files of its own ({short_list(own, 3)}); choose a new or "
                          "empty folder, or the folder of an earlier run of this command to resume it")


def hold_settings(out: Path, data: str | os.PathLike[str], **settings: Any) -> None:
    """Record what `out`'s results are made with; a rerun that asks for other results gets a one-line error.

    Without it a rerun with another --weights (or --resize, --epochs, another DATA) reused the finished
    cells and reported the old results as the new request's.
    """
    now = {"data": str(Path(data).resolve()),
           **{k: _plain(v, k in PATHS) for k, v in sorted(settings.items()) if k not in NEUTRAL and v is not None}}
    f = out / SETTINGS_FILE
    if f.is_file():
        try:
            before = read_json(f)
        except (OSError, ValueError):
            before = None
        if isinstance(before, dict):
            diff = next((k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)), None)
            if diff is not None:
                was, asked = before.get(diff, "(default)"), now.get(diff, "(default)")
                raise ConfigError(f"--out {out} holds results made with {diff} {was}, not {asked}: a rerun resumes "
                                  "the same settings; choose another --out (or delete that folder to start over)")
            return
    write_json(f, now)
