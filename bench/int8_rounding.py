"""int8 weights rounded by GPTQ instead of to the nearest step, and ReLU6 channels scaled to fill int8
(issue #14, part 1): agreement with float.

    python bench/int8_rounding.py RUN [RUN ...] [--roundings nearest,gptq,gptq+scaled,gptq+scaled+window]
                                  [--out FILE]
    python bench/int8_rounding.py --table bench/int8_rounding.json

For every run (`edgeclf train flowers [--model M] --seed S`, defaults otherwise) the int8 file is
written as `edgeclf export RUN --quantize int8` writes it ("gptq+scaled": ReLU6 channels scaled,
edgeclf/exporting/equalize.py, then GPTQ rounding, edgeclf/exporting/rounding.py), with GPTQ alone
("gptq"), with GPTQ within the activations' windows ("+window"; `export` keeps it where it agrees
better with float on validation: the table's "chosen on validation" rows) and with ai-edge-quantizer's
nearest rounding alone ("nearest"), all calibrated on the
same 100 training images and timed (conversion + rounding + quantization, without export's int8
check); each file is measured on the run's test and validation splits
(accuracy, top-1 agreement with the PyTorch model) through edgeclf's LiteRT runtime, and timed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def measure(run: Path, data: str, roundings: list[str]) -> list[dict]:
    """Each of `roundings` of one run's int8 file: export time, size, latency, accuracy and agreement per split."""
    import numpy as np

    from edgeclf.artifacts.run import load_run, read_split, run_preprocess
    from edgeclf.data.dataset import scan
    from edgeclf.exporting.exporter import calibration_images, export
    from edgeclf.exporting.rounding import forget_copies
    from edgeclf.exporting.tflite import to_tflite
    from edgeclf.runtime.benchmark import benchmark_file
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import evaluate, predict_files

    model, meta = load_run(run)
    pre = run_preprocess(meta, run)
    dest = run / "export" / "bench_rounding_int8.tflite"
    calib = calibration_images(run, pre, 100)  # what export calibrates on
    rec = read_split(run)
    ds = scan(data, rec["val_percent"], rec["test_percent"])
    paths = {split: [str(s.path) for s in ds.recorded(split, rec)] for split in ("test", "val")}
    torch_engine = load_engine(run)
    ref = {split: predict_files(torch_engine, p, desc="PyTorch")[0] for split, p in paths.items()}
    rows = []
    for rounding in roundings:
        export(run, "tflite", "int8", dest, verbose=False)  # its sidecar is what evaluate reads; the file:
        forget_copies()  # export's own call above rounded this model: time the rounding too
        t = time.perf_counter()
        to_tflite(model, pre, dest, "int8", labels=list(meta["classes"]), calibration=calib,
                  score_threshold=meta.get("score_threshold"), gptq=rounding != "nearest",
                  equalize="scaled" in rounding, window="window" in rounding)
        export_s = time.perf_counter() - t
        row = {"model": meta["model"], "seed": json.loads((run / "manifest.json").read_text())["config"]["seed"],
               "rounding": rounding, "export_s": round(export_s, 1), "size_mb": round(dest.stat().st_size / 1e6, 3),
               "p50_ms_1thread": benchmark_file(dest, threads=1, runs=100)["p50_ms"]}
        for split in ("test", "val"):
            m = evaluate(dest, data, split=split, verbose=False)
            row[f"{split}_float"] = m["pytorch_accuracy"]
            row[f"{split}_int8"] = round(m["accuracy"], 4)
            row[f"{split}_agreement"] = m["top1_agreement_with_pytorch"]
            row[f"{split}_n"] = m["n"]
            row[f"{split}_max_prob_diff"] = m["max_abs_prob_diff_vs_pytorch"]
            probs = predict_files(load_engine(dest), paths[split], desc="int8")[0]
            row[f"{split}_mean_prob_diff"] = round(float(np.abs(probs - ref[split]).mean()), 5)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def chosen(rows: list[dict], plain: str = "gptq+scaled", window: str = "gptq+scaled+window") -> list[dict]:
    """Per run, the file export keeps (workflows/export.py): the rounding closer to float on validation (top-1
    agreement, then mean probability error); only for a file within --max-drop (the default) that disagreed with
    float on validation at all."""
    from edgeclf.workflows.export import DEFAULT_MAX_DROP, closer_to_float, second_rounding_tried

    out = []
    for r in rows:
        if r["rounding"] != plain:
            continue
        w = next((x for x in rows if x["rounding"] == window and (x["model"], x["seed"]) == (r["model"], r["seed"])),
                 None)
        if w is not None:
            within = 100 * (r["val_float"] - r["val_int8"]) <= DEFAULT_MAX_DROP
            better = second_rounding_tried(within, r["val_agreement"]) and closer_to_float(
                w["val_agreement"], w["val_mean_prob_diff"], r["val_agreement"], r["val_mean_prob_diff"])
            out.append({**(w if better else r), "rounding": "chosen on validation"})
    return out


def table(rows: list[dict]) -> str:
    """Markdown: per model and rounding, means over seeds (min agreement in brackets), disagreements in all."""
    import statistics as st

    from int8_float_ops import agreement_cells, by

    rows = rows + chosen(rows)
    out = ["| model | rounding | seeds | export s | p50 ms (1 thread) | test float | test int8 | points lost | "
           "test agreement (min) | val agreement (min) | photos answered differently, test + val | "
           "mean abs. prob. error, test / val |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, rounding), rs in by(rows, "model", "rounding").items():
        m = lambda key: st.mean(r[key] for r in rs)  # noqa: E731
        wrong = sum(round((1 - r[f"{s}_agreement"]) * r[f"{s}_n"]) for r in rs for s in ("test", "val"))
        seen = sum(r[f"{s}_n"] for r in rs for s in ("test", "val"))
        out.append(f"| {model} | {rounding} | {len(rs)} | {m('export_s'):.1f} | {m('p50_ms_1thread'):.2f} | "
                   f"{m('test_float'):.4f} | {m('test_int8'):.4f} | {agreement_cells(rs)} | {wrong} of {seen} | "
                   f"{m('test_mean_prob_diff'):.4f} / {m('val_mean_prob_diff'):.4f} |")
    return "\n".join(out)


def main() -> None:
    """Measure the runs given, or print the table of a results file."""
    from int8_float_ops import args_or_table

    a = args_or_table(__doc__, table, "int8_rounding.json", roundings="nearest,gptq,gptq+scaled")
    if a is None:
        return
    rows = [r for run in a.runs for r in measure(run, a.data, a.roundings.split(","))]
    a.out.write_text(json.dumps({"command": "python bench/int8_rounding.py " + " ".join(sys.argv[1:]),
                                 "rows": rows}, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
