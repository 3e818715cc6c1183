"""Feature-extractor speed on ../shared/datasets/flowers: PyTorch eager vs the same backbone in LiteRT.

    python bench/features.py [--data DIR] [--n 256] [--threads 2] [--models a,b,...]

For each backbone (ImageNet weights, offline): decode N flower photos once, then time the pooled
feature vectors through (1) PyTorch eager NCHW, batch 32, (2) PyTorch channels-last, batch 32,
(3) the backbone exported to .tflite (uint8 NHWC in, features out) run by ai-edge-litert/XNNPACK
at batch 1. Same threads for all. Reports images/s, the ratio against (1), the one-off conversion
time and the largest feature difference against PyTorch. Decoding is excluded (bench/decode.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgeclf.data.images import load_rgb  # noqa: E402
from edgeclf.models.pretrained import load_pretrained  # noqa: E402
from edgeclf.models.zoo import get_spec  # noqa: E402
from edgeclf.training.backends import backbone_tflite, litert_backend, torch_backend  # noqa: E402

MODELS = "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,mobilenet_v2_1.0_224"


def _timed(fn, batches: list[np.ndarray]) -> tuple[float, np.ndarray]:
    fn(batches[0][:2])  # warm-up (allocations, XNNPACK packing)
    t = time.perf_counter()
    out = np.concatenate([fn(b) for b in batches])
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/flowers"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(p for p in Path(args.data).rglob("*.jpg"))[:: max(1, len(list(Path(args.data).rglob('*.jpg'))) // args.n)][: args.n]
    rows = []
    for name in args.models.split(","):
        spec = get_spec(name)
        pre = spec.preprocess
        imgs = np.stack([pre.to_uint8(load_rgb(f, min_side=pre.resize_to)) for f in files])
        batches = [imgs[i:i + 32] for i in range(0, len(imgs), 32)]
        net = spec.build()
        load_pretrained(net, spec, "imagenet")
        net.eval()

        def eager(b: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return net(pre.normalize(b)).numpy()

        t_eager, ref = _timed(eager, batches)
        t_cl, out_cl = _timed(torch_backend(net, pre), batches)
        net = net.to(memory_format=torch.contiguous_format)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            path = backbone_tflite(net, pre, Path(tmp) / "bb.tflite")
            t_conv = time.perf_counter() - t
            t_lite, out_lite = _timed(litert_backend(path, args.threads), batches)
        scale = float(np.abs(ref).max())
        row = {"model": name, "input": pre.size, "n": len(imgs), "threads": args.threads,
               "torch_eager_ips": round(len(imgs) / t_eager, 1),
               "torch_channels_last_ips": round(len(imgs) / t_cl, 1),
               "litert_ips": round(len(imgs) / t_lite, 1),
               "litert_vs_eager": round(t_eager / t_lite, 2),
               "channels_last_vs_eager": round(t_eager / t_cl, 2),
               "convert_s": round(t_conv, 1),
               "litert_max_abs_diff": float(np.abs(out_lite - ref).max()),
               "channels_last_max_abs_diff": float(np.abs(out_cl - ref).max()),
               "feature_max_abs": scale}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| model | input | torch eager img/s | torch channels-last img/s | LiteRT img/s | LiteRT / eager | convert s | max |Δ| (LiteRT) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['input']} | {r['torch_eager_ips']} | {r['torch_channels_last_ips']} | "
              f"{r['litert_ips']} | x{r['litert_vs_eager']} | {r['convert_s']} | {r['litert_max_abs_diff']:.2e} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
