"""What each `edgeclf` sub-command does with its parsed arguments (the parser is in __init__.py)."""

from __future__ import annotations

import argparse
import os
import sys

from .._io import to_json
from ..errors import ConfigError, EdgeclfError


def _csv_ints(s: str, option: str = "--threads") -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated whole numbers such as 1,2, got {s!r}") from None


def cmd_doctor(a: argparse.Namespace) -> int:
    """`edgeclf doctor`: check a dataset and print (or write) the report."""
    from ..data.doctor import format_report
    from ..workflows.doctor import doctor

    r = doctor(a.data, a.val_percent, a.test_percent, embeddings=a.embeddings, model=a.model,
               label_issues=a.label_issues, folds=a.folds, top=a.top, html=a.html, suggest=a.suggest,
               workers=a.workers)
    print(to_json(r) if a.json else format_report(r))
    if a.label_issues and not a.json:
        from ..workflows.label_issues import format_issues

        print("\n" + format_issues(r["label_issues"]))
    info = sys.stderr if a.json else sys.stdout
    if a.html:
        print(f"report page: {r['html']}", file=info)
    if a.suggest:
        print(f"suggested exclusions: {r['suggested']['count']} file(s) in {a.suggest} (nothing deleted); "
              f"train with --exclude {a.suggest}", file=info)
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    """`edgeclf models`: the zoo, its counts and where each variant's weights come from."""
    from ..models.zoo import describe, list_models
    from ..table import format_table

    if a.weights:
        from ..models.pretrained import inspect_tflite

        info = inspect_tflite(a.weights)
        if a.json:
            print(to_json(info))
            return 0
        fits = (f"fits {', '.join(info['fits'])} (any input size: --model NAME --weights {a.weights})"
                if info["fits"] else "fits no edgeclf architecture (supported: MobileNet V1, V2, EfficientNet-Lite)")
        inp = info["input"]
        norm = f"(x - {inp['mean']:g}) / {inp['std']:g}" if inp["mean"] is not None else "not in the file"
        print(f"{a.weights}: {info['convolutions']} convolutions; {fits}; input {inp['type']} {inp['shape']}, "
              f"normalization {norm}; classifier: {info['classifier_outputs'] or 'none'}")
        return 0
    names = [n for n in list_models() if not a.filter or a.filter in n]
    if not names:
        raise ConfigError(f"no model name contains {a.filter!r}; run `edgeclf models` for the list")
    rows = [describe(n) for n in names]
    if a.json:
        print(to_json(rows))
    else:
        print(format_table(["model", "input", "features", "params (M)", "MACs (M)", "ImageNet weights", "from"],
                           [[r["name"], r["input_size"], r["features"], round(r["params"] / 1e6, 3),
                             round(r["macs"] / 1e6, 1), r["weights"], r["weights_source"]] for r in rows]))
    return 0


# `edgeclf train`'s arguments that are not TrainConfig options.
TRAIN_COMMAND_ARGS = ("data", "image_dir", "out", "exist_ok", "config", "fn", "command")


def cmd_train(a: argparse.Namespace) -> int:
    """`edgeclf train`: train a run from the parsed options."""
    from ..training.config import read_config
    from ..training.trainer import train

    options = {k: v for k, v in vars(a).items() if k not in TRAIN_COMMAND_ARGS}
    if a.data and a.image_dir:
        raise ConfigError(f"DATA given twice ({a.data} and --image_dir {a.image_dir}); give one")
    base = read_config(a.config) if a.config else None
    data = a.data or a.image_dir or (base or {}).get("data")
    if data is None:
        raise EdgeclfError("train needs DATA (a folder with one sub-folder per class), or --config RUN/manifest.json")
    train(data, out=a.out, config=base, exist_ok=a.exist_ok, **options)
    return 0


def cmd_compare(a: argparse.Namespace) -> int:
    """`edgeclf compare`: train, export, evaluate and benchmark several models."""
    from ..workflows.compare import compare

    rows = compare(a.data, [m for m in a.models.split(",") if m], [q for q in a.quantize.split(",") if q], a.out,
                   weights=a.weights, threads=_csv_ints(a.threads), runs=a.runs, verbose=not a.json,
                   **({"resize": a.resize} if a.resize else {}))
    if a.json:
        print(to_json(rows))
    return 0 if all(r.get("status") == "ok" for r in rows) else 1


def cmd_search(a: argparse.Namespace) -> int:
    """`edgeclf search`: the most accurate model within the latency and size limits."""
    from ..workflows.search import search

    r = search(a.data, a.max_latency_ms, a.max_size_mb, a.threads, [q for q in a.quantize.split(",") if q],
               [m for m in a.models.split(",") if m] if a.models else None, a.out, a.finalists,
               a.budget, a.teacher, a.runs, verbose=not a.json)
    if a.json:
        print(to_json(r))
    return 0 if r["pick"] else 1


def cmd_export(a: argparse.Namespace) -> int:
    """`edgeclf export`: write a run's .tflite (or .onnx) files."""
    from ..workflows.export import export

    export(a.run_dir, a.format, a.quantize, a.output, io=a.io, calibration_size=a.calibration_size,
           calibration_data=a.calibration_data, max_drop=None if a.no_int8_check else a.max_drop,
           max_float_ops=a.max_float_ops, report=a.report)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    """`edgeclf evaluate`: accuracy of exported files on a split."""
    from ..runtime.evaluate import evaluate

    if a.data_pos is not None and a.data is not None and a.data_pos != a.data:
        raise ConfigError(f"DATA is given twice, as {a.data_pos!r} and as --data {a.data!r}; give one")
    data = a.data if a.data is not None else a.data_pos
    m = evaluate(a.model, data, a.split, a.top_k, a.out, a.threads, verbose=not a.json, client=a.client, roi=a.roi)
    if a.json:
        print(to_json(m))
    return 0


def _stdin_image(images: list[str]) -> tuple[list[str], str | None]:
    """IMAGES with `-` (an image piped in, e.g. from curl) replaced by a temporary file holding its bytes."""
    if "-" not in images:
        return images, None
    if images.count("-") > 1:
        raise ConfigError("IMAGES names - (standard input) more than once; it holds one image")
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("IMAGES -: reads one image from standard input, but nothing is piped in "
                          "(e.g. `curl -s URL | edgeclf predict MODEL -`)")
    import tempfile

    data = sys.stdin.buffer.read()
    if not data:
        raise ConfigError("IMAGES -: standard input is empty; pipe an image's bytes in")
    fd, tmp = tempfile.mkstemp(prefix="edgeclf-stdin-")  # no extension: the image is read by its content
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return [tmp if x == "-" else x for x in images], tmp


def cmd_predict(a: argparse.Namespace) -> int:
    """`edgeclf predict`: top-k labels for images, folders or stdin."""
    from ..runtime.predict import format_predictions, predict

    images, tmp = _stdin_image(a.images)
    try:
        rows = predict(a.model, images, a.top_k, a.threads)
    finally:
        if tmp:
            os.unlink(tmp)
    for r in rows:
        if tmp and r.get("path") == tmp:
            r["path"] = "-"
    print(format_predictions(rows, "json" if a.json else "csv" if a.csv else "text"))
    bad = sum("error" in r for r in rows)
    if bad:
        print(f"{bad} image(s) could not be read and were skipped", file=sys.stderr)
    return 1 if bad and bad == len(rows) else 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    """`edgeclf benchmark`: latency of model files per thread count."""
    from ..workflows.benchmark import benchmark

    runtimes = [r for r in a.runtime.split(",") if r] if a.runtime else None
    rows = benchmark(a.models, _csv_ints(a.threads), a.runs, a.warmup, runtimes, verbose=not a.json)
    if a.json:
        print(to_json(rows))
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    """`edgeclf verify`: every exported file of a run x every client."""
    from ..runtime.verify import verify

    clients = tuple(c for c in a.clients.split(",") if c) if a.clients else None
    r = verify(a.run_dir, a.data, a.split, clients, a.threads, verbose=not a.json)
    if a.json:
        print(to_json(r))
    return 1 if r["golden_failed"] else 0


def cmd_demo(a: argparse.Namespace) -> int:
    """`edgeclf demo`: the whole pipeline on a generated dataset."""
    from ..workflows.demo import demo

    demo(a.out, a.model, a.per_class, a.epochs)
    return 0
