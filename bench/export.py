"""Exported .tflite files on ../shared/datasets/flowers: size, agreement with PyTorch, accuracy, MediaPipe, latency.

    python bench/export.py [--data DIR] [--models efficientnet_lite0,mobilenet_v2_1.0_224] [--out bench/export.json]

Trains each model with defaults (head on cached features), exports float32 / float16 / dynamic /
int8 (uint8 I/O), and on the test split measures: file size vs float32, top-1 accuracy, top-1
agreement with the PyTorch run, and that MediaPipe's ImageClassifier returns the same category
names as LiteRT on 40 test photos. Then, in one run with the same interpreter, threads and input,
the batch-1 latency of our MobileNetV2 1.0 224 float32/int8 against
../shared/reference_models/mobilenet_v2_1.0_224_{float32,int8}.tflite (TF 2.21's converter).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUANTS = ("float32", "float16", "dynamic", "int8")


def _mediapipe_names(path: Path, files: list[str]) -> list[str]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=1)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        return [clf.classify(mp.Image.create_from_file(f)).classifications[0].categories[0].category_name
                for f in files]


def main() -> None:
    from edgeclf.data.dataset import scan
    from edgeclf.workflows.export import export
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import predict_files
    from edgeclf.training.trainer import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--models", default="efficientnet_lite0,mobilenet_v2_1.0_224")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "bench/export.json"))
    args = ap.parse_args()
    ds = scan(args.data)
    test = ds.split("test")
    paths, y = [str(s.path) for s in test], np.array([s.label for s in test])
    rows, latency = [], []
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for m in args.models.split(","):
            run = train(args.data, m, f"{tmp}/{m}", verbose=False, cache_dir=f"{tmp}/cache")
            ref, _, good = predict_files(load_engine(run), paths)
            ref_top = ref.argmax(1)
            yy = y[good]
            for q in QUANTS:
                f = export(run, "tflite", q, verbose=False)
                files[(m, q)] = f
                probs, _, _ = predict_files(load_engine(f, threads=2), paths)
                top = probs.argmax(1)
                sub = [paths[i] for i in good[:40]]
                mp_names = _mediapipe_names(f, sub)
                ours = [load_engine(f).labels[t] for t in top[:40]]
                row = {"model": m, "quantize": q, "size_mb": round(f.stat().st_size / 1e6, 3),
                       "size_vs_float32": round(f.stat().st_size / files[(m, "float32")].stat().st_size, 3),
                       "test_acc": round(float((top == yy).mean()), 4),
                       "pytorch_test_acc": round(float((ref_top == yy).mean()), 4),
                       "top1_agreement_with_pytorch": round(float((top == ref_top).mean()), 4),
                       "mediapipe_same_names": f"{sum(a == b for a, b in zip(mp_names, ours))}/{len(sub)}",
                       "mediapipe_correct": f"{sum(n == ds.classes[t] for n, t in zip(mp_names, yy[:40]))}/{len(sub)}"}
                rows.append(row)
                print(json.dumps(row), flush=True)
        refdir = ROOT.parent / "shared/reference_models"
        pairs = [("float32", files.get(("mobilenet_v2_1.0_224", "float32")), refdir / "mobilenet_v2_1.0_224_float32.tflite"),
                 ("int8", files.get(("mobilenet_v2_1.0_224", "int8")), refdir / "mobilenet_v2_1.0_224_int8.tflite")]
        for threads in (1, 2):
            for q, ours, ref in pairs:
                if ours is None or not ref.is_file():
                    continue
                # Alternate, so drift in machine load hits both files alike.
                a, b = benchmark_ref(ours, threads, args.runs), benchmark_ref(ref, threads, args.runs)
                a2, b2 = benchmark_ref(ours, threads, args.runs), benchmark_ref(ref, threads, args.runs)
                a = {k: min(a[k], a2[k]) for k in a}
                b = {k: min(b[k], b2[k]) for k in b}
                r = {"quantize": q, "threads": threads, "ours_p50_ms": a["p50_ms"], "reference_p50_ms": b["p50_ms"],
                     "ours_mean_ms": a["mean_ms"], "reference_mean_ms": b["mean_ms"],
                     "ratio_p50": round(a["p50_ms"] / b["p50_ms"], 3)}
                latency.append(r)
                print(json.dumps(r), flush=True)
        for threads in (1, 2):
            f32 = [r for r in latency if r["threads"] == threads and r["quantize"] == "float32"]
            i8 = [r for r in latency if r["threads"] == threads and r["quantize"] == "int8"]
            if f32 and i8:
                print(json.dumps({"threads": threads, "our_int8_speedup_vs_float32":
                                  round(f32[0]["ours_p50_ms"] / i8[0]["ours_p50_ms"], 2)}))
    Path(args.out).write_text(json.dumps({"exports": rows, "latency_vs_reference": latency}, indent=2) + "\n")


def benchmark_ref(path: Path, threads: int, runs: int) -> dict:
    """Batch-1 latency of any .tflite through edgeclf's own timing loop (set input, invoke)."""
    from edgeclf.runtime.benchmark import benchmark_file

    r = benchmark_file(path, threads, runs, warmup=10)
    return {"p50_ms": r["p50_ms"], "mean_ms": r["mean_ms"]}


if __name__ == "__main__":
    main()
