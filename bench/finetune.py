"""Fine-tuning the top blocks on cached activations vs on the fly, on ../shared/datasets/flowers.

    python bench/finetune.py [--model efficientnet_lite0] [--blocks 3] [--epochs 20] [--seeds 0,1,2,3] [--out bench/finetune.json]

Runs `edgeclf train DATA --model M --aug-views 4 --fine-tune N` for each seed on one fresh feature
cache: the first run is cold (plain + 4 augmented feature views, then the activations entering
the top N units for the same views, all computed), the others re-use the cache. Then one epoch
of the same top N units on the fly (`--fine-tune-on-the-fly --fine-tune-epochs 1`), for the
time per epoch of each way. Wall time is the whole command, start to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str]) -> dict:
    """One `edgeclf train`, timed; the figures from its run directory."""
    out = Path(args[args.index("--out") + 1])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgeclf", "train", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    man = json.loads((out / "manifest.json").read_text())
    return {"test_acc": m["test"]["accuracy"], "val_acc": m["val"]["accuracy"], "wall_s": round(wall, 1),
            "timings_s": man["timings_s"], "fine_tune": m["fine_tune"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--blocks", default="3")
    ap.add_argument("--epochs", default="20", help="--fine-tune-epochs of the cached runs")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--no-on-the-fly", action="store_true", help="skip the on-the-fly epoch")
    ap.add_argument("--out", default=str(ROOT / "bench/finetune.json"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGECLF_FEATURE_CACHE=str(Path(tmp) / "features"), EDGECLF_PROGRESS="0")
        base = [a.data, "--model", a.model, "--aug-views", "4", "--fine-tune", a.blocks]
        cached = [*base, "--fine-tune-epochs", a.epochs]
        for i, seed in enumerate(a.seeds.split(",")):
            row = {"recipe": f"aug-views 4 + fine-tune {a.blocks} (cached activations, {a.epochs} epochs)",
                   "seed": int(seed), "cache": "cold" if i == 0 else "warm",
                   **run([*cached, "--seed", seed, "--out", f"{tmp}/run{seed}"], env)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        if not a.no_on_the_fly:
            row = {"recipe": f"aug-views 4 + fine-tune {a.blocks} on the fly, 1 epoch", "seed": 0, "cache": "warm",
                   **run([*base, "--fine-tune-on-the-fly", "--fine-tune-epochs", "1", "--out", f"{tmp}/fly"], env)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    cached = [r for r in rows if "cached" in r["recipe"]]
    summary = {"model": a.model, "blocks": a.blocks, "epochs": a.epochs,
               "mean_val_acc": round(sum(r["val_acc"] for r in cached) / len(cached), 4), "mean_test_acc": round(sum(r["test_acc"] for r in cached) / len(cached), 4),
               "min_test_acc": min(r["test_acc"] for r in cached), "command": "python bench/finetune.py " + " ".join(sys.argv[1:])}
    print(json.dumps(summary))
    Path(a.out).write_text(json.dumps({"summary": summary, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
