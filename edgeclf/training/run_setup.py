"""What `train` settles before any work: the run folder, the weights id, versions."""

from __future__ import annotations

import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import IO

from .._io import make_dir, user_entries
from ..artifacts.run import MANIFEST, is_complete
from ..data.dataset import Dataset, class_counts
from ..errors import ConfigError, DatasetError
from ..models.weights import locate, sha256_file
from ..table import short_list


LOCK = ".edgeclf-lock"  # held (flock) by the process writing the run; the OS drops it when that process ends


class RunClaim:
    """A run folder this process holds for writing: runs started at once never share one."""

    def __init__(self, path: Path, handle: IO[str] | None, created: bool = False) -> None:
        self.path, self._handle, self.created = path, handle, created

    def release(self) -> None:
        """Let the folder go (the run finished, failed or was interrupted)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> bool:
        """Release and remove the folder if this claim created it and it holds only the manifest; True if removed.

        A run refused for its options (say, a --time-budget too small to fit) never started: a folder
        holding only its "failed" manifest would stay behind unless a later run reused that same --out.
        """
        if not self.created or {p.name for p in self.path.iterdir()} - {MANIFEST, LOCK}:
            return False  # still held: the caller marks the run failed under the lock
        self.release()
        for name in (MANIFEST, LOCK):
            (self.path / name).unlink(missing_ok=True)
        self.path.rmdir()
        return True


def _hold(folder: Path) -> RunClaim | None:
    """Take `folder`'s lock without waiting; None while another process holds it."""
    created = not folder.exists()
    make_dir(folder)
    try:
        handle = open(folder / LOCK, "a")
    except OSError as exc:
        raise ConfigError(f"--out {folder}: cannot write there ({exc.strerror}); choose a writable --out") from None
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - not POSIX: no guard against runs started at once
        pass
    except OSError:
        handle.close()
        return None
    return RunClaim(folder, handle, created)


def next_run_dir(out: Path, exist_ok: bool = False) -> RunClaim:
    """`out` itself, or the first free `out2`, `out3`, ... when `out` holds a finished run and not `exist_ok`.

    Ultralytics' rule; an interrupted run holds nothing worth keeping, so its rerun reuses the folder.
    A folder another run is writing right now is never shared: the claim's lock is taken atomically.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose another --out")
    if not exist_ok and not (out / MANIFEST).is_file():  # `--out .` or `--out ~/Desktop`
        own = user_entries(out)
        if own:
            raise ConfigError(f"--out {out} already holds files that are not an edgeclf run ({short_list(own, 3)}); "
                              "choose a new or empty folder (or pass --exist-ok to write there anyway)")
    if exist_ok or not is_complete(out):
        claim = _hold(out)
        if claim is not None:
            return claim
        if exist_ok:
            raise ConfigError(f"--out {out} is being written by another run right now; wait for it to finish "
                              "or choose another --out")
    n = 2
    while True:
        cand = out.with_name(f"{out.name}{n}")
        # An earlier run that failed or was interrupted in out2 holds nothing worth keeping either: reuse it
        # (a folder that is not an edgeclf run is never written into).
        if not cand.exists() or ((cand / MANIFEST).is_file() and not is_complete(cand)):
            claim = _hold(cand)
            if claim is not None:
                return claim
        n += 1


def weights_id(spec_weights: str | None, weights: str, seed: int) -> str:
    """The identity of the backbone weights for cache keys: the checkpoint SHA-256, or random-seedN."""
    if weights == "none":
        return f"random-seed{seed}"  # a random backbone differs per seed, so its features do too
    if weights == "imagenet":
        _, src = locate(spec_weights) if spec_weights else (None, None)
        return src.sha256 if src else "none"
    return sha256_file(weights)


def check_trainable(ds: Dataset) -> None:
    """Refuse a dataset whose training split lacks a class (it could never be learned)."""
    counts = class_counts(ds.split("train"), len(ds.classes))
    empty = [c for c, n in zip(ds.classes, counts) if n == 0]
    if empty:
        fix = "add images or lower --val-percent/--test-percent"
        if ds.layout == "presplit":  # the folders decide the split: the percentages change nothing
            train_dir = next((ds.name(s).split("/")[0] for s in ds.split("train")), "train")
            fix = f"add images to {ds.root / train_dir / empty[0]}/"
        raise DatasetError(f"class(es) {short_list(empty)} have no image in the train split of {ds.root}; {fix}")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers, recorded in the manifest."""
    out = {"python": platform.python_version()}
    for pkg in ("edgeclf", "torch", "numpy", "pillow", "litert-torch", "ai-edge-litert"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out
