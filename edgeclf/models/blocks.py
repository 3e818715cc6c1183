"""Layers of the MobileNet / EfficientNet-Lite family, in plain PyTorch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "none": nn.Identity}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of `divisor`, never more than 10% below `v` (TF/torchvision rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding: the extra pixel of an odd total goes bottom/right.

    Checkpoints converted from TensorFlow were trained with it; symmetric padding shifts every
    stride-2 feature map by half a pixel and costs accuracy.
    """

    def same_pad(self, x: torch.Tensor) -> torch.Tensor:
        """`x` padded as TensorFlow's SAME padding does for this input's size."""
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]) if ph or pw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with TensorFlow's SAME padding, computed for this input's size."""
        return F.conv2d(self.same_pad(x), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv2d(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, pad: str = "sym",
           bias: bool = False) -> nn.Conv2d:
    """A conv with symmetric ('sym') or TF-'same' padding; stride 1 'same' is symmetric, so plain."""
    if pad == "same" and stride > 1:
        return Conv2dSame(cin, cout, k, stride, padding=0, groups=groups, bias=bias)
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=bias)


class ConvBnAct(nn.Sequential):
    """conv → BatchNorm → activation."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: str = "relu",
                 pad: str = "sym", bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = conv2d(cin, cout, k, stride, groups, pad)
        self.bn = nn.BatchNorm2d(cout, eps=bn_eps)
        self.act = ACTIVATIONS[act]()


class SqueezeExcite(nn.Module):
    """Channel attention (MobileNetV3): pool → 1x1 → ReLU → 1x1 → gate → scale."""

    def __init__(self, channels: int, reduced: int, gate: str = "hsigmoid") -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid() if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel by a gate computed from its spatial mean."""
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class MBBlock(nn.Module):
    """Inverted residual (MobileNetV2/V3, EfficientNet): [expand 1x1] → depthwise → [SE] → project 1x1.

    Without `expanded != cin` it is the depthwise-separable block; `pw_act` gives the projection an
    activation (MobileNetV1), otherwise it is linear.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, expanded: int, act: str, se_channels: int = 0,
                 se_gate: str = "hsigmoid", pw_act: bool = False, skip: bool = True, pad: str = "sym",
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.expand = ConvBnAct(cin, expanded, 1, act=act, bn_eps=bn_eps) if expanded != cin else None
        self.dw = ConvBnAct(expanded, expanded, k, stride, groups=expanded, act=act, pad=pad, bn_eps=bn_eps)
        self.se = SqueezeExcite(expanded, se_channels, se_gate) if se_channels else None
        self.project = ConvBnAct(expanded, cout, 1, act=act if pw_act else "none", bn_eps=bn_eps)
        self.residual = skip and stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, squeeze-excite, project, plus the residual where shapes allow."""
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y
