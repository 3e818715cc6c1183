"""Training wall time and accuracy on ../shared/datasets/flowers: edgeclf's recipe vs the plain one.

    python bench/train.py [--data DIR] [--models a,b,c] [--baseline-epochs 2] [--out bench/train.json]

For each model: `edgeclf train` with defaults on an empty feature cache (cold: includes the
one-off LiteRT export of the backbone and all feature extraction), then again (warm), then with
`--aug-views 4` (cold for the 4 augmented views). Wall time is the whole command, start to exit.

Baseline ("plain recipe"): fine-tune the whole network on the fly — ImageNet backbone, fresh
head, the same augmentation, AdamW + cosine — as Model Maker's `do_fine_tuning` does. It runs
`--baseline-epochs` epochs (each is minutes on a CPU); its wall time for edgeclf's head epoch
budget is extrapolated from the measured time per epoch and labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _run(args: list[str], env: dict[str, str]) -> tuple[float, dict, dict]:
    out = Path(args[args.index("--out") + 1])
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgeclf", "train", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    return wall, json.loads((out / "metrics.json").read_text()), json.loads((out / "manifest.json").read_text())


def baseline(data: str, model: str, epochs: int, head_epochs: int) -> dict:
    """Whole-network fine-tuning on the fly, from a fresh head."""
    import torch

    from edgeclf.data.augment import Augment
    from edgeclf.data.dataset import scan
    from edgeclf.models.builder import Classifier
    from edgeclf.models.pretrained import load_pretrained
    from edgeclf.models.zoo import get_spec
    from edgeclf.training.finetune import FineTuneConfig, fine_tune, predict_logits

    torch.manual_seed(0)
    spec = get_spec(model)
    backbone = spec.build()
    load_pretrained(backbone, spec, "imagenet")
    ds = scan(data)
    part = {sp: [s for s in ds.samples if s.split == sp] for sp in ("train", "val", "test")}
    clf = Classifier(backbone, len(ds.classes))
    t = time.perf_counter()
    clf, hist, _ = fine_tune(clf, spec.preprocess, [str(s.path) for s in part["train"]],
                             np.array([s.label for s in part["train"]]), [str(s.path) for s in part["val"]],
                             np.array([s.label for s in part["val"]]),
                             FineTuneConfig(blocks="all", epochs=epochs, lr=3e-4), Augment())
    wall = time.perf_counter() - t
    logits = predict_logits(clf, spec.preprocess, [str(s.path) for s in part["test"]])
    acc = float((logits.argmax(1) == np.array([s.label for s in part["test"]])).mean())
    per_epoch = wall / epochs
    return {"model": model, "recipe": f"plain: fine-tune all on the fly, {epochs} epochs", "test_acc": round(acc, 4),
            "wall_s": round(wall, 1), "s_per_epoch": round(per_epoch, 1),
            "extrapolated_wall_s_for_head_budget": round(per_epoch * head_epochs, 1), "head_epochs": head_epochs,
            "history": hist}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/flowers"))
    ap.add_argument("--models", default="mobilenet_v2_1.0_224,efficientnet_lite0,efficientnet_lite2")
    ap.add_argument("--baseline-model", default="efficientnet_lite0")
    ap.add_argument("--baseline-epochs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/train.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EDGECLF_HOME=os.environ.get("EDGECLF_HOME", str(Path.home() / ".cache/edgeclf")),
                   EDGECLF_FEATURE_CACHE=str(Path(tmp) / "features"), EDGECLF_PROGRESS="0")
        for m in args.models.split(","):
            for label, extra in (("cold", []), ("warm", []), ("aug-views 4, cold", ["--aug-views", "4"]),
                                 ("aug-views 4, warm", ["--aug-views", "4"])):
                wall, met, man = _run([args.data, "--model", m, "--out", f"{tmp}/{m}-{len(rows)}", *extra], env)
                row = {"model": m, "recipe": f"edgeclf head, {label}", "test_acc": met["test"]["accuracy"],
                       "val_acc": met["val"]["accuracy"], "wall_s": round(wall, 1),
                       "features_s": man["timings_s"]["features"], "head_s": man["timings_s"]["head"],
                       "best_epoch": met["best_epoch"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    head_epochs = max(r["best_epoch"] for r in rows if r["model"] == args.baseline_model) + 10  # + patience
    if args.baseline_epochs:
        b = baseline(args.data, args.baseline_model, args.baseline_epochs, head_epochs)
        print(json.dumps({k: v for k, v in b.items() if k != "history"}), flush=True)
        rows.append(b)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
