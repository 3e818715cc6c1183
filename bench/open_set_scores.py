"""Open-set flowers (issue #14, part 3): more scores for a never-seen class, on frozen backbone features.

    python bench/open_set_scores.py [--model efficientnet_lite0] [--split RUN/split.json]

`bench/open_set.py` measures the deployed score (the file's top probability) and three others. This
one asks whether any score computed from the frozen ImageNet features would reach the issue's AUROC
0.90: a logistic-regression head's top probability and energy, k-nearest training features by cosine
(k = 1, 10, 50), Mahalanobis distance to the class means with a Ledoit-Wolf shrunk covariance (raw
and unit-length features), the "relative" Mahalanobis distance (minus the distance to one Gaussian
of all training features), and the sum of two z-scored scores (z from the known test photos). The
split is flowers' default one (the same as a default run's split.json), without the held-out class; no
head of edgeclf is trained, so the deployed score is not in this table (see open_set.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
FLOWERS = BENCH.parents[1] / "shared" / "datasets" / "flowers"


def _unit(a: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _mahalanobis(train: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance to the nearest class mean, minus that distance less the whole-data Gaussian's) — higher = known."""
    from sklearn.covariance import LedoitWolf

    cls = np.unique(y)
    means = np.stack([train[y == c].mean(0) for c in cls])
    inv = LedoitWolf().fit(train - means[np.searchsorted(cls, y)]).precision_
    d = np.stack([np.einsum("ij,jk,ik->i", x - m, inv, x - m) for m in means], 1)
    bg = LedoitWolf().fit(train)
    d0 = np.einsum("ij,jk,ik->i", x - bg.location_, bg.precision_, x - bg.location_)
    return -d.min(1), -(d - d0[:, None]).min(1)


def _scores(train: np.ndarray, y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate score of the rows `x`; higher = more like the known classes."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=2000).fit(train, y)
    logits = clf.decision_function(x)
    top = logits.max(1, keepdims=True)
    out = {"top probability (logistic head)": clf.predict_proba(x).max(1),
           "energy (logistic head)": np.log(np.exp(logits - top).sum(1)) + top[:, 0]}
    sim = -np.sort(-(_unit(x) @ _unit(train).T), 1)
    for k in (1, 10, 50):
        out[f"k-th nearest training feature, cosine, k={k}"] = sim[:, k - 1]
    for name, a, b in (("raw", train, x), ("unit", _unit(train), _unit(x))):
        out[f"Mahalanobis, shrunk, {name}"], out[f"relative Mahalanobis, shrunk, {name}"] = _mahalanobis(a, y, b)
    return out


def main() -> None:
    """Score every rotation, print and write the AUROC table."""
    from edgeclf.data.dataset import scan
    from edgeclf.metrics import auroc
    from edgeclf.workflows.label_issues import plain_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--split", help="a run's split.json (default: flowers' default 80/10/10 split, as train makes it)")
    ap.add_argument("--out", default=str(BENCH / "open_set_scores.json"))
    a = ap.parse_args()
    split = (json.loads(Path(a.split).read_text()) if a.split else scan(FLOWERS).split_record())["files"]
    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    every = sorted(str(p) for c in classes for p in (FLOWERS / c).iterdir() if p.is_file())
    index = {p: i for i, p in enumerate(every)}
    rows, _, bad = plain_features(a.model, every)
    assert not bad, bad
    feats = rows.take(np.arange(len(every))).astype(np.float64)
    pairs = (("top probability (logistic head)", "k-th nearest training feature, cosine, k=1"),
             ("energy (logistic head)", "k-th nearest training feature, cosine, k=1"))
    result: dict[str, dict[str, float]] = {}
    for held in classes:
        train = [f for f in split["train"] if not f.startswith(held + "/")]
        y = np.array([classes.index(f.split("/")[0]) for f in train])
        pick = lambda names: feats[[index[str(FLOWERS / f)] for f in names]]  # noqa: E731
        known = _scores(pick(train), y, pick([f for f in split["test"] if not f.startswith(held + "/")]))
        never = _scores(pick(train), y, pick([f"{held}/{Path(p).name}" for p in every if Path(p).parent.name == held]))
        for s1, s2 in pairs:
            z = {k: [(s[k] - known[k].mean()) / known[k].std() for s in (known, never)] for k in (s1, s2)}
            known[f"{s1} + {s2}"], never[f"{s1} + {s2}"] = z[s1][0] + z[s2][0], z[s1][1] + z[s2][1]
        result[held] = {k: round(auroc(known[k], never[k]), 4) for k in known}
        print(held, json.dumps(result[held]), flush=True)
    mean = {k: round(float(np.mean([result[h][k] for h in classes])), 4) for k in result[classes[0]]}
    print("mean", json.dumps(mean), flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/open_set_scores.py " + " ".join(sys.argv[1:]),
                                       "model": a.model, "auroc": result, "mean": mean}, indent=2) + "\n")


if __name__ == "__main__":
    main()
