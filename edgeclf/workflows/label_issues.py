"""`doctor --label-issues`: photos whose label the data itself contradicts, ranked by cleanlab.

Out-of-fold probabilities come from a head trained on the cached backbone features (the cache
`train` fills, so a warm run takes seconds): every photo is scored by a head that never saw it.
cleanlab's confident learning (`find_label_issues`) decides which photos are likely mislabeled
and its self-confidence score (the out-of-fold probability of the given label) ranks them.
Nothing is moved or relabeled: the report lists the suspects for a person to look at.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np

from ..data.dataset import scan
from ..errors import EdgeclfError
from ..models.preprocess import DEFAULT_RESIZE
from ..models.zoo import get_spec
from ..params import FOLDS, POSITIVE_INT, check


def _cleanlab():
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise EdgeclfError("--label-issues needs cleanlab: pip install 'edgeclf[doctor]' (or pip install cleanlab)") \
            from None
    return find_label_issues, get_label_quality_scores


def out_of_fold_probs(x: np.ndarray, y: np.ndarray, n_classes: int, folds: int, seed: int = 0) -> np.ndarray:
    """Probabilities for every row from a head trained on the other folds (stratified by class)."""
    from ..training.head import HeadConfig, predict_probs, train_head

    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    for c in range(n_classes):  # each class dealt round-robin over the folds, in random order
        idx = np.flatnonzero(y == c)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    probs = np.zeros((len(y), n_classes), np.float32)
    # Big batches, few epochs: out-of-fold scores need a fair head, not the best one (5 folds in seconds).
    cfg = HeadConfig(epochs=10, batch_size=128, lr=3e-3, patience=0, label_smoothing=0.0, seed=seed)
    for k in range(folds):
        held = fold == k
        head = train_head(x[~held], y[~held], None, None, n_classes, cfg).head
        probs[held] = predict_probs(head, x[held])
    return probs


def plain_features(model: str, paths: list[str], workers: int | None = None,
                   cache_dir: str | os.PathLike[str] | None = None) -> tuple[Any, list[str | None], dict[str, str]]:
    """ImageNet-backbone features of each photo's plain view (default input fit), from the cache `train` fills.

    Returns (rows of every path, content hashes, {unreadable path: reason}); missing rows are computed
    and cached.
    """
    from ..models.pretrained import build_pretrained
    from ..training.backends import make_backend
    from ..training.features import FeatureCache, cache_key, default_cache_root, extract
    from ..training.run_setup import weights_id

    spec = get_spec(model)
    spec = replace(spec, preprocess=replace(spec.preprocess, resize=DEFAULT_RESIZE))
    loaded = build_pretrained(spec, "imagenet")
    root = default_cache_root(cache_dir)
    cache = FeatureCache(root, cache_key(loaded.spec.name, weights_id(spec.weights, "imagenet", 0),
                                         loaded.spec.preprocess, 0, None))
    rows, hashes, bad = extract(
        lambda: make_backend("auto", loaded.backbone.eval(), loaded.spec.preprocess, cache.key, root),
        loaded.spec.preprocess, paths, {0: cache}, workers=workers, desc=f"{spec.name} features")
    return rows[0], hashes, bad


# Flowers with 5 % of its photos moved to another class: cleanlab flags 6.8 % (1.8 % unmodified; bench/README.md,
# "Label errors"). Where no label is wrong but the head is weak, the flags are its confusions: 28 % of a generated
# 20-class set of coloured shapes (bench/awkward_names.py; head right on 54 %), over a third of unrelated random
# photos (the test).
FLAGGED_SHARE_CAVEAT = 0.15


def label_issues(data: str | os.PathLike[str], model: str = "efficientnet_lite0", folds: int = 5, top: int = 20,
                 workers: int | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    """Rank every photo of DATA by how likely its label is wrong; the flagged ones first."""
    check("--folds", folds, FOLDS)
    check("--top", top, POSITIVE_INT)
    find, quality = _cleanlab()
    ds = scan(data)
    paths = [str(s.path) for s in ds.samples]
    feats, hashes, bad = plain_features(model, paths, workers, cache_dir)
    spec = get_spec(model)
    # One row per distinct photo: an exact copy under two classes is doctor's duplicate report, not a suspect here.
    seen: set[str] = set()
    keep = []
    for i, h in enumerate(hashes):
        if h is not None and h not in seen:
            seen.add(h)
            keep.append(i)
    counts = np.bincount([ds.samples[i].label for i in keep], minlength=len(ds.classes))
    # A class with one photo cannot be held out and learned at once: its photo is left unscored.
    lone = [c for c in range(len(ds.classes)) if counts[c] == 1]
    keep = [i for i in keep if counts[ds.samples[i].label] >= 2]
    y = np.array([ds.samples[i].label for i in keep], np.int64)
    if len(np.unique(y)) < 2:
        raise EdgeclfError(f"--label-issues needs at least two classes with 2 or more photos in {ds.root}")
    k = int(min(folds, counts[counts >= 2].min()))
    notes = [f"a class has only {k} photos: {k}-fold instead of {folds}-fold"] if k < folds else []
    if lone:
        notes.append(f"not scored: the single photo of class(es) {', '.join(ds.classes[c] for c in lone)}")
    note = "; ".join(notes) or None
    x = feats.take(np.array(keep))
    probs = out_of_fold_probs(x, y, len(ds.classes), k, seed)
    # n_jobs=1: cleanlab forks a process pool by default, and forking once the LiteRT converter has loaded JAX
    # (its threads) can deadlock; one process costs 0.38 s against 0.29 s at 50k photos x 100 classes.
    flagged = set(find(labels=y, pred_probs=probs, n_jobs=1).nonzero()[0].tolist())
    score = quality(y, probs, method="self_confidence")
    order = sorted(range(len(keep)), key=lambda j: (j not in flagged, score[j]))
    ranked = [{"path": paths[keep[j]], "given": ds.classes[y[j]], "predicted": ds.classes[int(probs[j].argmax())],
               "p_given": round(float(probs[j, y[j]]), 4), "p_predicted": round(float(probs[j].max()), 4),
               "flagged": j in flagged} for j in order]
    acc = float((probs.argmax(1) == y).mean())
    caveat = None
    if len(flagged) > FLAGGED_SHARE_CAVEAT * len(keep):
        caveat = (f"{len(flagged) / len(keep):.0%} of the photos flagged is far more than labelling slips usually are "
                  f"(a few %): the out-of-fold head is right on only {acc:.0%}, so most flags are photos it cannot "
                  "tell apart, not wrong labels; look at the first few, and at doctor's other warnings first")
    report = {"data": str(ds.root), "model": spec.name, "folds": k, "note": note, "photos": len(keep),
              "flagged": len(flagged), "skipped": [{"path": p, "reason": r} for p, r in bad.items()],
              "oof_accuracy": round(acc, 4), "caveat": caveat, "suspects": ranked[:max(top, 0)],
              "ranking": [r["path"] for r in ranked]}
    if verbose:
        print(format_issues(report))
    return report


def format_issues(r: dict[str, Any]) -> str:
    """The suspects as a few readable lines."""
    lines = [f"likely label errors: cleanlab flags {r['flagged']} of {r['photos']} photos "
             f"({r['folds']}-fold out-of-fold {r['model']} head, accuracy {r['oof_accuracy']:.3f})"
             + (f"; {r['note']}" if r["note"] else "")]
    if r.get("caveat"):
        lines.append(f"warning: {r['caveat']}")
    for s in r["suspects"]:
        if s["flagged"]:
            lines.append(f"  {s['path']}: labelled {s['given']} ({s['p_given']:.2f}), looks like {s['predicted']} "
                         f"({s['p_predicted']:.2f})")
    if r["flagged"] > len(r["suspects"]):
        lines.append(f"  ... {r['flagged'] - len(r['suspects'])} more (--top N to list more); nothing was moved")
    return "\n".join(lines)
