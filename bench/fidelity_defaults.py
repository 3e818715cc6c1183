"""Served vs reported accuracy of the new default recipe (issue #17's defaults, checked as issue #12 asks).

    python bench/fidelity_defaults.py RUN0 RUN1 RUN2 RUN3 [--out bench/fidelity_defaults.json]

Each RUN is `edgeclf train flowers --seed S` with no other flags (4 augmented views, hidden 512,
dropout 0.5, squash input). Every run is exported float32, the first also int8, and its test split
is run through edgeclf's LiteRT runtime and through MediaPipe's ImageClassifier fed the whole RGB
image (bench/fidelity.py's measure()).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from fidelity import measure

    from edgeclf.workflows.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/fidelity_defaults.json")
    a = ap.parse_args()
    rows = []
    for k, run in enumerate(a.runs):
        seed = json.loads((run / "manifest.json").read_text())["config"]["seed"]
        for q in ("float32", "int8") if k == 0 else ("float32",):
            row = dict(seed=seed, quantize=q, **measure(export(run, "tflite", q, verbose=False), a.data))
            rows.append(row)
            print(row, flush=True)
    f32 = [r for r in rows if r["quantize"] == "float32"]
    summary = {k: round(statistics.mean(r[k] for r in f32), 4) for k in ("reported_acc", "served_acc")}
    a.out.write_text(json.dumps({"recipe": "defaults: aug_views 4, hidden 512, dropout 0.5, squash", "rows": rows,
                                 "float32_mean": summary,
                                 "command": "python bench/fidelity_defaults.py " + " ".join(sys.argv[1:])},
                                indent=2) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
