"""`edgeclf compare`: train, export, evaluate and benchmark several models — one table, one plot, one page.

Every (model, quantization) cell is saved as soon as it is done (cells/*.json): a rerun skips
finished cells, and a model that fails is reported in the table without stopping the others.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .._io import check_outside, make_dir, read_json, write_json
from ..errors import ConfigError
from ..params import BOOL, POSITIVE_INT, THREADS, as_list, check, check_path, check_weights
from ..progress import progress
from ..report.compare import format_results, write_report


def _cell(run: Path, model: str, q: str, weights: str, data: str, threads: list[int], runs: int) -> dict[str, Any]:
    from .export import export
    from ..models.profile import count_macs, count_params
    from ..runtime.evaluate import evaluate
    from ..artifacts.run import load_run

    f = export(run, "tflite", q, verbose=False, max_drop=None)  # the table shows int8 beside float32 itself
    m = evaluate(f, data, verbose=False, compare_to_run=False)
    clf, meta = load_run(run)
    row: dict[str, Any] = {
        "model": model, "quantize": q, "weights": weights, "resize": m["resize"], "file": str(f),
        "size_mb": round(f.stat().st_size / 1e6, 3), "params_m": round(count_params(clf) / 1e6, 3),
        "macs_m": round(count_macs(clf, meta["preprocess"]["size"]) / 1e6, 1), "test_acc": m["accuracy"],
        "status": "ok",
    }
    return _time(row, threads, runs)


def _time(row: dict[str, Any], threads: list[int], runs: int) -> dict[str, Any]:
    from ..runtime.benchmark import benchmark_file

    for t in threads:
        row[f"p50_ms_{t}t"] = benchmark_file(row["file"], t, runs, warmup=10)["p50_ms"]
    return row


def compare(data: str | os.PathLike[str], models: str | list[str], quantize: str | list[str] | None = None,
            out: str | os.PathLike[str] = "runs/compare", weights: str = "imagenet",
            threads: int | list[int] | None = None, runs: int = 50, verbose: bool = True,
            **train_kwargs: Any) -> list[dict[str, Any]]:
    """Train each model (sharing the feature cache), export each quantization, evaluate and benchmark; writes a report."""
    from ..artifacts.run import is_complete
    from ..exporting.tflite import check_quantize
    from ..models.zoo import get_spec
    from ..training.trainer import train

    from ..training.config import TrainConfig
    from .resume import check_own_folder, hold_settings

    check_path("DATA", data)
    check_path("--out", out)
    # A typo or a bad value fails now, not once per model after the first has trained.
    TrainConfig.build(train_kwargs, who="compare()", own=compare)
    models, quantize, threads = as_list(models) or [], as_list(quantize), as_list(threads)
    log = print if verbose else (lambda *a, **k: None)
    # Unknown names fail before hours of work; other spellings (EfficientNet-Lite0) become the zoo's names,
    # which name the runs' folders.
    models = [get_spec(m).name for m in models]
    for t in threads or [1]:
        check("--threads", t, THREADS)
    check("--runs", runs, POSITIVE_INT)
    check("verbose", verbose, BOOL)
    quantize = quantize or ["float32", "int8"]
    check_quantize(quantize)  # a typo must not cost a training run per model before it shows
    if not models:  # an empty table and report, with nothing trained, said nothing was wrong
        raise ConfigError("--models names no model; give one or more, e.g. --models "
                          "efficientnet_lite0,mobilenet_v2_1.0_224 (`edgeclf models` lists them)")
    # Each model's rows failed on a missing file in turn, and the command still exited 0.
    weights = check_weights(weights)
    if weights == "imagenet":
        from ..models.weights import availability, unobtainable

        # Such a row could only fail, after every model before it trained; online-only weights may still load.
        where = {m: availability(get_spec(m)) for m in models}
        lacking = [m for m, w in where.items() if w == "none"]
        if lacking:
            raise ConfigError(f"{', '.join(lacking)}: no published ImageNet weights; drop from --models, or "
                              "compare from random init with --weights none")
        # Fetched now: a missing file otherwise showed when its model's turn came, after the models before it trained.
        # Those found on disk were just verified: not hashed again.
        for m, why in unobtainable([get_spec(m) for m, w in where.items() if w == "online"]).items():
            print(f"warning: {m}: {why}; its rows will fail (stop now to fix it, or let the others run and "
                  "rerun the same command afterwards: finished models are kept)", file=sys.stderr)
    threads = threads or [1, 2]
    out = Path(out)
    check_outside("--out", out, data)
    check_own_folder(out)
    make_dir(out / "cells")
    hold_settings(out, data, weights=weights, **train_kwargs)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for model in progress(models, "compare", len(models), "model"):
        run = out / "runs" / model
        try:
            if not is_complete(run):
                log(f"[{model}] training")
                train(data, model, run, weights=weights, verbose=False, exist_ok=True, **train_kwargs)
            shutil.copyfile(run / "curves.png", out / f"curves_{model}.png")
        except Exception as exc:  # noqa: BLE001 - one failing model must not stop the others
            rows += [_failed(model, q, weights, exc) for q in quantize]
            log(f"[{model}] {rows[-1]['status']}")
            continue
        for q in quantize:
            cell = out / "cells" / f"{model}_{q}.json"
            if cell.is_file():
                row = read_json(cell)
                missing = [t for t in threads if f"p50_ms_{t}t" not in row]
                if missing:  # resumed with other --threads: time only what this cell lacks
                    _time(row, missing, runs)
                    write_json(cell, row)
                rows.append(row)
                continue
            log(f"[{model}] {q}: export, evaluate, benchmark")
            try:
                row = _cell(run, model, q, weights, str(data), threads, runs)
                write_json(cell, row)
            except Exception as exc:  # noqa: BLE001
                row = _failed(model, q, weights, exc)
                log(f"[{model}] {q}: {row['status']}")
            rows.append(row)
    write_report(out, rows, {"data": str(data), "models": models, "quantize": quantize, "weights": weights,
                             "threads": threads, "wall_s": round(time.perf_counter() - t0, 1)})
    if verbose:
        print(format_results(rows, threads))
        print(f"\nreport: {out / 'report.html'}  (results.csv, results.json, pareto.png)")
    return rows


def _failed(model: str, q: str, weights: str, exc: BaseException) -> dict[str, Any]:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if os.environ.get("EDGECLF_DEBUG"):
        traceback.print_exception(exc)
    return {"model": model, "quantize": q, "weights": weights, "status": f"failed: {msg}"}
