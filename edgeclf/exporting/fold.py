"""Fold input normalization into the stem convolution, so an int8 graph needs no float prologue.

An int8 model that normalizes inside the graph runs CAST → SUB → MUL on every pixel before the
first convolution; measured on MobileNetV2 that prologue is the whole latency gap to the TF
converter's file (bench/int8_prologue.py). Instead the graph takes u = (x - m0) / s0 with one
mean and std for all channels — which the uint8 input's own quantization parameters express
exactly (scale 1/s0, zero point m0) — and the per-channel rest, n_c = a_c·u + b_c, goes into the
stem: weights scaled by a_c, the constant b_c folded into BatchNorm's running mean.
That is exact wherever the stem's window lies inside the image; on its one-pixel border, where
the convolution sees padding, the padded value shifts by -b_c/a_c (zero when the model's mean/std
are the same for every channel, as for EfficientNet-Lite and MobileNet V1).
"""

from __future__ import annotations

import copy

import torch

from ..models.builder import Classifier
from ..models.preprocess import Preprocess


def uniform_normalization(pre: Preprocess) -> tuple[int, float]:
    """(m0, s0): an integer mean (a uint8 zero point) and one std close to the model's own."""
    return int(round(sum(pre.mean) / 3)), float(sum(pre.std) / 3)


def fold_normalization(model: Classifier, pre: Preprocess) -> tuple[Classifier, int, float]:
    """A copy of `model` that takes u = (x - m0) / s0 (NCHW) and computes what `model` does on (x - mean) / std."""
    m0, s0 = uniform_normalization(pre)
    folded = copy.deepcopy(model).eval()
    stem = folded.backbone.stem
    mean = torch.tensor(pre.mean, dtype=torch.float64)
    std = torch.tensor(pre.std, dtype=torch.float64)
    a = s0 / std  # n_c = a_c * u + b_c
    b = (m0 - mean) / std
    with torch.no_grad():
        w = stem.conv.weight.double()
        shift = (w * b.view(1, 3, 1, 1)).sum((1, 2, 3))  # the constant b's response, per output channel
        stem.conv.weight.copy_((w * a.view(1, 3, 1, 1)).float())
        stem.bn.running_mean.sub_(shift.float())  # BN now sees conv(W·a, u) = y - shift
    return folded, m0, s0
