"""The registry of every backbone variant, by name (`mobilenet_v2_1.0_224`, `efficientnet_lite0`, ...)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError, ModelError
from ..params import FRACTION, HIDDEN, NONE, POSITIVE_INT, check, check_weights, shown
from .builder import ArchDef, Backbone, Classifier
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, TF_LITE_MEAN, TF_LITE_STD, TF_QUANT_MEAN, TF_QUANT_STD, Preprocess

_V1 = ArchDef(
    stages=("ds_r1_k3_s1_c64_pa", "ds_r1_k3_s2_c128_pa", "ds_r1_k3_s1_c128_pa", "ds_r1_k3_s2_c256_pa",
            "ds_r1_k3_s1_c256_pa", "ds_r1_k3_s2_c512_pa", "ds_r5_k3_s1_c512_pa", "ds_r1_k3_s2_c1024_pa",
            "ds_r1_k3_s1_c1024_pa"),
    stem=32, head=None, act="relu6", pad="same", bn_eps=1e-3)

_V2 = ArchDef(
    stages=("ds_r1_k3_s1_c16", "ir_r2_k3_s2_e6_c24", "ir_r3_k3_s2_e6_c32", "ir_r4_k3_s2_e6_c64",
            "ir_r3_k3_s1_e6_c96", "ir_r3_k3_s2_e6_c160", "ir_r1_k3_s1_e6_c320"),
    stem=32, head=1280, act="relu6", head_scales_up_only=True)

_V3_LARGE = ArchDef(
    stages=("ir_r1_k3_s1_x16_c16_nre", "ir_r1_k3_s2_x64_c24_nre", "ir_r1_k3_s1_x72_c24_nre",
            "ir_r1_k5_s2_x72_c40_se_nre", "ir_r2_k5_s1_x120_c40_se_nre", "ir_r1_k3_s2_x240_c80",
            "ir_r1_k3_s1_x200_c80", "ir_r2_k3_s1_x184_c80", "ir_r1_k3_s1_x480_c112_se",
            "ir_r1_k3_s1_x672_c112_se", "ir_r1_k5_s2_x672_c160_se", "ir_r2_k5_s1_x960_c160_se"),
    stem=16, act="hswish", head_from_last=6, pre_logits=1280, bn_eps=1e-3)

_V3_SMALL = ArchDef(
    stages=("ir_r1_k3_s2_x16_c16_se_nre", "ir_r1_k3_s2_x72_c24_nre", "ir_r1_k3_s1_x88_c24_nre",
            "ir_r1_k5_s2_x96_c40_se", "ir_r2_k5_s1_x240_c40_se", "ir_r1_k5_s1_x120_c48_se",
            "ir_r1_k5_s1_x144_c48_se", "ir_r1_k5_s2_x288_c96_se", "ir_r2_k5_s1_x576_c96_se"),
    stem=16, act="hswish", head_from_last=6, pre_logits=1024, bn_eps=1e-3)

_LITE = ArchDef(
    stages=("ds_r1_k3_s1_c16", "ir_r2_k3_s2_e6_c24", "ir_r2_k5_s2_e6_c40", "ir_r3_k3_s2_e6_c80",
            "ir_r3_k5_s1_e6_c112", "ir_r4_k5_s2_e6_c192", "ir_r1_k3_s1_e6_c320"),
    stem=32, head=1280, act="relu6", pad="same", bn_eps=1e-3, fixed_stem_head=True)

_LITE_SCALING = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: its architecture, its preprocessing and the name of its ImageNet weights."""

    name: str
    family: str
    arch: ArchDef
    preprocess: Preprocess
    weights: str | None  # key into weights.SOURCES; None = no ImageNet weights exist for it

    def build(self) -> Backbone:
        """A freshly initialised backbone."""
        return Backbone(self.arch)


def _registry() -> dict[str, ModelSpec]:
    reg: dict[str, ModelSpec] = {}
    for w in (0.25, 0.5, 0.75, 1.0):
        for r in (128, 160, 192, 224):
            name = f"mobilenet_v1_{w}_{r}"
            # Google's QAT .tflite files hold the weights; any resolution starts from them (convolutions
            # do not depend on input size), and the file's input quantization gives the normalization.
            reg[name] = ModelSpec(name, "mobilenet_v1", replace(_V1, width=w),
                                  Preprocess(r, TF_QUANT_MEAN, TF_QUANT_STD), f"tflite_mobilenet_v1_{w}")
    for w in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
        for r in (96, 128, 160, 192, 224):
            name = f"mobilenet_v2_{w}_{r}"
            reg[name] = ModelSpec(name, "mobilenet_v2", replace(_V2, width=w), Preprocess(r, IMAGENET_MEAN, IMAGENET_STD),
                                  "torchvision_mobilenet_v2" if w == 1.0 else None)
    for size, arch in (("large", _V3_LARGE), ("small", _V3_SMALL)):
        for w in (0.75, 1.0):
            name = f"mobilenet_v3_{size}_{w}_224"
            reg[name] = ModelSpec(name, "mobilenet_v3", replace(arch, width=w),
                                  Preprocess(224, IMAGENET_MEAN, IMAGENET_STD),
                                  f"torchvision_mobilenet_v3_{size}" if w == 1.0 else None)
    for i, (w, d, r) in _LITE_SCALING.items():
        name = f"efficientnet_lite{i}"
        mean, std = (TF_LITE_MEAN, TF_LITE_STD) if i <= 2 else ((127.5,) * 3, (127.5,) * 3)
        reg[name] = ModelSpec(name, "efficientnet_lite", replace(_LITE, width=w, depth=d), Preprocess(r, mean, std),
                              f"efficientnet_lite{i}")
    return reg


REGISTRY: dict[str, ModelSpec] = _registry()
ALIASES = {"mobilenet_1.0_224": "mobilenet_v1_1.0_224", "mobilenet_v2": "mobilenet_v2_1.0_224",
           "mobilenet_v3_large": "mobilenet_v3_large_1.0_224", "mobilenet_v3_small": "mobilenet_v3_small_1.0_224"}


def _hub_name(handle: str) -> str | None:
    """The zoo name of a TF Hub / Kaggle Models handle retrain.py's --tfhub_module took, if it has one.

    .../imagenet/mobilenet_v2_100_224/feature_vector/5 -> mobilenet_v2_1.0_224,
    .../efficientnet/lite0/feature-vector/2 -> efficientnet_lite0 (Kaggle spells them mobilenet-v2/.../100-224).
    """
    s = handle.lower()
    lite = re.search(r"efficientnet.*?lite[_-]?(\d)", s)
    if lite:
        return f"efficientnet_lite{lite.group(1)}"
    version = re.search(r"mobilenet[_-]v([123])", s)
    size = re.search(r"(\d{3})[_-](\d{3})", s[version.end():]) if version else None
    if not size:
        return None
    kind = re.search(r"(large|small)", s)
    v3 = f"_{kind.group(1) if kind else 'large'}" if version.group(1) == "3" else ""
    return f"mobilenet_v{version.group(1)}{v3}_{int(size.group(1)) / 100}_{int(size.group(2))}"


def get_spec(name: str) -> ModelSpec:
    """Look up a variant by name (also retrain.py-style names like `mobilenet_0.50_160`, and TF Hub handles)."""
    if not isinstance(name, str):
        raise ConfigError(f"--model must be a model name such as efficientnet_lite0 (`edgeclf models` lists them), "
                          f"got {shown(name)}")
    # Model Maker's and papers' spellings: EfficientNet-Lite0, MobileNetV2, MOBILENET_V2 (MediaPipe's enum).
    key = re.sub(r"mobilenetv(\d)", r"mobilenet_v\1", name.strip().lower().replace("-", "_"))
    key = key.replace("efficientnetlite", "efficientnet_lite")
    key = ALIASES.get(key, key)
    if "/" in key:  # retrain.py --tfhub_module https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5
        hub = _hub_name(key)
        if hub not in REGISTRY:
            raise ModelError(f"{name} has no counterpart in edgeclf's zoo (MobileNet V1/V2/V3, EfficientNet-Lite); "
                             "run `edgeclf models` for the list")
        key = hub
    if key not in REGISTRY and key.startswith("mobilenet_") and not key.startswith("mobilenet_v"):
        # retrain.py's --architecture mobilenet_<width>_<size> means MobileNet V1.
        parts = key.split("_")
        if len(parts) == 3:
            try:
                key = f"mobilenet_v1_{float(parts[1])}_{int(parts[2])}"
            except ValueError:
                pass
    if key not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `edgeclf models` for the list"
        raise ModelError(f"unknown model {name!r}{hint}")
    return REGISTRY[key]


def list_models() -> list[str]:
    """Every registered variant name."""
    return list(REGISTRY)


def create_model(name: str, num_classes: int | None = None, weights: str = "imagenet", dropout: float = 0.2,
                 hidden: int = 0) -> Classifier:
    """Build a classifier: `num_classes=None` keeps the ImageNet head (1000 classes) when weights have one.

    weights: "imagenet" (resolve the published checkpoint), "none" (random init), a checkpoint path or
    a .tflite file (MobileNet V1/V2, EfficientNet-Lite graphs; see models/tflite_import.py).
    """
    from .pretrained import build_pretrained

    # num_classes=0 fell through `or` to a 1000-class model with a random head.
    check("num_classes", num_classes, NONE, POSITIVE_INT)
    check("dropout", dropout, FRACTION)
    check("hidden", hidden, HIDDEN)
    check_weights(weights)
    p = build_pretrained(get_spec(name), weights, imagenet_head=num_classes is None)
    backbone, imagenet_head = p.backbone, p.head
    n = num_classes or (imagenet_head["weight"].shape[0] if imagenet_head else 1000)
    model = Classifier(backbone, n, dropout, hidden)
    if num_classes is None and imagenet_head is not None:
        model.head[-1].load_state_dict(imagenet_head)
    return model.eval()


def describe(name: str) -> dict[str, Any]:
    """Input size, parameters, MACs and weight availability of a variant (computed from the built module)."""
    from .profile import count_macs, count_params
    from .weights import availability, source_note

    spec = get_spec(name)
    model = Classifier(spec.build(), 1000, 0.0).eval()
    return {
        "name": spec.name,
        "family": spec.family,
        "input_size": spec.preprocess.size,
        "features": model.backbone.num_features,
        "params": count_params(model),
        "macs": count_macs(model, spec.preprocess.size),
        "weights": availability(spec),
        "weights_source": source_note(spec),
    }
