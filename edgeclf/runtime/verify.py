"""`edgeclf verify RUN`: every exported file x every client that runs it, on the run's test split, in one table."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._io import write_json
from ..artifacts.run import dataset_root, failed_int8_check, find_sidecar, is_stale, not_a_run, read_split
from ..data.dataset import label_form, scan
from ..errors import ConfigError, EdgeclfError, EdgeclfWarning, ModelError
from ..params import BOOL, NONE, Options, POSITIVE_INT, THREADS, as_list, check, check_path
from ..table import Footnotes, format_table
from .engine import load_engine
from .evaluate import _agreement, client_engine, client_predict, predict_files, split_samples
from .clients import RUNS
from .golden import check_golden

# The clients of each file type; the PyTorch run is the reference row, not a client of the file.
CLIENTS_OF = {kind: tuple(c for c in RUNS[kind] if c != "torch") for kind in (".tflite", ".onnx")}


def _foreign(f: Path) -> str | None:
    """Why an exported-looking file is no edgeclf export (no sidecar, no edgeclf metadata), or None."""
    if find_sidecar(f).is_file():
        return None  # edgeclf's own file: any failure to load it is reported, not skipped
    try:
        load_engine(f)
    except ModelError as exc:
        return str(exc).removeprefix(f"{f}: ").split("; ")[0]
    return None


def verify(run_dir: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, split: str = "test",
           clients: str | tuple[str, ...] | list[str] | None = None, threads: int | None = None,
           workers: int | None = None, verbose: bool = True) -> dict[str, Any]:
    """Accuracy, top-1 agreement with PyTorch, max |Δ probability| and golden vectors per (file, client)."""
    check_path("RUN", run_dir)
    check_path("--data", data, optional=True)
    check("--split", split, Options("train", "val", "test", "all"))
    check("--threads", threads, NONE, THREADS)
    check("--workers", workers, NONE, POSITIVE_INT)
    check("verbose", verbose, BOOL)
    clients = as_list(clients)
    for c in clients or []:  # a substring ("lite") must not pass for a client
        check("--clients", c, Options(*sorted({k for kind in CLIENTS_OF.values() for k in kind})))
    run_dir = Path(run_dir)
    problem = not_a_run(run_dir)
    if problem:
        raise ConfigError(problem + (f", or `edgeclf evaluate {run_dir}` for this file alone" if run_dir.is_file()
                                     else ""))
    files = sorted(p for p in (run_dir / "export").glob("*") if p.suffix in CLIENTS_OF) if run_dir.is_dir() else []
    # A file put there by hand (another tool's model, to compare) is left out with its reason, not fatal.
    foreign = {f.name: why for f in files if (why := _foreign(f))}
    files = [f for f in files if f.name not in foreign]
    if not files and foreign:
        raise EdgeclfError(f"{run_dir / 'export'} holds no edgeclf export ({next(iter(foreign.values()))}); "
                           f"run `edgeclf export {run_dir}`")
    if not files:
        raise EdgeclfError(f"{run_dir} has no exported files in {run_dir / 'export'}; run `edgeclf export {run_dir}`")
    rec = read_split(run_dir)
    root = dataset_root(rec, data)
    if not root.is_dir():
        raise EdgeclfError(f"the run's dataset {root} is gone; pass --data DATA")
    ds = scan(root, rec["val_percent"], rec["test_percent"])
    samples = split_samples(ds, split, rec)  # the run's own list, as evaluate scores it
    paths = [str(s.path) for s in samples]
    torch_engine = load_engine(run_dir, threads)
    index = {label_form(c): i for i, c in enumerate(torch_engine.labels)}
    ref, bad, good = predict_files(torch_engine, paths, workers, desc="PyTorch")
    y = np.array([index[ds.classes[samples[i].label]] for i in good])
    rows: list[dict[str, Any]] = [{"file": run_dir.name, "client": "torch", "resize": torch_engine.preprocess.resize,
                                   "n": len(good), "accuracy": round(float((ref.argmax(1) == y).mean()), 4),
                                   "top1_agreement_with_pytorch": 1.0, "max_abs_prob_diff_vs_pytorch": 0.0,
                                   "golden": "-"}]
    failed = False
    stale = [f for f in files if is_stale(f)]
    marked = {f: why for f in files if (why := failed_int8_check(f))}  # kept by export past --max-drop, marked
    for f in files:
        label = f.name + (" (stale)" if f in stale else "") + (" (failed int8 check)" if f in marked else "")
        for client in CLIENTS_OF[f.suffix]:
            if clients and client not in clients:
                continue
            engine, _ = client_engine(f, client, threads)
            probs, _, ok = client_predict(engine, client, [paths[i] for i in good], workers)
            agree, dmax = _agreement(ref[ok], probs)
            g = check_golden(f, lambda ps: client_predict(engine, client, ps, 1)[0], root)
            failed |= g["status"] == "FAIL"
            rows.append({"file": label, "client": client,
                         "resize": engine.preprocess.resize, "n": len(ok),
                         "accuracy": round(float((probs.argmax(1) == y[ok]).mean()), 4),
                         "top1_agreement_with_pytorch": agree, "max_abs_prob_diff_vs_pytorch": dmax,
                         "golden": g["status"] + (f" ({g['detail']})" if g["status"] != "ok" else ""),
                         "golden_detail": g})
    result = {"run_dir": str(run_dir), "data": str(root), "split": split, "skipped": sorted(bad), "rows": rows,
              "golden_failed": failed, "stale": [f.name for f in stale], "not_edgeclf_exports": foreign,
              "failed_int8_check": [f.name for f in marked]}
    write_json(run_dir / "verify.json", result)
    if verbose:
        scored = "every image" if split == "all" else f"{split} split"
        print(f"{run_dir}: {scored} of {root}, {len(good)} images, every exported file through every client")
        notes = Footnotes()  # why a file has no golden check: a long line, the same for each of its clients

        def golden(r: dict[str, Any]) -> str:
            g = r.get("golden_detail") or {"status": r["golden"]}
            return r["golden"] if g["status"] == "ok" or not g.get("detail") else \
                notes.cite(f"{r['file']}: {g['detail']}", g["status"] + " ")
        print(notes.below(format_table(
            ["file", "client", "resize", "accuracy", "agree w/ PyTorch", "max |Δp|", "golden"],
            [[r["file"], r["client"], r["resize"], r["accuracy"], r["top1_agreement_with_pytorch"],
              r["max_abs_prob_diff_vs_pytorch"], golden(r)] for r in rows])))
        print(f"written {run_dir / 'verify.json'}")
    # Warnings, not prints: the API's caller hears them (and can filter them) however verbose is set.
    for name, why in foreign.items():
        warnings.warn(f"{name} left out: not an edgeclf export ({why})", EdgeclfWarning, stacklevel=2)
    for why in marked.values():
        warnings.warn(why, EdgeclfWarning, stacklevel=2)
    if stale:
        warnings.warn(f"{', '.join(f.name for f in stale)}: exported from the model this run replaced "
                      f"(model.pt changed since); re-export with `edgeclf export {run_dir}`", EdgeclfWarning,
                      stacklevel=2)
    return result
