"""The `edgeclf` command line: one sub-command per job."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from . import __version__
from .errors import ConfigError, EdgeclfError
from .training.config import add_arguments as add_train_arguments


def _csv_ints(s: str, option: str = "--threads") -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated whole numbers such as 1,2, got {s!r}") from None


def cmd_doctor(a: argparse.Namespace) -> int:
    from .data.doctor import format_report
    from .workflows.doctor import doctor

    r = doctor(a.data, a.val_percent, a.test_percent, embeddings=a.embeddings, model=a.model,
               label_issues=a.label_issues, folds=a.folds, top=a.top, html=a.html, suggest=a.suggest,
               workers=a.workers)
    print(json.dumps(r, indent=2) if a.json else format_report(r))
    if a.label_issues and not a.json:
        from .workflows.label_issues import format_issues

        print("\n" + format_issues(r["label_issues"]))
    info = sys.stderr if a.json else sys.stdout
    if a.html:
        print(f"report page: {r['html']}", file=info)
    if a.suggest:
        print(f"suggested exclusions: {r['suggested']['count']} file(s) in {a.suggest} (nothing deleted); "
              f"train with --exclude {a.suggest}", file=info)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from .models.zoo import describe, list_models
    from .table import format_table

    if a.weights:
        from .models.pretrained import inspect_tflite

        info = inspect_tflite(a.weights)
        if a.json:
            print(json.dumps(info, indent=2))
            return 0
        fits = (f"fits {', '.join(info['fits'])} (any input size: --model NAME --weights {a.weights})"
                if info["fits"] else "fits no edgeclf architecture (supported: MobileNet V1, V2, EfficientNet-Lite)")
        inp = info["input"]
        norm = f"(x - {inp['mean']:g}) / {inp['std']:g}" if inp["mean"] is not None else "not in the file"
        print(f"{a.weights}: {info['convolutions']} convolutions; {fits}; input {inp['type']} {inp['shape']}, "
              f"normalization {norm}; classifier: {info['classifier_outputs'] or 'none'}")
        return 0
    names = [n for n in list_models() if not a.filter or a.filter in n]
    rows = [describe(n) for n in names]
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(["model", "input", "features", "params (M)", "MACs (M)", "ImageNet weights", "from"],
                           [[r["name"], r["input_size"], r["features"], round(r["params"] / 1e6, 3),
                             round(r["macs"] / 1e6, 1), r["weights"], r["weights_source"]] for r in rows]))
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from .training.config import read_config
    from .training.trainer import train

    options = {k: v for k, v in vars(a).items() if k not in ("data", "out", "exist_ok", "config", "fn", "command")}
    base = read_config(a.config) if a.config else None
    data = a.data or (base or {}).get("data")
    if data is None:
        raise EdgeclfError("train needs DATA (a folder with one sub-folder per class), or --config RUN/manifest.json")
    train(data, out=a.out, config=base, exist_ok=a.exist_ok, **options)
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    from .workflows.compare import compare

    rows = compare(a.data, [m for m in a.models.split(",") if m], [q for q in a.quantize.split(",") if q], a.out,
                   weights=a.weights, threads=_csv_ints(a.threads), runs=a.runs, verbose=not a.json,
                   **({"resize": a.resize} if a.resize else {}))
    if a.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


def cmd_search(a: argparse.Namespace) -> int:
    from .params import parse_duration
    from .workflows.search import search

    r = search(a.data, a.max_latency_ms, a.max_size_mb, a.threads, [q for q in a.quantize.split(",") if q],
               [m for m in a.models.split(",") if m] if a.models else None, a.out, a.finalists,
               parse_duration("--budget", a.budget) if a.budget else None, a.teacher, a.runs, verbose=not a.json)
    if a.json:
        print(json.dumps(r, indent=2))
    return 0 if r["pick"] else 1


def cmd_export(a: argparse.Namespace) -> int:
    from .workflows.export import export

    quants = a.quantize.split(",")
    if a.output and len(quants) > 1:
        raise EdgeclfError("--output names one file; export one --quantize at a time with it, or drop --output")
    for q in quants:
        export(a.run_dir, a.format, q, a.output, io=a.io, calibration_size=a.calibration_size,
               calibration_data=a.calibration_data, max_drop=None if a.no_int8_check else a.max_drop)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .runtime.evaluate import evaluate

    m = evaluate(a.model, a.data, a.split, a.top_k, a.out, a.threads, verbose=not a.json, client=a.client,
                 roi=a.roi)
    if a.json:
        print(json.dumps(m, indent=2))
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .runtime.predict import format_predictions, predict

    rows = predict(a.model, a.images, a.top_k, a.threads)
    print(format_predictions(rows, "json" if a.json else "csv" if a.csv else "text"))
    bad = sum("error" in r for r in rows)
    if bad:
        print(f"{bad} image(s) could not be read and were skipped", file=sys.stderr)
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    from .workflows.benchmark import benchmark

    runtimes = [r for r in a.runtime.split(",") if r] if a.runtime else None
    rows = benchmark(a.models, _csv_ints(a.threads), a.runs, a.warmup, runtimes, verbose=not a.json)
    if a.json:
        print(json.dumps(rows, indent=2))
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    from .runtime.verify import verify

    clients = tuple(c for c in a.clients.split(",") if c) if a.clients else None
    r = verify(a.run_dir, a.data, a.split, clients, a.threads, verbose=not a.json)
    if a.json:
        print(json.dumps(r, indent=2))
    return 1 if r["golden_failed"] else 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .workflows.demo import demo

    demo(a.out, a.model, a.per_class, a.epochs)
    return 0


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-percent", "--validation_percentage", type=float, default=10.0,
                   help="percent of images for validation (default 10)")
    p.add_argument("--test-percent", "--testing_percentage", type=float, default=10.0,
                   help="percent of images for test (default 10)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    ap = argparse.ArgumentParser(prog="edgeclf", description="Turn a folder of images (one sub-folder per class) "
                                 "into a fast, small on-device image classifier.")
    ap.add_argument("--version", action="version", version=f"edgeclf {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        return p

    p = add("doctor", cmd_doctor, "check a dataset: split counts, unreadable files, duplicates, leakage, outliers, imbalance")
    p.add_argument("data", help="dataset folder: DATA/<class>/<images> or DATA/{train,val,test}/<class>/")
    _split_args(p)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--suggest", default=None, metavar="FILE.json",
                   help="write the exclusions the findings support (unreadable files, photos under two classes, "
                        "extra exact copies) for `train --exclude`; no file is ever deleted")
    p.add_argument("--html", default=None, metavar="DIR",
                   help="also write DIR/doctor.html: duplicates side by side, outliers, label suspects, class counts")
    g = p.add_argument_group("backbone features (near-duplicate candidates, outliers, label errors)")
    g.add_argument("--no-embeddings", dest="embeddings", action="store_false",
                   help="hash-only checks: no backbone features, no outliers (faster on a cold cache)")
    g.add_argument("--label-issues", action="store_true",
                   help="rank photos whose label the rest of the data contradicts (k-fold head, needs cleanlab)")
    g.add_argument("--model", default="efficientnet_lite0", help="backbone whose cached features are used")
    g.add_argument("--folds", type=int, default=5, help="out-of-fold folds (default 5)")
    g.add_argument("--top", type=int, default=20, help="suspects listed (default 20)")

    p = add("models", cmd_models, "list every backbone: input size, parameters, MACs, weight availability")
    p.add_argument("filter", nargs="?", default="", help="only names containing this text")
    p.add_argument("--weights", default=None, metavar="FILE.tflite",
                   help="instead of the list: which architectures a .tflite file's weights fit")
    p.add_argument("--json", action="store_true")

    p = add("train", cmd_train, "train a classifier (transfer learning on cached backbone features)")
    p.add_argument("data", nargs="?", default=None, help="DATA/<class>/ images (default with --config: its data)")
    p.add_argument("--out", "-o", default="runs/train",
                   help="run directory; if it holds a run already, the new one goes to OUT2, OUT3, ... (default runs/train)")
    p.add_argument("--exist-ok", action="store_true", help="write into --out even if it holds a run (replacing it)")
    p.add_argument("--config", default=None, metavar="MANIFEST.json",
                   help="replay a run: its manifest.json's options, overridden by any given here")
    add_train_arguments(p)

    p = add("export", cmd_export, "export a run to .tflite, with labels.txt and a preprocessing JSON beside it")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("tflite", "onnx"), default="tflite")
    p.add_argument("--quantize", default="float32",
                   help="float32 | float16 | dynamic | int8, or several comma-separated")
    p.add_argument("--io", choices=("uint8", "float32"), default="uint8",
                   help="input (and int8 output) type: uint8 as MediaPipe and apps expect, or float32 pixels")
    p.add_argument("--calibration-size", type=int, default=100, help="training images used to calibrate int8")
    p.add_argument("--calibration-data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="int8: the most validation accuracy (points) the file may lose against the float model; "
                        "beyond it edgeclf re-calibrates on more images, and if that fails keeps the file, marks "
                        "it and exits non-zero (default 1.0)")
    p.add_argument("--no-int8-check", action="store_true", help="int8: skip the validation check against float")
    p.add_argument("--output", "-o", default=None, help="output file (default RUN_DIR/export/MODEL_QUANT.tflite)")

    p = add("evaluate", cmd_evaluate, "accuracy of an exported file (or run dir) on a split of the dataset")
    p.add_argument("model", help=".tflite file or run directory")
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--client", default=None, metavar="{litert,mediapipe,onnxruntime,torch}",
                   help="run the model the way this client does: mediapipe = MediaPipe Tasks' ImageClassifier fed "
                        "the whole RGB image, as an app does (reports agreement with edgeclf's LiteRT runtime); "
                        "default: edgeclf's runtime for the file type")
    p.add_argument("--no-roi", dest="roi", action="store_false",
                   help="with --client mediapipe: feed a crop-mode file the whole image instead of the centre "
                        "region of interest (what an app that ignores the mode gets)")
    p.add_argument("--out", default=None, help="write metrics.json and the confusion matrix (CSV, PNG) here")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")

    p = add("verify", cmd_verify, "every exported file of a run x every client (LiteRT, MediaPipe, ONNX Runtime) "
                                  "on its test split: accuracy, agreement with PyTorch, golden vectors")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--clients", default=None, help="comma-separated subset of litert,mediapipe,onnxruntime")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")

    p = add("predict", cmd_predict, "top-k labels for images or folders of images")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true")
    g.add_argument("--csv", action="store_true")

    p = add("benchmark", cmd_benchmark, "latency of model files (mean, p50, p90, p99) per thread count")
    p.add_argument("models", nargs="+")
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runtime", default=None,
                   help="for a run dir: time it in each of litert,onnxruntime,torch (float32 files exported on demand)")
    p.add_argument("--json", action="store_true")

    p = add("compare", cmd_compare, "train, export, evaluate and benchmark several models: table, Pareto plot, HTML")
    p.add_argument("data")
    p.add_argument("--models", required=True, help="comma-separated, e.g. mobilenet_v2_1.0_224,efficientnet_lite0")
    p.add_argument("--quantize", default="float32,int8", help="comma-separated quantizations to export")
    p.add_argument("--out", "-o", default="runs/compare", help="report folder (rerun to resume)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet | none (random init, marked in the table) | a .pth/.tflite file for every model")
    p.add_argument("--resize", choices=("squash", "crop"), default=None,
                   help="input-fit mode of every trained model (see `edgeclf train --help`)")
    p.add_argument("--threads", default="1,2", help="thread counts to time")
    p.add_argument("--runs", type=int, default=50, help="timed runs per file and thread count")
    p.add_argument("--json", action="store_true")

    p = add("search", cmd_search, "the most accurate model within a latency and size limit, found for you")
    p.add_argument("data")
    p.add_argument("--max-latency-ms", type=float, required=True, help="p50 latency limit on this machine (LiteRT)")
    p.add_argument("--max-size-mb", type=float, required=True, help="file size limit of the exported model")
    p.add_argument("--threads", type=int, default=1, help="threads the latency is measured with (default 1)")
    p.add_argument("--quantize", default="int8", help="comma-separated quantizations to consider (default int8)")
    p.add_argument("--models", default=None, help="comma-separated candidates (default: every model with offline "
                   "ImageNet weights, each input size)")
    p.add_argument("--finalists", type=int, default=2, help="candidates trained with the stronger recipe")
    p.add_argument("--budget", default=None, help="time budget (e.g. 20m): past it after the head round, no finalists")
    p.add_argument("--teacher", default=None, metavar="RUN_DIR", help="distil this run into the finalists")
    p.add_argument("--out", "-o", default="runs/search", help="search folder (rerun to resume)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per candidate")
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo, "make a small dataset, train, export, evaluate and benchmark — the whole pipeline")
    p.add_argument("--out", default="edgeclf-demo")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--epochs", type=int, default=30)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgeclf` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except EdgeclfError as exc:
        print(f"edgeclf: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeclf: interrupted", file=sys.stderr)
        return 130
