"""`edgeclf evaluate`: accuracy of the exported file itself on the split training held out."""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..plots import new_figure, plot_reliability, plot_risk_coverage, save_png
from ..params import BOOL, NONE, Options, POSITIVE_INT, THREADS, check, check_path
from .._io import check_outside, make_dir, write_json, write_text
from ..artifacts.run import (MANIFEST, MODEL_FILE, SPLIT_FILE, dataset_root, exported_from, failed_int8_check, is_stale,
                             read_split)
from ..data.dataset import Dataset, Sample, label_form, name_key, scan
from ..data.crops import Crops, plain
from ..data.parallel import imap
from ..progress import progress
from ..errors import ConfigError, DatasetError, EdgeclfWarning, ModelError
from ..table import format_table, short_list
from .engine import Engine, load_engine
from ..metrics import classification_metrics, coverage_report


def _run_dir(engine: Engine) -> Path | None:
    """The run directory that produced the model, when it is still there."""
    if engine.kind == "torch":
        return engine.path
    return exported_from(engine.path)


def _split_record(run_dir: Path | None) -> dict[str, Any]:
    """The split record (split.json) of the run that produced the model; {} when the run is gone."""
    return read_split(run_dir) if run_dir and (run_dir / SPLIT_FILE).is_file() else {}


def predict_files(engine: Engine, paths: list[str], workers: int | None = None, desc: str = "predicting",
                  batch: int = 32) -> tuple[np.ndarray, dict[str, str], list[int]]:
    """Probabilities for the decodable files; returns (probs, {bad path: reason}, indices of good files).

    Images are scored in batches as they are decoded: holding every decoded image first took 150 KB per
    photo at 224 px (3 GB for 20,000), so a large folder ran out of memory before the first prediction.
    """
    good, bad, probs, pending = [], {}, [], []

    def flush() -> None:
        if pending:
            probs.append(engine.predict(np.stack(pending)))
            pending.clear()

    for i, res in enumerate(progress(imap(Crops(engine.preprocess), map(plain, paths), workers), desc, len(paths),
                                     "img")):
        if isinstance(res, str):
            bad[paths[i]] = res
            continue
        good.append(i)
        pending.append(res[0])
        if len(pending) == batch:
            flush()
    flush()
    out = np.concatenate(probs) if probs else np.zeros((0, len(engine.labels)), np.float32)
    return out, bad, good


def _agreement(ref: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, max |Δ probability|) between two clients' outputs on the same images."""
    if not len(ref) or ref.shape != probs.shape:
        return float("nan"), float("nan")
    return round(float((ref.argmax(1) == probs.argmax(1)).mean()), 4), round(float(np.abs(ref - probs).max()), 4)


def client_engine(model: str | os.PathLike[str], client: str | None, threads: int | None = None
                  ) -> tuple[Engine, str]:
    """(the engine whose labels/preprocessing apply, the checked client) for `model` run by `client`."""
    from .clients import check_client, default_client

    path = Path(model)
    client = check_client(path, client or default_client(path))
    engine = load_engine(path, threads)
    if client == "torch" and engine.kind != "torch":
        run_dir = _run_dir(engine)
        if run_dir is None:
            raise ModelError(f"--client torch needs the run directory that made {path}, and it is gone; "
                             "evaluate the run directory itself")
        engine = load_engine(run_dir, threads)
    return engine, client


def client_predict(engine: Engine, client: str, paths: list[str], workers: int | None = None, roi: bool = True
                   ) -> tuple[np.ndarray, dict[str, str], list[int]]:
    """predict_files() through `client` (MediaPipe fits images itself; the others use edgeclf's fitting)."""
    if client == "mediapipe":
        from .clients import mediapipe_predict

        return mediapipe_predict(engine, paths, roi, workers)
    return predict_files(engine, paths, workers, desc=client)


def split_samples(ds: Dataset, split: str, rec: dict[str, Any]) -> list[Sample]:
    """The images scored: all of DATA, or the run's own list of a split; an empty split is a one-line error."""
    # The run's own list: images added since training do not join its test split.
    samples = ds.samples if split == "all" else ds.recorded(split, rec)
    if not samples:  # every figure would be NaN (and --json invalid JSON)
        why = f" (its run was trained with --{split}-percent 0)" if rec.get(f"{split}_percent") == 0 else ""
        others = " / ".join(x for x in ("train", "val", "test", "all") if x != split)
        raise DatasetError(f"the {split} split of {ds.root} holds no images{why}; pass --split {others}")
    return samples


def _same_folder(a: str | None, b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing folder (links and relative spellings included)."""
    try:
        return a is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _unseen(ds: Dataset, rec: dict[str, Any]) -> bool:
    """True when the run's split record lists none of DATA's images: a folder of new photos, not its dataset."""
    listed = set().union(*map(set, rec.get("files", {}).values())) if rec.get("files") else set()
    return bool(listed) and ds.layout == "folders" and not any(ds.name(s) in listed for s in ds.samples)


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, split: str | None = None,
             top_k: int = 5, out: str | os.PathLike[str] | None = None, threads: int | None = None,
             workers: int | None = None, compare_to_run: bool = True, verbose: bool = True,
             client: str | None = None, roi: bool = True) -> dict[str, Any]:
    """Evaluate a .tflite/.onnx file or run directory on one split of DATA through `client`; optionally write reports.

    `split` is train, val, test or all (every image of DATA). By default it is the run's own test
    split where DATA is the dataset the run was trained on, and every image of a folder of photos
    the run never saw (scoring 10 % of a held-out folder is not what anyone asks for).

    `client` (litert | mediapipe | onnxruntime | torch; default: edgeclf's runtime for the file type)
    runs the model as that client does; `mediapipe` is the app's ImageClassifier, and its top-1
    agreement with edgeclf's LiteRT runtime is reported. `roi=False` feeds MediaPipe the whole image
    even for a crop-mode file (what an app that ignores the mode gets). `data` defaults to the
    dataset the model's run was trained on.
    """
    check_path("MODEL", model)
    check_path("--data", data, optional=True)
    check_path("--out", out, optional=True)
    if out is not None and any((Path(out) / f).is_file() for f in (MANIFEST, MODEL_FILE)):
        # Its metrics.json is the training record compare, search and distillation read.
        raise ConfigError(f"--out {out} is a training run folder, whose metrics.json evaluate would replace; "
                          f"use a folder of its own, e.g. --out {Path(out) / 'eval'}")
    check("--split", split, NONE, Options("train", "val", "test", "all"))
    check("--top-k", top_k, POSITIVE_INT)
    check("roi", roi, BOOL)
    check("compare_to_run", compare_to_run, BOOL)
    check("verbose", verbose, BOOL)
    check("--threads", threads, NONE, THREADS)
    check("--workers", workers, NONE, POSITIVE_INT)
    engine, client = client_engine(model, client, threads)
    if not roi and client != "mediapipe":  # only MediaPipe is fed a region of interest; it changed nothing else
        raise ConfigError(f"--no-roi applies to --client mediapipe only (it feeds MediaPipe the whole image), "
                          f"not to {client}; add --client mediapipe or drop --no-roi")
    # Warnings, not prints: the API's caller hears them (and can filter them) however verbose is set.
    stale = Path(model).is_file() and is_stale(model)
    if stale:
        warnings.warn(f"{model} was exported from a model its run has since replaced (model.pt changed); "
                      "these figures are the old file's: re-export it", EdgeclfWarning, stacklevel=2)
    failed = failed_int8_check(model)
    if failed:
        warnings.warn(failed, EdgeclfWarning, stacklevel=2)
    run_dir = _run_dir(engine)  # once: finding a moved run hashes its model.pt
    rec = _split_record(run_dir)
    given, data = data, dataset_root(rec, data)
    if data is None:
        raise ConfigError(f"{model}: no run record names its dataset; pass --data DATA")
    if given is None and not Path(data).is_dir():  # the run's own dataset, since moved: not the user's typo
        raise ConfigError(f"{model} was trained on {data}, which is gone (moved or deleted?); pass --data DATA")
    if out is not None:  # before the predictions, not after
        check_outside("--out", out, data)
        make_dir(out)
    ds = scan(data, float(rec.get("val_percent", 10.0)), float(rec.get("test_percent", 10.0)), min_classes=1)
    unseen = _unseen(ds, rec)
    # Names can collide (IMG_0001.jpg): a held-out folder that shares some with the run gets its hashed
    # test split, and the header says how to score all of it.
    own = _same_folder(rec.get("root"), ds.root)
    elsewhere = split is None and not unseen and not own and bool(rec)
    # A file copied away from its run, or whose run was deleted: the split can only be hashed afresh.
    hashed = split is None and not rec
    split = split or ("all" if unseen else "test")
    samples = split_samples(ds, split, rec)
    index = {label_form(c): i for i, c in enumerate(engine.labels)}  # a run from before labels were NFC
    # In the run's own folder, only the classes of the photos scored: its own split has none of a class added since.
    # Elsewhere every folder counts: renamed ones ('Red/' for 'red/') would otherwise drop out of the split unseen.
    scored = {s.label for s in samples} if own else set(range(len(ds.classes)))
    missing = [c for i, c in enumerate(ds.classes) if c not in index and i in scored]
    added = [c for c in ds.classes if c not in index and c not in missing]
    if missing:
        # Photos sorted on another machine: 'Daisy/' or 'sun flowers/' for the model's 'daisy' / 'sunflowers'.
        known = {name_key(c): c for c in engine.labels}
        near = [f"{c} -> {known[name_key(c)]}" for c in missing if name_key(c) in known]
        hint = (f"; {len(near)} differ from the model's only in case, spaces or punctuation ({short_list(near)}): "
                "rename those folders to the model's names" if near else "")
        # DATA/test/<class>/ alone (a Kaggle-style test folder, no train/ beside it): the classes sit one deeper.
        deeper = ds.root / missing[0]
        inner = sorted(label_form(d.name) for d in deeper.iterdir() if d.is_dir()) if deeper.is_dir() else []
        if len(missing) == 1 and set(inner) & set(index):
            hint = (f"; {deeper} holds folders named as the model's classes ({short_list(inner)}): "
                    f"to evaluate on them, pass {deeper} as DATA")
        if not hint and own:  # the run's own folder, grown since
            raise DatasetError(f"{data} has class folders added since the model was trained: {short_list(missing)}; "
                               "drop --split all to score the run's own split, which leaves them out")
        raise DatasetError(f"{data} has classes the model does not know: {short_list(missing)}; "
                           f"evaluate on the dataset the model was trained on{hint}")
    gone = 0
    if split != "all" and own:
        # Photos deleted or renamed since training: the figure is over fewer images than the run's, silently.
        have = {ds.name(s) for s in samples}
        gone = sum(label_form(n) not in have for n in rec.get("files", {}).get(split, []))
    paths = [str(s.path) for s in samples]
    probs, bad, good = client_predict(engine, client, paths, workers, roi)
    if not good:  # every figure would be NaN, over nothing
        first = next(iter(bad.items()))
        where = f"in {ds.root}" if split == "all" else f"of the {split} split of {ds.root}"
        raise DatasetError(f"none of the {len(paths)} image(s) {where} can be read ({first[0]}: {first[1]}); "
                           "fix or replace them")
    y = np.array([index[ds.classes[samples[i].label]] for i in good], dtype=np.int64)
    m = classification_metrics(y, probs, engine.labels, top_k)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    m.update({
        "model": str(model), "kind": engine.kind, "client": client, "resize": engine.preprocess.resize,
        "split": split, "data": str(ds.root), "data_unseen_by_run": unseen, "data_elsewhere": elsewhere,
        "split_without_run_record": hashed,
        "gone_since_training": gone, "classes_not_scored": added, "stale": stale, "failed_int8_check": failed,
        "skipped": [{"path": p, "reason": r} for p, r in bad.items()],
        "misclassified": [{"path": paths[good[j]], "true": engine.labels[y[j]], "predicted": engine.labels[pred[j]],
                           "score": round(float(probs[j, pred[j]]), 4)} for j in np.nonzero(pred != y)[0]],
    })
    if engine.threshold is not None and len(y):
        m["unknown"] = dict(coverage_report(probs, y, engine.threshold), threshold=engine.threshold)
    if client == "mediapipe":
        m["mediapipe_roi"] = bool(roi and engine.preprocess.resize == "crop")
        ref, _, _ = predict_files(engine, [paths[i] for i in good], workers, desc="LiteRT reference")
        m["top1_agreement_with_litert"], m["max_abs_prob_diff_vs_litert"] = _agreement(ref, probs)
    if compare_to_run and run_dir is not None and engine.kind != "torch" and client != "torch":
        ref, _, _ = predict_files(load_engine(run_dir, threads), [paths[i] for i in good], workers,
                                  desc="PyTorch reference")
        if len(ref) == len(pred):
            m["top1_agreement_with_pytorch"], m["max_abs_prob_diff_vs_pytorch"] = _agreement(ref, probs)
            # The steadier figure where a few hundred photos leave top-1 agreement a count of one or two.
            m["mean_abs_prob_diff_vs_pytorch"] = round(float(np.abs(ref - probs).mean()), 6)
            m["pytorch_accuracy"] = round(float((ref.argmax(1) == y).mean()), 4) if len(y) else float("nan")
            m["pytorch_run"] = str(run_dir)
    if out:
        write_reports(Path(out), m, engine.labels, y, probs, engine.threshold)
    if verbose:
        print(format_metrics(m))
    return m


def write_reports(out: Path, m: dict[str, Any], labels: list[str], y: np.ndarray | None = None,
                  probs: np.ndarray | None = None, threshold: float | None = None) -> None:
    """metrics.json, confusion_matrix.csv/.png and (given y, probs) reliability.png and risk_coverage.png."""
    make_dir(out)
    write_json(out / "metrics.json", m)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["true\\predicted", *labels])
    for lab, row in zip(labels, m["confusion_matrix"]):
        w.writerow([lab, *row])
    write_text(out / "confusion_matrix.csv", buf.getvalue())
    plot_confusion(out / "confusion_matrix.png", np.array(m["confusion_matrix"]), labels)
    if y is not None and probs is not None and len(y):
        plot_reliability(out / "reliability.png", y, {m["model"]: probs}, f"{m['model']}: {m['split']} split")
        plot_risk_coverage(out / "risk_coverage.png", y, probs, threshold, f"{m['model']}: {m['split']} split")


# A heat map stays readable to about 30 classes; 300 drew a 181-inch, 6.6 MB figure of 90,000 numbers in 1m50s.
PLOTTED_CLASSES = 30


def most_confused(cm: np.ndarray, k: int = PLOTTED_CLASSES) -> np.ndarray:
    """Indices (ascending) of the `k` classes in the most errors, as true or as predicted class; all if fewer."""
    if len(cm) <= k:
        return np.arange(len(cm))
    off = cm - np.diag(np.diag(cm))
    return np.sort(np.argsort(-(off.sum(0) + off.sum(1)), kind="stable")[:k])


def plot_confusion(path: Path, cm: np.ndarray, labels: list[str]) -> None:
    """A labelled confusion-matrix heat map; of many classes, the PLOTTED_CLASSES in the most errors."""
    keep = most_confused(cm)
    n = len(keep)
    cm, shown_labels = cm[np.ix_(keep, keep)], [labels[i] for i in keep]
    fig, ax = new_figure((1.2 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), shown_labels, rotation=45, ha="right")
    ax.set_yticks(range(n), shown_labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n < len(labels):
        ax.set_title(f"the {n} of {len(labels)} classes in the most errors (all of them: confusion_matrix.csv)")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def format_metrics(m: dict[str, Any]) -> str:
    """Human-readable evaluation summary."""
    topk = next(k for k in m if k.startswith("top") and k.endswith("_accuracy"))
    def cells(p: dict[str, Any]) -> list[Any]:
        # Undefined, not 0: a class no photo was predicted as has no precision, one with no photos no recall
        # (new photos of one class list every other class so).
        prec = p["precision"] if p.get("predicted", 1) else "-"
        rec = p["recall"] if p["support"] else "-"
        return [p["class"], prec, rec, p["f1"] if "-" not in (prec, rec) else "-", p["support"]]

    rows = [cells(p) for p in m["per_class"]]
    where = f"the {m['split']} split of {m['data']}" + (
        " (not the run's dataset folder; if every photo here is new, --split all scores them all)"
        if m.get("data_elsewhere") else
        " (hashed afresh: no run was found for the file to list its test photos; the same photos if the run "
        "used this folder and its default split; --split all scores them all)"
        if m.get("split_without_run_record") else "")
    if m["split"] == "all":
        where = f"every image of {m['data']}" + (" (a folder the model's run never saw)"
                                                 if m.get("data_unseen_by_run") else "")
    notes = []
    if m.get("classes_not_scored"):
        notes.append(f"class folders added since training, which the model cannot answer, left out: "
                     f"{short_list(m['classes_not_scored'])}")
    if m.get("gone_since_training"):
        gone = m["gone_since_training"]
        notes.append(f"{gone} of the run's {m['split']} images {'is' if gone == 1 else 'are'} no longer in the "
                     "folder: deleted or renamed since training")
    where += f" ({'; '.join(notes)})" if notes else ""
    lines = [f"{m['model']} ({m.get('client', m['kind'])}, resize={m.get('resize', 'crop')}) on {where}: "
             f"{m['n']} images",
             f"accuracy {m['accuracy']:.4f}   {topk.replace('_', ' ')} {m[topk]:.4f}   loss {m['loss']:.4f}"
             f"   ECE {m['ece']:.4f}"
             + "".join(f"   top-1 agreement with {who} {m[key]:.4f}" for who, key in
                       (("edgeclf's LiteRT", "top1_agreement_with_litert"), ("PyTorch", "top1_agreement_with_pytorch"))
                       if key in m), "",
             format_table(["class", "precision", "recall", "f1", "support"], rows, decimals=4)]
    if "unknown" in m:
        u = m["unknown"]
        lines.append(f"\nunknown below {u['threshold']:.3f}: {u['coverage']:.1%} of photos answered, accuracy on "
                     f"those {u['accuracy_accepted']:.4f} (all photos: {u['accuracy_all']:.4f})")
    if m["skipped"]:
        lines.append(f"\nskipped {len(m['skipped'])} unreadable image(s)")
    if m["misclassified"]:
        lines.append(f"\n{len(m['misclassified'])} misclassified (first 10):")
        lines += [f"  {x['path']}: {x['true']} → {x['predicted']} ({x['score']:.2f})" for x in m["misclassified"][:10]]
    return "\n".join(lines)
