"""PyTorch checkpoints: how each publisher's keys map to ours (one explicit rule set per layout), read safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import ModelError

if TYPE_CHECKING:
    from .builder import Backbone
    from .zoo import ModelSpec

Pairs = list[tuple[str, str]]


def _block_parts(backbone: "Backbone", i: int) -> list[str]:
    b = backbone.blocks[i]
    return [p for p in ("expand", "dw", "se", "project") if getattr(b, p) is not None]


def _lukemelas_lite(bb: "Backbone") -> Pairs:
    pairs = [("_conv_stem", "stem.conv"), ("_bn0", "stem.bn")]
    names = {"expand": [("_expand_conv", "conv"), ("_bn0", "bn")], "dw": [("_depthwise_conv", "conv"), ("_bn1", "bn")],
             "se": [("_se_reduce", "fc1"), ("_se_expand", "fc2")], "project": [("_project_conv", "conv"), ("_bn2", "bn")]}
    for i in range(len(bb.blocks)):
        for part in _block_parts(bb, i):
            pairs += [(f"_blocks.{i}.{s}", f"blocks.{i}.{part}.{d}") for s, d in names[part]]
    return pairs + [("_conv_head", "head.conv"), ("_bn1", "head.bn"), ("_fc", "classifier")]


def _timm_lite(bb: "Backbone") -> Pairs:
    pairs = [("conv_stem", "stem.conv"), ("bn1", "stem.bn")]
    start = 0
    for s, end in enumerate(bb.stage_ends):
        for j, i in enumerate(range(start, end)):
            parts = _block_parts(bb, i)
            src = f"blocks.{s}.{j}"
            if "expand" in parts:
                names = [("conv_pw", "expand.conv"), ("bn1", "expand.bn"), ("conv_dw", "dw.conv"), ("bn2", "dw.bn"),
                         ("conv_pwl", "project.conv"), ("bn3", "project.bn")]
            else:
                names = [("conv_dw", "dw.conv"), ("bn1", "dw.bn"), ("conv_pw", "project.conv"), ("bn2", "project.bn")]
            if "se" in parts:
                names += [("se.conv_reduce", "se.fc1"), ("se.conv_expand", "se.fc2")]
            pairs += [(f"{src}.{a}", f"blocks.{i}.{b}") for a, b in names]
        start = end
    return pairs + [("conv_head", "head.conv"), ("bn2", "head.bn"), ("classifier", "classifier")]


def _torchvision(bb: "Backbone", v3: bool) -> Pairs:
    pairs = [("features.0.0", "stem.conv"), ("features.0.1", "stem.bn")]
    for i in range(len(bb.blocks)):
        src = f"features.{i + 1}.block" if v3 else f"features.{i + 1}.conv"
        k = 0
        for part in _block_parts(bb, i):
            if part == "se":
                pairs += [(f"{src}.{k}.fc1", f"blocks.{i}.se.fc1"), (f"{src}.{k}.fc2", f"blocks.{i}.se.fc2")]
                k += 1
            elif part == "project" and not v3:
                # torchvision's V2 projection is a bare conv and BN, not a Conv-BN-act group.
                pairs += [(f"{src}.{k}", f"blocks.{i}.project.conv"), (f"{src}.{k + 1}", f"blocks.{i}.project.bn")]
            else:
                pairs += [(f"{src}.{k}.0", f"blocks.{i}.{part}.conv"), (f"{src}.{k}.1", f"blocks.{i}.{part}.bn")]
                k += 1
    n = len(bb.blocks) + 1
    pairs += [(f"features.{n}.0", "head.conv"), (f"features.{n}.1", "head.bn")]
    if v3:
        return pairs + [("classifier.0", "pre_logits.0"), ("classifier.3", "classifier")]
    return pairs + [("classifier.1", "classifier")]


LAYOUTS: dict[str, Callable[["Backbone"], Pairs]] = {
    "lukemelas_lite": _lukemelas_lite,
    "timm_lite": _timm_lite,
    "torchvision_v2": lambda bb: _torchvision(bb, v3=False),
    "torchvision_v3": lambda bb: _torchvision(bb, v3=True),
}


def remap(state: dict[str, torch.Tensor], layout: str, backbone: "Backbone") -> tuple[dict, dict]:
    """Translate a checkpoint's keys to ours: (backbone state dict, ImageNet classifier state dict).

    Strict: every backbone tensor must be found with the right shape, and no source tensor is
    left unused, so a wrong layout or architecture fails loudly instead of loading half a model.
    """
    pairs = LAYOUTS[layout](backbone)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for src_prefix, dst_prefix in pairs:
        for key, val in state.items():
            if key.startswith(src_prefix + ".") and key.count(".") == src_prefix.count(".") + 1:
                out[dst_prefix + key[len(src_prefix):]] = val
                used.add(key)
    leftover = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    own = backbone.state_dict()
    missing = [k for k in own if k not in out and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {tuple(out[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in out and tuple(out[k].shape) != tuple(v.shape)]
    if leftover or missing or wrong:
        detail = (f"unused {leftover[:3]}" if leftover else "") + (f" missing {missing[:3]}" if missing else "") + \
            (f" shape {wrong[:3]}" if wrong else "")
        raise ModelError(f"checkpoint does not fit this architecture ({layout}):{detail}")
    head = {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith("classifier.")}
    body = {k: v for k, v in out.items() if not k.startswith("classifier.")}
    return body, head


def _detect_layout(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> str:
    keys = set(state)
    if "_conv_stem.weight" in keys:
        return "lukemelas_lite"
    if "conv_stem.weight" in keys:
        return "timm_lite"
    if "features.0.0.weight" in keys:
        return "torchvision_v3" if any(".block." in k for k in keys) else "torchvision_v2"
    if "stem.conv.weight" in keys:
        return "native"
    raise ModelError(f"{path}: unrecognised checkpoint layout (expected torchvision, timm, EfficientNet-PyTorch or "
                     "edgeclf keys)")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """torch.load a state dict safely (weights_only), unwrapping {'state_dict': ...} containers."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        text = str(exc)
        # torch's own text tells the user to load with weights_only=False: advice edgeclf must not relay.
        if "Unsupported global" in text:
            raise ModelError(f"cannot read {path}: it holds pickled Python objects (a whole model saved with "
                             "torch.save(model)?), which edgeclf does not unpickle since that can run any code; "
                             "save the weights instead: torch.save(model.state_dict(), 'weights.pth')") from None
        if "zip archive" in text:
            raise ModelError(f"cannot read {path}: a damaged or truncated PyTorch checkpoint "
                             f"({text.split('.')[0]}); copy or download it again") from None
        raise ModelError(f"cannot read {path}: it is neither a PyTorch checkpoint (torch.save) nor a .tflite "
                         "file") from None
    for k in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            obj = obj[k]
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds no state dict")
    return obj


def load_checkpoint(backbone: "Backbone", spec: "ModelSpec", path: Path, layout: str | None) -> dict | None:
    """Load a checkpoint file into `backbone` (key layout given or detected); return its ImageNet classifier."""
    state = read_checkpoint(path)
    layout = layout or _detect_layout(state, path)
    if layout == "native":
        if any(k.startswith("backbone.") for k in state):  # saved from a whole Classifier
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        body, head = state, {}
    else:
        body, head = remap(state, layout, backbone)
    missing, unexpected = backbone.load_state_dict(body, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ModelError(f"{path} does not fit {spec.name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return head or None
