"""Deployment fidelity: the accuracy edgeclf reports vs the accuracy MediaPipe's ImageClassifier serves.

    python bench/fidelity.py [--models efficientnet_lite0,mobilenet_v2_1.0_224] [--seeds 0,1,2,3]
                             [--recipes head,aug4] [--int8-seeds 0] [--out bench/fidelity.json]

For every model x recipe (head = linear head, the defaults before issue #17; aug4 = the same with
--aug-views 4; default = today's defaults: 4 views, hidden 512, dropout 0.5) x resize mode (squash, crop) x seed:
train on ../shared/datasets/flowers, export float32 (and int8 for --int8-seeds), and run the test
split through edgeclf's LiteRT runtime (the number `edgeclf evaluate` reports) and through
MediaPipe Tasks' ImageClassifier fed the whole RGB image, as an app does. Crop-mode files are served
twice: with the centre region of interest the README tells an app to pass, and without it (an app
that ignores the mode). Results are appended to --out as they come; a rerun skips finished cells.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cell(model: str, recipe: str, resize: str, seed: int, quantize: str) -> str:
    return f"{model}|{recipe}|{resize}|{seed}|{quantize}"


def measure(tfl: Path, data: str) -> dict:
    """Reported (LiteRT) and served (MediaPipe) test accuracy of one exported file, with their agreement."""
    import numpy as np

    from edgeclf.data.dataset import scan
    from edgeclf.runtime.evaluate import _run_dir, _split_record, client_engine, client_predict

    engine, _ = client_engine(tfl, "litert")
    rec = _split_record(_run_dir(engine))
    ds = scan(data, float(rec.get("val_percent", 10.0)), float(rec.get("test_percent", 10.0)))
    test = ds.recorded("test", rec)  # the run's own test list, as `edgeclf evaluate` reads it
    paths = [str(s.path) for s in test]
    y = np.array([engine.labels.index(ds.classes[s.label]) for s in test])
    lite, _, _ = client_predict(engine, "litert", paths)
    row = {"n": len(paths), "reported_acc": round(float((lite.argmax(1) == y).mean()), 4)}
    for name, roi in (("served", True), ("served_no_roi", False)):
        if name == "served_no_roi" and engine.preprocess.resize != "crop":
            continue
        mp, _, _ = client_predict(engine, "mediapipe", paths, roi=roi)
        row[f"{name}_acc"] = round(float((mp.argmax(1) == y).mean()), 4)
        row[f"{name}_agreement"] = round(float((mp.argmax(1) == lite.argmax(1)).mean()), 4)
        row[f"{name}_max_dprob"] = round(float(np.abs(mp - lite).max()), 4)
    return row


def table(rows: list[dict]) -> str:
    """Markdown: mean ± std over seeds of reported / served accuracy, and the worst agreement, per cell group."""
    import statistics as st

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["recipe"], r["resize"], r["quantize"]), []).append(r)

    def ms(vals: list[float]) -> str:
        return f"{st.mean(vals):.4f} ± {st.stdev(vals):.4f}" if len(vals) > 1 else f"{vals[0]:.4f}"

    out = ["| model | recipe | resize | quantize | seeds | edgeclf reports | MediaPipe serves (as README) "
           "| MediaPipe, app ignores mode | agreement MediaPipe vs LiteRT (min) | max \\|Δp\\| |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (model, recipe, resize, q), rs in groups.items():
        no_roi = [r["served_no_roi_acc"] for r in rs if "served_no_roi_acc" in r]
        out.append(f"| {model} | {recipe} | {resize} | {q} | {len(rs)} | {ms([r['reported_acc'] for r in rs])} "
                   f"| {ms([r['served_acc'] for r in rs])} | {ms(no_roi) if no_roi else 'same'} "
                   f"| {min(r['served_agreement'] for r in rs):.4f} | {max(r['served_max_dprob'] for r in rs):.4f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--models", default="efficientnet_lite0,mobilenet_v2_1.0_224")
    ap.add_argument("--recipes", default="head,aug4")
    ap.add_argument("--modes", default="squash,crop")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--int8-seeds", default="0", help="seeds whose runs are also exported as int8")
    ap.add_argument("--runs", default=str(ROOT / "runs/fidelity"))
    ap.add_argument("--out", default=str(ROOT / "bench/fidelity.json"))
    ap.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(Path(a.out).read_text())))
        return
    os.environ.setdefault("EDGECLF_PROGRESS", "0")
    from edgeclf.workflows.export import export
    from edgeclf.training.trainer import train

    out = Path(a.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    done = {r["cell"] for r in rows}
    # Pinned: train()'s defaults changed under issue #17 (head/aug4 rows were measured with a linear head).
    recipes = {"head": {"aug_views": 0, "hidden": 0, "dropout": 0.2}, "aug4": {"aug_views": 4, "hidden": 0, "dropout": 0.2},
               "default": {"aug_views": 4, "hidden": 512, "dropout": 0.5}}
    int8_seeds = {int(s) for s in a.int8_seeds.split(",") if s}
    for model in a.models.split(","):
        for recipe in a.recipes.split(","):
            for resize in a.modes.split(","):
                for seed in (int(s) for s in a.seeds.split(",")):
                    quants = ["float32"] + (["int8"] if seed in int8_seeds else [])
                    if all(_cell(model, recipe, resize, seed, q) in done for q in quants):
                        continue
                    run = Path(a.runs) / f"{model}_{recipe}_{resize}_s{seed}"
                    t = time.perf_counter()
                    if not (run / "metrics.json").is_file():
                        train(a.data, model, run, resize=resize, seed=seed, verbose=False, exist_ok=True,
                              **recipes[recipe])
                    train_s = time.perf_counter() - t
                    for q in quants:
                        cell = _cell(model, recipe, resize, seed, q)
                        if cell in done:
                            continue
                        tfl = export(run, quantize=q, verbose=False)
                        row = {"cell": cell, "model": model, "recipe": recipe, "resize": resize, "seed": seed,
                               "quantize": q, "train_s": round(train_s, 1), **measure(tfl, a.data)}
                        rows.append(row)
                        done.add(cell)
                        out.write_text(json.dumps(rows, indent=1) + "\n")
                        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
