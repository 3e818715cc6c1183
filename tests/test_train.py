"""Training: feature cache integrity, augmented views, LiteRT features, fine-tuning, knobs, logs."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset, photo
from edgeclf.data.augment import Augment, view_seed
from edgeclf.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from edgeclf.models.zoo import get_spec
from edgeclf.training.backends import backbone_tflite, litert_backend, torch_backend
from edgeclf.training.features import FeatureCache, extract
from edgeclf.data.images import load_rgb
from edgeclf.training.trainer import train

MODEL = "mobilenet_v2_0.35_96"
PRE = Preprocess(96, IMAGENET_MEAN, IMAGENET_STD)


@pytest.fixture(scope="module")
def backbone():
    import torch

    torch.manual_seed(0)
    return get_spec(MODEL).build().eval()


def test_cache_stays_aligned_with_duplicate_images(tmp_path: Path, backbone) -> None:
    # Regression: a duplicate image used to shift every later row of the saved cache.
    data = make_dataset(tmp_path / "d", {"a": 6})
    shutil.copy(data / "a" / "img_001.jpg", data / "a" / "copy_of_1.jpg")
    paths = sorted(str(p) for p in (data / "a").iterdir())
    direct = torch_backend(backbone, PRE)(np.stack([PRE.to_uint8(load_rgb(p, min_side=PRE.resize_to)) for p in paths]))
    cache = FeatureCache(tmp_path / "c", "k")
    first, _, _ = extract(lambda: torch_backend(backbone, PRE), PRE, paths, {0: cache}, workers=1, save_every=2)
    np.testing.assert_allclose(first[0].numpy(), direct, rtol=1e-5, atol=1e-5)
    reloaded = FeatureCache(tmp_path / "c", "k")
    assert len(reloaded) == len(paths) - 1  # the copy is stored once
    fails = []
    cached, _, _ = extract(lambda: fails.append(1), PRE, paths, {0: reloaded}, workers=1)
    assert not fails  # everything came from the cache: the backend was never built
    np.testing.assert_allclose(cached[0].numpy(), direct, rtol=1e-5, atol=1e-5)


def test_extraction_stopped_midway_resumes_where_it_stopped(tmp_path: Path, backbone) -> None:
    data = make_dataset(tmp_path / "d", {"a": 12})
    paths = sorted(str(p) for p in (data / "a").iterdir())
    calls: list[int] = []

    def stops_at_third_batch():
        fn = torch_backend(backbone, PRE)

        def run(batch: np.ndarray) -> np.ndarray:
            calls.append(len(batch))
            if len(calls) == 3:
                raise KeyboardInterrupt
            return fn(batch)
        return run

    with pytest.raises(KeyboardInterrupt):
        extract(stops_at_third_batch, PRE, paths, {0: FeatureCache(tmp_path / "c", "k")}, workers=1, batch_size=2,
                save_every=2)
    assert len(FeatureCache(tmp_path / "c", "k")) == 4  # the two finished batches were saved
    computed: list[int] = []

    def counting():
        fn = torch_backend(backbone, PRE)
        return lambda batch: (computed.append(len(batch)), fn(batch))[1]

    feats, _, _ = extract(counting, PRE, paths, {0: FeatureCache(tmp_path / "c", "k")}, workers=1, batch_size=2)
    assert sum(computed) == 8  # only the rest was computed
    direct = torch_backend(backbone, PRE)(np.stack([PRE.to_uint8(load_rgb(p, min_side=PRE.resize_to)) for p in paths]))
    np.testing.assert_allclose(feats[0].numpy(), direct, rtol=1e-5, atol=1e-5)


def test_cache_survives_a_killed_writer_and_damage(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "k")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert cache.add(["a" * 40, "b" * 40, "a" * 40], a) == [0, 1, 0]
    with open(cache.dir / "feats.f32", "ab") as f:  # a writer killed after its vectors, before their hashes
        f.write(np.ones((2, 4), np.float32).tobytes())
    again = FeatureCache(tmp_path, "k")
    assert len(again) == 2
    assert again.add(["c" * 40], np.full((1, 4), 7, np.float32)) == [2]  # the unlisted tail is cut off
    np.testing.assert_array_equal(FeatureCache(tmp_path, "k").take(np.array([2, 0])), [[7] * 4, [0, 1, 2, 3]])
    (cache.dir / "hashes.txt").write_bytes(b"not a hash\n" * 5)
    assert len(FeatureCache(tmp_path, "k")) == 0  # damaged: rebuilt, never trusted


def test_augmented_views_are_stable_and_distinct() -> None:
    img, aug = photo(1, (300, 200)), Augment(flip=True, random_crop=10, random_scale=30, random_brightness=30)
    a = aug.view(img, PRE, np.random.default_rng(view_seed("ab" * 20, 1)))
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, aug.view(img, PRE, np.random.default_rng(view_seed("ab" * 20, 1))))  # same (image, view) → same pixels
    assert not np.array_equal(a, aug.view(img, PRE, np.random.default_rng(view_seed("ab" * 20, 2))))
    assert not np.array_equal(a, PRE.to_uint8(img))
    with pytest.raises(ValueError, match="--random-scale"):
        Augment(random_scale=150)


def test_litert_features_match_pytorch(tmp_path: Path, backbone) -> None:
    x = np.stack([PRE.to_uint8(photo(i, (120, 100))) for i in range(4)])
    ref = torch_backend(backbone, PRE)(x)
    got = litert_backend(backbone_tflite(backbone, PRE, tmp_path / "bb.tflite"), threads=1)(x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_aug_views_are_cached_per_view_and_reused(data3: Path, tmp_path: Path) -> None:
    kw = dict(weights="none", epochs=3, aug_views=2, workers=1, verbose=False, cache_dir=tmp_path / "c",
              feature_backend="torch")
    run = train(data3, MODEL, tmp_path / "r1", **kw)
    assert len(list((tmp_path / "c").glob("*/meta.json"))) == 3  # plain view + 2 augmented views
    again = train(data3, MODEL, tmp_path / "r2", **kw)
    m2 = json.loads((again / "manifest.json").read_text())
    assert m2["feature_backend"] == "cache"  # nothing recomputed
    assert json.loads((run / "metrics.json").read_text())["test"] == json.loads((again / "metrics.json").read_text())["test"]


def test_backbone_splits_at_every_unit(backbone) -> None:
    import torch

    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        full = backbone(x)
        for k in range(1, backbone.n_units):
            torch.testing.assert_close(backbone.top(backbone.bottom(x, k), k), full)


@pytest.mark.parametrize("cached", [True, False], ids=["cached-activations", "on-the-fly"])
def test_steps_and_fine_tune_keep_the_better_model(data3: Path, tmp_path: Path, cached: bool) -> None:
    rows: list[dict] = []
    run = train(data3, MODEL, tmp_path / "ft", weights="none", steps=4, batch_size=16, workers=1, verbose=False,
                cache_dir=tmp_path / "c", fine_tune=2, fine_tune_epochs=1, on_epoch=rows.append,
                feature_backend="torch", aug_views=1, fine_tune_cached=cached)
    m = json.loads((run / "metrics.json").read_text())
    # 4 steps of 16 over ~38 training images = 2 head epochs, then 1 fine-tuning epoch.
    assert [r["epoch"] for r in rows] == [1, 2, 1]
    ft = m["fine_tune"]
    assert ft["mode"] == ("cached activations" if cached else "on the fly")
    # Cached: the activations entering the top 2 units, plain and augmented view, next to the 2 feature banks.
    assert len(list((tmp_path / "c").glob("*/meta.json"))) == (4 if cached else 2)
    assert ft["blocks"] == 2 and m["val"]["accuracy"] >= round(ft["val_acc_head"], 4)
    # The rule, not just the vocabulary: fine-tuned weights are kept only when validation improved.
    assert ft["kept"] == ("fine-tuned" if ft["val_acc_fine_tuned"] > ft["val_acc_head"] else "head")
    assert m["val"]["accuracy"] == pytest.approx(max(ft["val_acc_fine_tuned"], ft["val_acc_head"]), abs=1e-4)
    hist = (run / "history.csv").read_text().splitlines()
    assert hist[0].endswith("stage") and hist[-1].endswith("fine-tune")


def test_history_and_tensorboard_grow_while_training(data3: Path, tmp_path: Path) -> None:
    """A run can be watched as it trains: each epoch is in history.csv and the event file when the next starts."""
    seen: list[tuple[int, int]] = []
    out = tmp_path / "run"

    def look(row: dict) -> None:
        rows = (out / "history.csv").read_text().splitlines()[1:]
        events = next((out / "tensorboard").glob("events.out.tfevents.*")).read_bytes()
        seen.append((len(rows), events.count(b"acc/train")))

    run = train(data3, MODEL, out, weights="none", epochs=3, patience=0, workers=1, verbose=False,
                cache_dir=tmp_path / "c", on_epoch=look)
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert len((run / "history.csv").read_text().splitlines()) == 4  # header + the 3 epochs


def test_interrupted_run_is_marked_and_rerun_completes(data3: Path, tmp_path: Path) -> None:
    def stop(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    kw = dict(weights="none", epochs=4, workers=1, verbose=False, cache_dir=tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        train(data3, MODEL, tmp_path / "run", on_epoch=stop, **kw)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "metrics.json").exists()
    train(data3, MODEL, tmp_path / "run", **kw)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_tensorboard_event_file_is_well_formed(tmp_path: Path) -> None:
    from edgeclf.training.tensorboard import write_scalars

    path = write_scalars(tmp_path, [{"epoch": 1, "train_acc": 0.5, "val_loss": 1.25, "stage": "head"},
                                    {"epoch": 2, "train_acc": 0.75, "val_loss": 1.0}])
    blob, records = path.read_bytes(), []
    while blob:
        (n,) = struct.unpack("<Q", blob[:8])
        payload = blob[12:12 + n]
        (crc,) = struct.unpack("<I", blob[12 + n:16 + n])
        c = _crc32c_bitwise(payload)
        assert crc == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        records.append(payload)
        blob = blob[16 + n:]
    assert len(records) == 3 and b"brain.Event:2" in records[0]
    assert b"acc/train" in records[1] and struct.pack("<f", 1.25) in records[1]



def test_tensorboard_reads_our_event_file(tmp_path: Path) -> None:
    """TensorBoard itself reads the scalars back (a test dependency: CI installs it, and skips fail there)."""
    pytest.importorskip("tensorboard", reason="needs tensorboard (pip install -e '.[test]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from edgeclf.training.tensorboard import write_scalars

    write_scalars(tmp_path, [{"epoch": 1, "train_acc": 0.5, "stage": "head"}, {"epoch": 2, "train_acc": 0.75}])
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.value for e in acc.Scalars("acc/train")] == [0.5, 0.75]


def test_two_runs_sharing_one_cache_at_once(data3: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    other = make_dataset(tmp_path / "other", {"x": 16, "y": 16, "z": 16}, seed=7)  # different images, same key
    cmd = [sys.executable, "-m", "edgeclf", "train", "--model", MODEL, "--weights", "none",
           "--feature-backend", "torch", "--cache-dir", str(cache), "--workers", "1", "--epochs", "2",
           "--aug-views", "0"]  # one cache key: the plain view
    env = dict(os.environ, EDGECLF_PROGRESS="0")
    procs = [subprocess.Popen([*cmd, str(d), "--out", str(tmp_path / f"r{i}")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i, d in enumerate((data3, other))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    keys = [d for d in cache.iterdir() if (d / "meta.json").is_file()]
    assert len(keys) == 1
    stored = FeatureCache(cache, keys[0].name)
    # Both runs' vectors survive (appends under a lock: neither writer overwrites the other's), rows aligned.
    assert len(stored) == 96 and (keys[0] / "feats.f32").stat().st_size == 96 * stored.dim * 4
    run = train(data3, MODEL, tmp_path / "r3", weights="none", epochs=2, workers=1, verbose=False, cache_dir=cache,
                feature_backend="torch", aug_views=0)
    assert json.loads((run / "manifest.json").read_text())["feature_backend"] == "cache"


def test_runs_started_at_once_never_share_a_folder(data3: Path, tmp_path: Path) -> None:
    """Two trainings with one --out (a shell loop with &) both wrote into it: a mix of two runs survived."""
    from edgeclf.artifacts.run import is_complete
    from edgeclf.errors import ConfigError
    from edgeclf.training.run_setup import next_run_dir

    kw = dict(weights="none", epochs=1, workers=1, verbose=False, cache_dir=tmp_path / "cache",
              feature_backend="torch", aug_views=0)
    held = next_run_dir(tmp_path / "r")  # another run writing r right now
    try:
        run = train(data3, MODEL, tmp_path / "r", **kw)
        assert run == tmp_path / "r2" and is_complete(run) and not (tmp_path / "r" / "manifest.json").exists()
        with pytest.raises(ConfigError, match="--out .*r is being written by another run right now"):
            train(data3, MODEL, tmp_path / "r", exist_ok=True, **kw)
    finally:
        held.release()
    again = next_run_dir(tmp_path / "r")  # let go: the folder (holding no finished run) is free again
    assert again.path == tmp_path / "r"
    again.release()


def test_exports_of_a_replaced_run_are_flagged(data3: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--exist-ok replaced model.pt but left the old .tflite files, which verify and evaluate then passed as current."""
    from edgeclf.artifacts.run import is_stale
    from edgeclf.runtime.verify import verify
    from edgeclf.workflows.export import export

    kw = dict(weights="none", epochs=1, workers=1, cache_dir=tmp_path / "cache", feature_backend="torch", aug_views=0)
    run = train(data3, MODEL, tmp_path / "r", verbose=False, **kw)
    f = export(run, "tflite", "float32", verbose=False)
    assert not is_stale(f)
    capsys.readouterr()
    assert train(data3, MODEL, tmp_path / "r", exist_ok=True, seed=1, **kw) == run
    assert f"holds 1 file(s) exported from the replaced run ({f.name})" in capsys.readouterr().err
    from edgeclf import EdgeclfWarning, evaluate

    with pytest.warns(EdgeclfWarning, match="exported from the model this run replaced"):
        assert is_stale(f) and verify(run, clients="litert", verbose=False)["stale"] == [f.name]
    with pytest.warns(EdgeclfWarning, match="exported from a model its run has since replaced"):
        assert evaluate(f, verbose=False)["stale"] is True
    export(run, "tflite", "float32", verbose=False)
    assert not is_stale(f) and verify(run, clients="litert", verbose=False)["stale"] == []


@pytest.mark.parametrize("kept", ["fine-tuned", "head"])
def test_summary_says_whether_fine_tuning_was_kept(tmp_path: Path, kept: str) -> None:
    """A user who asked for --fine-tune is told when validation kept the head instead."""
    from edgeclf.training.outputs import summary

    lines: list[str] = []
    ft = {"blocks": 2, "mode": "cached activations", "epochs": 20, "val_acc_head": 0.9,
          "val_acc_fine_tuned": 0.95 if kept == "fine-tuned" else 0.85, "kept": kept}
    metrics = {"model": MODEL, "best_epoch": 7, "fine_tune": ft, "val": {"accuracy": 0.9, "n": 10}}
    manifest = {"timings_s": {"features": 1.0, "head": 2.0, "fine_tune": 30.0, "total": 33.0}}
    summary(lambda msg, **_: lines.append(msg), tmp_path, metrics, manifest)
    text = "\n".join(lines)
    assert "fine-tune 30.0s" in text
    assert ("so the head was kept" in text) == (kept == "head")
    assert "fine-tune top 2 block(s), 20 epochs: val " + ("0.950" if kept == "fine-tuned" else "0.850") in text


def test_train_says_which_classes_a_split_leaves_unmeasured(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Only doctor said a class had no test photo; train reported a test accuracy that left the class out, and
    did not say how many photos the figure rested on."""
    root = tmp_path / "d"
    make_dataset(root / "train", {"a": 6, "b": 6})
    make_dataset(root / "val", {"a": 2, "b": 2}, seed=1)
    make_dataset(root / "test", {"a": 3}, seed=2)
    train(root, MODEL, tmp_path / "r", weights="none", epochs=1, workers=1, cache_dir=tmp_path / "cache",
          feature_backend="torch", aug_views=0)
    out, err = capsys.readouterr()
    assert ("warning: 1 class(es) have no test image (b): their accuracy is not measured there; add images to their "
            "folders in the test split") in err.splitlines()
    import re

    accuracy = next(ln for ln in out.splitlines() if ln.startswith("accuracy"))
    assert re.fullmatch(r"accuracy  train [\d.]+  val [\d.]+ \(4 photos\)  test [\d.]+ \(3 photos\)", accuracy), accuracy


def test_training_leaves_the_callers_random_stream_alone(data3: Path, tmp_path: Path) -> None:
    """train() and doctor's out-of-fold heads seed torch for repeatable runs; a notebook's own torch.rand after
    them gave the same numbers whatever it had seeded before."""
    import torch

    from edgeclf.workflows.label_issues import out_of_fold_probs

    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    train(data3, MODEL, tmp_path / "r", weights="none", epochs=1, patience=0, workers=1, verbose=False,
          cache_dir=tmp_path / "c", aug_views=0)
    x, y = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), np.arange(40) % 2
    assert out_of_fold_probs(x, y, 2, folds=2).shape == (40, 2)
    assert torch.equal(torch.rand(4), expected)
