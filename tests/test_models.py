"""The zoo: counts match the published figures, weight files map key-for-key, weights really load."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FLOWERS
from edgeclf.cli import main
from edgeclf.errors import ModelError
from edgeclf.models.blocks import Conv2dSame
from edgeclf.models.builder import decode_stage
from edgeclf.models.checkpoints import LAYOUTS
from edgeclf.models.pretrained import load_pretrained
from edgeclf.models.weights import SOURCES, WeightSource, locate, sha256_file
from edgeclf.models.zoo import describe, get_spec, list_models

# (params M, MACs M, tolerance) from the MobileNet/EfficientNet-Lite READMEs and papers, 1000-class heads.
PUBLISHED = {
    "mobilenet_v1_1.0_224": (4.24, 569, 0.03),
    "mobilenet_v1_0.25_128": (0.47, 13.6, 0.03),  # published as "14 M" (rounded); exact count is 13.57 M
    "mobilenet_v2_1.0_224": (3.47, 300, 0.03),
    "mobilenet_v2_1.4_224": (6.06, 582, 0.03),
    "mobilenet_v3_large_1.0_224": (5.4, 217, 0.05),
    "mobilenet_v3_small_1.0_224": (2.5, 56, 0.05),  # the paper's figures; TF-slim's table says 2.9 M / 66 M
    "efficientnet_lite0": (4.7, 385, 0.03),  # README says 407 M MACs; LiteRT's own graph count is 388.7 M
    "efficientnet_lite4": (13.0, 2553, 0.03),  # issue figure 2.64 B; the converter counts 2,568 M (bench/README.md)
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published(name: str) -> None:
    params, macs, tol = PUBLISHED[name]
    d = describe(name)
    assert abs(d["params"] / 1e6 - params) <= tol * params, d
    assert abs(d["macs"] / 1e6 - macs) <= tol * macs, d


def test_registry_covers_the_family() -> None:
    names = set(list_models())
    assert {f"mobilenet_v1_{w}_{r}" for w in (0.25, 0.5, 0.75, 1.0) for r in (128, 160, 192, 224)} <= names
    assert {f"mobilenet_v2_{w}_224" for w in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)} <= names
    assert {f"efficientnet_lite{i}" for i in range(5)} <= names
    assert {"mobilenet_v3_large_0.75_224", "mobilenet_v3_small_1.0_224"} <= names
    assert get_spec("mobilenet_0.50_160").name == "mobilenet_v1_0.5_160"  # retrain.py's spelling
    # Model Maker's, MediaPipe's (enum) and papers' spellings, and a stray space from a copied command line.
    assert [get_spec(n).name for n in ("EfficientNet-Lite0", "EFFICIENTNET_LITE4", "MobileNetV2", "mobilenet_v2",
                                       "efficientnet_lite2 ")] == [
        "efficientnet_lite0", "efficientnet_lite4", "mobilenet_v2_1.0_224", "mobilenet_v2_1.0_224", "efficientnet_lite2"]
    from edgeclf.training.config import TrainConfig

    assert TrainConfig.build({"model": "EfficientNet-Lite0"}).model == "efficientnet_lite0"  # what the run records
    with pytest.raises(ModelError, match="did you mean"):
        get_spec("efficientnet_lite9")


def test_stage_strings_decode() -> None:
    b = decode_stage("ir_r2_k5_s2_x72_c40_se_nre")
    assert (b.repeats, b.kernel, b.stride, b.expanded_abs, b.out, b.se, b.act) == (2, 5, 2, 72, 40, True, "relu")
    with pytest.raises(ValueError):
        decode_stage("ir_q3")


def test_tf_same_padding_is_asymmetric() -> None:
    conv = Conv2dSame(1, 1, 3, 2, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.ones(1, 1, 4, 4)
    # TF pads 0 before and 1 after for a 4-pixel input: the top-left window sees 9 ones.
    assert conv(x)[0, 0, 0, 0].item() == 9.0
    assert conv(x).shape[-1] == 2


# Source key names as the publishers spell them (torchvision, timm), mapped by hand.
KNOWN_KEYS = {
    ("mobilenet_v3_large_1.0_224", "torchvision_v3"): {
        "features.0.0.weight": "stem.conv.weight",
        "features.1.block.0.0.weight": "blocks.0.dw.conv.weight",
        "features.4.block.2.fc1.weight": "blocks.3.se.fc1.weight",
        "features.4.block.3.1.running_var": "blocks.3.project.bn.running_var",
        "features.16.0.weight": "head.conv.weight",
        "classifier.0.weight": "pre_logits.0.weight",
    },
    ("efficientnet_lite3", "timm_lite"): {
        "conv_stem.weight": "stem.conv.weight",
        "blocks.0.0.conv_dw.weight": "blocks.0.dw.conv.weight",
        "blocks.1.0.conv_pw.weight": "blocks.1.expand.conv.weight",
        "blocks.1.0.bn3.bias": "blocks.1.project.bn.bias",
        "conv_head.weight": "head.conv.weight",
    },
    ("mobilenet_v2_1.0_224", "torchvision_v2"): {
        "features.1.conv.1.weight": "blocks.0.project.conv.weight",
        "features.2.conv.0.0.weight": "blocks.1.expand.conv.weight",
        "features.2.conv.3.running_mean": "blocks.1.project.bn.running_mean",
        "features.18.1.weight": "head.bn.weight",
    },
}


def _to_source_layout(name: str, layout: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A random backbone written out in a publisher's key layout (plus a 1000-class classifier)."""
    bb = get_spec(name).build()
    for p in bb.parameters():
        p.data.normal_()
    own = bb.state_dict()
    src: dict[str, torch.Tensor] = {}
    for s, d in LAYOUTS[layout](bb):
        for k, v in own.items():
            if k.startswith(d + ".") and k.count(".") == d.count(".") + 1:
                src[s + k[len(d):]] = v.clone()
    cls = {"torchvision_v3": "classifier.3", "timm_lite": "classifier", "torchvision_v2": "classifier.1"}[layout]
    src[f"{cls}.weight"] = torch.randn(1000, bb.num_features)
    src[f"{cls}.bias"] = torch.randn(1000)
    return src, own


@pytest.mark.parametrize("name,layout", sorted(KNOWN_KEYS))
def test_remap_from_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, layout: str) -> None:
    src, own = _to_source_layout(name, layout)
    for s_key, our_key in KNOWN_KEYS[(name, layout)].items():
        assert torch.equal(src[s_key], own[our_key]), s_key
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    ckpt = tmp_path / "weights" / "test-ckpt.pth"
    torch.save(src, ckpt)
    key = get_spec(name).weights or "test"
    monkeypatch.setitem(SOURCES, key, [WeightSource("test-ckpt.pth", sha256_file(ckpt), layout)])
    bb = get_spec(name).build()
    head = load_pretrained(bb, get_spec(name), "imagenet")
    for k, v in bb.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, own[k]), k
    assert head["weight"].shape == (1000, bb.num_features)


def test_tampered_cache_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "x.pth").write_bytes(b"not the real file")
    monkeypatch.setitem(SOURCES, "tampered", [WeightSource("x.pth", "0" * 64, "timm_lite", url="https://example.invalid/x.pth")])
    with pytest.raises(ModelError, match="not available offline"):
        locate("tampered")  # EDGECLF_OFFLINE=1 in tests: no download is tried


def test_a_failed_download_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: the weights error read "cannot write …/x.pth: None; choose a writable folder"."""
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    monkeypatch.setenv("EDGECLF_OFFLINE", "0")
    # Port 9 on this host refuses the connection at once: a real failed download, no network needed.
    monkeypatch.setitem(SOURCES, "unreachable", [WeightSource("x.pth", "0" * 64, "timm_lite",
                                                              url="http://127.0.0.1:9/x.pth")])
    with pytest.raises(ModelError, match=r"not available offline \(cannot download http://127.0.0.1:9/x.pth \(.*"
                                         r"refused.*\)\): put x.pth in"):
        locate("unreachable")
    assert not list((tmp_path / "weights").iterdir())  # no half-written file
    # An official .tflite (MobileNet V1) is read from wherever the user has it: the hint says how.
    monkeypatch.setitem(SOURCES, "v1", [WeightSource("v1.tflite", "0" * 64, "tflite",
                                                      url="http://127.0.0.1:9/v1.tflite")])
    with pytest.raises(ModelError, match=r"or pass --weights PATH/v1.tflite, or pass --weights none"):
        locate("v1")


def test_wrong_architecture_fails_loudly(tmp_path: Path) -> None:
    src, _ = _to_source_layout("mobilenet_v2_1.0_224", "torchvision_v2")
    path = tmp_path / "v2.pth"
    torch.save(src, path)
    with pytest.raises(ModelError, match="does not fit"):
        load_pretrained(get_spec("mobilenet_v2_0.5_224").build(), get_spec("mobilenet_v2_0.5_224"), str(path))


def test_unusable_checkpoint_files_say_why(tmp_path: Path) -> None:
    """A whole pickled model read as 'neither a PyTorch checkpoint … Re-running torch.load with weights_only=False
    will likely succeed' (torch's advice, with terminal colour codes); the others did not name the file."""
    spec = get_spec("mobilenet_v2_0.35_96")
    whole, garbage, cut, foreign = (tmp_path / f"{n}.pth" for n in ("whole", "garbage", "cut", "foreign"))
    torch.save(torch.nn.Linear(3, 2), whole)
    garbage.write_bytes(b"not a checkpoint\n")
    torch.save({"fc.weight": torch.zeros(2, 3)}, foreign)
    cut.write_bytes(foreign.read_bytes()[:300])
    for path, why in ((whole, r"pickled Python objects .*torch.save\(model.state_dict\(\), 'weights.pth'\)$"),
                      (garbage, r"neither a PyTorch checkpoint \(torch.save\) nor a .tflite file$"),
                      (cut, r"damaged or truncated PyTorch checkpoint .*; copy or download it again$"),
                      (foreign, r"unrecognised checkpoint layout")):
        with pytest.raises(ModelError) as exc:
            load_pretrained(spec.build(), spec, str(path))
        msg = str(exc.value)
        assert re.search(why, msg) and str(path) in msg and "weights_only" not in msg and "\x1b" not in msg, msg


def test_no_weights_message() -> None:
    with pytest.raises(ModelError, match="--weights none"):
        load_pretrained(get_spec("mobilenet_v1_0.5_160").build(), get_spec("mobilenet_v1_0.5_160"))


def test_models_cli_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "efficientnet_lite0", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "efficientnet_lite0" and rows[0]["input_size"] == 224


OFFLINE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2_1.0_224"]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_weights_resolve_and_verify(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        path, src = locate(get_spec(name).weights, allow_download=False)
    except ModelError as exc:
        pytest.skip(f"offline weight package not installed: {exc}")
    assert sha256_file(path) == src.sha256 and len(src.sha256) == 64
    # The same file placed in the cache is found there first.
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    shutil.copy(path, tmp_path / "weights" / src.filename)
    assert locate(get_spec(name).weights, allow_download=False)[0] == tmp_path / "weights" / src.filename


@pytest.mark.skipif(not FLOWERS.is_dir(), reason="../shared/datasets/flowers is absent")
def test_imagenet_weights_see_daisies() -> None:
    from edgeclf.data.images import load_rgb
    from edgeclf.models.zoo import create_model

    try:
        model = create_model("efficientnet_lite0")
    except ModelError as exc:
        pytest.skip(str(exc))
    pre = get_spec("efficientnet_lite0").preprocess
    files = sorted((FLOWERS / "daisy").glob("*.jpg"))[:40]
    x = pre.normalize(np.stack([pre.to_uint8(load_rgb(f, pre.resize_to)) for f in files]))
    with torch.no_grad():
        top5 = model(x).topk(5, 1).indices
    assert (top5 == 985).any(1).float().mean() >= 0.8  # full run: bench/imagenet_daisy.py
