"""Fuzzing the two loaders that take files from users: images, and model files with their sidecars.

Every input must give a result or edgeclf's own one-line error: never another exception, a crash
or a hang. Examples are derandomized so CI is repeatable (about a minute in all); set
EDGECLF_FUZZ_EXAMPLES=5000 for a longer, random exploration. Inputs that once broke a loader are
kept below as explicit @example cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import encode, make_dataset, photo
from edgeclf.artifacts.run import sidecar_of
from edgeclf.data.images import ImageDecodeError, load_rgb
from edgeclf.errors import EdgeclfError
from edgeclf.training.features import content_hash

EXAMPLES = int(os.environ.get("EDGECLF_FUZZ_EXAMPLES", "0"))


def fuzz(n: int):
    """Hypothesis settings: n examples in CI (fixed seed), more when asked for (random)."""
    return settings(max_examples=EXAMPLES or n, derandomize=not EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@contextlib.contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail (instead of stalling CI) if one example runs longer than `seconds`."""
    def boom(*_):
        raise TimeoutError(f"one fuzz example ran over {seconds}s: a hang")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


EXTS = [".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif"]
FORMATS = {".jpg": "JPEG", ".png": "PNG", ".gif": "GIF", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}
REAL = {ext: encode(photo(1, (40, 30)), fmt) for ext, fmt in FORMATS.items()}


def _load(path: Path) -> None:
    with no_hang():
        try:
            img = load_rgb(str(path))
            assert img.mode == "RGB" and min(img.size) > 0
        except ImageDecodeError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        digest, why = content_hash(str(path))
        assert (digest is None) == bool(why)


@fuzz(300)
@given(data=st.binary(max_size=2048), ext=st.sampled_from(EXTS))
def test_random_bytes_with_image_names(tmp_path: Path, data: bytes, ext: str) -> None:
    path = tmp_path / f"x{ext}"
    path.write_bytes(data)
    _load(path)


patches = st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), max_size=12)


@fuzz(400)
@given(ext=st.sampled_from(sorted(FORMATS)), cut=st.none() | st.floats(0, 1), edits=patches)
def test_damaged_real_images(tmp_path: Path, ext: str, cut: float | None, edits: list[tuple[int, int]]) -> None:
    data = bytearray(REAL[ext])
    for off, value in edits:
        data[off % len(data)] = value
    if cut is not None:
        data = data[:int(len(data) * cut)]
    path = tmp_path / f"x{ext}"
    path.write_bytes(bytes(data))
    _load(path)


@fuzz(20)
@given(files=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(EXTS), st.binary(max_size=512)),
                      max_size=6))
def test_dataset_scan_and_doctor_with_junk_files(tmp_path_factory: pytest.TempPathFactory,
                                                 files: list[tuple[str, str, bytes]]) -> None:
    from edgeclf.api import doctor

    root = make_dataset(tmp_path_factory.mktemp("d"), {"a": 2, "b": 2})
    for i, (cls, ext, data) in enumerate(files):
        (root / cls / f"junk_{i}{ext}").write_bytes(data)
    with no_hang(60):
        report = doctor(root, workers=1)
    assert report["n_images"] == 4 + len(files) and len(report["unreadable"]) <= len(files)


# --- model files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A tiny classifier exported three ways, as bytes, with its sidecars."""
    from edgeclf.workflows.export import export
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("models")
    run = train(make_dataset(root / "data", {"a": 8, "b": 8}), "mobilenet_v2_0.35_96", root / "run", weights="none",
                epochs=1, workers=1, verbose=False, cache_dir=root / "cache", feature_backend="torch")
    out = {}
    for name, fmt, q in (("f32.tflite", "tflite", "float32"), ("i8.tflite", "tflite", "int8"),
                         ("m.onnx", "onnx", "float32")):
        path = export(run, fmt, q, out=root / "exp" / name, verbose=False, calibration_size=8)
        out[name] = path.read_bytes()
        out[name + ".json"] = sidecar_of(path).read_bytes()
    out["labels.txt"] = (root / "exp" / "labels.txt").read_bytes()
    return out


def _open(folder: Path, name: str) -> None:
    from edgeclf.runtime.engine import load_engine

    with no_hang():
        try:
            engine = load_engine(folder / name)
            probs = engine.predict(np.zeros((1, 96, 96, 3), np.uint8))
            assert probs.shape == (1, len(engine.labels))
        except EdgeclfError as exc:
            assert "\n" not in str(exc)


def _place(tmp_path: Path, models: dict[str, bytes], name: str, data: bytes) -> Path:
    folder = tmp_path / "m"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / name).write_bytes(data)
    sidecar_of(folder / name).write_bytes(models[name + ".json"])
    (folder / "labels.txt").write_bytes(models["labels.txt"])
    return folder


@fuzz(80)
@given(name=st.sampled_from(["f32.tflite", "i8.tflite", "m.onnx"]), cut=st.none() | st.floats(0, 1),
       edits=patches, head=st.booleans())
@example(name="i8.tflite", cut=None, edits=[(453, 23)], head=False)  # loaded, then failed in invoke() (RuntimeError)
def test_damaged_model_files(tmp_path: Path, models: dict[str, bytes], name: str, cut: float | None,
                             edits: list[tuple[int, int]], head: bool) -> None:
    data = bytearray(models[name])
    for off, value in edits:
        # head=True aims at the first 4 KiB, where the flatbuffer/protobuf tables live.
        data[off % (4096 if head else len(data))] = value
    if cut is not None:
        data = data[:int(len(data) * cut)]
    _open(_place(tmp_path, models, name, bytes(data)), name)


@fuzz(60)
@given(labels=st.binary(max_size=200) | st.lists(st.text(max_size=20), max_size=4).map(
           lambda xs: "\n".join(xs).encode("utf-8", "surrogatepass")),
       side=st.none() | st.binary(max_size=100) | st.dictionaries(st.sampled_from(["preprocess", "classes", "size"]),
                                                                    st.integers() | st.text(max_size=5)).map(
           lambda d: json.dumps(d).encode()))
def test_damaged_labels_and_sidecars(tmp_path: Path, models: dict[str, bytes], labels: bytes,
                                     side: bytes | None) -> None:
    folder = _place(tmp_path, models, "f32.tflite", models["f32.tflite"])
    (folder / "labels.txt").write_bytes(labels)
    if side is not None:
        (folder / "f32.json").write_bytes(side)
    _open(folder, "f32.tflite")
