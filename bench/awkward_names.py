"""A dataset that exercises names, sizes and formats flowers never does; the walk-through of the 2026-11-27 session.

    python bench/awkward_names.py DEST [--per-class 14] [--seed 0]

20 classes of generated coloured shapes, 14 photos each. Class names carry dots, spaces (two in a row),
punctuation (`comma,name`, `quote'name`, `semi;colon`, `hash#1`, `paren (1)`), non-ASCII (`ÆØÅ`),
an emoji (`🐱 cat`) and 60 characters. Photos range from 64×48 to 2000×1500, in JPEG (upper-case
`.JPG` too), CMYK JPEG, grey PNG, palette GIF and WebP. Then, e.g.:

    edgeclf doctor DEST && edgeclf train DEST --out RUN && edgeclf export RUN --quantize float32,int8 \\
        && edgeclf export RUN --format onnx && edgeclf verify RUN

This session found with it: misaligned tables (emoji), the ONNX export overwriting the float32 .tflite's
JSON, and a weak head's label-issue flags (28 % of photos, none mislabeled). Nothing here is timed or
scored against a target; it writes no JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

NAMES = ["St. Bernard", "class.v2", "ÆØÅ", "🐱 cat", "01_apple", "a b  c", "UPPER", "upper2", "x" * 60, "dash-name",
         "comma,name", "quote'name", "semi;colon", "hash#1", "paren (1)", "plus+1", "ampersand & co", "tilde~", "at@x",
         "eq=1"]
SIZES = [(320, 240), (64, 48), (1200, 300), (240, 320), (2000, 1500)]


def make(dest: Path, per_class: int = 14, seed: int = 0) -> Path:
    """Write DEST/<class>/img N.<ext>: each class a colour family and a shape (box or ellipse, some crossed)."""
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(NAMES):
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, 3)
        for k in range(per_class):
            w, h = SIZES[k % len(SIZES)]
            img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 255, 3)))
            draw = ImageDraw.Draw(img)
            for _ in range(3 + ci % 5):
                x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
                box = [x0, y0, x0 + w // (2 + ci % 3), y0 + h // (2 + ci % 4)]
                colour = tuple(int(v) for v in (base + rng.integers(-30, 30, 3)).clip(0, 255))
                (draw.ellipse if ci % 2 else draw.rectangle)(box, fill=colour)
                if ci % 3 == 0:
                    draw.line([0, 0, w, h], fill=colour, width=5 + ci)
            stem = folder / f"img {k}"
            kind = k % 7
            if kind == 3:
                img.convert("CMYK").save(stem.with_suffix(".jpg"))
            elif kind == 4:
                img.convert("L").save(stem.with_suffix(".png"))
            elif kind == 5:
                img.convert("P").save(stem.with_suffix(".gif"))
            elif kind == 6:
                img.save(stem.with_suffix(".webp"))
            else:
                img.save(stem.with_suffix(".JPG"), quality=90)
    return dest


def main() -> None:
    """Command line: write the dataset to DEST."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--per-class", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(make(a.dest, a.per_class, a.seed))


if __name__ == "__main__":
    main()
