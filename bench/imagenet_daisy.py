"""Do the offline ImageNet weights load correctly? ImageNet class 985 ('daisy') on flowers/daisy.

    python bench/imagenet_daisy.py [--models efficientnet_lite0,...] [--out bench/imagenet_daisy.json]

Preprocessing: shorter side to size/0.875, centre crop, the model's own mean/std.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgeclf.data.images import load_rgb
from edgeclf.data.parallel import imap
from edgeclf.models.zoo import create_model, get_spec

DAISY = 985
DEFAULT = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,mobilenet_v2_1.0_224"




def run(model_name: str, folder: Path) -> dict:
    spec = get_spec(model_name)
    model = create_model(model_name)  # ImageNet head kept
    files = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    arrays = np.stack(list(imap(_Load(spec.preprocess), files)))
    t = time.perf_counter()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(arrays), 64):
            logits.append(model(spec.preprocess.normalize(arrays[i:i + 64])))
    dt = time.perf_counter() - t
    top5 = torch.cat(logits).topk(5, dim=1).indices
    top1 = (top5[:, 0] == DAISY).float().mean().item()
    in5 = (top5 == DAISY).any(dim=1).float().mean().item()
    return {"model": model_name, "images": len(files), "top1_daisy": round(top1, 4), "top5_daisy": round(in5, 4),
            "forward_s": round(dt, 2)}


class _Load:
    def __init__(self, pre):
        self.pre = pre

    def __call__(self, path: str) -> np.ndarray:
        return self.pre.to_uint8(load_rgb(path, min_side=self.pre.resize_to))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/flowers/daisy"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    for name in a.models.split(","):
        r = run(name, Path(a.data))
        rows.append(r)
        print(json.dumps(r), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"command": " ".join(sys.argv), "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
