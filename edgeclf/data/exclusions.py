"""Acting on doctor's findings without touching a file: a JSON of suggested exclusions that `train --exclude` honours.

edgeclf never deletes or moves a user's image. Doctor suggests; the user reads (and may edit)
the JSON; training leaves the listed files out and records which list it used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .._io import write_json
from ..errors import DatasetError
from .dataset import Dataset


def suggest(report: dict[str, Any]) -> dict[str, Any]:
    """Exclusions a doctor report supports: unreadable files, photos filed under two classes, extra exact copies."""
    root = Path(report["root"])

    def rel(p: str) -> str:
        return Path(os.path.relpath(p, root)).as_posix()

    out: list[dict[str, str]] = [{"file": rel(u["path"]), "reason": f"unreadable: {u['reason']}"}
                                 for u in report["unreadable"]]
    for g in report["exact_duplicates"]:
        if g["cross_class"]:  # one photo, two labels: no label can be trusted
            out += [{"file": rel(f), "reason": f"the same photo is filed under {', '.join(g['classes'])}"}
                    for f in g["files"]]
        else:  # keep one copy: the others weigh the photo twice and can leak it across splits
            out += [{"file": rel(f), "reason": f"exact copy of {rel(g['files'][0])}"} for f in g["files"][1:]]
    return {"version": 1, "root": str(root), "exclude": out,
            "note": "Suggested by `edgeclf doctor`; nothing was deleted. Edit freely, then `edgeclf train DATA "
                    "--exclude THIS.json`. Near-duplicates are listed by doctor but not suggested here."}


def write_suggestions(path: str | os.PathLike[str], report: dict[str, Any]) -> dict[str, Any]:
    """Write suggest(report) to `path` (atomically) and return it."""
    s = suggest(report)
    write_json(Path(path), s)
    return s


def read_exclusions(path: str | os.PathLike[str]) -> tuple[set[str], str]:
    """The file names (relative to the dataset root) an exclusion JSON lists, and the file's SHA-256."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        rec = json.loads(raw)
        names = {Path(e["file"]).as_posix() for e in rec["exclude"]}
    except OSError as exc:
        raise DatasetError(f"--exclude {p}: cannot read it ({exc.strerror or exc}); "
                           "write one with `edgeclf doctor DATA --suggest FILE.json`") from None
    except (ValueError, KeyError, TypeError):
        raise DatasetError(f"--exclude {p} is not an exclusion list (JSON with 'exclude': [{{'file': ...}}]); "
                           "write one with `edgeclf doctor DATA --suggest FILE.json`") from None
    return names, hashlib.sha256(raw).hexdigest()


def apply_exclusions(ds: Dataset, names: set[str]) -> tuple[int, list[str]]:
    """Drop the listed files from `ds` in place (names relative to its root); (how many dropped, names not found)."""
    rel = {s.path: Path(os.path.relpath(s.path, ds.root)).as_posix() for s in ds.samples}
    keep = [s for s in ds.samples if rel[s.path] not in names]
    dropped = len(ds.samples) - len(keep)
    ds.samples[:] = keep
    return dropped, sorted(names - set(rel.values()))
