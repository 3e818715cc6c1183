"""Round int8 weights so that each layer's output, not each weight, stays closest to float (GPTQ).

ai-edge-quantizer rounds every weight to the nearest step of its output channel's int8 grid
(symmetric, scale = max|w| / 127). For layers whose output is a small window of a large
pre-activation — EfficientNet-Lite's stem has channels with weights up to 17 feeding a ReLU6 —
a 0.4 % weight error is a large output error: in a simulation of Lite0's int8 file, nearest
rounding of the weights alone changed the answer on 10 of 741 flower photos (bench/README.md).
GPTQ (Frantar et al., 2023) rounds the weights of a row one at a time and moves the row's later
weights to cancel the error that rounding made on the layer's inputs, using H = E[x xᵀ] of the
calibration images' inputs to that layer.

The rounded weights are written back onto the quantizer's own grid — every row keeps its largest
weight, so the scale the quantizer derives is the one used here, and its nearest rounding then
reproduces these integers. The graph, its size and its latency do not change.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import Conv2dSame, ConvBnAct
from ..models.builder import Classifier
from .equalize import equalize, run_hooked

DAMP = 0.01  # of H's mean diagonal: keeps H invertible where calibration inputs are collinear
BLOCK = 64  # columns rounded before the rest of a row is updated (GPTQ's lazy batch updates)
MEMO = 2  # (scaled, rounded) copies kept: the int8 check re-exports one model on the same images (report, float ops)
# A windowed dense conv gathers one K x K statistic per output channel: past out x K^2 of this it costs more
# time than the first layers (the stem, the first expansions), where the window matters, are worth.
WINDOW_SIZE = 2 ** 17

_memo: OrderedDict[str, tuple[dict[str, torch.Tensor], ...]] = OrderedDict()


def _patches(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The inputs each output position of `conv` sees: [K, L] (dense) or [C, k·k, L] (depthwise).

    K is ordered as the flattened weight: input channel, then kernel row and column.
    """
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    if (kh, kw, sh, sw, conv.groups) == (1, 1, 1, 1, 1):  # a pointwise conv sees its input as it is
        return x.transpose(0, 1).reshape(x.shape[1], -1)
    pad: int | tuple[int, ...] | str = conv.padding
    if isinstance(conv, Conv2dSame):  # its padding is computed per input size, as its forward does
        x, pad = conv.same_pad(x), 0
    p = F.unfold(x, (kh, kw), padding=pad, stride=(sh, sw))  # [N, C·kh·kw, L]
    if conv.groups > 1:
        n, _, positions = p.shape
        return p.view(n, conv.in_channels, kh * kw, positions).permute(1, 2, 0, 3).reshape(conv.in_channels,
                                                                                            kh * kw, -1)
    return p.permute(1, 0, 2).reshape(p.shape[1], -1)


def gptq_rows(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Rows of `w` [G, R, K] rounded onto their symmetric int8 grids, the error spread by `h` [G, K, K]."""
    w, h = w.double().clone(), h.double().clone()
    groups, rows, k = w.shape
    scale = w.abs().amax(2, keepdim=True).clamp(min=1e-30) / 127
    eye = torch.eye(k, dtype=h.dtype).expand(groups, k, k)
    dead = torch.diagonal(h, dim1=1, dim2=2) == 0  # an input that never varies: any weight serves
    h = h + eye * dead.unsqueeze(1).double()
    h = h + eye * (DAMP * torch.diagonal(h, dim1=1, dim2=2).mean(1)).view(groups, 1, 1)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    # The row's largest weight is not moved: it fixes the scale the quantizer will derive.
    keep = torch.ones_like(w)
    keep.scatter_(2, w.abs().argmax(2, keepdim=True), 0.0)
    q = torch.zeros_like(w)
    for b0 in range(0, k, BLOCK):  # columns a block at a time; the rest of the row is updated once per block
        b1 = min(b0 + BLOCK, k)
        err = torch.zeros_like(w[:, :, b0:b1])
        for i in range(b0, b1):
            col = w[:, :, i]
            q[:, :, i] = torch.clamp(torch.round(col / scale[:, :, 0]), -127, 127) * scale[:, :, 0]
            err[:, :, i - b0] = (col - q[:, :, i]) / hinv[:, i, i].unsqueeze(1)
            step = err[:, :, i - b0].unsqueeze(2) * hinv[:, i, i + 1:b1].unsqueeze(1)
            w[:, :, i + 1:b1] -= step * keep[:, :, i + 1:b1]
        w[:, :, b1:] -= torch.bmm(err, hinv[:, b0:b1, b1:]) * keep[:, :, b1:]
    return q


def fold_factor(m: ConvBnAct) -> torch.Tensor:
    """Per output channel, the factor the converter folds BatchNorm into the conv weights with."""
    return m.bn.weight / torch.sqrt(m.bn.running_var + m.bn.eps)


def rounded_layers(model: Classifier) -> list[tuple[nn.Module, ConvBnAct | None]]:
    """The layers whose weights are rounded, in model order: every conv (with its ConvBnAct) and head Linear."""
    return ([(m.conv, m) for m in model.modules() if isinstance(m, ConvBnAct)]
            + [(m, None) for m in model.head.modules() if isinstance(m, nn.Linear)])


def activation_window(block: ConvBnAct | None) -> tuple[float, float] | None:
    """The range of pre-activations `block`'s activation passes on (ReLU6: 0..6), or None where it passes all."""
    act = block.act if block is not None else None
    if isinstance(act, nn.ReLU6):
        return 0.0, 6.0
    if isinstance(act, nn.ReLU):
        return 0.0, float("inf")
    return None


def _windowed(layer: nn.Module, block: ConvBnAct | None) -> bool:
    """Whether `layer`'s statistics are gathered per output channel over the positions its activation passes."""
    if activation_window(block) is None or not isinstance(layer, nn.Conv2d):
        return False
    return layer.groups > 1 or layer.out_channels * layer.weight[0].numel() ** 2 <= WINDOW_SIZE


def _passed(block: ConvBnAct, out: torch.Tensor) -> torch.Tensor:
    """[C, L] 1.0 where the conv output `out` [N, C, H, W] lands inside the activation's window after BatchNorm."""
    lo, hi = activation_window(block)  # type: ignore[misc]
    y = block.bn(out)
    return ((y > lo) & (y < hi)).transpose(0, 1).reshape(out.shape[1], -1).to(out.dtype)


@torch.no_grad()
def round_weights(model: Classifier, images: torch.Tensor, window: bool = False) -> Classifier:
    """Set `model`'s conv and head weights (in place) to GPTQ-rounded int8 values; `images` are its NCHW inputs.

    With `window`, a ReLU/ReLU6 layer's output error counts only where its activation passes it (the
    positions a ReLU6 clips never reach the next layer): every depthwise conv's, and the small dense
    convs' (WINDOW_SIZE), statistics are gathered per output channel over those positions.
    """
    model.eval()
    layers = rounded_layers(model)
    hs: dict[int, torch.Tensor] = {}

    def gather(i: int, layer: nn.Module, block: ConvBnAct | None):
        windowed = window and _windowed(layer, block)

        def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = inputs[0]
            if isinstance(layer, nn.Linear):
                h = x.t() @ x
            elif layer.groups > 1:  # an image at a time: its patches repeat each input k·k times
                h = 0
                for n in range(len(x)):
                    p = _patches(layer, x[n:n + 1])
                    if windowed:
                        h = h + torch.einsum("ckl,cjl->ckj", p * _passed(block, out[n:n + 1])[:, None], p)
                    else:
                        h = h + torch.einsum("ckl,cjl->ckj", p, p)
            elif windowed:  # one statistic per output channel, a few channels at a time (memory: c x K x L)
                p, m = _patches(layer, x), _passed(block, out)
                step = max(1, 2 ** 26 // p.numel())
                h = torch.cat([torch.matmul(p[None] * m[c:c + step, None], p.t()) for c in range(0, len(m), step)])
            else:
                p = _patches(layer, x)
                h = p @ p.t()
            hs[i] = hs[i] + h.double() if i in hs else h.double()
        return hook

    run_hooked(model, images, [(layer, gather(i, layer, block)) for i, (layer, block) in enumerate(layers)])
    for i, (layer, block) in enumerate(layers):
        if i not in hs:
            continue
        if block is None:
            layer.weight.copy_(gptq_rows(layer.weight[None], hs[i][None])[0].float())
            continue
        f = fold_factor(block).double().view(-1, 1, 1, 1)
        live = f != 0  # a BatchNorm scale of 0 silences the channel: its weights stay as they are
        f = torch.where(live, f, torch.ones_like(f))
        wf = layer.weight.double() * f
        if hs[i].dim() == 3:  # one row per channel, each with its own statistics (depthwise, or windowed)
            q = gptq_rows(wf.reshape(wf.shape[0], 1, -1), hs[i])
        else:
            q = gptq_rows(wf.reshape(1, wf.shape[0], -1), hs[i][None])
        layer.weight.copy_(torch.where(live, q.reshape(wf.shape) / f, layer.weight.double()).float())
    return model


def hash_tensors(h: "hashlib._Hash", named: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed each tensor's name, dtype, shape and bytes to `h`."""
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def _digest(model: nn.Module, images: torch.Tensor) -> str:
    """What a rounding depends on: every weight and buffer of `model`, and the calibration images."""
    h = hashlib.sha256()
    hash_tensors(h, [*model.state_dict().items(), ("images", images)])
    return h.hexdigest()


def int8_copies(model: Classifier, images: torch.Tensor, equalized: bool = True,
                rounded: bool = True, window: bool = False) -> tuple[Classifier, Classifier]:
    """(the float model int8 quantizes, the same with GPTQ-rounded weights): copies of `model` (untouched), its
    ReLU6 channels scaled (equalize.py) if `equalized`, rounded if `rounded` (within the activations' windows
    if `window`: round_weights); `images` are its NCHW inputs.

    The int8 check exports one model again and again (with a report, with ops kept in float, the best
    try once more) on the same calibration images: the copies of the last two (model, images) pairs
    are reused instead of recomputed (~10 s each for a 224-pixel model on 2 cores).
    """
    key = f"{_digest(model, images)}{equalized:d}{rounded:d}{window:d}"
    out = copy.deepcopy(model), copy.deepcopy(model)
    if key in _memo:
        _memo.move_to_end(key)
        for m, state in zip(out, _memo[key]):
            m.load_state_dict(state)
        return out
    if equalized:
        equalize(out[0], images)
        out[1].load_state_dict(out[0].state_dict())
    if rounded:
        round_weights(out[1], images, window)
    _memo[key] = tuple({k: v.detach().clone() for k, v in m.state_dict().items()} for m in out)
    while len(_memo) > MEMO:
        _memo.popitem(last=False)
    return out


def forget_copies() -> None:
    """Drop the kept copies: the next `int8_copies` call computes (and costs) its own."""
    _memo.clear()


def deployed_constants(model: Classifier) -> list[np.ndarray]:
    """Each layer `round_weights` rounds, as a converted graph holds it: its weights (BatchNorm folded in; OHWI
    conv, 1HWC depthwise, [out, in] head), then, for a conv, its bias (BatchNorm's shift folded in)."""
    out = []
    with torch.no_grad():
        for layer, block in rounded_layers(model):
            if block is None:
                out.append(layer.weight.numpy())
                continue
            f = fold_factor(block)
            w = layer.weight * f.view(-1, 1, 1, 1)
            out.append((w.permute(1, 2, 3, 0) if layer.groups > 1 else w.permute(0, 2, 3, 1)).numpy())
            bias = layer.bias if layer.bias is not None else torch.zeros_like(f)
            out.append((block.bn.bias + (bias - block.bn.running_mean) * f).numpy())
    return [np.ascontiguousarray(w, np.float32) for w in out]
