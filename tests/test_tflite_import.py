"""Weights read out of .tflite files: round trips through our own exports, Google's official files, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FLOWERS, SHARED, make_dataset, photo
from edgeclf.cli import main
from edgeclf.errors import ModelError
from edgeclf.models.blocks import Conv2dSame
from edgeclf.models.builder import Classifier
from edgeclf.models.preprocess import Preprocess
from edgeclf.models.pretrained import build_pretrained, inspect_tflite
from edgeclf.models.weights import SOURCES
from edgeclf.models.zoo import create_model, get_spec

IMAGENET = SHARED / "imagenet_tflite"
needs_imagenet = pytest.mark.skipif(not (IMAGENET / "mobilenet_v1_0.25_128_quant.tflite").is_file(),
                                    reason="../shared/imagenet_tflite is absent")


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path), num_threads=2)
    it.allocate_tensors()
    return it


def _run_file(it, x: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] (or any dtype the file takes) → the file's dequantized output per image."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for img in x:
        it.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"])[0].astype(np.float32)
        scale, zp = out["quantization"]
        rows.append((y - zp) * scale if scale else y)
    return np.stack(rows).reshape(len(rows), -1)


def _random_model(name: str, classes: int, seed: int = 0) -> Classifier:
    """A backbone with random weights and non-trivial BatchNorm statistics, so folding is exercised."""
    torch.manual_seed(seed)
    model = Classifier(get_spec(name).build(), classes, 0.0).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def _export(model: Classifier, pre: Preprocess, dest: Path, quantize: str) -> Path:
    from edgeclf.exporting.tflite import to_tflite

    calib = np.stack([pre.to_uint8(photo(i, (80, 60))) for i in range(16)]) if quantize == "int8" else None
    return to_tflite(model, pre, dest, quantize, labels=[f"c{i}" for i in range(3)], calibration=calib)


@pytest.fixture(scope="module")
def v1_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random MobileNet V1 0.25 classifier exported by edgeclf as float32, float16 and int8 .tflite."""
    d = tmp_path_factory.mktemp("v1")
    name = "mobilenet_v1_0.25_128"
    model = _random_model(name, 3)
    pre = get_spec(name).preprocess
    torch.save(model.state_dict(), d / "model.pt")
    return {q: _export(model, pre, d / f"{q}.tflite", q) for q in ("float32", "float16", "int8")}


@pytest.mark.parametrize("quantize,tol", [("float32", 1e-4), ("float16", 2e-2), ("int8", 0.15)])
def test_own_export_imports_back(v1_exports: dict[str, Path], quantize: str, tol: float) -> None:
    """Weights read from a float32 / float16 (DEQUANTIZE) / int8 per-channel file give the file's outputs."""
    path = v1_exports[quantize]
    p = build_pretrained(get_spec("mobilenet_v1_0.25_128"), str(path), imagenet_head=True)
    assert p.head is not None and p.head["weight"].shape == (3, 256)
    # The uint8 input's quantization is the normalization edgeclf's export folded into the stem.
    assert p.spec.preprocess.mean == (128.0,) * 3 and p.spec.preprocess.std[0] == pytest.approx(128.0, rel=1e-4)
    clf = Classifier(p.backbone, 3, 0.0).eval()
    clf.head[-1].load_state_dict(p.head)
    x = np.stack([p.spec.preprocess.to_uint8(photo(100 + i, (90, 70))) for i in range(8)])
    want = _run_file(_interpreter(path), x)
    with torch.no_grad():
        got = torch.softmax(clf(p.spec.preprocess.normalize(x)), 1).numpy()
    assert np.abs(got - want).max() < tol, np.abs(got - want).max()
    if quantize == "float32":  # a float file is the model itself
        assert (got.argmax(1) == want.argmax(1)).all()


def test_width_and_family_mismatches_name_the_layer(v1_exports: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path / "home"))
    f = str(v1_exports["float32"])
    with pytest.raises(ModelError, match=r"at layer 0 \(stem\).*8 channels where mobilenet_v1_0.5_224 has 16.*"
                                         r"fits mobilenet_v1_0.25_\*"):
        build_pretrained(get_spec("mobilenet_v1_0.5_224"), f)
    with pytest.raises(ModelError, match=r"27 convolutions before the pool, mobilenet_v2_1.0_224 has 52.*"
                                         r"fits mobilenet_v1_0.25_\*"):
        build_pretrained(get_spec("mobilenet_v2_1.0_224"), f)
    with pytest.raises(ModelError, match="squeeze-excite"):
        build_pretrained(get_spec("mobilenet_v3_small_1.0_224"), f)
    assert not (tmp_path / "home").exists()  # nothing cached on failure


def test_bad_files_are_one_line_errors(v1_exports: dict[str, Path], tmp_path: Path) -> None:
    spec = get_spec("mobilenet_v1_0.25_128")
    data = v1_exports["float32"].read_bytes()
    cases = {
        "truncated.tflite": (data[: len(data) // 3], "truncated or damaged"),
        "garbage.tflite": (b"\x00\x00\x00\x00TFL3" + bytes(range(256)) * 40, "truncated or damaged"),
        "text.tflite": (b"this is not a model\n" * 50, "not a TFLite file"),
        "empty.tflite": (b"", "not a TFLite file"),
    }
    for fname, (content, why) in cases.items():
        (tmp_path / fname).write_bytes(content)
        with pytest.raises(ModelError, match=why) as err:
            build_pretrained(spec, str(tmp_path / fname))
        assert "\n" not in str(err.value) and fname in str(err.value)


def test_a_model_without_a_global_pool_is_refused(tmp_path: Path) -> None:
    """A detection-style graph (convolutions, no pooling) is not taken for a classifier backbone."""
    import litert_torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU6(), torch.nn.Conv2d(8, 4, 1)).eval()
    litert_torch.convert(net, (torch.zeros(1, 3, 32, 32),)).export(str(tmp_path / "det.tflite"))
    with pytest.raises(ModelError, match="no global average pool"):
        build_pretrained(get_spec("mobilenet_v1_0.25_128"), str(tmp_path / "det.tflite"))
    assert inspect_tflite(tmp_path / "det.tflite")["fits"] == []


def test_catalogue_entries_are_complete() -> None:
    for w in (0.25, 0.5, 0.75, 1.0):
        for r in (128, 224):
            key = get_spec(f"mobilenet_v1_{w}_{r}").weights
            (src,) = SOURCES[key]
            assert src.layout == "tflite" and len(src.sha256) == 64 and src.url.startswith("https://")
    assert SOURCES["tflite_mobilenet_v1_1.0"][0].head is not None


@pytest.fixture
def imagenet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EDGECLF_HOME/weights holding links to Google's official files, as a user who has them would."""
    if not (IMAGENET / "mobilenet_v1_0.25_128_quant.tflite").is_file():
        pytest.skip("../shared/imagenet_tflite is absent")
    (tmp_path / "weights").mkdir()
    for f in IMAGENET.glob("*.tflite"):
        (tmp_path / "weights" / f.name).symlink_to(f)
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    return tmp_path


def test_models_lists_v1_sources(imagenet_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "mobilenet_v1_0.5", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mobilenet_v1_0.5_224"]["weights"] == "offline"
    assert "0.5_160" in rows["mobilenet_v1_0.5_224"]["weights_source"]
    assert main(["models", "--weights", str(IMAGENET / "mobilenet_v2_1.0_224_quant.tflite")]) == 0
    assert "fits mobilenet_v2_1.0_*" in capsys.readouterr().out


def test_no_v1_file_offline_says_where_to_put_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"put mobilenet_v1_0.5_160_quant.tflite in .*google-coral"):
        create_model("mobilenet_v1_0.5_224", 3)


# Google's files, each run by LiteRT on 200 daisy photos and by the imported PyTorch model on the same pixels.
OFFICIAL = [("mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v1_0.25_128"),
            ("mobilenet_v1_0.5_160_quant.tflite", "mobilenet_v1_0.5_160"),
            ("mobilenet_v1_0.75_192_quant.tflite", "mobilenet_v1_0.75_192"),
            ("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "mobilenet_v1_1.0_224"),
            ("mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v2_1.0_224")]
DAISY = 986  # in the files' 1001 labels (0 = background)


@needs_imagenet
@pytest.mark.skipif(not FLOWERS.is_dir(), reason="../shared/datasets/flowers is absent")
@pytest.mark.parametrize("fname,name", OFFICIAL)
def test_imported_official_file_reproduces_its_predictions(imagenet_home: Path, fname: str, name: str) -> None:
    from edgeclf.data.images import load_rgb

    spec = get_spec(name)
    pre = Preprocess(spec.preprocess.size, (128.0,) * 3, (128.0,) * 3, resize="crop")
    files = sorted(p for p in (FLOWERS / "daisy").iterdir() if p.suffix == ".jpg")[:200]
    x = np.stack([pre.to_uint8(load_rgb(p)) for p in files])
    # V1 through the catalogue ($EDGECLF_HOME, SHA-256 checked); V2 as an explicit file.
    weights = "imagenet" if name.startswith("mobilenet_v1") else str(imagenet_home / "weights" / fname)
    p = build_pretrained(spec, weights, imagenet_head=True)
    assert isinstance(p.backbone.stem.conv, Conv2dSame)  # TF SAME padding (V2: taken from the file)
    assert p.spec.preprocess.mean == p.spec.preprocess.std == (128.0,) * 3  # from the input quantization
    model = Classifier(p.backbone, 1001, 0.0).eval()
    model.head[-1].load_state_dict(p.head)
    it = _interpreter(imagenet_home / "weights" / fname)
    file_out = _run_file(it, x)
    if "extractor" in fname:  # the backbone file feeds the separate head file, requantized
        head = _interpreter(imagenet_home / "weights" / "mobilenet_quant_v1_224_head_layers.tflite")
        s, z = head.get_input_details()[0]["quantization"]
        q = np.clip(np.round(file_out / s + z), 0, 255).astype(np.uint8).reshape(len(x), 1, 1, -1)
        file_out = _run_file(head, q)
    with torch.no_grad():
        ours = model(Preprocess(pre.size, (128.0,) * 3, (128.0,) * 3).normalize(x)).numpy()
    agreement = float((ours.argmax(1) == file_out.argmax(1)).mean())
    daisy_file = float((file_out.argmax(1) == DAISY).mean())
    daisy_ours = float((ours.argmax(1) == DAISY).mean())
    assert agreement >= 0.97, agreement
    assert abs(daisy_ours - daisy_file) <= 0.03, (daisy_ours, daisy_file)


@needs_imagenet
def test_v1_transfer_learning_end_to_end(imagenet_home: Path, tmp_path: Path) -> None:
    """mobilenet_v1_0.5_224 from the 0.5_160 file: features, augmented views, cached fine-tune, int8, MediaPipe."""
    from edgeclf.workflows.export import export
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train

    data = make_dataset(tmp_path / "data", {"red": 12, "blue": 12, "green": 12}, size=(90, 60))
    run = train(data, "mobilenet_v1_0.5_224", tmp_path / "run", epochs=3, aug_views=1, fine_tune=1,
                fine_tune_epochs=1, verbose=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"]["weights"] == "imagenet" and json.loads((run / "metrics.json").read_text())["fine_tune"]
    for q in ("float32", "float16", "dynamic", "int8"):
        f = export(run, quantize=q, verbose=False)
        r = evaluate(f, data, client="mediapipe", verbose=False)  # the app's client, on every export
        assert r["n"] > 0 and r["top1_agreement_with_litert"] >= 0.9, (q, r["top1_agreement_with_litert"])
