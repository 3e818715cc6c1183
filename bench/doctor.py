"""Label errors found by `doctor --label-issues` (issue #15, item 2): flowers with 5 % of labels flipped.

    python bench/doctor.py [--seeds 4] [--rate 0.05]

Each seed builds a copy of flowers made of symlinks (nothing copied, nothing moved) in which a
random 5 % of the photos sit under a wrong class, runs the label-issue ranking (EfficientNet-Lite0
features from the warm cache, 5-fold head, cleanlab), and counts how many of the flipped photos
are among the top N suspects (N = number flipped) and among cleanlab's flagged set. Flowers'
own mislabeled photos compete for the same places, so a recall of 1.0 is not reachable.
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


def flipped_copy(dest: Path, rate: float, seed: int) -> set[str]:
    """A symlink copy of flowers with `rate` of the photos under another class; returns the flipped link paths."""
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    photos = sorted((c, p) for c in classes for p in (FLOWERS / c).iterdir() if p.is_file())
    flip = set(rng.choice(len(photos), int(round(rate * len(photos))), replace=False).tolist())
    out = set()
    for i, (c, p) in enumerate(photos):
        to = c if i not in flip else classes[(classes.index(c) + rng.integers(1, len(classes))) % len(classes)]
        link = dest / to / p.name
        if link.exists():  # a same-named photo already there: this one keeps its class
            to, link = c, dest / c / p.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p)
        if to != c:
            out.add(str(link))
    return out


def main() -> None:
    from edgeclf.workflows.label_issues import label_issues

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--out", default=str(BENCH / "doctor.json"))
    a = ap.parse_args()
    rows = []
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            flipped = flipped_copy(Path(tmp) / "data", a.rate, seed)
            t = time.perf_counter()
            r = label_issues(Path(tmp) / "data", seed=seed, verbose=False)
            wall = time.perf_counter() - t
            ranking = r["ranking"]
            top = set(ranking[:len(flipped)])
            flagged = {s for s in ranking[:r["flagged"]]}
            row = {"seed": seed, "photos": r["photos"], "flipped": len(flipped),
                   "recall_top_n": round(len(top & flipped) / len(flipped), 4),
                   "flagged": r["flagged"], "recall_flagged": round(len(flagged & flipped) / len(flipped), 4),
                   "precision_flagged": round(len(flagged & flipped) / max(1, len(flagged)), 4),
                   "unique_in_ranking": len(set(ranking)) == len(ranking), "wall_s": round(wall, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {k: round(statistics.mean(r[k] for r in rows), 4)
               for k in ("recall_top_n", "recall_flagged", "precision_flagged", "wall_s")}
    print(json.dumps(summary), flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/doctor.py " + " ".join(sys.argv[1:]),
                                       "rate": a.rate, "rows": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
