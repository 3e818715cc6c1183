"""How low can test ECE go on 373 photos? The ECE a perfectly calibrated model would show (issue #14, part 2).

    python bench/ece_floor.py RUN [RUN ...] [--draws 2000] [--out bench/ece_floor.json]

For each run (bench/calibration.py's, temperature already folded in), the PyTorch model's test
probabilities p are computed once; then labels are drawn from p itself (a world where the model is
perfectly calibrated by construction) and the 15-bin ECE of p against them is measured, `--draws`
times. Its mean is the ECE that sampling alone produces at this test-set size: a measured ECE near
it cannot be told apart from perfect calibration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from edgeclf.data.dataset import scan
    from edgeclf.metrics import expected_calibration_error
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import _split_record, predict_files

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/ece_floor.json")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for run in a.runs:
        engine = load_engine(run)
        rec = _split_record(engine)
        ds = scan(a.data, float(rec.get("val_percent", 10.0)), float(rec.get("test_percent", 10.0)))
        test = ds.recorded("test", rec)
        y = np.array([engine.labels.index(ds.classes[s.label]) for s in test])
        p, _, _ = predict_files(engine, [str(s.path) for s in test])
        p = p.astype(np.float64) / p.sum(1, keepdims=True)
        cum = p.cumsum(1)
        sims = [expected_calibration_error((rng.random((len(p), 1)) > cum).sum(1), p) for _ in range(a.draws)]
        row = {"run": str(run), "n": len(y), "measured_ece": round(expected_calibration_error(y, p), 4),
               "perfect_ece_mean": round(float(np.mean(sims)), 4),
               "perfect_ece_p95": round(float(np.percentile(sims, 95)), 4),
               "share_of_perfect_draws_over_0.02": round(float(np.mean(np.array(sims) > 0.02)), 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {k: round(statistics.mean(r[k] for r in rows), 4) for k in rows[0] if k not in ("run", "n")}
    print(json.dumps(summary))
    a.out.write_text(json.dumps({"command": "python bench/ece_floor.py " + " ".join(sys.argv[1:]), "rows": rows,
                                 "mean": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
