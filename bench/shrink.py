"""Copy a dataset with every photo downsized (long side at most SIDE px, JPEG QUALITY), same names.

    python bench/shrink.py SRC DST SIDE QUALITY

Same folders and file names, hence the same hash split: what bench/mobilenet_v1_gpu.sh sends to
a lent GPU machine, whose upload is capped at 64 MiB. Never touches SRC.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


def main() -> None:
    """Shrink every .jpg under SRC into DST."""
    src, dst, side, quality = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    n = 0
    for p in sorted(src.rglob("*.jpg")):
        out = dst / p.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        im = Image.open(p).convert("RGB")
        s = side / max(im.size)
        if s < 1:
            im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BICUBIC)
        im.save(out, quality=quality)
        n += 1
    print(f"{n} photos → {dst}")


if __name__ == "__main__":
    main()
