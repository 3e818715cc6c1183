"""How many validation images a temperature needs: test ECE after fitting T on random subsets of validation.

    python bench/calibration_few.py [--out bench/calibration_few.json] [--draws 200]

Two runs, trained with --no-calibrate so their raw softmax is kept: flowers (5 classes, 368 validation
photos) and a generated 100-class set (5 shapes x 10 hues x dark/light background, 20 photos a class,
about 2 validation photos a class: the many-class case the old rule, 3 validation images per class,
left uncalibrated). For n validation images drawn at random (200 draws) T is fitted as `train` fits it,
and the test split's ECE (15 bins) is measured. A draw whose n images are all right is not fitted
(`calibrate` refuses it) and keeps the raw ECE. Then the 100-class set is trained with the defaults to
show what `train` now reports.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
FLOWERS = BENCH.parents[1] / "shared" / "datasets" / "flowers"


def many_classes(root: Path, per_class: int = 20) -> Path:
    """100 classes: 5 shapes x 10 hues x dark/light noisy background, 160x120 JPEGs."""
    from PIL import Image, ImageDraw

    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(0)
    hues = [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h / 10, 0.9, 0.9)) for h in range(10)]
    for shape in ("ellipse", "rect", "tri", "star", "cross"):
        for hi, col in enumerate(hues):
            for bg in ("dark", "light"):
                d = root / f"{shape}_{hi}_{bg}"
                d.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    base = int(rng.integers(0, 70) if bg == "dark" else rng.integers(180, 256))
                    noise = Image.effect_noise((160, 120), 40).convert("RGB")
                    img = Image.blend(noise, Image.new("RGB", (160, 120), (base,) * 3), 0.7)
                    dr = ImageDraw.Draw(img)
                    x, y, w = int(rng.integers(10, 90)), int(rng.integers(5, 50)), int(rng.integers(40, 65))
                    if shape == "ellipse":
                        dr.ellipse([x, y, x + w, y + w * 0.8], fill=col)
                    elif shape == "rect":
                        dr.rectangle([x, y, x + w, y + w * 0.7], fill=col)
                    elif shape == "tri":
                        dr.polygon([(x, y + w), (x + w, y + w), (x + w / 2, y)], fill=col)
                    elif shape == "star":
                        dr.polygon([(x + w / 2 + (w / 2 if j % 2 == 0 else w / 5) * math.cos(j * math.pi / 5),
                                     y + w / 2 + (w / 2 if j % 2 == 0 else w / 5) * math.sin(j * math.pi / 5))
                                    for j in range(10)], fill=col)
                    else:
                        dr.rectangle([x + w * 0.35, y, x + w * 0.65, y + w], fill=col)
                        dr.rectangle([x, y + w * 0.35, x + w, y + w * 0.65], fill=col)
                    img.save(d / f"{i:02d}.jpg", quality=88)
    (root / ".complete").write_text("ok")
    return root


def split_probs(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The run's PyTorch probabilities and labels on its val and test splits."""
    from edgeclf.data.dataset import scan
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import predict_files, split_samples
    from edgeclf.artifacts.run import read_split

    rec = read_split(run)
    ds = scan(rec["root"])
    engine = load_engine(run)
    out = {}
    for sp in ("val", "test"):
        samples = split_samples(ds, sp, rec)
        probs, _, good = predict_files(engine, [str(s.path) for s in samples])
        out[sp] = (probs, np.array([s.label for s in samples])[good])
    return out


def subsets(probs: dict[str, tuple[np.ndarray, np.ndarray]], classes: int, draws: int) -> list[dict]:
    """Test ECE after a temperature fitted on n random validation images, for several n."""
    from edgeclf.metrics import expected_calibration_error as ece
    from edgeclf.training.calibrate import calibrate, rescale

    (pv, yv), (pt, yt) = probs["val"], probs["test"]
    raw = ece(yt, pt)
    rng = np.random.default_rng(0)
    rows = []
    for n in (10, 20, 30, 50, 100, len(yv)):
        e = []
        for _ in range(draws if n < len(yv) else 1):
            i = rng.choice(len(yv), n, replace=False)
            # classes=1 lifts the size rule: this measures what a fit on n images gives
            t, _ = calibrate(pv[i], yv[i], 1)
            e.append(raw if t is None else ece(yt, rescale(pt, t)))
        rows.append({"val_images": n, "per_class": round(n / classes, 2), "test_ece_raw": round(raw, 4),
                     "test_ece_mean": round(float(np.mean(e)), 4), "test_ece_p90": round(float(np.quantile(e, 0.9)), 4),
                     "share_worse_than_raw": round(float(np.mean(np.array(e) > raw + 1e-9)), 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    from edgeclf.training.trainer import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "edgeclf-bench-calibration-few"))
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--out", default=str(BENCH / "calibration_few.json"))
    a = ap.parse_args()
    work = Path(a.work)
    m100 = many_classes(work / "many100")
    result: dict = {"command": "python bench/calibration_few.py " + " ".join(sys.argv[1:]), "sets": {}}
    for name, data in (("flowers", FLOWERS), ("many100", m100)):
        run = train(str(data), "efficientnet_lite0", work / f"{name}_raw", calibrate=False, verbose=False,
                    exist_ok=True)
        classes = len((run / "labels.txt").read_text(encoding="utf-8").splitlines())
        print(f"{name}: {classes} classes", flush=True)
        result["sets"][name] = {"classes": classes, "subsets": subsets(split_probs(run), classes, a.draws)}
    run = train(str(m100), "efficientnet_lite0", work / "many100_default", verbose=False, exist_ok=True)
    m = json.loads((run / "metrics.json").read_text())
    result["many100_default_train"] = {"calibration": m["calibration"], "test_accuracy": m["test"]["accuracy"]}
    print(json.dumps(result["many100_default_train"]), flush=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
