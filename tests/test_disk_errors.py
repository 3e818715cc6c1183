"""A full disk or a read-only folder: a one-line error, and nothing half-written left behind.

The disks are real: small tmpfs mounts (size=64k/256k, or read-only). Mounting needs root (or a
user namespace); where it is not allowed the tests skip and say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import make_dataset
from edgeclf.errors import EdgeclfError

MODEL = "mobilenet_v2_0.35_96"


def _mount(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB filesystem: a model file does not fit."""
    yield from _mount(tmp_path / "full", "size=256k")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only filesystem."""
    yield from _mount(tmp_path / "ro", "ro,size=64k")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("run")
    return train(make_dataset(root / "data", {"a": 6, "b": 6}), MODEL, root / "run", weights="none", epochs=1,
                 workers=1, verbose=False, cache_dir=root / "cache", feature_backend="torch")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeclf", *args], capture_output=True, text=True, timeout=300)


def test_export_to_a_full_disk(run: Path, full_disk: Path) -> None:
    r = _cli("export", str(run), "-o", str(full_disk / "model.tflite"))
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "No space left on device" in err and "free disk space" in err, err
    assert list(full_disk.iterdir()) == []  # no partial model, no temp file, no sidecars for a missing model


def test_export_to_a_read_only_folder(run: Path, read_only: Path) -> None:
    r = _cli("export", str(run), "--format", "onnx", "-o", str(read_only / "model.onnx"))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Read-only file system" in r.stderr, r.stderr


def test_training_onto_a_full_disk_is_marked_incomplete(tmp_path: Path, full_disk: Path) -> None:
    from edgeclf.training.trainer import train

    data = make_dataset(tmp_path / "data", {"a": 6, "b": 6})
    with pytest.raises(EdgeclfError, match="No space left on device"):
        train(data, MODEL, full_disk / "run", weights="none", epochs=1, workers=1, verbose=False,
              cache_dir=tmp_path / "cache", feature_backend="torch")
    names = sorted(p.name for p in (full_disk / "run").iterdir())
    assert "model.pt" not in names and "metrics.json" not in names and not any(n.endswith(".tmp") for n in names)
    manifest = json.loads((full_disk / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["error"]


def test_feature_cache_on_a_full_disk(tmp_path: Path) -> None:
    from edgeclf.training.features import FeatureCache
    from edgeclf.training.trainer import train

    data = make_dataset(tmp_path / "data", {"a": 10, "b": 10})
    mount = _mount(tmp_path / "small", "size=64k")  # 20 vectors of 1,280 floats need 100 KiB
    small = next(mount)
    try:
        kw = dict(weights="none", epochs=1, workers=1, verbose=False, cache_dir=small, feature_backend="torch",
                  aug_views=0)  # the plain view only: 20 vectors
        with pytest.raises(EdgeclfError, match="feature cache .*No space left on device.*--cache-dir"):
            train(data, MODEL, tmp_path / "run", **kw)
        # Room again (a remount keeps the files): the same cache recovers, the failed append's tail cut off.
        subprocess.run(["mount", "-o", "remount,size=4m", str(small)], check=True)
        run = train(data, MODEL, tmp_path / "run", **kw)
        assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
        key = next(small.glob("*/meta.json")).parent
        cache = FeatureCache(small, key.name)
        assert len(cache) == 20 and (key / "feats.f32").stat().st_size == 20 * cache.dim * 4
    finally:
        mount.close()
