"""--pool-blocks: the pooled outputs of the top blocks join the features, in training, the cache and every export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from edgeclf.errors import ConfigError
from edgeclf.models.zoo import get_spec
from edgeclf.training.finetune_cached import split_point


@pytest.mark.parametrize("name, pooled", [("efficientnet_lite0", (14, 15)), ("mobilenet_v2_0.35_96", (15, 16)),
                                          ("mobilenet_v1_0.25_128", (10, 11))])
def test_pooled_blocks_are_the_blocks_below_the_last_feature_map(name: str, pooled: tuple[int, ...]) -> None:
    """Features = [final features, mean of each pooled block's output]; V1's last block is the feature map itself."""
    torch.manual_seed(0)
    b = get_spec(name).build().eval()
    final = b.num_features
    b.set_pool_blocks(2)
    assert b.pooled == pooled
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        h, outs = b.stem(x), []
        for blk in b.blocks:
            h = blk(h)
            outs.append(h)
        want = torch.cat([b.pre_logits(F.adaptive_avg_pool2d(b.head(h), 1).flatten(1))]
                         + [outs[i].mean((2, 3)) for i in pooled], 1)
        got = b(x)
        assert got.shape == (2, b.num_features) and b.num_features > final
        assert torch.allclose(got, want, atol=1e-5)
        # Every split a cached fine-tune may use gives the same features; one below the pooled blocks is refused.
        top_max = b.n_units - b.min_top_units
        for k in range(1, top_max + 1):
            assert torch.allclose(b.top(b.bottom(x, k), k), got, atol=1e-5)
        with pytest.raises(ValueError, match="cannot see block"):
            b.top(b.bottom(x, top_max + 1), top_max + 1)
    # Fine-tuning fewer units than the pooled blocks span caches below them; they run (frozen) in the top.
    assert split_point(b, 1) == top_max and split_point(b, b.n_units - 1) == 1 and split_point(b, "all") is None
    b.set_pool_blocks(0)
    assert b.num_features == final and b.pooled == () and b.min_top_units == 1
    with pytest.raises(ConfigError, match="--pool-blocks must be an int in"):
        b.set_pool_blocks(len(b.blocks) + 1)


def test_equalization_leaves_pooled_outputs_alone() -> None:
    """MobileNetV1's block outputs are ReLU6s read by a depthwise conv: pooled ones must not be rescaled for int8."""
    from edgeclf.exporting.equalize import depthwise_pairs
    from edgeclf.models.builder import Classifier

    b = get_spec("mobilenet_v1_0.25_128").build()
    before = {id(p) for p, _ in depthwise_pairs(Classifier(b, 3))}
    b.set_pool_blocks(2)
    after = {id(p) for p, _ in depthwise_pairs(Classifier(b, 3))}
    assert before - after == {id(b.blocks[i].project) for i in b.pooled}


def _colours(root: Path, n: int = 16) -> Path:
    """Three classes of noisy photos in one colour each: a few epochs separate them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 210)}.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = np.clip(np.array(rgb) + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.jpg", quality=92)
    return root


def test_a_run_with_pooled_blocks_exports_what_it_trained(tmp_path: Path) -> None:
    """Train (head + cached fine-tune of the top unit) with --pool-blocks 2, reload, export: MediaPipe serves it."""
    from edgeclf.artifacts.run import load_run
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    data3, cache = _colours(tmp_path / "data"), tmp_path / "cache"
    opts = dict(epochs=8, lr=3e-3, aug_views=1, test_percent=40, workers=1, verbose=False, cache_dir=cache)
    plain = train(data3, "mobilenet_v2_1.0_96", tmp_path / "plain", pool_blocks=0, **opts)
    run = train(data3, "mobilenet_v2_1.0_96", tmp_path / "run", pool_blocks=2, fine_tune=1, fine_tune_epochs=2,
                **opts)  # same cache: the pooled features are cached apart from the plain ones
    model, meta = load_run(run)
    plain_model, _ = load_run(plain)
    assert meta["head"]["pool_blocks"] == 2 and model.backbone.pooled == (15, 16)
    assert meta["features"] == plain_model.backbone.num_features + 160 + 320
    # Only the head conv trained: the pooled blocks ran frozen above the cached activations.
    for i in model.backbone.pooled:
        for a, b in zip(model.backbone.blocks[i].parameters(), plain_model.backbone.blocks[i].parameters()):
            assert torch.equal(a, b)
    assert json.loads((run / "metrics.json").read_text())["fine_tune"]["mode"] == "cached activations"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["pool_blocks"] == 2 and manifest["status"] == "complete"
    for quant in ("float32", "int8"):
        tfl = export(run, "tflite", quant, verbose=False)
        served = evaluate(tfl, data3, client="mediapipe", verbose=False)
        assert served["top1_agreement_with_litert"] == 1.0
        assert served["top1_agreement_with_pytorch"] >= (1.0 if quant == "float32" else 0.9)
        if quant == "float32":
            assert served["max_abs_prob_diff_vs_pytorch"] < 0.01 and served["accuracy"] >= 0.9


@pytest.mark.parametrize("name, default, pooled", [("mobilenet_v2_0.35_96", 2, (15, 16)),
                                                   ("mobilenet_v1_0.25_128", 0, ())])
def test_default_pools_two_blocks_below_a_head_conv(tmp_path: Path, name: str, default: int,
                                                    pooled: tuple[int, ...]) -> None:
    """No --pool-blocks: 2 where a 1x1 head conv makes the features (V2, Lite, V3), 0 for MobileNet V1; recorded."""
    from edgeclf.artifacts.run import load_run
    from edgeclf.training.trainer import train

    run = train(_colours(tmp_path / "data", n=8), name, tmp_path / "run", weights="none", epochs=2, aug_views=0,
                test_percent=40, workers=1, verbose=False, cache_dir=tmp_path / "cache")
    model, meta = load_run(run)
    assert meta["head"]["pool_blocks"] == default and model.backbone.pooled == pooled
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["pool_blocks"] == default and manifest["recipe"]["pool_blocks"] == default
