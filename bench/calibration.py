"""Temperature scaling on flowers (issue #14, part 2): test ECE before/after, over seeds.

    python bench/calibration.py [--models efficientnet_lite0,mobilenet_v2_1.0_224] [--seeds 4]

Default recipe (head on cached features, squash), the temperature fitted on the validation split
by `edgeclf train` itself; the exported int8 file's ECE is measured by `evaluate` on the same
test photos (so the figure is the file's, not only the PyTorch model's).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FLOWERS = BENCH.parents[1] / "shared" / "datasets" / "flowers"


def main() -> None:
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0,mobilenet_v2_1.0_224")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--runs", default=str(Path(tempfile.gettempdir()) / "edgeclf-bench-calibration"))
    ap.add_argument("--out", default=str(BENCH / "calibration.json"))
    a = ap.parse_args()
    rows = []
    for model in a.models.split(","):
        for seed in range(a.seeds):
            t = time.perf_counter()
            run = train(str(FLOWERS), model, Path(a.runs) / f"{model}_s{seed}", seed=seed, verbose=False,
                        exist_ok=True)
            m = json.loads((run / "metrics.json").read_text())
            cal = m["calibration"]
            int8 = evaluate(export(run, quantize="int8", verbose=False), str(FLOWERS), verbose=False)
            row = {"model": model, "seed": seed, "temperature": cal["temperature"],
                   "val_ece_before": cal["ece_before"]["val"], "val_ece_after": cal["ece_after"]["val"],
                   "test_ece_before": cal["ece_before"]["test"], "test_ece_after": cal["ece_after"]["test"],
                   "test_acc": m["test"]["accuracy"], "int8_test_ece": int8["ece"], "int8_test_acc": int8["accuracy"],
                   "wall_s": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = []
    for model in a.models.split(","):
        rs = [r for r in rows if r["model"] == model]
        s = {"model": model, "seeds": len(rs)}
        for k in ("temperature", "test_ece_before", "test_ece_after", "int8_test_ece", "test_acc"):
            v = [r[k] for r in rs]
            s[k] = round(statistics.mean(v), 4)
            s[k + "_std"] = round(statistics.stdev(v), 4) if len(v) > 1 else 0.0
        summary.append(s)
        print(json.dumps(s), flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/calibration.py " + " ".join(sys.argv[1:]),
                                       "rows": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
