"""Accuracy by default (issue #17): candidate recipes chosen on validation, and the defaults timed.

    python bench/accuracy.py sweep [--data DIR] [--seeds 0,1,2,3] [--out bench/accuracy_sweep.json]
    python bench/accuracy.py defaults [--data DIR] [--seeds 0,1,2,3] [--out bench/accuracy.json]
    python bench/accuracy.py others [--seeds 0,1,2,3] [--recipes 'A;B'] [--no-flowers] [--sets A,B] [--out bench/accuracy_others.json]
    python bench/accuracy.py defaults --seeds 0 --cold-only --out bench/accuracy_budget10m.json --train-args '--time-budget 10m'

`sweep` trains every candidate recipe of EfficientNet-Lite0 (head variants on cached features:
hidden layer, augmented views, dropout, epochs) for each seed through the Python API on a warm
feature cache and records validation and test accuracy; the table ranks them by **validation**
mean (test is shown, never used to choose). `defaults` runs `edgeclf train DATA` with no flags,
the first seed on an empty feature cache (cold: includes converting the backbone) and every
seed warm, and writes mean ± std test accuracy and wall times beside Model Maker's figure.
`others` checks the old and the new default recipe on datasets built here so flowers is not the
only evidence: 10 generated shape classes (non-square, a third grayscale), a 2-class flowers pair
(daisy vs dandelion), 5 flowers classes as grey photos on a white backdrop ("product shots"),
and MobileNetV2 on flowers.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FLOWERS = ROOT.parent / "shared" / "datasets" / "flowers"
MODEL_MAKER = 0.940  # TFLite Model Maker tutorial, Lite0, 5 epochs, its own 367-photo test split

OLD_DEFAULT = {"aug_views": 0, "hidden": 0, "dropout": 0.2}
CANDIDATES: dict[str, dict] = {
    "head": dict(OLD_DEFAULT),
    "head, hidden 512": {"aug_views": 0, "hidden": 512, "dropout": 0.2},
    "aug 2": {"aug_views": 2, "hidden": 0, "dropout": 0.2},
    "aug 4": {"aug_views": 4, "hidden": 0, "dropout": 0.2},
    "aug 4, hidden 512": {"aug_views": 4, "hidden": 512, "dropout": 0.2},
    "aug 4, hidden 1024": {"aug_views": 4, "hidden": 1024, "dropout": 0.2},
    "aug 4, hidden 512, dropout 0.5": {"aug_views": 4, "hidden": 512, "dropout": 0.5},
    "aug 4, hidden 512, 60 epochs": {"aug_views": 4, "hidden": 512, "dropout": 0.2, "epochs": 60, "patience": 20},
    "aug 4, dropout 0.5, 60 epochs": {"aug_views": 4, "hidden": 0, "dropout": 0.5, "epochs": 60, "patience": 20},
    "aug 8, hidden 512": {"aug_views": 8, "hidden": 512, "dropout": 0.2},
    # Added after the sweep chose the default (accuracy_sweep_dropout.json): its two nearest rivals, at dropout 0.5.
    "aug 4, hidden 1024, dropout 0.5": {"aug_views": 4, "hidden": 1024, "dropout": 0.5},
    "aug 8, hidden 512, dropout 0.5": {"aug_views": 8, "hidden": 512, "dropout": 0.5},
    # 2026-11-28: the default head fed the pooled outputs of the two blocks below the last feature map too.
    "aug 4, hidden 512, dropout 0.5, pool 1": {"aug_views": 4, "hidden": 512, "dropout": 0.5, "pool_blocks": 1},
    "aug 4, hidden 512, dropout 0.5, pool 2": {"aug_views": 4, "hidden": 512, "dropout": 0.5, "pool_blocks": 2},
    "aug 4, hidden 512, dropout 0.5, pool 3": {"aug_views": 4, "hidden": 512, "dropout": 0.5, "pool_blocks": 3},
    # 2026-11-28 (later): the head's settings again, on top of the pooled default.
    **{f"pool 2, {k}": {"aug_views": 4, "hidden": 512, "dropout": 0.5, "pool_blocks": 2, **v} for k, v in {
        "hidden 1024": {"hidden": 1024}, "hidden 256": {"hidden": 256}, "dropout 0.3": {"dropout": 0.3},
        "dropout 0.7": {"dropout": 0.7}, "60 epochs": {"epochs": 60, "patience": 20},
        "smoothing 0.2": {"label_smoothing": 0.2}, "smoothing 0": {"label_smoothing": 0.0},
        "weight decay 1e-2": {"weight_decay": 1e-2}, "lr 3e-4": {"lr": 3e-4}}.items()},
}
for _c in CANDIDATES.values():  # the sweep's recipes fed the head the final features only, whatever the default
    _c.setdefault("pool_blocks", 0)
NEW_DEFAULT = "aug 4, hidden 512, dropout 0.5"  # the sweep's best validation mean (accuracy_sweep.json)


def _stats(xs: list[float]) -> dict:
    return {"mean": round(statistics.mean(xs), 4), "std": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
            "values": xs}


def _cells(data: Path, names: list[str], seeds: list[int], model: str, tmp: str) -> list[dict]:
    """Train each named recipe for each seed; validation and test accuracy, wall time."""
    from edgeclf import train

    rows = []
    for name in names:
        val, test, wall = [], [], []
        for seed in seeds:
            t = time.perf_counter()
            run = train(data, model, out=Path(tmp) / f"{model}-{len(rows)}-{seed}", seed=seed, verbose=False,
                        **CANDIDATES[name])
            wall.append(round(time.perf_counter() - t, 1))
            m = json.loads((run / "metrics.json").read_text())
            val.append(m["val"]["accuracy"])
            test.append(m["test"]["accuracy"])
        rows.append({"data": str(data), "model": model, "recipe": name, "options": CANDIDATES[name],
                     "val": _stats(val), "test": _stats(test), "wall_s": wall})
        print(f"{Path(data).name:<14} {model:<22} {name:<34} val {rows[-1]['val']['mean']:.4f}  "
              f"test {rows[-1]['test']['mean']:.4f} ± {rows[-1]['test']['std']:.4f}  wall {wall}", flush=True)
    return rows


def sweep(a: argparse.Namespace) -> None:
    """Every candidate × seed on a warm cache, ranked by validation mean."""
    names = [n for n in CANDIDATES if not a.only or n in a.only.split(";")]
    with tempfile.TemporaryDirectory() as tmp:
        rows = _cells(a.data, names, a.seeds, a.model, tmp)
    rows.sort(key=lambda r: -r["val"]["mean"])
    Path(a.out).write_text(json.dumps({"data": str(a.data), "seeds": a.seeds, "rows": rows,
                                       "command": "python bench/accuracy.py " + " ".join(sys.argv[1:])}, indent=2) + "\n")


def _shapes(root: Path, per_class: int = 80) -> Path:
    """10 classes of drawn shapes on textured backgrounds, non-square, a third of them grayscale."""
    from PIL import Image, ImageDraw, ImageFilter

    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(0)
    kinds = ["circle", "square", "triangle", "star", "ring", "cross", "ellipse", "diamond", "hexagon", "stripes"]
    for c, kind in enumerate(kinds):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(rng.integers(160, 400)), int(rng.integers(160, 400))
            bg = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
            img = Image.fromarray(bg).resize((w, h), Image.BILINEAR).filter(ImageFilter.GaussianBlur(3))
            d = ImageDraw.Draw(img)
            r = min(w, h) * rng.uniform(0.15, 0.35)
            cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.7)
            col = tuple(int(v) for v in rng.integers(0, 256, 3))
            rot = rng.uniform(0, 2 * np.pi)

            def poly(n: int, radii: list[float]) -> list[tuple[float, float]]:
                return [(cx + radii[k % len(radii)] * np.cos(rot + 2 * np.pi * k / n),
                         cy + radii[k % len(radii)] * np.sin(rot + 2 * np.pi * k / n)) for k in range(n)]

            if kind == "circle":
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
            elif kind == "square":
                d.polygon(poly(4, [r * 1.3]), fill=col)
            elif kind == "triangle":
                d.polygon(poly(3, [r * 1.3]), fill=col)
            elif kind == "star":
                d.polygon(poly(10, [r * 1.3, r * 0.55]), fill=col)
            elif kind == "ring":
                d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col, width=max(3, int(r / 4)))
            elif kind == "cross":
                d.line([(cx - r, cy), (cx + r, cy)], fill=col, width=max(3, int(r / 3)))
                d.line([(cx, cy - r), (cx, cy + r)], fill=col, width=max(3, int(r / 3)))
            elif kind == "ellipse":
                d.ellipse((cx - r * 1.4, cy - r * 0.6, cx + r * 1.4, cy + r * 0.6), fill=col)
            elif kind == "diamond":
                d.polygon([(cx, cy - r * 1.3), (cx + r * 0.7, cy), (cx, cy + r * 1.3), (cx - r * 0.7, cy)], fill=col)
            elif kind == "hexagon":
                d.polygon(poly(6, [r * 1.2]), fill=col)
            else:
                for k in range(-3, 4):
                    d.line([(cx - r + k * r / 3, cy - r), (cx - r + k * r / 3 + r, cy + r)], fill=col, width=4)
            if i % 3 == 0:
                img = img.convert("L")
            img.save(root / kind / f"{kind}_{i:03d}.jpg", quality=90)
    (root / ".complete").write_text("ok")
    return root


def _pair(root: Path) -> Path:
    """daisy vs dandelion from flowers, as symlinks."""
    for c in ("daisy", "dandelion"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((FLOWERS / c).glob("*.jpg")):
            if not (root / c / f.name).exists():
                (root / c / f.name).symlink_to(f)
    return root


def _on_white(root: Path, per_class: int | None = 120) -> Path:
    """5 flowers classes as grey photos shrunk onto a white backdrop at random places ("product shots"); None: all."""
    from PIL import Image

    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(1)
    for c in sorted(d.name for d in FLOWERS.iterdir() if d.is_dir()):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(sorted((FLOWERS / c).glob("*.jpg"))[:per_class]):
            with Image.open(f) as im:
                im = im.convert("L")
                s = rng.uniform(0.4, 0.7) * min(400 / im.width, 300 / im.height)
                im = im.resize((int(im.width * s), int(im.height * s)))
            canvas = Image.new("L", (400, 300), 255)
            canvas.paste(im, (int(rng.integers(0, 400 - im.width + 1)), int(rng.integers(0, 300 - im.height + 1))))
            canvas.save(root / c / f"{c}_{i:03d}.jpg", quality=90)
    (root / ".complete").write_text("ok")
    return root


def _many100(root: Path) -> Path:
    """100 classes (5 shapes × 10 hues × dark/light backdrop, 20 photos each): calibration_few.py's set."""
    from calibration_few import many_classes

    return many_classes(root)


def others(a: argparse.Namespace) -> None:
    """The old and new default recipes on datasets other than flowers, and MobileNetV2 on flowers."""
    work = Path(a.work)
    build = {"shapes10": lambda: _shapes(work / "shapes10"), "flowers_pair": lambda: _pair(work / "flowers_pair"),
             "grey_on_white": lambda: _on_white(work / "grey_on_white"),
             # every flowers photo (3,670) on white: ten times the test photos of the 600-photo set above
             "grey_on_white_full": lambda: _on_white(work / "grey_on_white_full", per_class=None),
             "many100": lambda: _many100(work / "many100")}
    names = a.sets.split(",") if a.sets else ["shapes10", "flowers_pair", "grey_on_white"]
    sets = [(build[n](), a.model) for n in names]
    if not a.no_flowers:
        sets.append((a.data, "mobilenet_v2_1.0_224"))
    recipes = a.recipes.split(";") if a.recipes else ["head", NEW_DEFAULT]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for data, model in sets:
            rows += _cells(data, recipes, a.seeds, model, tmp)
    Path(a.out).write_text(json.dumps({"seeds": a.seeds, "rows": rows, "recipes": {r: CANDIDATES[r] for r in recipes},
                                       "command": "python bench/accuracy.py " + " ".join(sys.argv[1:])}, indent=2) + "\n")


def _export_and_time(run: Path, tmp: Path, env: dict, data: Path) -> dict:
    """int8 exports of the default run and of Model Maker's plain head (same seed, warm): size, p50 latency, test acc."""
    from edgeclf import evaluate, export
    from edgeclf.runtime.benchmark import benchmark_file

    plain = tmp / "plain-head"
    subprocess.run([sys.executable, "-m", "edgeclf", "train", str(data), "--out", str(plain), "--aug-views", "0",
                    "--hidden", "0", "--dropout", "0.2", "--pool-blocks", "0"], check=True, env=env, stdout=subprocess.DEVNULL)
    out = {}
    for name, r in (("default", run), ("plain head", plain)):
        f = export(r, "tflite", "int8", verbose=False)
        out[name] = {"size_mb": round(f.stat().st_size / 1e6, 3),
                     "p50_ms_1t": benchmark_file(f, threads=1, runs=100)["p50_ms"],
                     "test_int8": evaluate(f, str(data), verbose=False, compare_to_run=False)["accuracy"]}
        print(name, out[name], flush=True)
    return out


def defaults(a: argparse.Namespace) -> None:
    """`edgeclf train DATA`, no flags: cold once, then warm for every seed."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGECLF_FEATURE_CACHE=str(Path(tmp) / "cache"), EDGECLF_PROGRESS="0")
        for k, seed in enumerate([a.seeds[0]] + ([] if a.cold_only else a.seeds)):
            out = Path(tmp) / f"run{k}"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgeclf", "train", str(a.data), "--seed", str(seed), "--out",
                            str(out), *a.extra], check=True, env=env, stdout=subprocess.DEVNULL)
            wall = round(time.perf_counter() - t, 1)
            m = json.loads((out / "metrics.json").read_text())
            man = json.loads((out / "manifest.json").read_text())
            runs.append({"seed": seed, "cache": "cold" if k == 0 else "warm", "wall_s": wall,
                         "val": m["val"]["accuracy"], "test": m["test"]["accuracy"],
                         "fine_tune": m.get("fine_tune"),  # which stage a budget run kept, and the val behind it
                         "recipe": man.get("recipe"), "timings_s": man.get("timings_s")})
            print(runs[-1], flush=True)
        files = None if a.extra else _export_and_time(Path(tmp) / "run1", Path(tmp), env, a.data)
    warm = runs[1:] or runs
    result = {"exports": files, "data": str(a.data), "extra_options": a.extra, "cpus": os.cpu_count(), "runs": runs,
              "test": _stats([r["test"] for r in warm]), "val": _stats([r["val"] for r in warm]),
              "cold_wall_s": runs[0]["wall_s"], "warm_wall_s": _stats([r["wall_s"] for r in warm]),
              "model_maker_test": MODEL_MAKER,
              "command": "python bench/accuracy.py " + " ".join(sys.argv[1:])}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"test {result['test']['mean']:.4f} ± {result['test']['std']:.4f}  cold {result['cold_wall_s']} s  "
          f"warm {result['warm_wall_s']['mean']} s  (Model Maker {MODEL_MAKER})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("sweep", "defaults", "others"))
    ap.add_argument("--model", default="efficientnet_lite0", help="sweep, others: the backbone (others: on the built datasets)")
    ap.add_argument("--work", default="/tmp/edgeclf-accuracy", help="others: where the built datasets go")
    ap.add_argument("--data", type=Path, default=FLOWERS)
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2, 3])
    ap.add_argument("--only", help="sweep: candidate names separated by ';'")
    ap.add_argument("--recipes", help="others: the recipes compared, names separated by ';' (default: head and "
                    "the default)")
    ap.add_argument("--no-flowers", action="store_true", help="others: leave out MobileNetV2 on flowers")
    ap.add_argument("--sets", help="others: built datasets, comma-separated, from shapes10, flowers_pair, "
                    "grey_on_white, grey_on_white_full, many100 (default: the first three)")
    ap.add_argument("--cold-only", action="store_true", help="defaults: the cold run only")
    ap.add_argument("--out")
    ap.add_argument("--train-args", default="", help="defaults: options added to `edgeclf train`, e.g. '--time-budget 10m'")
    a = ap.parse_args()
    a.extra = shlex.split(a.train_args)
    if not a.data.is_dir():
        raise SystemExit(f"no dataset at {a.data}: pass --data DIR (this benchmark uses ../shared/datasets/flowers)")
    a.out = a.out or str(ROOT / "bench" / {"sweep": "accuracy_sweep.json", "defaults": "accuracy.json",
                                           "others": "accuracy_others.json"}[a.what])
    {"sweep": sweep, "defaults": defaults, "others": others}[a.what](a)


if __name__ == "__main__":
    main()
