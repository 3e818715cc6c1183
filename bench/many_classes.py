"""A dataset of many small classes; the walk-through of the 2026-11-27 (thirteenth) session.

    python bench/many_classes.py DEST [--classes 300] [--per-class 8] [--seed 0]

Each class is a base colour with pixel noise (80×64 JPEG), so an ImageNet head learns about half
of them: 300 classes × 8 photos leave most classes without a validation or test photo, and the
int8 file loses several points. Then, e.g.:

    edgeclf train DEST --aug-views 0 --epochs 10 --out RUN && edgeclf export RUN --quantize float32,int8 \\
        ; edgeclf evaluate RUN/export/efficientnet_lite0_float32.tflite --out EVAL && edgeclf verify RUN

This session found with it: a 300×300 confusion heat map that took 1m50s, no train warning for the
classes a split leaves unmeasured, an int8 export that left its worst try behind, and error messages
listing 300 class names. Nothing here is timed or scored against a target; it writes no JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def make(dest: Path, classes: int = 300, per_class: int = 8, seed: int = 0) -> Path:
    """Write DEST/class_NNN/N.jpg: one base colour per class, Gaussian pixel noise per photo."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = dest / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 40, (64, 80, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return dest


def main() -> None:
    """Command line: write the dataset to DEST."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--classes", type=int, default=300)
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(make(a.dest, a.classes, a.per_class, a.seed))


if __name__ == "__main__":
    main()
