"""Decode throughput on ../shared/datasets/flowers: images/s to model-ready 224x224 crops.

    python bench/decode.py [--data DIR] [--size 224]

Compares, in one run: full decode vs JPEG draft-mode decode, and 1 worker vs all cores
(processes and threads). Results are ratios against the plain single-worker full decode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgeclf.data.images import load_rgb  # noqa: E402
from edgeclf.data.parallel import default_workers, imap  # noqa: E402
from edgeclf.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess  # noqa: E402


@dataclass(frozen=True)
class Job:
    pre: Preprocess
    draft: bool

    def __call__(self, path: str) -> int:
        img = load_rgb(path, min_side=self.pre.resize_to if self.draft else None)
        return int(self.pre.to_uint8(img)[0, 0, 0])


def timed(fn, paths) -> float:
    t = time.perf_counter()
    fn(paths)
    return len(paths) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/flowers"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    paths = sorted(str(p) for p in Path(a.data).rglob("*.jpg"))
    pre = Preprocess(a.size, IMAGENET_MEAN, IMAGENET_STD)
    w = default_workers()
    full, draft = Job(pre, False), Job(pre, True)
    rows = {}
    rows["full, 1 worker"] = timed(lambda ps: list(map(full, ps)), paths)
    rows["draft, 1 worker"] = timed(lambda ps: list(map(draft, ps)), paths)
    rows[f"draft, {w} processes"] = timed(lambda ps: list(imap(draft, ps, w, chunksize=16)), paths)
    with ThreadPoolExecutor(w) as ex:
        rows[f"draft, {w} threads"] = timed(lambda ps: list(ex.map(draft, ps)), paths)
    base = rows["full, 1 worker"]
    print(f"{len(paths)} images, target {a.size}px, {os.cpu_count()} cores")
    for k, v in rows.items():
        print(f"  {k:<22} {v:7.1f} img/s   x{v / base:.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "images": len(paths),
                                           "img_per_s": {k: round(v, 1) for k, v in rows.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
