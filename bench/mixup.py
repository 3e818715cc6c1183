"""Scout (issue #17): feature-level mixup of the default head, chosen on validation.

    python bench/mixup.py [--seeds 0,1,2,3] [--alphas 0,0.2,0.4] [--out bench/mixup.json]

The issue names "feature-level mixup" among the levers for better defaults. Each arm is the
default recipe (Lite0, 4 cached augmented views, hidden 512, dropout 0.5) with the head's
batches mixed as x = l·x_i + (1-l)·x_j, loss = l·CE(y_i) + (1-l)·CE(y_j), l ~ Beta(a, a)
(HeadConfig.mixup; a = 0 is today's default). Mixup regularizes more than dropout alone, so each
alpha also runs with 60 epochs (patience 20). Warm feature cache; ranked by validation mean,
test shown, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--alphas", default="0,0.2,0.4")
    ap.add_argument("--epochs", default="30,60")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeclf-bench-mixup")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "mixup.json")
    a = ap.parse_args()
    import edgeclf
    from edgeclf.training import head, trainer

    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    for epochs in (int(e) for e in a.epochs.split(",")):
        for alpha in (float(x) for x in a.alphas.split(",")):
            # The head's config is built inside train(); the scout sets mixup on it there.
            trainer.HeadConfig = lambda **kw: replace(head.HeadConfig(**kw), mixup=alpha)  # noqa: B023
            val, test, wall = [], [], []
            for seed in seeds:
                t = time.perf_counter()
                run = edgeclf.train(a.data, a.model, out=a.work / f"e{epochs}-a{alpha}-s{seed}", seed=seed,
                                    epochs=epochs, patience=10 if epochs <= 30 else 20, verbose=False,
                                    exist_ok=True)
                wall.append(round(time.perf_counter() - t, 1))
                m = json.loads((run / "metrics.json").read_text())
                val.append(m["val"]["accuracy"])
                test.append(m["test"]["accuracy"])
            rows.append({"alpha": alpha, "epochs": epochs, "val": {"mean": round(st.mean(val), 4), "values": val},
                         "test": {"mean": round(st.mean(test), 4), "std": round(st.stdev(test), 4) if len(test) > 1
                                  else 0.0, "values": test}, "wall_s": wall})
            print(f"alpha {alpha:<4} epochs {epochs}: val {rows[-1]['val']['mean']:.4f}  test "
                  f"{rows[-1]['test']['mean']:.4f} ± {rows[-1]['test']['std']:.4f}  wall {wall}", flush=True)
    rows.sort(key=lambda r: -r["val"]["mean"])
    a.out.write_text(json.dumps({"data": a.data, "model": a.model, "seeds": seeds, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
