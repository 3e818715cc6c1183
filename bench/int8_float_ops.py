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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def by(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    """The rows (one per run) grouped by the values of `keys`, in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def agreement_cells(rs: list[dict]) -> str:
    """'points lost | test agreement (min) | val agreement (min)' of one group's runs, as table cells."""
    import statistics as st

    def m(key: str) -> float:
        return st.mean(r[key] for r in rs)

    return (f"{100 * (m('test_float') - m('test_int8')):+.2f} | {m('test_agreement'):.4f} "
            f"({min(r['test_agreement'] for r in rs):.4f}) | {m('val_agreement'):.4f} "
            f"({min(r['val_agreement'] for r in rs):.4f})")


def table(rows: list[dict]) -> str:
    """Markdown: per model and number of float ops, means over seeds (agreement min in brackets)."""
    import statistics as st

    out = ["| model | ops in float | seeds | MB | p50 ms (1 thread) | test float | test int8 (MediaPipe) | "
           "points lost | test agreement (min) | val agreement (min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (model, k), rs in by(rows, "model", "keep_float").items():
        m = lambda key: st.mean(r[key] for r in rs)  # noqa: E731
        ops = ", ".join(rs[0]["float_ops"]) if len({tuple(r["float_ops"]) for r in rs}) == 1 else f"top {k} (per run)"
        out.append(f"| {model} | {ops or 'none'} | {len(rs)} | {m('size_mb'):.3f} | {m('p50_ms_1thread'):.2f} | "
                   f"{m('test_float'):.4f} | {m('test_int8'):.4f} ({m('test_served_mediapipe'):.4f}) | "
                   f"{agreement_cells(rs)} |")
    return "\n".join(out)


def args_or_table(doc: str, table_of: Any, out: str, keep: bool = False,
                  roundings: str | None = None) -> argparse.Namespace | None:
    """`--table FILE`: print that results file's table and give None; else parse the runs, --data, --out
    (and --keep or --roundings, where a default is given)."""
    if "--table" in sys.argv:
        print(table_of(json.loads(Path(sys.argv[sys.argv.index("--table") + 1]).read_text())["rows"]))
        return None
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    if keep:
        ap.add_argument("--keep", default="0,1,3", help="numbers of top-ranked ops kept in float")
    if roundings:
        ap.add_argument("--roundings", default=roundings, help="int8 files to write, of " + roundings)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / out)
    return ap.parse_args()


def main() -> None:
    """Measure the runs given, or print the table of a results file."""
    a = args_or_table(__doc__, table, "int8_float_ops.json", keep=True)
    if a is None:
        return
    from fidelity import measure

    from edgeclf.exporting.exporter import export, layers_report
    from edgeclf.exporting.int8_layers import read_report, worst
    from edgeclf.runtime.benchmark import benchmark_file
    from edgeclf.runtime.evaluate import evaluate

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
