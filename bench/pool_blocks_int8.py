"""int8 of runs trained with --pool-blocks: each photo's PyTorch vs int8-file answer on validation and test.

    python bench/pool_blocks_int8.py RUN [RUN ...] [--out bench/pool_blocks_int8.json]

RUN is `edgeclf train ../shared/datasets/flowers [--model M] --pool-blocks 2 --seed S`. Each run is exported
int8 by `edgeclf export RUN --quantize int8` unless its export folder already holds the int8 file (then that
file is measured as it is), and scored by edgeclf's LiteRT runtime against the run's PyTorch model on its own
validation and test splits: accuracy of both, and the photos they answer differently.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from edgeclf import evaluate, export
    from edgeclf.artifacts.run import load_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", default=str(ROOT / "bench" / "pool_blocks_int8.json"))
    a = ap.parse_args()
    rows = []
    for run in a.runs:
        _, meta = load_run(run)
        f = run / "export" / f"{meta['model']}_int8.tflite"
        t = time.perf_counter()
        if not f.is_file():
            f = export(run, "tflite", "int8", verbose=False)
        row = {"run": str(run), "model": meta["model"], "pool_blocks": meta["head"].get("pool_blocks", 0),
               "export_s": round(time.perf_counter() - t, 1), "size_mb": round(f.stat().st_size / 1e6, 3)}
        for split in ("val", "test"):
            m = evaluate(f, split=split, verbose=False)
            row[split] = {"n": m["n"], "float": m["pytorch_accuracy"], "int8": round(m["accuracy"], 4),
                          "disagree": round((1 - m["top1_agreement_with_pytorch"]) * m["n"])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for model in sorted({r["model"] for r in rows}):
        rs = [r for r in rows if r["model"] == model]
        summary[model] = {sp: {"float": round(statistics.mean(r[sp]["float"] for r in rs), 4),
                               "int8": round(statistics.mean(r[sp]["int8"] for r in rs), 4),
                               "disagree": sum(r[sp]["disagree"] for r in rs), "n": sum(r[sp]["n"] for r in rs)}
                          for sp in ("val", "test")}
        print(model, summary[model], flush=True)
    Path(a.out).write_text(json.dumps({"rows": rows, "summary": summary,
                                       "command": "python bench/pool_blocks_int8.py " + " ".join(sys.argv[1:])},
                                      indent=1) + "\n")


if __name__ == "__main__":
    main()
