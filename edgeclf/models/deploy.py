"""The deployable graph: raw pixels in, class probabilities (or features) out, preprocessing inside."""

from __future__ import annotations

import torch
from torch import nn

from .preprocess import Preprocess


class Deployable(nn.Module):
    """NHWC pixels (uint8 or float 0..255) → cast → (x - mean) / std → model → softmax (optional).

    Putting the cast and normalization inside the graph is what lets MediaPipe's ImageClassifier
    feed the file raw uint8 camera frames.
    """

    def __init__(self, model: nn.Module, pre: Preprocess, softmax: bool = True) -> None:
        super().__init__()
        self.model = model
        self.softmax = softmax
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (or logits) for NHWC images in the file's input range."""
        x = x.permute(0, 3, 1, 2).to(torch.float32)
        y = self.model((x - self.mean) * self.inv_std)
        return torch.softmax(y, dim=-1) if self.softmax else y


class Prenormalized(nn.Module):
    """NHWC float input already normalized (by the input tensor's quantization) → model → softmax."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores for NHWC images already normalized."""
        return torch.softmax(self.model(x.permute(0, 3, 1, 2)), dim=-1)
