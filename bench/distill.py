"""Distillation on flowers (issue #18, part 2): the same student with and without a teacher, over seeds.

    python bench/distill.py [--student mobilenet_v1_0.25_128] [--teacher-model efficientnet_lite2]
                            [--recipe "--aug-views 4 --fine-tune 4"] [--seeds 4] [--weight 0.5] [--temperature 2]
                            [--first-seed 0] [--append] [--out FILE.json]

The teacher is trained once (default recipe, seed 0) unless --teacher RUN_DIR names one. Each
student run is exported to int8 and its test accuracy is measured by MediaPipe's ImageClassifier
on the test photos (the number an app gets), beside the PyTorch float figure `train` reports.
The student's ImageNet weights: the official V1 .tflite from ../shared/imagenet_tflite.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parents[1] / "shared"
FLOWERS = SHARED / "datasets" / "flowers"
V1_FILES = {"0.25": "mobilenet_v1_0.25_128_quant.tflite", "0.5": "mobilenet_v1_0.5_160_quant.tflite",
            "0.75": "mobilenet_v1_0.75_192_quant.tflite"}


def _recipe(text: str) -> dict:
    """'--aug-views 4 --fine-tune 4' → train() keywords."""
    words, kw = shlex.split(text), {}
    for k, v in zip(words[::2], words[1::2]):
        name = k.lstrip("-").replace("-", "_")
        kw[name] = v if name == "fine_tune" else float(v) if "." in v else int(v)
    return kw


def _mean_std(v: list[float]) -> tuple[float, float]:
    return round(statistics.mean(v), 4), round(statistics.stdev(v), 4) if len(v) > 1 else 0.0


def main() -> None:
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="mobilenet_v1_0.25_128")
    ap.add_argument("--teacher-model", default="efficientnet_lite2")
    ap.add_argument("--teacher", default=None, help="an existing teacher run (else one is trained)")
    ap.add_argument("--recipe", default="--aug-views 4 --fine-tune 4", help="the student's train options")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--weight", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--runs", default=str(Path(tempfile.gettempdir()) / "edgeclf-bench-distill"))
    ap.add_argument("--out", default=str(BENCH / "distill.json"))
    ap.add_argument("--append", action="store_true",
                    help="add these seeds' rows to --out (same student, recipe and teacher) and re-summarize")
    a = ap.parse_args()
    runs = Path(a.runs)
    width = a.student.split("_")[2] if a.student.startswith("mobilenet_v1_") else None
    weights = str(SHARED / "imagenet_tflite" / V1_FILES[width]) if width in V1_FILES else "imagenet"
    t = time.perf_counter()
    teacher = Path(a.teacher) if a.teacher else train(str(FLOWERS), a.teacher_model, runs / "teacher",
                                                      verbose=False, exist_ok=True)
    tm = json.loads((teacher / "metrics.json").read_text())
    teacher_row = {"model": tm["model"], "val_acc": tm["val"]["accuracy"], "test_acc": tm["test"]["accuracy"],
                   "train_s": round(time.perf_counter() - t, 1)}
    print(json.dumps({"teacher": teacher_row}), flush=True)
    recipe = _recipe(a.recipe)
    out, rows, commands = Path(a.out), [], []
    if a.append and out.is_file():
        prior = json.loads(out.read_text())
        same = (a.student, a.recipe, a.weight, a.temperature, teacher_row["model"], teacher_row["val_acc"])
        if (prior["student"], prior["recipe"], prior["weight"], prior["temperature"], prior["teacher"]["model"],
                prior["teacher"]["val_acc"]) != same:
            sys.exit(f"{out} holds another student, recipe, loss or teacher: drop --append or pick another --out")
        rows, commands = prior["rows"], prior["command"].split(" && ")
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for taught in (False, True):
            t = time.perf_counter()
            kw = dict(recipe, seed=seed, weights=weights, verbose=False, exist_ok=True)
            if taught:
                kw.update(teacher=teacher, distill_weight=a.weight, distill_temperature=a.temperature)
            run = train(str(FLOWERS), a.student, runs / f"{a.student}_{'taught' if taught else 'alone'}_s{seed}",
                        **kw)
            train_s = time.perf_counter() - t
            m = json.loads((run / "metrics.json").read_text())
            f = export(run, quantize="int8", max_drop=None, verbose=False)  # the drop is measured on test below
            mp = evaluate(f, str(FLOWERS), client="mediapipe", verbose=False)
            row = {"seed": seed, "teacher": taught, "val_acc": m["val"]["accuracy"],
                   "test_acc_float": m["test"]["accuracy"], "test_acc_int8_mediapipe": mp["accuracy"],
                   "size_mb": round(f.stat().st_size / 1e6, 3), "train_s": round(train_s, 1)}
            if taught:
                row["val_acc_head_without_teacher"] = m["distillation"]["val_acc_head_without_teacher"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for taught in (False, True):
        rs = [r for r in rows if r["teacher"] == taught]
        summary["with teacher" if taught else "without"] = {
            k: _mean_std([r[k] for r in rs]) for k in ("val_acc", "test_acc_float", "test_acc_int8_mediapipe")}
    for key, name in (("test_acc_int8_mediapipe", "int8_gain_points"), ("test_acc_float", "float_gain_points")):
        summary[name] = _mean_std([100 * (b[key] - a_[key]) for a_, b in zip(rows[::2], rows[1::2])])
    print(json.dumps(summary), flush=True)
    commands.append("python bench/distill.py " + shlex.join(sys.argv[1:]))
    out.write_text(json.dumps({"command": " && ".join(commands), "student": a.student, "recipe": a.recipe,
                               "weight": a.weight, "temperature": a.temperature, "teacher": teacher_row,
                               "rows": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
