"""int8 with the ops that add the most error kept in float (issue #14, part 1): what each one buys, what it costs.

    python bench/int8_float_ops.py RUN [RUN ...] [--keep 0,1,3] [--out bench/int8_float_ops.json]
    python bench/int8_float_ops.py --table bench/int8_float_ops.json

For every run (`edgeclf train flowers [--model M] --seed S`, defaults otherwise) the int8 file is
exported once with `--report`; its per-layer table ranks the ops, and the file is exported again
with the k top-ranked ops in float, for each k of --keep. Each file is measured on the run's test
and validation splits (accuracy, top-1 agreement with the PyTorch model), served by MediaPipe's
ImageClassifier (bench/fidelity.py's measure()), and timed (p50, 1 thread, 200 runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def table(rows: list[dict]) -> str:
    """Markdown: per model and number of float ops, means over seeds (agreement min in brackets)."""
    import statistics as st

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["keep_float"]), []).append(r)
    out = ["| model | ops in float | seeds | MB | p50 ms (1 thread) | test float | test int8 (MediaPipe) | "
           "points lost | test agreement (min) | val agreement (min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (model, k), rs in groups.items():
        m = lambda key: st.mean(r[key] for r in rs)  # noqa: E731
        ops = ", ".join(rs[0]["float_ops"]) if len({tuple(r["float_ops"]) for r in rs}) == 1 else f"top {k} (per run)"
        out.append(f"| {model} | {ops or 'none'} | {len(rs)} | {m('size_mb'):.3f} | {m('p50_ms_1thread'):.2f} | "
                   f"{m('test_float'):.4f} | {m('test_int8'):.4f} ({m('test_served_mediapipe'):.4f}) | "
                   f"{100 * (m('test_float') - m('test_int8')):+.2f} | {m('test_agreement'):.4f} "
                   f"({min(r['test_agreement'] for r in rs):.4f}) | {m('val_agreement'):.4f} "
                   f"({min(r['val_agreement'] for r in rs):.4f}) |")
    return "\n".join(out)


def main() -> None:
    if "--table" in sys.argv:
        print(table(json.loads(Path(sys.argv[sys.argv.index("--table") + 1]).read_text())["rows"]))
        return
    from fidelity import measure

    from edgeclf.exporting.exporter import export, layers_report
    from edgeclf.exporting.int8_layers import read_report, worst
    from edgeclf.runtime.benchmark import benchmark_file
    from edgeclf.runtime.evaluate import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--keep", default="0,1,3", help="numbers of top-ranked ops kept in float")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/int8_float_ops.json")
    a = ap.parse_args()
    rows = []
    for run in a.runs:
        manifest = json.loads((run / "manifest.json").read_text())
        base = run / "export" / "bench_int8_k0.tflite"
        t = time.perf_counter()
        export(run, "tflite", "int8", base, report=True, verbose=False)
        base_s = time.perf_counter() - t
        ranked = read_report(layers_report(base))
        for k in map(int, a.keep.split(",")):
            keep = worst(ranked, k)
            f = run / "export" / f"bench_int8_k{k}.tflite"
            t = time.perf_counter()
            if k:
                export(run, "tflite", "int8", f, keep_float=[r["tensor"] for r in keep], verbose=False)
            row = {"model": manifest["config"]["model"], "seed": manifest["config"]["seed"], "keep_float": k,
                   "float_ops": [r["layer"] for r in keep],
                   "export_s": round(base_s if not k else time.perf_counter() - t, 1),
                   "size_mb": round(f.stat().st_size / 1e6, 3),
                   "p50_ms_1thread": benchmark_file(f, threads=1, runs=200)["p50_ms"]}
            for split in ("test", "val"):
                m = evaluate(f, a.data, split=split, verbose=False)
                row[f"{split}_float"] = m["pytorch_accuracy"]
                row[f"{split}_int8"] = round(m["accuracy"], 4)
                row[f"{split}_agreement"] = m["top1_agreement_with_pytorch"]
            served = measure(f, a.data)
            row["test_served_mediapipe"] = served["served_acc"]
            row["served_agreement_with_litert"] = served["served_agreement"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    a.out.write_text(json.dumps({"command": "python bench/int8_float_ops.py " + " ".join(sys.argv[1:]),
                                 "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
