"""Parameter and multiply-accumulate counts measured on a built module."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of trainable and frozen parameters (BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, size: int, channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at size x size, from Conv2d and Linear layers."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
