"""Peak memory of `edgeclf train` as the dataset grows: 5k, 20k and 50k images (issue #8).

    python bench/scale.py [--model mobilenet_v2_1.0_224] [--sizes 5000,20000,50000] [--work /tmp/edgeclf-scale]

Generates a 10-class dataset of 50,000 JPEGs from ../shared/datasets/flowers (each image a random
crop of a flowers photo, re-coloured by a class-specific tint with jitter; 224 px), makes the 5k
and 20k subsets of it as folders of symlinks, then trains on each with an empty feature cache
(cold: every image decoded and run through the backbone) and once more warm at the largest size.
Each run is a separate `python -m edgeclf train` process; its peak RSS (VmHWM) and the peak of its
whole process tree (decode workers included) are sampled from /proc every 50 ms. The backbone's
.tflite is converted once beforehand and copied into every cache, so the converter's own
(size-independent) peak is reported separately. Writes bench/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FLOWERS = ROOT.parent / "shared" / "datasets" / "flowers"
CLASSES = 10
SIDE = 224


def _tints() -> np.ndarray:
    """One RGB multiplier per class: distinct hues, so the 10 classes are learnable but not trivial."""
    hues = np.arange(CLASSES) / CLASSES * 2 * np.pi
    return 1.0 + 0.35 * np.stack([np.cos(hues), np.cos(hues - 2.094), np.cos(hues + 2.094)], 1)


def _make(job: tuple[str, str, int, int]) -> None:
    src, dst, cls, seed = job
    rng = np.random.default_rng(seed)
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        im = im.crop((left, top, left + side, top + side)).resize((SIDE, SIDE), Image.BILINEAR)
    if rng.random() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    tint = _tints()[cls] * rng.uniform(0.9, 1.1, 3)
    x = np.clip(np.asarray(im, np.float32) * tint, 0, 255).astype(np.uint8)
    Image.fromarray(x).save(dst, quality=88)


def generate(out: Path, n: int, seed: int = 0) -> Path:
    """n images, n / 10 per class, under out/<class>/ (kept if already complete)."""
    from edgeclf.data.parallel import imap
    from edgeclf.progress import bar

    done = out / ".complete"
    if done.is_file() and int(done.read_text()) == n:
        return out
    photos = sorted(p for p in FLOWERS.rglob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos under {FLOWERS}: this benchmark needs ../shared/datasets/flowers")
    rng = np.random.default_rng(seed)
    jobs = []
    for c in range(CLASSES):
        (out / f"class_{c}").mkdir(parents=True, exist_ok=True)
        for j in range(n // CLASSES):
            jobs.append((str(photos[int(rng.integers(len(photos)))]), str(out / f"class_{c}" / f"img_{j:05d}.jpg"),
                         c, int(rng.integers(2**31))))
    pbar = bar(f"generate {n} images", len(jobs), "img")
    for _ in imap(_make, jobs, chunksize=64):
        pbar.update(1)
    pbar.close()
    done.write_text(str(n))
    return out


def subset(full: Path, dest: Path, n: int) -> Path:
    """The first n / 10 images of each class of `full`, as symlinks."""
    if dest.exists():
        shutil.rmtree(dest)
    for c in sorted(d for d in full.iterdir() if d.is_dir()):
        (dest / c.name).mkdir(parents=True)
        for f in sorted(c.iterdir())[:n // CLASSES]:
            (dest / c.name / f.name).symlink_to(f)
    return dest


def _tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(cmd: list[str], log: Path) -> dict:
    """Run cmd; its wall time, main-process peak RSS and peak summed RSS of its process tree (MiB)."""
    t0 = time.perf_counter()
    env = dict(os.environ, EDGECLF_PROGRESS="0")
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        hwm = tree = 0
        while p.poll() is None:
            hwm = max(hwm, _kib(p.pid, "VmHWM"))
            tree = max(tree, sum(_kib(q, "VmRSS") for q in _tree(p.pid)))
            time.sleep(0.05)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}); see {log}")
    return {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(hwm / 1024),
            "peak_tree_rss_mib": round(tree / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mobilenet_v2_1.0_224")
    ap.add_argument("--sizes", default="5000,20000,50000")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgeclf-scale"))
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    full = generate(a.work / "data" / f"n{max(sizes)}", max(sizes))
    train = [sys.executable, "-m", "edgeclf", "train", "--model", a.model, "--epochs", str(a.epochs)]
    # The converter's peak does not depend on the dataset: pay it once, on 100 images, and report it.
    seed_cache = a.work / "cache-seed"
    shutil.rmtree(seed_cache, ignore_errors=True)
    rows = [dict(measure([*train, str(subset(full, a.work / "data" / "n100", 100)), "--cache-dir", str(seed_cache),
                          "--out", str(a.work / "runs" / "n100")], a.work / "n100.log"),
                 images=100, cache="cold, converts the backbone")]
    print(rows[-1], flush=True)
    for n in sizes:
        data = full if n == max(sizes) else subset(full, a.work / "data" / f"n{n}", n)
        cache = a.work / f"cache-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(seed_cache / "backbones", cache / "backbones")
        out = a.work / "runs" / f"n{n}"
        rows.append(dict(measure([*train, str(data), "--cache-dir", str(cache), "--out", str(out)],
                                 a.work / f"n{n}.log"), images=n, cache="cold"))
        metrics = json.loads((out / "metrics.json").read_text())
        rows[-1].update(test_acc=metrics["test"]["accuracy"],
                        cache_mib=round(sum(f.stat().st_size for f in cache.rglob("*.f32")) / 2**20))
        print(rows[-1], flush=True)
    n = max(sizes)
    rows.append(dict(measure([*train, str(full), "--cache-dir", str(a.work / f"cache-{n}"), "--out",
                              str(a.work / "runs" / f"n{n}-warm")], a.work / f"n{n}-warm.log"), images=n, cache="warm"))
    print(rows[-1], flush=True)
    result = {"model": a.model, "epochs": a.epochs, "cpus": os.cpu_count(), "runs": rows,
              "command": "python bench/scale.py " + " ".join(sys.argv[1:])}
    (ROOT / "bench" / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'images':>7} {'cache':>28} {'wall s':>7} {'peak RSS MiB':>13} {'tree RSS MiB':>13}")
    for r in rows:
        print(f"{r['images']:>7} {r['cache']:>28} {r['wall_s']:>7} {r['peak_rss_mib']:>13} {r['peak_tree_rss_mib']:>13}")


if __name__ == "__main__":
    main()
