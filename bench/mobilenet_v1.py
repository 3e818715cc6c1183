"""MobileNet V1 with ImageNet weights imported from Google's official .tflite files (issue #13).

    python bench/mobilenet_v1.py import   # import time + fidelity of the five files → bench/mobilenet_v1_import.json
    python bench/mobilenet_v1.py sweep    # V1 {0.25,0.5,0.75,1.0} x {128,160,192,224}, float32 + int8 → bench/compare_v1/
    python bench/mobilenet_v1.py recipe --models M --recipes R --seeds N --out FILE
                                          # recipes over seeds: float32 and int8 test accuracy, size

Every part points $EDGECLF_HOME at a folder of links to ../shared/imagenet_tflite, the way a user
who has the files (or is online: the catalogue has their URLs) gets them; nothing is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parents[1] / "shared"
IMAGENET = SHARED / "imagenet_tflite"
FLOWERS = SHARED / "datasets" / "flowers"
FILES = [("mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.25_128"),
         ("mobilenet_v1_0.5_160_quant.tflite", "mobilenet_v1_0.5_160"),
         ("mobilenet_v1_0.75_192_quant.tflite", "mobilenet_v1_0.75_192"),
         ("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "mobilenet_v1_1.0_224"),
         ("mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v2_1.0_224")]
DAISY = 986  # ImageNet "daisy" in the files' 1001 labels


def _home() -> Path:
    home = Path(tempfile.gettempdir()) / "edgeclf-bench-v1-home"
    (home / "weights").mkdir(parents=True, exist_ok=True)
    for f in IMAGENET.glob("*.tflite"):
        link = home / "weights" / f.name
        if not link.exists():
            link.symlink_to(f)
    os.environ["EDGECLF_HOME"] = str(home)
    return home


def _file_outputs(path: Path, x: np.ndarray, head: Path | None) -> np.ndarray:
    """The file's own (dequantized) outputs on uint8 images; the extractor is chained into its head file."""
    from ai_edge_litert.interpreter import Interpreter

    def run(p: Path, batch: np.ndarray) -> np.ndarray:
        it = Interpreter(str(p), num_threads=2)
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        out = []
        for img in batch:
            it.set_tensor(i["index"], img[None])
            it.invoke()
            s, z = o["quantization"]
            out.append((it.get_tensor(o["index"])[0].astype(np.float32) - z) * s)
        return np.stack(out).reshape(len(batch), -1), i

    y, _ = run(path, x)
    if head is not None:  # extractor → head file, requantized to the head's input parameters
        s, z = Interpreter(str(head)).get_input_details()[0]["quantization"]
        q = np.clip(np.round(y / s + z), 0, 255).astype(np.uint8).reshape(len(x), 1, 1, -1)
        y, _ = run(head, q)
    return y


def cmd_import(a: argparse.Namespace) -> dict:
    """Import time and fidelity (top-1 agreement with the file itself, ImageNet daisy top-1) per file."""
    import torch

    from edgeclf.data.images import load_rgb
    from edgeclf.models.builder import Classifier
    from edgeclf.models.preprocess import Preprocess
    from edgeclf.models.pretrained import build_pretrained
    from edgeclf.models.zoo import get_spec

    home = _home()
    files = sorted(p for p in (FLOWERS / "daisy").iterdir() if p.suffix == ".jpg")[:a.images]
    rows = []
    for fname, name in FILES:
        spec = get_spec(name)
        weights = "imagenet" if "v1" in name else str(home / "weights" / fname)
        t = time.perf_counter()
        p = build_pretrained(spec, weights, imagenet_head=True)
        t_import = time.perf_counter() - t
        model = Classifier(p.backbone, 1001, 0.0).eval()
        model.head[-1].load_state_dict(p.head)
        pre = Preprocess(spec.preprocess.size, (128.0,) * 3, (128.0,) * 3, resize="crop")
        x = np.stack([pre.to_uint8(load_rgb(f)) for f in files])
        head = home / "weights" / "mobilenet_quant_v1_224_head_layers.tflite" if "extractor" in fname else None
        y_file = _file_outputs(home / "weights" / fname, x, head)
        with torch.inference_mode():
            y_ours = model(p.spec.preprocess.normalize(x)).numpy()
        row = {"file": fname, "model": name, "import_s": round(t_import, 3), "images": len(files),
               "top1_agreement": round(float((y_file.argmax(1) == y_ours.argmax(1)).mean()), 4),
               "daisy_top1_file": round(float((y_file.argmax(1) == DAISY).mean()), 4),
               "daisy_top1_imported": round(float((y_ours.argmax(1) == DAISY).mean()), 4),
               "padding": p.spec.arch.pad, "normalization": [p.spec.preprocess.mean[0], p.spec.preprocess.std[0]]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"rows": rows}


def cmd_sweep(a: argparse.Namespace) -> dict:
    """`edgeclf compare` over the 16 V1 variants, float32 + int8, head-only defaults."""
    from edgeclf.workflows.compare import compare

    _home()
    models = [f"mobilenet_v1_{w}_{r}" for w in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 192, 224)]
    t = time.perf_counter()
    rows = compare(str(FLOWERS), models, ["float32", "int8"], BENCH / "compare_v1", runs=a.runs)
    return {"wall_s": round(time.perf_counter() - t, 1), "rows": rows}


RECIPES = {
    "head": {},
    "aug4": {"aug_views": 4},
    "aug4_ft2": {"aug_views": 4, "fine_tune": 2},
    "aug4_ft4": {"aug_views": 4, "fine_tune": 4},
    "aug4_ftall6": {"aug_views": 4, "fine_tune": "all", "fine_tune_epochs": 6},
}


def cmd_recipe(a: argparse.Namespace) -> dict:
    """Test accuracy of recipes (float32 and int8 files, LiteRT) over seeds, for the issue's two targets."""
    from edgeclf.workflows.export import export
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train

    _home()
    out = Path(a.runs_dir)
    rows = []
    for model in a.models.split(","):
        for recipe in a.recipes.split(","):
            for seed in range(a.seeds):
                run = out / f"{model}_{recipe}_s{seed}"
                t = time.perf_counter()
                run = train(str(FLOWERS), model, run, seed=seed, verbose=False, exist_ok=True, **RECIPES[recipe])
                t_train = time.perf_counter() - t
                row = {"model": model, "recipe": recipe, "seed": seed, "train_s": round(t_train, 1)}
                for q in ("float32", "int8"):
                    f = export(run, quantize=q, verbose=False)
                    row[f"test_{q}"] = evaluate(f, str(FLOWERS), verbose=False)["accuracy"]
                    row[f"size_mb_{q}"] = round(f.stat().st_size / 1e6, 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = []
    for model in a.models.split(","):
        for recipe in a.recipes.split(","):
            rs = [r for r in rows if r["model"] == model and r["recipe"] == recipe]
            s = {"model": model, "recipe": recipe, "seeds": len(rs)}
            for q in ("float32", "int8"):
                v = [r[f"test_{q}"] for r in rs]
                s[f"{q}_mean"] = round(statistics.mean(v), 4)
                s[f"{q}_std"] = round(statistics.stdev(v), 4) if len(v) > 1 else 0.0
            s["int8_drop_points"] = round(100 * (s["float32_mean"] - s["int8_mean"]), 2)
            summary.append(s)
            print(json.dumps(s), flush=True)
    return {"rows": rows, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("import")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--out", default=str(BENCH / "mobilenet_v1_import.json"))
    p = sub.add_parser("sweep")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", default=str(BENCH / "compare_v1" / "sweep.json"))
    p = sub.add_parser("recipe")
    p.add_argument("--models", default="mobilenet_v1_0.5_224,mobilenet_v1_0.25_128")
    p.add_argument("--recipes", default="head,aug4_ft2")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--runs-dir", default=str(Path(tempfile.gettempdir()) / "edgeclf-bench-v1-runs"))
    p.add_argument("--out", default=str(BENCH / "mobilenet_v1_recipe.json"))
    a = ap.parse_args()
    if not FLOWERS.is_dir() or not IMAGENET.is_dir():
        sys.exit("needs ../shared/datasets/flowers and ../shared/imagenet_tflite")
    result = {"import": cmd_import, "sweep": cmd_sweep, "recipe": cmd_recipe}[a.cmd](a)
    result["command"] = "python bench/mobilenet_v1.py " + " ".join(sys.argv[1:])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
