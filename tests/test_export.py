"""Export: every quantization converts, runs in LiteRT, carries metadata, and MediaPipe reads it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.errors import ConfigError, EdgeclfError

MODEL = "mobilenet_v2_1.0_96"  # ImageNet weights (offline): colours are separable in its features
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 210)}


def _colour_dataset(root: Path, n: int = 14) -> Path:
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            px = np.clip(np.array(rgb) + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(root / name / f"{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("exp")
    return train(_colour_dataset(root / "data"), MODEL, root / "run", epochs=15, lr=3e-3,
                 workers=1, verbose=False, cache_dir=root / "cache", feature_backend="torch")


@pytest.fixture(scope="module")
def exported(run: Path) -> dict[str, Path]:
    from edgeclf.workflows.export import export

    return {q: export(run, "tflite", q, verbose=False, calibration_size=30)
            for q in ("float32", "float16", "dynamic", "int8")}


def _probe_images() -> list[np.ndarray]:
    rng = np.random.default_rng(99)  # unseen images from the training distribution, at the training photos' size
    return [np.clip(np.array(rgb) + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
            for rgb in COLOURS.values()]


def test_sizes_and_io_types(exported: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    size = {q: p.stat().st_size for q, p in exported.items()}
    assert size["float16"] < 0.55 * size["float32"] and size["dynamic"] < 0.34 * size["float32"]
    assert size["int8"] < 0.34 * size["float32"]
    for q, p in exported.items():
        it = Interpreter(model_path=str(p))
        it.allocate_tensors()
        assert it.get_input_details()[0]["dtype"] == np.uint8, q
        assert it.get_output_details()[0]["dtype"] == (np.uint8 if q == "int8" else np.float32), q


def test_tensor_names_do_not_weigh_on_the_file(exported: dict[str, Path]) -> None:
    """The converter's PyTorch scope paths (~0.5 KB per tensor) are dropped; inputs and outputs keep their names."""
    from ai_edge_litert.interpreter import Interpreter

    for q, p in exported.items():
        it = Interpreter(model_path=str(p))
        io = {d["index"] for d in it.get_input_details() + it.get_output_details()}
        inner = [t["name"] for t in it.get_tensor_details() if t["index"] not in io]
        assert inner and max(map(len, inner)) <= 16, (q, max(inner, key=len))


def test_metadata_inside_the_file(exported: dict[str, Path]) -> None:
    from edgeclf.artifacts.metadata import read_metadata

    for q, p in exported.items():
        info, files = read_metadata(p.read_bytes())
        assert files["labels.txt"].decode().split() == sorted(COLOURS), q
        assert info["associated_files"] == ["labels.txt"] and info["normalization"]["std"] == [1.0, 1.0, 1.0]
        assert MODEL in info["name"]


def test_quantized_files_agree_with_pytorch(run: Path, exported: dict[str, Path]) -> None:
    from edgeclf.runtime.engine import load_engine

    torch_engine = load_engine(run)
    pre = torch_engine.preprocess
    x = np.stack([pre.to_uint8(Image.fromarray(a)) for a in _probe_images()])
    ref = torch_engine.predict(x)
    assert list(ref.argmax(1)) == [2, 1, 0]  # red, green, blue → labels sorted: blue, green, red
    for q, p in exported.items():
        got = load_engine(p).predict(x)
        assert list(got.argmax(1)) == list(ref.argmax(1)), q
        assert np.abs(got - ref).max() < (0.02 if q in ("float32", "float16") else 0.25), q


def test_mediapipe_image_classifier_reads_every_export(exported: dict[str, Path]) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    for q, p in exported.items():
        opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(p)), max_results=1)
        with vision.ImageClassifier.create_from_options(opts) as clf:
            names = [clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=img)).classifications[0]
                     .categories[0].category_name for img in _probe_images()]
        assert names == list(COLOURS), q


def test_bad_export_options(run: Path, tmp_path: Path) -> None:
    from edgeclf.workflows.export import export

    with pytest.raises(EdgeclfError, match="int4"):
        export(run, "tflite", "int4", tmp_path / "x.tflite", verbose=False)
    with pytest.raises(EdgeclfError, match="--io"):
        export(run, "tflite", "float32", tmp_path / "x.tflite", io="int8", verbose=False)
    # Several quantizations, as the CLI takes them: every name checked before the first file is written.
    with pytest.raises(EdgeclfError, match="--quantize must be one of .*, got 'int9'"):
        export(run, "tflite", ["float32", "int9"], verbose=False)
    with pytest.raises(EdgeclfError, match="--output names one file"):
        export(run, "tflite", "float32,float16", tmp_path / "x.tflite", verbose=False)
    with pytest.raises(EdgeclfError, match="--quantize names no quantization"):
        export(run, "tflite", [], verbose=False)
    # An ONNX file named .tflite, or a file with no suffix, was written and then failed to load as a model.
    with pytest.raises(EdgeclfError, match=r"--output .*m.tflite must end in .onnx for --format onnx, e.g. .*m.onnx"):
        export(run, "onnx", "float32", tmp_path / "m.tflite", verbose=False)
    with pytest.raises(EdgeclfError, match=r"--output .*model must end in .tflite for --format tflite.*; or name "
                                           r"a folder \(ending in /\)"):
        export(run, "tflite", "float32", tmp_path / "model", verbose=False)
    with pytest.raises(EdgeclfError, match=r"--output .*m.onnx must end in .tflite .*; for onnx, add --format onnx$"):
        export(run, "tflite", "float32", tmp_path / "m.onnx", verbose=False)
    assert not list(tmp_path.iterdir())  # nothing half-written
    # A folder (Model Maker's export_dir): the default names inside it, several quantizations at once.
    made = export(run, "tflite", "float32,float16", f"{tmp_path / 'apk'}/", verbose=False, max_drop=None)
    assert [p.relative_to(tmp_path).as_posix() for p in made] == [f"apk/{MODEL}_float32.tflite",
                                                                  f"apk/{MODEL}_float16.tflite"]
    assert (tmp_path / "apk" / "labels.txt").is_file()
    assert export(run, "tflite", "float32", tmp_path / "apk", verbose=False) == made[0]  # an existing folder
    shutil.rmtree(tmp_path / "apk")
    # Another dataset as --calibration-data: it calibrated the int8 file on photos of other classes.
    other = tmp_path / "other"
    for name in ("cat", "dog"):
        (other / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)).save(other / name / f"{i}.jpg")
    with pytest.raises(EdgeclfError, match=re.escape(f"--calibration-data {other} lacks this run's classes blue, "
                                                     "green, red (it has cat, dog); pass the folder the run was "
                                                     "trained on")):
        export(run, "tflite", "int8", tmp_path / "q.tflite", calibration_data=other, verbose=False)
    assert not (tmp_path / "q.tflite").exists()
    # The run's dataset with a class folder added since: its training photos are all there (it was refused).
    grown = tmp_path / "grown"
    shutil.copytree(json.loads((run / "split.json").read_text())["root"], grown)
    shutil.copytree(other / "cat", grown / "cat")
    assert export(run, "tflite", "int8", tmp_path / "q.tflite", calibration_data=grown, verbose=False,
                  max_drop=None).is_file()


def test_int8_export_says_how_many_images_calibrated_it(run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """--calibration-size above the train split silently used the whole split."""
    from edgeclf.exporting.exporter import export as export_file

    export_file(run, "tflite", "int8", tmp_path / "q.tflite", calibration_size=100_000, verbose=True)
    out = capsys.readouterr().out
    assert "calibrated on " in out and "training images (all there are; --calibration-size 100,000)" in out, out


def test_the_same_run_exports_to_the_same_bytes(run: Path, exported: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The labels packed in each file carried the time of export, so two exports of one run never matched (a
    checksum in an app's build, a cache keyed on the file, or a diff in review all saw a change)."""
    import time

    from edgeclf.exporting import tflite
    from edgeclf.exporting.exporter import export as export_file

    monkeypatch.setattr(tflite, "_CONVERTED", {})  # converted again, as a second `edgeclf export` process would
    time.sleep(2)  # a zip entry's time has 2-second steps
    for q in ("float32", "int8"):
        again = export_file(run, "tflite", q, tmp_path / f"again_{q}.tflite", calibration_size=30, verbose=False)
        assert again.read_bytes() == exported[q].read_bytes(), q


def test_api_exports_several_quantizations_as_the_cli_does(run: Path, tmp_path: Path) -> None:
    import edgeclf

    got = edgeclf.export(run, quantize="float32,float16", verbose=False)
    assert [p.name.rsplit("_", 1)[-1] for p in got] == ["float32.tflite", "float16.tflite"]
    assert all(p.is_file() for p in got) and edgeclf.export(run, quantize=["float32"], verbose=False) == got[:1]


def test_onnx_export_runs_in_onnxruntime(run: Path, exported: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    from edgeclf.workflows.export import export
    from edgeclf.runtime.engine import load_engine

    path = export(run, "onnx", out=tmp_path / "m.onnx", verbose=False)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert {p.key for p in proto.metadata_props} >= {"labels", "preprocess"}
    engine, ref = load_engine(path), load_engine(run)
    assert engine.kind == "onnx" and engine.labels == sorted(COLOURS)
    x = np.stack([ref.preprocess.to_uint8(Image.fromarray(a)) for a in _probe_images()])
    np.testing.assert_allclose(engine.predict(x), ref.predict(x), atol=1e-4)


def test_onnx_and_float32_tflite_of_a_run_keep_their_own_json(run: Path, tmp_path: Path) -> None:
    """Both are NAME_float32.*: the ONNX export wrote NAME_float32.json over the .tflite's, which then described an
    ONNX file with uint8 input beside a .tflite exported with float32 input."""
    from edgeclf.artifacts.run import sidecar_of
    from edgeclf.runtime.engine import load_engine
    from edgeclf.workflows.export import export

    tfl = export(run, "tflite", "float32", out=tmp_path / "m.tflite", io="float32", verbose=False)
    onx = export(run, "onnx", out=tmp_path / "m.onnx", verbose=False)
    side = json.loads((tmp_path / "m.json").read_text())
    assert (side["format"], side["input"]["dtype"]) == ("tflite", "float32")
    assert sidecar_of(onx).name == "m.onnx.json" and json.loads(sidecar_of(onx).read_text())["format"] == "onnx"
    assert load_engine(tfl).kind == "tflite" and load_engine(onx).kind == "onnx"
    old = tmp_path / "old"  # an ONNX file exported before: its JSON is NAME.json
    old.mkdir()
    shutil.copy(onx, old / "m.onnx")
    shutil.copy(sidecar_of(onx), old / "m.json")
    assert load_engine(old / "m.onnx").labels == sorted(COLOURS)


def test_tflite_alone_carries_its_preprocessing(exported: dict[str, Path], tmp_path: Path) -> None:
    from edgeclf.runtime.engine import load_engine

    lone = tmp_path / "lone.tflite"
    lone.write_bytes(exported["int8"].read_bytes())  # no JSON or labels.txt beside it
    engine = load_engine(lone)
    assert engine.labels == sorted(COLOURS) and engine.preprocess.size == 96


def test_evaluate_reports_agreement_with_pytorch(run: Path, exported: dict[str, Path]) -> None:
    import json

    from edgeclf.runtime.evaluate import evaluate

    data = Path(json.loads((run / "split.json").read_text())["root"])
    m = evaluate(exported["int8"], data, split="train", verbose=False)
    assert m["pytorch_run"] == str(run.resolve()) and m["top1_agreement_with_pytorch"] >= 0.9


def test_folded_normalization_matches_the_model(run: Path) -> None:
    import torch

    from edgeclf.exporting.fold import fold_normalization
    from edgeclf.models.preprocess import TF_LITE_MEAN, TF_LITE_STD, Preprocess
    from edgeclf.runtime.engine import load_engine
    from edgeclf.artifacts.run import load_run

    clf, _ = load_run(run)
    x = torch.randint(0, 256, (2, 3, 96, 96)).float()
    for pre, tol in ((Preprocess(96, TF_LITE_MEAN, TF_LITE_STD), 1e-5),  # same mean/std per channel: exact
                     (load_engine(run).preprocess, 0.05)):  # ImageNet per-channel: differs on the border only
        folded, m0, s0 = fold_normalization(clf, pre)
        with torch.no_grad():
            ref = clf((x - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1))
            got = folded((x - m0) / s0)
        assert (got - ref).abs().max() <= tol * max(1.0, float(ref.abs().max())), pre


def test_float_io_int8_and_files_that_are_not_classifiers(run: Path, tmp_path: Path) -> None:
    import torch

    from edgeclf.errors import ModelError
    from edgeclf.workflows.export import export
    from edgeclf.litert import convert as _convert
    from edgeclf.runtime.engine import load_engine

    f = export(run, "tflite", "int8", tmp_path / "io.tflite", io="float32", calibration_size=20, verbose=False)
    engine = load_engine(f)
    x = np.stack([engine.preprocess.to_uint8(Image.fromarray(a)) for a in _probe_images()])
    assert list(engine.predict(x).argmax(1)) == list(load_engine(run).predict(x).argmax(1))

    not_clf = tmp_path / "vec.tflite"
    not_clf.write_bytes(_convert(torch.nn.Linear(8, 4).eval(), torch.zeros(1, 8)))
    (tmp_path / "vec.json").write_text((tmp_path / "io.json").read_text())
    with pytest.raises(ModelError, match="not an image classifier"):
        load_engine(not_clf)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_engine(cut)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared/datasets/flowers").is_dir(),
                    reason="needs ../shared/datasets/flowers (real photos); absent in this checkout")
def test_mediapipe_names_real_flower_photos(tmp_path: Path) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from edgeclf.workflows.export import export
    from edgeclf.runtime.engine import load_engine
    from edgeclf.training.trainer import train

    flowers = Path(__file__).resolve().parents[2] / "shared/datasets/flowers"
    data = tmp_path / "flowers"
    held_out = {}
    for cls in sorted(p.name for p in flowers.iterdir() if p.is_dir()):
        photos = sorted((flowers / cls).glob("*.jpg"))
        (data / cls).mkdir(parents=True)
        for p in photos[:40]:  # links, not copies: the project never copies ../shared
            (data / cls / p.name).symlink_to(p)
        held_out[cls] = photos[-6:]
    run = train(data, "mobilenet_v2_1.0_224", tmp_path / "run", workers=1, verbose=False, cache_dir=tmp_path / "c")
    pre = load_engine(run).preprocess
    from edgeclf.data.images import load_rgb

    crops = {cls: [pre.to_uint8(load_rgb(p, min_side=pre.resize_to)) for p in ps] for cls, ps in held_out.items()}
    correct = total = 0
    for q in ("float32", "float16", "dynamic", "int8"):
        f = export(run, "tflite", q, verbose=False, calibration_size=25)
        engine = load_engine(f)
        opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(f)), max_results=1)
        with vision.ImageClassifier.create_from_options(opts) as clf:
            for cls, arrs in crops.items():
                for a in arrs:
                    name = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=a)).classifications[0] \
                        .categories[0].category_name
                    assert name == engine.labels[int(engine.predict(a[None]).argmax())], (q, cls)
                    correct += name == cls
                    total += 1
    assert correct / total >= 0.6, f"MediaPipe named {correct}/{total} held-out flower photos right"


def test_graph_macs_match_the_module_count(run: Path, exported: dict[str, Path]) -> None:
    from edgeclf.models.profile import count_macs, count_params
    from edgeclf.runtime.benchmark import benchmark_file, graph_int8, graph_macs, graph_params
    from edgeclf.artifacts.run import load_run

    clf, meta = load_run(run)
    expected = count_macs(clf, meta["preprocess"]["size"])
    for q in ("float32", "int8"):
        assert abs(graph_macs(exported[q]) - expected) <= 0.01 * expected, q
    # The converter folds BatchNorm into the convolutions, so the graph holds slightly fewer parameters.
    params = count_params(clf)
    assert 0.97 * params <= graph_params(exported["float32"]) <= params
    row = benchmark_file(exported["int8"], threads=1, runs=3, warmup=1)
    assert row["macs_m"] > 0 and 0 < row["roofline_pct"] and row["input"] == "96x96x3 uint8"
    # The percentage is the float ratio itself, not a wrapped-around integer product (100 * MACs > 2**31 here).
    assert type(graph_macs(exported["int8"])) is int
    ratio = 100 * row["macs_m"] * 1e6 / (row["peak_gmacs"] * 1e9) / (row["p50_ms"] / 1e3)
    assert row["roofline_pct"] == pytest.approx(ratio, rel=0.05, abs=0.1)
    # Which note a row above 100 % gets depends on the kernels: integer ones, or a peak measured low.
    assert row["int8"] is True and graph_int8(exported["dynamic"]) is True
    assert graph_int8(exported["float32"]) is False and graph_int8(exported["float16"]) is False
    # Timing a .tflite (as an app's board would) needs no torch: its MAC peak is numpy's BLAS, at the thread count.
    import subprocess
    import sys

    code = ("import sys; from edgeclf.workflows.benchmark import benchmark; "
            f"r = benchmark([{str(exported['int8'])!r}], threads=[2], runs=2, warmup=1, verbose=False)[0]; "
            "print(r['peak_gmacs'] > 0, r['threads'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "2", "False"]


def test_benchmark_one_model_in_three_runtimes(run: Path) -> None:
    import torch

    from edgeclf.workflows.benchmark import benchmark

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows = benchmark([str(run)], threads=[1], runs=3, warmup=1, runtimes=["litert", "onnxruntime", "torch"],
                         verbose=False)
        # Timing PyTorch at 1 thread left the process there: a train() after it in a notebook ran on 1 core.
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert [r["runtime"] for r in rows] == ["litert", "onnxruntime", "torch"]
    assert all(r["p50_ms"] > 0 for r in rows)
    # One model, one amount of work: the ONNX and PyTorch rows said '-' for what the .tflite row counted.
    assert rows[0]["macs_m"] > 1 and all(r["macs_m"] == rows[0]["macs_m"] for r in rows), rows
    assert rows[1]["params_m"] == pytest.approx(rows[0]["params_m"], rel=0.01)
    assert rows[2]["params_m"] >= rows[0]["params_m"]  # BatchNorm unfolded in PyTorch
    assert all(0 < r["roofline_pct"] for r in rows)
    # A file runs in its own runtime only: --runtime on it is refused, not silently ignored.
    tfl = next((run / "export").glob("*.tflite"))
    with pytest.raises(ConfigError, match=f"--runtime compares runtimes on a run directory; {tfl} is a file"):
        benchmark([str(tfl)], runs=1, warmup=0, runtimes=["torch"], verbose=False)
