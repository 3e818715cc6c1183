"""Open-set flowers (issue #14, part 3): train on 4 classes, show the 5th as never-seen photos, all 5 rotations.

    python bench/open_set.py [--model efficientnet_lite0] [--rate 0.05]

Each rotation trains `edgeclf train` defaults plus `--unknown-rate RATE` on four classes (a folder
of links to the class folders: nothing copied), exports float32 and int8, and runs every known
test photo and every photo of the held-out class through the exported file (edgeclf's LiteRT
runtime, which applies the file's threshold as MediaPipe does). Reported: AUROC of telling known
from never-seen photos by the deployed score (calibrated top probability), and for comparison by
scores that need more than a threshold in the file (energy = logsumexp of the logits, nearest
training feature by cosine, Mahalanobis distance to the class means), computed in PyTorch on
the cached features; at the chosen threshold, the share of never-seen photos rejected, the
coverage and accuracy of the known test photos.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
FLOWERS = BENCH.parents[1] / "shared" / "datasets" / "flowers"


def _features(paths: list[str], model: str) -> np.ndarray:
    """Plain-view backbone features of `paths`, from the feature cache `train` filled (computed if missing)."""
    from edgeclf.workflows.label_issues import plain_features

    rows, _, bad = plain_features(model, paths)
    assert not bad, bad
    return rows.take(np.arange(len(paths)))


def _scores(head, feats: np.ndarray, train_feats: np.ndarray, train_y: np.ndarray) -> dict[str, np.ndarray]:
    """Higher = more like the known classes, for every candidate score."""
    import torch

    with torch.no_grad():
        logits = head(torch.from_numpy(feats)).numpy().astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cos = unit(feats) @ unit(train_feats).T
    means = np.stack([train_feats[train_y == c].mean(0) for c in np.unique(train_y)])
    centred = train_feats - means[train_y]
    cov = centred.T @ centred / len(centred) + 1e-3 * np.eye(feats.shape[1])
    inv = np.linalg.inv(cov)
    d = np.stack([np.einsum("ij,jk,ik->i", feats - m, inv, feats - m) for m in means], 1)
    return {"top probability (deployed)": p.max(1),
            "energy (logsumexp)": np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1),
            "nearest training feature (cosine)": cos.max(1), "Mahalanobis (class means)": -d.min(1)}


def main() -> None:
    from edgeclf.artifacts.run import load_run, read_split
    from edgeclf.runtime.predict import predict
    from edgeclf.training.trainer import train
    from edgeclf.metrics import auroc
    from edgeclf.workflows.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--rate", type=float, default=0.05, help="--unknown-rate of every run")
    ap.add_argument("--runs", default=str(Path(tempfile.gettempdir()) / "edgeclf-bench-open-set"))
    ap.add_argument("--options", default="{}", type=json.loads,
                    help='more train options as JSON, e.g. \'{"fine_tune": 3}\' (runs then go to RUNS/<options>)')
    ap.add_argument("--out", default=str(BENCH / "open_set.json"))
    a = ap.parse_args()
    runs = Path(a.runs) / ("_".join(f"{k}{v}" for k, v in sorted(a.options.items())) or ".")
    # The PyTorch-only scores read ImageNet features, which a fine-tuned backbone no longer produces.
    frozen = not a.options.get("fine_tune")
    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    every = sorted(str(p) for c in classes for p in (FLOWERS / c).iterdir() if p.is_file())
    feats_all = _features(every, a.model)
    index = {p: i for i, p in enumerate(every)}
    rows = []
    for held in classes:
        t = time.perf_counter()
        data = Path(a.runs) / f"without_{held}"
        data.mkdir(parents=True, exist_ok=True)
        for c in classes:
            if c != held and not (data / c).exists():
                (data / c).symlink_to(FLOWERS / c, target_is_directory=True)
        run = train(str(data), a.model, runs / f"run_without_{held}",
                    unknown_rate=a.rate, exist_ok=True, verbose=False, **a.options)
        m = json.loads((run / "metrics.json").read_text())
        threshold = m["unknown"]["threshold"]
        split = read_split(run)["files"]
        known_test = [str(FLOWERS / f) for f in split["test"]]
        known_y = np.array([classes.index(f.split("/")[0]) for f in split["test"]])
        never = sorted(str(p) for p in (FLOWERS / held).iterdir() if p.is_file())
        row: dict = {"held_out": held, "threshold": threshold, "n_known_test": len(known_test),
                     "n_never_seen": len(never)}
        for quant in ("float32", "int8"):
            f = export(run, quantize=quant, max_drop=None, verbose=False)
            preds = {r["path"]: r for r in predict(f, known_test + never, top_k=1)}
            known_top = np.array([preds[p]["top"][0]["score"] for p in known_test])
            never_top = np.array([preds[p]["top"][0]["score"] for p in never])
            hit = np.array([preds[p]["top"][0]["label"] == classes[y] for p, y in zip(known_test, known_y)])
            accepted = known_top >= threshold
            row[quant] = {"auroc": round(auroc(known_top, never_top), 4),
                          "never_seen_rejected": round(float((never_top < threshold).mean()), 4),
                          "known_coverage": round(float(accepted.mean()), 4),
                          "known_accuracy_all": round(float(hit.mean()), 4),
                          "known_accuracy_accepted": round(float(hit[accepted].mean()), 4)}
        model, _ = load_run(run)
        if not frozen or model.backbone.pool_blocks:  # the PyTorch-only scores read the final ImageNet features only
            row["wall_s"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        train_idx = [index[str(FLOWERS / f)] for f in split["train"]]
        train_y = np.array([classes.index(f.split("/")[0]) for f in split["train"]])
        train_y = np.searchsorted(np.unique(train_y), train_y)
        sc_known = _scores(model.head.eval(), feats_all[[index[p] for p in known_test]], feats_all[train_idx], train_y)
        sc_never = _scores(model.head.eval(), feats_all[[index[p] for p in never]], feats_all[train_idx], train_y)
        row["auroc_pytorch"] = {k: round(auroc(sc_known[k], sc_never[k]), 4) for k in sc_known}
        row["wall_s"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary: dict = {}
    for quant in ("float32", "int8"):
        summary[quant] = {k: round(statistics.mean(r[quant][k] for r in rows), 4) for k in rows[0][quant]}
    if "auroc_pytorch" in rows[0]:
        summary["auroc_pytorch"] = {k: round(statistics.mean(r["auroc_pytorch"][k] for r in rows), 4)
                                    for k in rows[0]["auroc_pytorch"]}
    print(json.dumps(summary), flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/open_set.py " + " ".join(sys.argv[1:]),
                                       "model": a.model, "rate": a.rate, "options": a.options, "rows": rows, "summary": summary},
                                      indent=2) + "\n")


if __name__ == "__main__":
    main()
