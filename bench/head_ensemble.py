"""Scout (issue #17): does averaging several default heads (foldable into one wider head) beat one head?

    python bench/head_ensemble.py [--runs 20] [--out bench/head_ensemble.json]

Trains `edgeclf train flowers --seed S` (defaults: Lite0 head on cached features, 4 augmented
views, hidden 512) for S = 0..runs-1 (the split is the same for every seed), then averages the
logits of K heads (K = 1, 2, 3, 5; disjoint groups of consecutive seeds, at most 4 groups) on the
validation and test photos. Averaging K MLP heads is exactly one MLP with K x 512 hidden units, so
an ensemble could ship as one exported file; this measures whether it would pay.
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeclf-bench-ensemble")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "head_ensemble.json")
    a = ap.parse_args()
    import edgeclf
    from edgeclf.artifacts.run import load_run, read_split, run_preprocess
    from edgeclf.data.crops import Crops, plain
    from edgeclf.data.dataset import scan

    t0 = time.time()
    runs = [edgeclf.train(a.data, out=a.work / f"s{s}", seed=s, verbose=False, exist_ok=True)
            for s in range(a.runs)]
    t_train = time.time() - t0
    model, meta = load_run(runs[0])
    pre, rec = run_preprocess(meta, runs[0]), read_split(runs[0])
    ds = scan(Path(rec["root"]), rec["val_percent"], rec["test_percent"])
    feats, ys = {}, {}
    model.eval()
    for sp in ("val", "test"):
        ss = ds.recorded(sp, rec)
        x = np.stack([Crops(pre)(plain(str(s.path)))[0] for s in ss])
        with torch.no_grad():  # the backbone is frozen and the same in every run: one pass serves all heads
            feats[sp] = torch.cat([model.backbone(pre.normalize(x[i:i + 32])) for i in range(0, len(x), 32)])
        ys[sp] = torch.tensor([s.label for s in ss])
    logits = []
    for r in runs:
        m, _ = load_run(r)
        m.eval()
        with torch.no_grad():
            logits.append({sp: m.head(feats[sp]) for sp in feats})
    rows = []
    for k in (1, 2, 3, 5):
        for g in range(min(4, a.runs // k)):
            seeds = list(range(g * k, g * k + k))
            acc = {sp: (sum(logits[s][sp] for s in seeds).argmax(1) == ys[sp]).float().mean().item() for sp in feats}
            rows.append({"k": k, "seeds": seeds, "val": acc["val"], "test": acc["test"]})
        rs = [r for r in rows if r["k"] == k]
        print(f"K={k}: val {st.mean(r['val'] for r in rs):.4f}  test {st.mean(r['test'] for r in rs):.4f}  "
              f"({len(rs)} groups)", flush=True)
    a.out.write_text(json.dumps({"data": a.data, "runs": a.runs, "train_s": round(t_train, 1), "rows": rows},
                                indent=1) + "\n")


if __name__ == "__main__":
    main()
