"""Near-duplicates, outliers and doctor's wall time (issue #15, items 1, 3 and the timing target).

    python bench/doctor_dups.py [--seeds 2] [--skip-cold]

1. Injected copies: a symlink copy of flowers plus 100 altered copies of random flowers photos
   (resize 50–150 %, JPEG quality 40–95, crop up to 10 %, brightness ±20 %); counts how many copies
   doctor puts in one group with their original, how many groups hold no injected copy (flowers'
   own near-duplicates: judged by eye, see README) and the largest group (no chains).
2. Product shots on white: 600 flowers photos (120 per class) shrunk and pasted on a white canvas,
   plus 30 altered copies: the hash-only doctor joined different photos here (the issue's
   motorcycles); counts copies found and groups without a copy.
3. Outliers: flowers plus 20 odd images (blank, screenshot text, noise, shapes, gradients): how
   many are flagged, how many flowers photos are flagged, odd ones among the top 20.
4. Time on the 3,670 flowers photos: doctor warm (features cached), warm with --label-issues, and
   cold (empty feature cache) beside `edgeclf train` cold in the same run.
A contact sheet of the near-duplicate pairs doctor reports on the original flowers is written to
bench/doctor_pairs.jpg for the visual check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

BENCH = Path(__file__).resolve().parent
FLOWERS = BENCH.parents[1] / "shared" / "datasets" / "flowers"


def _photos() -> list[Path]:
    return sorted(p for c in sorted(FLOWERS.iterdir()) if c.is_dir() for p in sorted(c.iterdir()) if p.is_file())


def altered_copy(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """The issue's alterations: crop <= 10 %, resize 50–150 %, brightness ±20 %, JPEG quality 40–95."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    c = rng.uniform(0, 0.10)
    left, top = int(w * c * rng.uniform()), int(h * c * rng.uniform())
    img = img.crop((left, top, w - int(w * c) + left, h - int(h * c) + top))
    s = rng.uniform(0.5, 1.5)
    img = img.resize((max(8, round(img.width * s)), max(8, round(img.height * s))), Image.BICUBIC)
    ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2)).save(dst, quality=int(rng.integers(40, 96)))


def link_flowers(dest: Path) -> None:
    for p in _photos():
        link = dest / p.parent.name / p.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p)


def inject_copies(dest: Path, photos: list[Path], n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i in rng.choice(len(photos), n, replace=False):
        p = photos[i]
        orig = dest / p.parent.name / p.name
        copy = orig.parent / f"copy_{p.stem}.jpg"
        altered_copy(orig, copy, rng)
        pairs.append((str(orig), str(copy)))
    return pairs


def score_copies(r: dict, pairs: list[tuple[str, str]]) -> dict:
    group = {}
    for k, g in enumerate(r["near_duplicates"] + r["exact_duplicates"]):
        for f in g["files"]:
            group[f] = k
    found = sum(1 for a, b in pairs if a in group and group[a] == group.get(b))
    injected = {f for p in pairs for f in p}
    other = [g for g in r["near_duplicates"] if not injected & set(g["files"])]
    return {"copies": len(pairs), "found": found, "recall": round(found / len(pairs), 4),
            "groups": len(r["near_duplicates"]), "groups_without_copy": len(other),
            "largest_group": max((len(g["files"]) for g in r["near_duplicates"]), default=0)}


def on_white(dest: Path, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    made = []
    for c in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (dest / c.name).mkdir(parents=True)
        for p in sorted(c.iterdir())[:120]:
            im = Image.open(p).convert("RGB")
            im.thumbnail((220, 220))
            canvas = Image.new("RGB", (400, 300), "white")
            canvas.paste(im, ((400 - im.width) // 2, (300 - im.height) // 2))
            canvas.save(dest / c.name / f"{p.stem}.jpg", quality=92)
            made.append(dest / c.name / f"{p.stem}.jpg")
    pairs = []
    for i in rng.choice(len(made), 30, replace=False):
        copy = made[i].parent / f"copy_{made[i].stem}.jpg"
        altered_copy(made[i], copy, rng)
        pairs.append((str(made[i]), str(copy)))
    return pairs


def odd_images(dest: Path, seed: int) -> set[str]:
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in dest.iterdir())
    out = set()
    for k in range(20):
        kind = ["blank", "text", "noise", "shapes", "gradient"][k // 4]
        w, h = 320, 240
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if kind == "noise":
            im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        elif kind == "gradient":
            g = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0, 1, 3)[None, None]
            im = Image.fromarray(np.broadcast_to(g, (h, w, 3)).astype(np.uint8))
        else:
            im = Image.new("RGB", (w, h), "white" if kind == "text" else colour)
            d = ImageDraw.Draw(im)
            if kind == "text":
                d.rectangle((0, 0, w - 1, 12), fill=(40, 90, 200))
                for y in range(18, h, 14):
                    d.text((5, y), " ".join(f"item{rng.integers(1000)}" for _ in range(5)), fill="black")
            elif kind == "shapes":
                for _ in range(6):
                    x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
                    d.rectangle((x0, y0, x0 + int(rng.integers(20, 120)), y0 + int(rng.integers(20, 120))),
                                fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        p = dest / classes[k % len(classes)] / f"odd_{kind}_{k}.jpg"
        im.save(p, quality=90)
        out.add(str(p))
    return out


def contact_sheet(pairs: list[tuple[str, str, float]], out: Path, h: int = 120) -> None:
    rows = []
    for a, b, sim in pairs:
        ims = [Image.open(p).convert("RGB") for p in (a, b)]
        ims = [im.resize((max(1, round(im.width * h / im.height)), h)) for im in ims]
        row = Image.new("RGB", (520, h + 14), "white")
        row.paste(ims[0], (0, 14))
        row.paste(ims[1], (260, 14))
        ImageDraw.Draw(row).text((2, 1), f"{Path(a).parent.name}/{Path(a).name}  ~  {Path(b).name}  {sim:.2f}",
                                 fill="black")
        rows.append(row)
    sheet = Image.new("RGB", (1040, ((len(rows) + 1) // 2) * (h + 14)), "white")
    for k, r in enumerate(rows):
        sheet.paste(r, ((k % 2) * 520, (k // 2) * (h + 14)))
    sheet.save(out, quality=70)


def timed(fn, *args, **kw) -> tuple[float, dict]:
    t = time.perf_counter()
    r = fn(*args, **kw)
    return round(time.perf_counter() - t, 1), r


def main() -> None:
    from edgeclf.workflows.doctor import doctor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--skip-cold", action="store_true", help="leave out the cold doctor / cold train timing")
    ap.add_argument("--out", default=str(BENCH / "doctor_dups.json"))
    a = ap.parse_args()
    res: dict = {"command": "python bench/doctor_dups.py " + " ".join(sys.argv[1:])}
    photos = _photos()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for seed in range(a.seeds):
            data = Path(tmp) / f"copies{seed}"
            link_flowers(data)
            pairs = inject_copies(data, photos, 100, seed)
            wall, r = timed(doctor, data)
            rows.append({"seed": seed, **score_copies(r, pairs), "wall_s": wall})
            print(json.dumps(rows[-1]), flush=True)
        res["injected_copies"] = {"rows": rows, "mean_recall": round(statistics.mean(r["recall"] for r in rows), 4)}

        data = Path(tmp) / "white"
        pairs = on_white(data, 1)
        res["on_white"] = score_copies(doctor(data), pairs)
        print(json.dumps(res["on_white"]), flush=True)

        data = Path(tmp) / "odd"
        link_flowers(data)
        odd = odd_images(data, 0)
        r = doctor(data)
        flagged = [o["path"] for o in r["outliers"]]
        res["outliers"] = {"odd": len(odd), "flagged": len(flagged), "odd_flagged": len(odd & set(flagged)),
                           "flowers_flagged": len(set(flagged) - odd), "odd_in_top20": len(odd & set(flagged[:20]))}
        print(json.dumps(res["outliers"]), flush=True)

        t = {}
        t["warm_s"], r = timed(doctor, FLOWERS)
        t["warm_label_issues_s"], _ = timed(doctor, FLOWERS, label_issues=True)
        if not a.skip_cold:
            t["cold_s"], _ = timed(doctor, FLOWERS, cache_dir=Path(tmp) / "cold_doctor")
            env = dict(os.environ, EDGECLF_FEATURE_CACHE=str(Path(tmp) / "cold_train"), EDGECLF_PROGRESS="0")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgeclf", "train", str(FLOWERS), "--out", f"{tmp}/run"], env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t["train_cold_s"] = round(time.perf_counter() - start, 1)
        res["flowers"] = {**t, "near_duplicate_groups": len(r["near_duplicates"]),
                          "outliers": len(r["outliers"]), "exact_groups": len(r["exact_duplicates"])}
        print(json.dumps(res["flowers"]), flush=True)
        sims = []
        for g in r["near_duplicates"]:
            for k, f in enumerate(g["files"]):
                for f2 in g["files"][k + 1:]:
                    sims.append((f, f2, g["min_similarity"]))
        rng = np.random.default_rng(0)
        sample = [sims[i] for i in sorted(rng.choice(len(sims), min(30, len(sims)), replace=False))]
        contact_sheet(sample, BENCH / "doctor_pairs.jpg")
        res["flowers"]["pairs_on_sheet"] = len(sample)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
