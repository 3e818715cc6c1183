"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import EdgeclfError


def write_fix(exc: OSError, elsewhere: str = "choose a writable folder") -> str:
    """What to do about a failed write: `elsewhere`, and free disk space first when the disk is full."""
    return f"free disk space or {elsewhere}" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else elsewhere


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise EdgeclfError(f"cannot write {dest}: {exc.strerror}; choose a writable output folder") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); a finished output gets the usual umask permissions.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)
        os.replace(tmp_path, dest)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise EdgeclfError(f"cannot write {dest}: {exc.strerror}; {write_fix(exc)}") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def make_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Create an output folder (and its parents), or a one-line error naming the option that gave it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        bad = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise EdgeclfError(f"{option} {path}: {bad} is a file, not a folder; choose another {option}") from None
    except OSError as exc:
        raise EdgeclfError(f"{option} {path}: cannot create the folder ({exc.strerror}); "
                           f"choose a writable {option}") from None
    return path


def user_entries(folder: Path) -> list[str]:
    """The names in an output folder that someone else put there (hidden ones such as .DS_Store aside), sorted.

    train, compare and search refuse an --out holding any: they write labels.txt, report.html ... and would
    replace the user's files of those names.
    """
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def check_outside(option: str, path: str | os.PathLike[str], data: str | os.PathLike[str]) -> None:
    """Refuse an output folder inside the dataset: its plots would be scanned as a class of images next time."""
    out, root = Path(path).expanduser().resolve(), Path(data).expanduser().resolve()
    if out == root or root in out.parents:
        raise EdgeclfError(f"{option} {path} is inside DATA {data}: the plots written there would be read as "
                           "a class of images next time; choose a folder outside DATA")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON: a figure that does not exist (NaN) is null, which every parser reads; Python's `NaN` token
    breaks JavaScript's JSON.parse, jq and most other readers of `--json` and the files edgeclf writes."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=False, default=str, allow_nan=False)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON (indented, UTF-8, strict: NaN as null) atomically."""
    return write_text(path, to_json(obj) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by edgeclf."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def quiet_fds(enabled: bool = True) -> Iterator[None]:
    """Silence C-level stdout/stderr (the converter's MLIR/absl logs) unless EDGECLF_DEBUG is set."""
    if not enabled or os.environ.get("EDGECLF_DEBUG"):
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        # Python-level prints too (litert-torch's progress lines), also where sys.stdout is not fd 1
        # (pytest, notebooks): `--json` output must stay JSON.
        try:
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
