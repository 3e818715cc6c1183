"""Imbalanced classes: what class weights do to a head trained with label smoothing.

    python bench/imbalance.py [--seeds 0,1,2,3] [--arms ...] [--profiles ...] [--out bench/imbalance.json]

Builds long-tailed copies of flowers (five classes 32:1 and 4:1, and two classes 20:1, a rare
class against the rest) in a presplit layout: train and validation are flowers' own
default-split train and validation photos, cut per class to a long tail (the first N files by
name); test is flowers' whole default test split (about 75 photos per class), so every class's
recall is measured on enough photos. Trains `edgeclf train` defaults (Lite0, 4 augmented views,
hidden 512, label smoothing 0.1) for each seed with four losses:

- ``none``: ``--class-weights none``;
- ``torch``: ``--class-weights balanced`` with torch's ``CrossEntropyLoss(weight, label_smoothing)``,
  edgeclf's loss before this bench (its smoothing term weights every class, so photos of the large
  classes are pulled toward the small ones);
- ``balanced``: ``--class-weights balanced`` with edgeclf's loss (the class weight scales each photo's
  whole smoothed loss, as Keras' class_weight does). ``auto``, the default, is this arm here;
- ``logit-adjusted`` (a scout, not shipped): no weights, the loss sees logits + log(class prior)
  and the model predicts with the logits alone (Menon et al., 2021);
- ``balanced-select`` (a scout, not in the default --arms): balanced weights, and the epoch kept is
  the one with the best balanced (mean-recall) validation accuracy instead of plain accuracy.

Reports test accuracy and balanced accuracy (mean per-class recall), mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FLOWERS = ROOT.parent / "shared" / "datasets" / "flowers"
# Photos per class in train (validation keeps the same share of its split), largest first.
PROFILES = {
    "steep (32:1)": {"daisy": 1.0, "dandelion": 0.3, "roses": 0.12, "sunflowers": 0.06, "tulips": 0.03},
    "mild (4:1)": {"daisy": 1.0, "dandelion": 0.7, "roses": 0.5, "sunflowers": 0.35, "tulips": 0.25},
    "pair (20:1)": {"dandelion": 1.0, "daisy": 0.05},  # "pikachu / no-pikachu": a rare class against the rest
}
SPLIT_DIRS = {"train": "train", "val": "validation", "test": "test"}


def _torch_loss_forward(self, logits, y):  # type: ignore[no-untyped-def]
    """The loss edgeclf used before: torch's weighted, label-smoothed cross-entropy."""
    import torch

    return torch.nn.functional.cross_entropy(logits, y, weight=self.weight, label_smoothing=self.label_smoothing)


def _logit_adjusted_forward(self, logits, y):  # type: ignore[no-untyped-def]
    """Scout: logit adjustment (Menon et al. 2021): train on logits + log(prior), predict with the logits."""
    import torch

    if self.weight is None:
        return torch.nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
    # balanced weights are n / (k * n_c) rescaled: log(prior) = -log(weight) + a constant softmax ignores.
    return torch.nn.functional.cross_entropy(logits - torch.log(self.weight.to(logits.device)), y,
                                             label_smoothing=self.label_smoothing)


def _balanced_evaluate(head, x, y, chunk=4096):  # type: ignore[no-untyped-def]
    """Scout: (mean loss, balanced accuracy) on validation, so the epoch kept is chosen by mean recall."""
    import numpy as np
    import torch

    head.eval()
    with torch.no_grad():
        logits = torch.cat([head(torch.from_numpy(x.take(np.arange(s, min(s + chunk, len(x))))))
                            for s in range(0, len(x), chunk)])
    loss = float(torch.nn.functional.cross_entropy(logits, y))
    pred = logits.argmax(1)
    recalls = [float((pred[y == c] == c).float().mean()) for c in torch.unique(y)]
    return loss, sum(recalls) / len(recalls)


def build(dest: Path, shares: dict[str, float]) -> dict[str, dict[str, int]]:
    """A presplit long-tailed copy of flowers under dest; returns its counts per split and class."""
    from edgeclf.data.dataset import scan

    ds = scan(FLOWERS)
    top = {sp: max(sum(1 for s in ds.split(sp) if s.label == c) for c, name in enumerate(ds.classes) if name in shares)
           for sp in SPLIT_DIRS}
    counts: dict[str, dict[str, int]] = {}
    for sp, folder in SPLIT_DIRS.items():
        counts[sp] = {}
        for ci, cls in enumerate(ds.classes):
            if cls not in shares:
                continue
            files = sorted((s.path for s in ds.split(sp) if s.label == ci), key=lambda p: p.name)
            keep = files if sp == "test" else files[:max(1, round(shares[cls] * top[sp]))]
            (dest / folder / cls).mkdir(parents=True, exist_ok=True)
            for f in keep:
                shutil.copyfile(f, dest / folder / cls / f.name)
            counts[sp][cls] = len(keep)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--arms", default="none,torch,balanced,logit-adjusted")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeclf-bench-imbalance")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "imbalance.json")
    a = ap.parse_args()
    import edgeclf
    from edgeclf.training import head as head_module
    from edgeclf.training.loop import WeightedCrossEntropy

    fixed, evaluate = WeightedCrossEntropy.forward, head_module._evaluate
    seeds = [int(s) for s in a.seeds.split(",")]
    out: dict = {"seeds": seeds, "profiles": {}}
    for name, shares in PROFILES.items():
        if name not in a.profiles.split(","):
            continue
        data = a.work / name.split()[0] / "data"
        shutil.rmtree(data, ignore_errors=True)
        counts = build(data, shares)
        prof: dict = {"counts": counts, "arms": {}}
        for arm in a.arms.split(","):
            WeightedCrossEntropy.forward = {"torch": _torch_loss_forward,
                                            "logit-adjusted": _logit_adjusted_forward}.get(arm, fixed)
            head_module._evaluate = _balanced_evaluate if arm == "balanced-select" else evaluate
            rows = []
            for seed in seeds:
                t = time.time()
                run = edgeclf.train(data, out=a.work / name.split()[0] / f"{arm}_s{seed}", seed=seed, verbose=False,
                                    exist_ok=True, class_weights="none" if arm == "none" else "balanced")
                m = json.loads((run / "metrics.json").read_text())["test"]
                bal = statistics.mean(c["recall"] for c in m["per_class"])
                rows.append({"seed": seed, "accuracy": m["accuracy"], "balanced_accuracy": round(bal, 4),
                             "recall": {c["class"]: c["recall"] for c in m["per_class"]},
                             "wall_s": round(time.time() - t, 1)})
                print(f"{name} {arm} seed {seed}: acc {m['accuracy']:.4f} balanced {bal:.4f}", flush=True)
            WeightedCrossEntropy.forward, head_module._evaluate = fixed, evaluate
            prof["arms"][arm] = {
                "rows": rows,
                **{k: {"mean": round(statistics.mean(r[k] for r in rows), 4),
                       "std": round(statistics.stdev(r[k] for r in rows), 4) if len(rows) > 1 else 0.0}
                   for k in ("accuracy", "balanced_accuracy")}}
        out["profiles"][name] = prof
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, prof in out["profiles"].items():
        for arm, r in prof["arms"].items():
            print(f"| {name} | {arm} | {r['accuracy']['mean']:.4f} ± {r['accuracy']['std']:.4f} | "
                  f"{r['balanced_accuracy']['mean']:.4f} ± {r['balanced_accuracy']['std']:.4f} |")


if __name__ == "__main__":
    main()
