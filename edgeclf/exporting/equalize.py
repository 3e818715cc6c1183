"""Scale ReLU6 channels up before int8 so that each uses the whole int8 range its tensor shares.

An int8 activation tensor has one scale for all its channels. In MobileNetV2 most channels of the
ReLU6 outputs peak far below the tensor's 6 (median channel maximum 0.2–2 on flowers), so they
are written with a few dozen of the 256 steps. Where such an output feeds only a depthwise conv (one
input channel per output channel), channel c can be multiplied by 1/s_c before the ReLU6 (its conv
weights and BatchNorm shift) and by s_c in the depthwise weights: the model computes the same as long
as no scaled channel reaches the clip at 6, and no weight loses precision, as both convs' weights are
quantized per output channel. This is cross-layer equalization (Nagel et al., 2019) kept to the pairs
where it is free; with 1x1 consumers (one scale per output channel, shared by all inputs) it cost
more weight precision than it bought (bench/README.md).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..models.blocks import ConvBnAct
from ..models.builder import Classifier

# A channel's largest calibration value is scaled to 6 / HEADROOM, not 6: a photo that drives it higher than
# any calibration image did keeps that much room below the clip (MobileNetV2 on flowers: at 3 the scaled model's
# probabilities move by at most 3.5e-4 on validation photos, at 2 by 0.014). Only tensors whose median channel
# peaks below MEDIAN are scaled. Where the typical channel peaks higher, the network runs its ReLU6s into the
# clip (EfficientNet-Lite0: 4-88 % of such a tensor's channels reach 6, MobileNetV2's 0-3 %; medians from 2.73
# up, MobileNetV2's up to 2.02) and its low channels are rarely driven ones: of Lite0's channels peaking below
# 2, 3.6 % passed 3x that peak on 200 validation photos (MobileNetV2's: none), and scaling them raised Lite0's
# int8 error. bench/README.md, "ReLU6 channels scaled to fill int8".
HEADROOM = 3.0
MEDIAN = 2.5
MAX_GAIN = 64.0  # a channel (near) silent on every calibration image is scaled at most this much
BATCH = 20  # calibration images per forward pass


def depthwise_pairs(model: Classifier) -> list[tuple[ConvBnAct, nn.Conv2d]]:
    """(ReLU6 conv, the depthwise conv that alone reads its output), in model order."""
    bb = model.backbone
    pairs: list[tuple[ConvBnAct, nn.Conv2d]] = []
    feeding: ConvBnAct | None = bb.stem  # the unit whose output is the next block's input
    for i, b in enumerate(bb.blocks):
        if b.expand is not None:
            producer, read_by_skip = b.expand, False
        else:
            producer, read_by_skip = feeding, b.residual
        if producer is not None and not read_by_skip:
            pairs.append((producer, b.dw.conv))
        # A block output that --pool-blocks pools into the features is read by the pool too: scaling it would
        # change what the head sees (MobileNetV1, whose block outputs are ReLU6s feeding depthwise convs).
        feeding = None if b.residual or i in bb.pooled else b.project
    return [(p, c) for p, c in pairs if isinstance(p.act, nn.ReLU6) and c.groups == c.in_channels > 1]


def run_hooked(model: nn.Module, images: torch.Tensor, hooks: list[tuple[nn.Module, Callable[..., None]]]) -> None:
    """Run `model` over `images` in batches of BATCH with each (module, forward hook) attached, then detached."""
    handles = [m.register_forward_hook(h) for m, h in hooks]
    try:
        for b in range(0, len(images), BATCH):
            model(images[b:b + BATCH])
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def equalize(model: Classifier, images: torch.Tensor) -> int:
    """Scale `model`'s depthwise-fed ReLU6 channels (in place) to fill int8's range on `images` (NCHW);
    returns how many channels were scaled."""
    model.eval()
    pairs = depthwise_pairs(model)
    peaks: dict[int, torch.Tensor] = {}  # per pair, each channel's largest output

    def watch(i: int):
        def hook(_m: nn.Module, _in: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            peak = out.amax((0, 2, 3))
            peaks[i] = torch.maximum(peaks[i], peak) if i in peaks else peak
        return hook

    run_hooked(model, images, [(p, watch(i)) for i, (p, _) in enumerate(pairs)])
    scaled = 0
    for i, (producer, consumer) in enumerate(pairs):
        if peaks[i].median() >= MEDIAN:
            continue
        # Scales from one pass over the unscaled model are exact: scaling a pair leaves every other output as it was.
        s = (HEADROOM * peaks[i] / 6.0).clamp(min=1.0 / MAX_GAIN, max=1.0)
        producer.bn.weight.div_(s)
        producer.bn.bias.div_(s)
        consumer.weight.mul_(s.view(-1, 1, 1, 1))
        scaled += int((s < 1).sum())
    return scaled
