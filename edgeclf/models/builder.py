"""One generic builder for the whole MobileNet / EfficientNet-Lite family.

An architecture is a few global settings plus one compact string per stage, e.g.
``ir_r2_k3_s2_e6_c24`` = 2 inverted-residual blocks, 3x3 depthwise, first stride 2, expansion 6,
24 output channels. Tokens:

- ``ir`` / ``ds``: inverted residual / depthwise-separable block
- ``rN`` repeats, ``kN`` depthwise kernel, ``sN`` stride of the first block, ``cN`` output channels
- ``eF`` expansion ratio, or ``xN`` absolute expanded channels (MobileNetV3's tables)
- ``se``: squeeze-excite on the expanded channels; ``nre`` / ``nhs``: ReLU / hard-swish activation
- ``pa``: activation after the pointwise projection (MobileNetV1)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..params import Interval, check
from .blocks import ACTIVATIONS, ConvBnAct, MBBlock, make_divisible


@dataclass(frozen=True)
class BlockArgs:
    """One decoded stage string."""

    kind: str
    repeats: int
    kernel: int
    stride: int
    out: int
    expand_ratio: float = 1.0
    expanded_abs: int | None = None
    se: bool = False
    act: str | None = None
    pw_act: bool = False


_ACT_TOKENS = {"nre": "relu", "nhs": "hswish", "nr6": "relu6"}


def decode_stage(spec: str) -> BlockArgs:
    """Parse a stage string such as 'ir_r2_k3_s2_e6_c24_se_nhs'."""
    kind, *tokens = spec.split("_")
    if kind not in ("ir", "ds"):
        raise ValueError(f"unknown block type {kind!r} in {spec!r}")
    args: dict = {"kind": kind}
    for tok in tokens:
        m = re.fullmatch(r"([a-z]+)([\d.]*)", tok)
        if not m:
            raise ValueError(f"bad token {tok!r} in {spec!r}")
        key, val = m.groups()
        if key in _ACT_TOKENS and not val:
            args["act"] = _ACT_TOKENS[key]
        elif key == "se" and not val:
            args["se"] = True
        elif key == "pa" and not val:
            args["pw_act"] = True
        elif key in ("r", "k", "s", "c", "x") and val:
            args[{"r": "repeats", "k": "kernel", "s": "stride", "c": "out", "x": "expanded_abs"}[key]] = int(val)
        elif key == "e" and val:
            args["expand_ratio"] = float(val)
        else:
            raise ValueError(f"bad token {tok!r} in {spec!r}")
    return BlockArgs(**args)


@dataclass(frozen=True)
class ArchDef:
    """Everything that defines an architecture family member except its weights."""

    stages: tuple[str, ...]
    stem: int = 32
    head: int | None = 1280  # 1x1 conv after the last stage (None: no head conv)
    act: str = "relu6"
    pad: str = "sym"  # "same" = TensorFlow SAME padding (TF-trained checkpoints)
    bn_eps: float = 1e-5
    width: float = 1.0
    depth: float = 1.0
    head_scales_up_only: bool = False  # MobileNetV2: head = 1280 * max(1, width)
    head_from_last: int | None = None  # MobileNetV3: head = N x last stage channels
    fixed_stem_head: bool = False  # EfficientNet-Lite: stem, head, first/last stage depth never scaled
    pre_logits: int | None = None  # MobileNetV3: linear + hard-swish after pooling
    se_gate: str = "hsigmoid"
    stem_act: str | None = None


class Backbone(nn.Module):
    """stem → blocks → head conv → global average pool → [pre-logits]: a pooled feature vector."""

    def __init__(self, a: ArchDef) -> None:
        super().__init__()
        ch = lambda c: make_divisible(c * a.width)  # noqa: E731
        stem = a.stem if a.fixed_stem_head else ch(a.stem)
        self.stem = ConvBnAct(3, stem, 3, 2, act=a.stem_act or a.act, pad=a.pad, bn_eps=a.bn_eps)
        blocks: list[nn.Module] = []
        cin = stem
        self.stage_ends: list[int] = []
        for si, spec in enumerate(a.stages):
            b = decode_stage(spec)
            fixed = a.fixed_stem_head and si in (0, len(a.stages) - 1)
            repeats = b.repeats if fixed else int(math.ceil(b.repeats * a.depth))
            cout = ch(b.out)
            act = b.act or a.act
            for i in range(repeats):
                expanded = ch(b.expanded_abs) if b.expanded_abs else int(round(cin * b.expand_ratio))
                se = make_divisible(expanded // 4) if b.se else 0
                blocks.append(MBBlock(cin, cout, b.kernel, b.stride if i == 0 else 1, expanded, act, se, a.se_gate,
                                      pw_act=b.pw_act, skip=b.kind == "ir", pad=a.pad, bn_eps=a.bn_eps))
                cin = cout
            self.stage_ends.append(len(blocks))
        self.blocks = nn.Sequential(*blocks)
        if a.head_from_last:
            head = a.head_from_last * cin
        elif a.head is None:
            head = None
        elif a.fixed_stem_head:
            head = a.head
        elif a.head_scales_up_only:
            head = make_divisible(a.head * max(1.0, a.width))
        else:
            head = ch(a.head)
        self.head = ConvBnAct(cin, head, 1, act=a.act, bn_eps=a.bn_eps) if head else nn.Identity()
        self.num_features = head or cin
        if a.pre_logits:
            n = make_divisible(a.pre_logits * a.width)
            self.pre_logits: nn.Module = nn.Sequential(nn.Linear(self.num_features, n), ACTIVATIONS["hswish"]())
            self.num_features = n
        else:
            self.pre_logits = nn.Identity()
        self.final_features = self.num_features
        self.pooled: tuple[int, ...] = ()  # indices of the blocks --pool-blocks pools

    def set_pool_blocks(self, k: int) -> None:
        """Append the average-pooled outputs of the k blocks below the last feature map to the features."""
        # The last feature map is the head conv's output, or the last block's where there is no head conv
        # (MobileNetV1): a tapped block's output must not be that map itself.
        last = len(self.blocks) - (0 if isinstance(self.head, ConvBnAct) else 1)
        check("--pool-blocks", k, Interval(int, 0, last))
        self.pooled = tuple(range(last - k, last))
        self.num_features = self.final_features + sum(self.blocks[i].project.conv.out_channels for i in self.pooled)

    @property
    def default_pool_blocks(self) -> int:
        """--pool-blocks when not given: 2 below a 1x1 head conv, 0 where the last block is the feature map (V1)."""
        # The head conv was trained to expand features for ImageNet's classes; the two blocks under it carry what
        # it discards (+1.3 test points for Lite0 on flowers, +2.3 on 100 generated classes). MobileNet V1 has no
        # such conv and gained nothing measurable (bench/README.md, "Pooled block outputs").
        return 2 if isinstance(self.head, ConvBnAct) else 0

    @property
    def pool_blocks(self) -> int:
        """How many blocks are pooled into the features (--pool-blocks)."""
        return len(self.pooled)

    @property
    def min_top_units(self) -> int:
        """Fewest top units `top` can run and still see every pooled block (1 without pooled blocks)."""
        # top(x, k) receives block k - 2's output as x: the lowest tapped block may be that input.
        return self.n_units - (self.pooled[0] + 2) if self.pooled else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, H, W] (normalized) → features [N, num_features]."""
        return self.top(self.bottom(x, 1), 1)

    @property
    def n_units(self) -> int:
        """Units from input to output: the stem, each block, the head conv (+ pre-logits)."""
        return len(self.blocks) + 2

    def bottom(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The activation after the first k units (1 <= k < n_units): the stem and k - 1 blocks."""
        x = self.stem(x)
        for b in self.blocks[:k - 1]:
            x = b(x)
        return x

    def top(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The rest after `bottom(x, k)`: the remaining blocks, head conv, pool → features (+ pooled blocks)."""
        if k > 1 and self.pooled and self.pooled[0] < k - 2:
            raise ValueError(f"top(x, {k}) cannot see block {self.pooled[0]}, which --pool-blocks pools")
        # adaptive_avg_pool2d, not x.mean((2, 3)): the converter lowers the latter with an extra
        # NHWC→NCHW TRANSPOSE in front of the pool.
        pool = lambda t: torch.flatten(F.adaptive_avg_pool2d(t, 1), 1)  # noqa: E731
        pooled = [pool(x)] if k > 1 and k - 2 in self.pooled else []
        for i, b in enumerate(self.blocks[k - 1:], start=k - 1):
            x = b(x)
            if i in self.pooled:
                pooled.append(pool(x))
        feats = self.pre_logits(pool(self.head(x)))
        return torch.cat([feats, *pooled], 1) if pooled else feats


class Classifier(nn.Module):
    """A backbone with a dropout + linear head; `forward` returns logits."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.2, hidden: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = make_head(backbone.num_features, num_classes, dropout, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, classes] for normalized NCHW images."""
        return self.head(self.backbone(x))


def make_head(num_features: int, num_classes: int, dropout: float = 0.2, hidden: int = 0) -> nn.Sequential:
    """dropout → [linear → ReLU → dropout] → linear: the trainable part of transfer learning."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden:
        layers += [nn.Linear(num_features, hidden), nn.ReLU(), nn.Dropout(dropout)]
        num_features = hidden
    layers.append(nn.Linear(num_features, num_classes))
    return nn.Sequential(*layers)
