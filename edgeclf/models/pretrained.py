"""A backbone with its ImageNet weights, from the catalogue, a .pth checkpoint or a .tflite file."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError
from ..params import check_weights
from .checkpoints import load_checkpoint
from .weights import WeightSource, locate, locate_source

if TYPE_CHECKING:
    from .builder import Backbone
    from .zoo import ModelSpec


@dataclass
class Pretrained:
    """A backbone with its weights, the spec it was built from (a .tflite may adapt padding and
    input normalization to the file), and the ImageNet classifier when the weights carry one."""

    spec: "ModelSpec"
    backbone: "Backbone"
    head: dict | None


def _resolve(spec: "ModelSpec", weights: str) -> tuple[Path, str | None, WeightSource | None]:
    if weights == "imagenet":
        if not spec.weights:
            raise ModelError(f"{spec.name} has no published ImageNet weights; pass --weights none to train from "
                             "scratch, or --weights FILE (.pth checkpoint or .tflite)")
        path, src = locate(spec.weights)
        return path, src.layout, src
    path = Path(check_weights(weights))
    with open(path, "rb") as f:
        magic = f.read(8)
    return path, ("tflite" if magic[4:8] == b"TFL3" or path.suffix == ".tflite" else None), None


def build_pretrained(spec: "ModelSpec", weights: str = "imagenet", imagenet_head: bool = False) -> Pretrained:
    """Build `spec`'s backbone with `weights` ("imagenet", "none", a .pth checkpoint or a .tflite file)."""
    if weights == "none":
        return Pretrained(spec, spec.build(), None)
    path, layout, src = _resolve(spec, weights)
    if layout == "tflite":
        return _from_tflite(spec, path, src, imagenet_head)
    backbone = spec.build()
    return Pretrained(spec, backbone, load_checkpoint(backbone, spec, path, layout))


def load_pretrained(backbone: "Backbone", spec: "ModelSpec", weights: str = "imagenet") -> dict | None:
    """Load weights into `backbone` in place; return the ImageNet classifier's state dict (or None)."""
    p = build_pretrained(spec, weights, imagenet_head=True)
    if p.spec.arch != spec.arch:
        raise ModelError(f"{weights} was trained with {p.spec.arch.pad!r} padding, {spec.name} is built with "
                         f"{spec.arch.pad!r}: use build_pretrained, which adapts the architecture")
    backbone.load_state_dict(p.backbone.state_dict())
    return p.head


def _from_tflite(spec: "ModelSpec", path: Path, src: WeightSource | None, imagenet_head: bool) -> Pretrained:
    from .tflite_import import classifier_state, match, read_graph

    graph = read_graph(path)
    backbone = spec.build()
    try:
        state, pad = match(graph, backbone, spec.name)
    except ModelError as exc:
        raise ModelError(f"{exc}{_which_model(graph)}") from None
    if pad != spec.arch.pad:  # convolution shapes do not depend on padding; the module does
        spec = replace(spec, arch=replace(spec.arch, pad=pad))
        backbone = spec.build()
    if graph.mean is not None:
        spec = replace(spec, preprocess=replace(spec.preprocess, mean=(graph.mean,) * 3, std=(graph.std,) * 3))
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # match() covers every conv; anything else is a builder we cannot fill
        raise ModelError(f"{path.name} leaves {spec.name} incomplete: missing {missing[:3]}")
    head = classifier_state(graph, backbone.num_features)
    if head is None and imagenet_head and src is not None and src.head is not None:
        try:
            head_path, _ = locate_source(src.head, allow_download=True)
        except ModelError:
            head_path = None
        if head_path is not None:
            hg = read_graph(head_path)
            head = classifier_state(hg, backbone.num_features, hg.body)
    return Pretrained(spec, backbone, head)


def inspect_tflite(path: str | os.PathLike[str]) -> dict:
    """What a .tflite file offers as weights: the architectures it fits, its input normalization, its classifier."""
    from .tflite_import import read_graph

    graph = read_graph(path)
    return {"file": str(path), "fits": _fits(graph) if graph.pooled else [], "convolutions": len(graph.body),
            "input": {"shape": list(graph.input_shape), "type": graph.input_type, "mean": graph.mean, "std": graph.std},
            "classifier_outputs": int(graph.classifier[0].weight.shape[0]) if len(graph.classifier) == 1 else None}


def _which_model(graph: object) -> str:
    """'; the file fits mobilenet_v2_1.0_*' — which registered architecture a mismatching file fits."""
    fits = _fits(graph)
    return f"; the file fits {', '.join(fits)}" if fits else ""


def _fits(graph: object) -> list[str]:
    """Registered architectures (one per family and width; any input size) whose convolutions the file's match."""
    from .tflite_import import our_signature, signature
    from .zoo import REGISTRY

    want = signature(graph.body)  # type: ignore[attr-defined]
    seen: dict[tuple, str] = {}
    for name, sp in REGISTRY.items():
        key = (sp.family, sp.arch.width, sp.arch.depth)
        if key not in seen and sp.family != "mobilenet_v3":
            seen[key] = name
    return [n.rsplit("_", 1)[0] + "_*" if REGISTRY[n].family != "efficientnet_lite" else n
            for n in seen.values() if our_signature(REGISTRY[n].build()) == want]
