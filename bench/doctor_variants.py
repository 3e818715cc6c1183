"""Colour and shape variants in a catalogue are not "conflicting labels"; real copies across classes still are.

    python bench/doctor_variants.py [--out bench/doctor_variants.json]

A catalogue on white: 150 flowers photos (30 per class) shrunk and pasted on a white canvas form
class `a`; the same shots with their colour channels rotated (the product in another colour) form
class `b`; the same shots squeezed to 65 % of their width (a taller model of one outline) form
class `tall`. None of these is a copy of another: each is a different product. Then 20 altered
copies (bench/doctor_dups.py's alterations) of class `a` photos are filed under `b` or `tall`:
those are the same photo under two labels. Doctor's cross-class near-duplicate groups are counted:
how many hold a filed copy (found) and how many are only variants (false alarms).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doctor_dups import BENCH, FLOWERS, altered_copy  # noqa: E402


def catalogue(dest: Path, per_class: int, seed: int) -> list[tuple[str, str]]:
    """Write the three variant classes and the filed copies; return the (original, copy) pairs."""
    rng = np.random.default_rng(seed)
    originals = []
    for c in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        for p in sorted(c.iterdir())[:per_class]:
            im = Image.open(p).convert("RGB")
            im.thumbnail((220, 220))
            for cls, shot in (("a", im), ("b", Image.merge("RGB", im.split()[1:] + im.split()[:1])),
                              ("tall", im.resize((max(8, round(im.width * 0.65)), im.height)))):
                canvas = Image.new("RGB", (400, 300), "white")
                canvas.paste(shot, ((400 - shot.width) // 2, (300 - shot.height) // 2))
                (dest / cls).mkdir(parents=True, exist_ok=True)
                canvas.save(dest / cls / f"{c.name}_{p.stem}.jpg", quality=92)
            originals.append(dest / "a" / f"{c.name}_{p.stem}.jpg")
    pairs = []
    for k, i in enumerate(rng.choice(len(originals), 20, replace=False)):
        copy = dest / ("b", "tall")[k % 2] / f"copy_{originals[i].stem}.jpg"
        altered_copy(originals[i], copy, rng)
        pairs.append((str(originals[i]), str(copy)))
    return pairs


def main() -> None:
    from edgeclf.workflows.doctor import doctor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(BENCH / "doctor_variants.json"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "catalogue"
        pairs = catalogue(data, a.per_class, a.seed)
        t = time.perf_counter()
        r = doctor(data, workers=2)
        wall = round(time.perf_counter() - t, 1)
        photos = sum(1 for _ in data.rglob("*.jpg"))
    across = [set(g["files"]) for g in r["near_duplicates"] + r["exact_duplicates"] if g["cross_class"]]
    found = sum(1 for x, y in pairs if any({x, y} <= g for g in across))
    copies = {f for p in pairs for f in p}
    res = {"command": "python bench/doctor_variants.py " + " ".join(sys.argv[1:]),
           "photos": photos,
           "variants_per_class": 5 * a.per_class, "filed_copies": len(pairs), "copies_found": found,
           "cross_class_groups": len(across), "variant_only_groups": sum(1 for g in across if not g & copies),
           "near_duplicate_groups": len(r["near_duplicates"]), "wall_s": wall}
    print(json.dumps(res), flush=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
