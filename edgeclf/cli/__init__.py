"""The `edgeclf` command line: one sub-command per job."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from typing import Callable, Iterator, NoReturn, TextIO

from .. import __version__
from ..errors import EdgeclfError, EdgeclfWarning
from ..training.config import add_arguments as add_train_arguments
from .commands import (cmd_benchmark, cmd_compare, cmd_demo, cmd_doctor, cmd_evaluate, cmd_export,
                       cmd_models, cmd_predict, cmd_search, cmd_train, cmd_verify)


def _split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-percent", "--validation_percentage", type=float, default=10.0,
                   help="percent of images for validation (default 10)")
    p.add_argument("--test-percent", "--testing_percentage", type=float, default=10.0,
                   help="percent of images for test (default 10)")


# retrain.py / Model Maker options with no edgeclf flag of their own: what to do instead.
_EXPORT_HINT = ("edgeclf train writes a run folder; `edgeclf export RUN -o FILE.tflite` then writes the model, "
                "its labels inside it and in labels.txt beside it")
FOREIGN_FLAGS = {
    "--output_graph": _EXPORT_HINT, "--output_labels": _EXPORT_HINT, "--saved_model_dir": _EXPORT_HINT,
    "--summaries_dir": "TensorBoard logs are written in the run folder (RUN/tensorboard); drop it",
    "--export_dir": "`edgeclf export RUN -o DIR/` writes the model there",
}


class _Parser(argparse.ArgumentParser):
    """argparse, with what to do instead for the options of the tools edgeclf replaces."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            flag = next((w.split("=")[0] for w in message.split(":", 1)[1].split() if w.split("=")[0] in
                         FOREIGN_FLAGS), None)
            if flag:
                message = f"{message}; {flag} is not an edgeclf option: {FOREIGN_FLAGS[flag]}"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    ap = _Parser(prog="edgeclf", description="Turn a folder of images (one sub-folder per class) "
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
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("train", cmd_train, "train a classifier (transfer learning on cached backbone features)")
    p.add_argument("data", nargs="?", default=None, help="DATA/<class>/ images (default with --config: its data)")
    p.add_argument("--image_dir", default=None, metavar="DATA", help="retrain.py's name for DATA")
    p.add_argument("--out", "-o", default="runs/train",
                   help="run directory; if it holds a run already, the new one goes to OUT2, OUT3, ...; a folder "
                        "holding other files is refused (default runs/train)")
    p.add_argument("--exist-ok", action="store_true", help="write into --out even if it holds a run (replacing it)")
    p.add_argument("--config", default=None, metavar="MANIFEST.json",
                   help="replay a run: its manifest.json's options, overridden by any given here")
    add_train_arguments(p)

    p = add("export", cmd_export, "export a run to .tflite, with labels.txt and a preprocessing JSON beside it")
    p.add_argument("run_dir", help="a finished `edgeclf train` run directory")
    p.add_argument("--format", choices=("tflite", "onnx"), default="tflite", help="file format (default tflite)")
    p.add_argument("--quantize", default="float32",
                   help="float32 | float16 | dynamic | int8, or several comma-separated")
    p.add_argument("--io", choices=("uint8", "float32"), default="uint8",
                   help="input (and int8 output) type: uint8 as MediaPipe and apps expect, or float32 pixels")
    p.add_argument("--calibration-size", type=int, default=100, help="training images used to calibrate int8")
    p.add_argument("--calibration-data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--max-drop", type=float, default=1.0, metavar="POINTS",
                   help="int8: the most accuracy (points) the file may lose against the float model on the "
                        "validation split (with the training images when it holds under 100); "
                        "beyond it edgeclf re-calibrates on more images, then keeps the ops that add the most "
                        "error in float, and if that fails keeps the file, marks it and exits non-zero (default 1.0)")
    p.add_argument("--max-float-ops", type=int, default=3, metavar="N",
                   help="int8: at most N ops kept in float when the file misses --max-drop; 0 keeps every op "
                        "integer, as NPUs and microcontrollers need (default 3)")
    p.add_argument("--report", action="store_true",
                   help="int8: write FILE.layers.csv, the error each op adds against the float graph, and print "
                        "the worst")
    p.add_argument("--no-int8-check", action="store_true", help="int8: skip the validation check against float")
    p.add_argument("--output", "-o", default=None,
                   help="output file, or a folder (ending in /) for the default name there (default "
                        "RUN_DIR/export/MODEL_QUANT.tflite)")

    p = add("evaluate", cmd_evaluate, "accuracy of an exported file (or run dir) on a split of the dataset")
    p.add_argument("model", help=".tflite file or run directory")
    p.add_argument("data_pos", nargs="?", default=None, metavar="DATA", help="same as --data")
    p.add_argument("--data", default=None,
                   help="dataset folder (default: the one the model's run was trained on; its split is reused)")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default=None,
                   help="split scored, or all images (default: the run's test split of its own dataset; every image "
                        "of a folder the run never saw)")
    p.add_argument("--top-k", type=int, default=5, help="top-k accuracy reported beside top-1 (default 5)")
    p.add_argument("--client", default=None, metavar="{litert,mediapipe,onnxruntime,torch}",
                   help="run the model the way this client does: mediapipe = MediaPipe Tasks' ImageClassifier fed "
                        "the whole RGB image, as an app does (reports agreement with edgeclf's LiteRT runtime); "
                        "default: edgeclf's runtime for the file type")
    p.add_argument("--no-roi", dest="roi", action="store_false",
                   help="with --client mediapipe: feed a crop-mode file the whole image instead of the centre "
                        "region of interest (what an app that ignores the mode gets)")
    p.add_argument("--out", default=None, help="write metrics.json and the confusion matrix (CSV, PNG) here")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the runtime's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("verify", cmd_verify, "every exported file of a run x every client (LiteRT, MediaPipe, ONNX Runtime) "
                                  "on its test split: accuracy, agreement with PyTorch, golden vectors")
    p.add_argument("run_dir", help="a run directory with exported files")
    p.add_argument("--data", default=None, help="dataset folder, if it moved since training")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="split scored, or all images (default test)")
    p.add_argument("--clients", default=None, help="comma-separated subset of litert,mediapipe,onnxruntime")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the runtime's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("predict", cmd_predict, "top-k labels for images or folders of images")
    p.add_argument("model", help=".tflite or .onnx file, or a run directory")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively); - reads one image "
                                              "piped in on standard input")
    p.add_argument("--top-k", type=int, default=3, help="labels listed per image (default 3)")
    p.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the runtime's)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("--csv", action="store_true",
                   help="one row per image and rank: path,rank,label,score,unknown,error (an unreadable file: one "
                        "row with its error)")

    p = add("benchmark", cmd_benchmark, "latency of model files (mean, p50, p90, p99) per thread count")
    p.add_argument("models", nargs="+", help=".tflite/.onnx files or run directories")
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    p.add_argument("--runs", type=int, default=100, help="timed runs per file and thread count (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--runtime", default=None,
                   help="for a run dir: time it in each of litert,onnxruntime,torch (float32 files exported on demand)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("compare", cmd_compare, "train, export, evaluate and benchmark several models: table, Pareto plot, HTML")
    p.add_argument("data", help="dataset folder: DATA/<class>/<images>")
    p.add_argument("--models", required=True, help="comma-separated, e.g. mobilenet_v2_1.0_224,efficientnet_lite0")
    p.add_argument("--quantize", default="float32,int8", help="comma-separated quantizations to export")
    p.add_argument("--out", "-o", default="runs/compare", help="report folder (rerun to resume)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet | none (random init, marked in the table) | a .pth/.tflite file for every model")
    p.add_argument("--resize", choices=("squash", "crop"), default=None,
                   help="input-fit mode of every trained model (see `edgeclf train --help`)")
    p.add_argument("--threads", default="1,2", help="thread counts to time")
    p.add_argument("--runs", type=int, default=50, help="timed runs per file and thread count")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("search", cmd_search, "the most accurate model within a latency and size limit, found for you")
    p.add_argument("data", help="dataset folder: DATA/<class>/<images>")
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
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("demo", cmd_demo, "make a small dataset, train, export, evaluate and benchmark — the whole pipeline")
    p.add_argument("--out", default="edgeclf-demo",
                   help="folder for the dataset, run and report (default edgeclf-demo)")
    p.add_argument("--model", default="efficientnet_lite0", help="backbone (default efficientnet_lite0)")
    p.add_argument("--per-class", type=int, default=60, help="generated images per class (default 60)")
    p.add_argument("--epochs", type=int, default=30, help="head epochs (default 30)")
    return ap


def _printable_streams() -> None:
    """Print what the terminal's encoding cannot hold as '?' instead of crashing on it.

    Windows writes redirected output (`edgeclf doctor data > report.txt`) in cp1252, which has no 猫 for a
    class name or – for a range; Python would raise UnicodeEncodeError after the work was done.
    """
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured keeps its behaviour
                pass


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """The API's EdgeclfWarnings print as `warning: ...`, like the CLI's own lines, each time, without a source line."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", EdgeclfWarning)
        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
            if issubclass(category, EdgeclfWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgeclf` console script."""
    _printable_streams()
    args = build_parser().parse_args(argv)
    try:
        with _one_line_warnings():
            return args.fn(args)
    except EdgeclfError as exc:
        print(f"edgeclf: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the last line of defence: a path the system refused, in one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"edgeclf: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgeclf: interrupted", file=sys.stderr)
        return 130
