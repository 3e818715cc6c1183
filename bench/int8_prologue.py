"""Where our int8 MobileNetV2 loses time to the TF converter's: the in-graph uint8 → normalize prologue.

    python bench/int8_prologue.py [--threads 2] [--runs 100]

Builds MobileNetV2 1.0 224 (random weights; latency does not depend on them) two ways and
quantizes both to int8 with ai-edge-quantizer (uint8 I/O): (a) the graph edgeclf exported before
edgeclf/exporting/fold.py, uint8
pixels → CAST → SUB mean → MUL 1/std → network; (b) the bare network taking normalized input.
Times both against ../shared/reference_models/mobilenet_v2_1.0_224_int8.tflite in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def p50(path: str, threads: int, runs: int) -> float:
    """Median batch-1 latency (ms) of a .tflite, through edgeclf's own timing loop."""
    from edgeclf.runtime.benchmark import benchmark_file

    return benchmark_file(path, threads, runs, warmup=10)["p50_ms"]


class Bare(nn.Module):
    """The classifier on normalized NHWC float input: no cast, no normalization."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x.permute(0, 3, 1, 2)), -1)


def main() -> None:
    import litert_torch

    from edgeclf.exporting.tflite import convert_float, quantize_tflite, retype_io
    from edgeclf.models.builder import Classifier
    from edgeclf.models.zoo import get_spec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    torch.manual_seed(0)
    spec = get_spec("mobilenet_v2_1.0_224")
    clf = Classifier(spec.build(), 5).eval()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        ours = retype_io(quantize_tflite(convert_float(clf, spec.preprocess), "int8",
                                         rng.integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)), "uint8")
        Path(f"{tmp}/ours.tflite").write_bytes(ours)
        litert_torch.convert(Bare(clf).eval(), (torch.zeros(1, 224, 224, 3),)).export(f"{tmp}/bare_f32.tflite")
        bare = retype_io(quantize_tflite(Path(f"{tmp}/bare_f32.tflite").read_bytes(), "int8",
                                         rng.normal(0, 1, (16, 224, 224, 3)).astype(np.float32)), "uint8")
        Path(f"{tmp}/bare.tflite").write_bytes(bare)
        ref = str(ROOT.parent / "shared/reference_models/mobilenet_v2_1.0_224_int8.tflite")
        for rep in range(2):
            a, b, r = (p50(f"{tmp}/ours.tflite", args.threads, args.runs),
                       p50(f"{tmp}/bare.tflite", args.threads, args.runs), p50(ref, args.threads, args.runs))
            print(f"round {rep + 1}: edgeclf export {a:.3f} ms ({a / r:.2f}x ref), bare network {b:.3f} ms "
                  f"({b / r:.2f}x ref), reference {r:.3f} ms")


if __name__ == "__main__":
    main()
