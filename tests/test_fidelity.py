"""Deployment fidelity: what edgeclf reports is what MediaPipe's ImageClassifier serves an app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeclf.errors import ConfigError, EdgeclfError
from edgeclf.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

MODEL = "mobilenet_v2_1.0_96"  # ImageNet weights offline; colours are separable in its features
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 210)}


def _identity_classifier(path: Path, size: int) -> Path:
    """A .tflite 'classifier' whose scores are its input pixels: MediaPipe's categories reveal its input tensor."""
    from edgeclf.artifacts.metadata import attach_metadata, build_metadata
    from edgeclf.litert import convert as _convert

    class Ident(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.to(torch.float32).reshape(1, -1) + 0.0

    data = _convert(Ident().eval(), torch.zeros(1, size, size, 3, dtype=torch.uint8))
    labels = [str(i) for i in range(size * size * 3)]
    pre = Preprocess(size, IMAGENET_MEAN, IMAGENET_STD)
    path.write_bytes(attach_metadata(data, build_metadata("id", "id", "1", labels, pre, "uint8"), labels))
    return path


def _off_centre(root: Path, n: int = 16) -> Path:
    """Wide grey images, a coloured disc near the left or right edge: a centre crop cuts it out."""
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = Image.fromarray(np.clip(128 + rng.normal(0, 12, (80, 320, 3)), 0, 255).astype(np.uint8))
            cx = int(rng.integers(18, 40)) if i % 2 else int(rng.integers(280, 302))
            cy = int(rng.integers(25, 55))
            ImageDraw.Draw(img).ellipse([cx - 16, cy - 16, cx + 16, cy + 16], fill=rgb)
            img.save(root / name / f"{i}.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def squash_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data, run dir, float32 .tflite) of a squash-mode run on off-centre wide images."""
    from edgeclf.workflows.export import export
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("fid")
    data = _off_centre(root / "data")
    run = train(data, MODEL, root / "run", epochs=15, lr=3e-3, test_percent=40, resize="squash", workers=1,
                verbose=False, cache_dir=root / "cache", feature_backend="torch")
    return data, run, export(run, "tflite", "float32", verbose=False)


def test_squash_pixels_equal_mediapipe_input_tensor(tmp_path: Path) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    size = 32
    model = _identity_classifier(tmp_path / "id.tflite", size)
    clf = vision.ImageClassifier.create_from_options(
        vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model)), max_results=-1))
    pre = Preprocess(size, IMAGENET_MEAN, IMAGENET_STD, resize="squash")
    rng = np.random.default_rng(0)
    for h, w in ((37, 53), (100, 60), (333, 500), (480, 640), (32, 32), (20, 300)):
        small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))  # photo-like and noisy parts
        img = np.ascontiguousarray(np.where(rng.random((h, w, 1)) < 0.2, rng.integers(0, 256, (h, w, 3)), img)
                                   .astype(np.uint8))
        res = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
        got = np.zeros(size * size * 3, np.float32)
        for c in res.classifications[0].categories:
            got[c.index] = c.score
        assert np.array_equal(got.reshape(size, size, 3), pre.to_uint8(img).astype(np.float32)), (h, w)
    clf.close()


def test_crop_region_of_interest_geometry() -> None:
    pre = Preprocess(224, IMAGENET_MEAN, IMAGENET_STD, resize="crop")
    left, top, right, bottom = pre.roi(400, 200)
    assert (right - left) * 400 == pytest.approx(175) and (bottom - top) * 200 == pytest.approx(175)
    assert (left + right) / 2 == pytest.approx(0.5) and (top + bottom) / 2 == pytest.approx(0.5)
    assert Preprocess(224, IMAGENET_MEAN, IMAGENET_STD, resize="squash").roi(400, 200) == (0.0, 0.0, 1.0, 1.0)


def test_mediapipe_serves_what_edgeclf_reports(squash_run: tuple[Path, Path, Path]) -> None:
    from edgeclf.runtime.evaluate import evaluate

    data, run, tfl = squash_run
    reported = evaluate(tfl, data, verbose=False)
    served = evaluate(tfl, data, client="mediapipe", verbose=False)
    assert reported["n"] == served["n"] >= 15
    assert reported["resize"] == served["resize"] == "squash"
    assert served["top1_agreement_with_litert"] >= 0.99
    assert served["max_abs_prob_diff_vs_litert"] < 1e-3
    assert served["accuracy"] == reported["accuracy"] >= 0.9
    torch_m = evaluate(tfl, data, client="torch", verbose=False)
    assert torch_m["kind"] == "torch" and abs(torch_m["accuracy"] - reported["accuracy"]) <= 1 / reported["n"]


def test_mismatched_mode_is_detected(squash_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The same file, its sidecar claiming crop: edgeclf crops, an app feeding the whole image disagrees."""
    from edgeclf.runtime.evaluate import evaluate

    data, _, tfl = squash_run
    lie = tmp_path / tfl.name
    lie.write_bytes(tfl.read_bytes())
    side = json.loads(tfl.with_suffix(".json").read_text())
    side["preprocess"]["resize"] = "crop"
    side.pop("run_dir")
    lie.with_suffix(".json").write_text(json.dumps(side))
    (tmp_path / "labels.txt").write_text((tfl.parent / "labels.txt").read_text())
    m = evaluate(lie, data, client="mediapipe", roi=False, verbose=False)
    assert m["resize"] == "crop" and not m["mediapipe_roi"]
    assert m["top1_agreement_with_litert"] <= 0.8  # the disc is outside the centre crop


@pytest.mark.parametrize("kind", ["gray", "cmyk", "rgba", "gray16", "exif_rotated", "palette"])
def test_every_client_reads_odd_photos(squash_run: tuple[Path, Path, Path], tmp_path: Path, kind: str) -> None:
    from edgeclf.runtime.clients import mediapipe_predict
    from edgeclf.runtime.engine import load_engine
    from edgeclf.runtime.evaluate import predict_files

    data, run, tfl = squash_run
    paths = []
    for i, src in enumerate(sorted(data.glob("*/*.jpg"))[::8]):
        img = Image.open(src).convert("RGB")
        p = tmp_path / f"{i}.png"
        if kind == "gray":
            img.convert("L").save(p)
        elif kind == "cmyk":
            p = p.with_suffix(".jpg")
            img.convert("CMYK").save(p)
        elif kind == "rgba":
            img.putalpha(200)
            img.save(p)
        elif kind == "gray16":
            Image.fromarray((np.asarray(img.convert("L"), np.uint16) * 257)).save(p)
        elif kind == "palette":
            img.convert("P").save(p)
        else:
            p = p.with_suffix(".jpg")
            exif = Image.Exif()
            exif[0x0112] = 6  # stored rotated: a viewer (and edgeclf) turns it upright
            img.transpose(Image.Transpose.ROTATE_90).save(p, exif=exif.tobytes(), quality=92)
        paths.append(str(p))
    engine = load_engine(tfl)
    lite, bad, good = predict_files(engine, paths, workers=1)
    served, bad_mp, good_mp = mediapipe_predict(engine, paths, workers=1)
    assert not bad and not bad_mp and len(good) == len(good_mp) == len(paths)
    assert (lite.argmax(1) == served.argmax(1)).all()
    assert np.abs(lite - served).max() < 1e-3
    if kind == "exif_rotated":  # upright again: the same answers as the original photos
        originals, _, _ = predict_files(engine, [str(s) for s in sorted(data.glob("*/*.jpg"))[::8]], workers=1)
        assert (originals.argmax(1) == lite.argmax(1)).mean() >= 0.8


def rows_fail(run: Path, tfl: Path) -> str:
    """The golden check's detail of `tfl` in the run's verify.json."""
    rows = json.loads((run / "verify.json").read_text())["rows"]
    return [r for r in rows if r["file"] == tfl.name][0]["golden_detail"]["detail"]


def test_golden_vectors_written_and_verified(squash_run: tuple[Path, Path, Path]) -> None:
    from edgeclf.runtime.golden import golden_path
    from edgeclf.runtime.verify import verify

    data, run, tfl = squash_run
    g = json.loads(golden_path(tfl).read_text())
    assert g["resize"] == "squash" and g["model_file"] == tfl.name and 3 <= len(g["images"]) <= 8
    assert {im["file"].split("/")[0] for im in g["images"]} == set(COLOURS)
    for im in g["images"]:
        assert len(im["probabilities"]) == 3 and im["expected_top_k"][0]["label"] in COLOURS
    r = verify(run, verbose=False)
    rows = {(row["file"], row["client"]): row for row in r["rows"]}
    assert rows[(tfl.name, "litert")]["golden"] == "ok" and rows[(tfl.name, "mediapipe")]["golden"] == "ok"
    assert rows[(tfl.name, "mediapipe")]["top1_agreement_with_pytorch"] >= 0.99
    assert not r["golden_failed"] and (run / "verify.json").is_file()
    # A file that no longer gives its golden outputs is caught.
    saved = golden_path(tfl).read_text()
    try:
        for im in g["images"]:
            im["probabilities"] = im["probabilities"][::-1]
        golden_path(tfl).write_text(json.dumps(g))
        assert verify(run, verbose=False, clients=("litert",))["golden_failed"]
        cli = subprocess.run([sys.executable, "-m", "edgeclf", "verify", str(run), "--clients", "litert"],
                             capture_output=True, text=True)
        assert cli.returncode == 1 and "FAIL" in cli.stdout
        # Why it failed is a long line: written once under the table, not in a cell as wide as itself.
        lines = cli.stdout.splitlines()
        assert [ln for ln in lines if ln.startswith(tfl.name)][0].endswith("FAIL [1]"), cli.stdout
        assert [ln for ln in lines if ln.startswith("[1] ")] == [f"[1] {tfl.name}: " + rows_fail(run, tfl)], cli.stdout
    finally:
        golden_path(tfl).write_text(saved)


def test_resize_mode_reaches_the_run_and_the_file(squash_run: tuple[Path, Path, Path]) -> None:
    from edgeclf.artifacts.metadata import read_metadata

    _, run, tfl = squash_run
    assert json.loads((run / "manifest.json").read_text())["config"]["resize"] == "squash"
    info, _ = read_metadata(tfl.read_bytes())
    assert info["custom"]["preprocess"]["resize"] == "squash"
    assert json.loads(tfl.with_suffix(".json").read_text())["preprocess"]["resize"] == "squash"


def test_bad_client_and_mode_values(squash_run: tuple[Path, Path, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train

    data, run, tfl = squash_run
    with pytest.raises(ConfigError, match="--client must be one of"):
        evaluate(tfl, data, client="tensorflow", verbose=False)
    with pytest.raises(ConfigError, match="--client onnxruntime cannot run a .tflite"):
        evaluate(tfl, data, client="onnxruntime", verbose=False)
    with pytest.raises(ConfigError, match="--client mediapipe cannot run a run directory"):
        evaluate(run, data, client="mediapipe", verbose=False)
    # --no-roi only changes what MediaPipe is fed; elsewhere it was accepted and did nothing.
    with pytest.raises(ConfigError, match="--no-roi applies to --client mediapipe only .*, not to litert"):
        evaluate(tfl, data, roi=False, verbose=False)
    with pytest.raises(ConfigError, match=r"--resize must be one of squash, crop, got 'stretch'"):
        train(data, MODEL, tmp_path / "r", resize="stretch", verbose=False)
    assert not (tmp_path / "r").exists()
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if it were not installed
    with pytest.raises(EdgeclfError, match="needs the mediapipe package"):
        evaluate(tfl, data, client="mediapipe", verbose=False)
    cli = subprocess.run([sys.executable, "-m", "edgeclf", "evaluate", str(tfl), "--data", str(data),
                          "--client", "onnxruntime"], capture_output=True, text=True)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr and "--client onnxruntime" in cli.stderr


def test_older_export_without_mode_is_read_as_crop(squash_run: tuple[Path, Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from edgeclf.runtime.engine import load_engine

    _, _, tfl = squash_run
    old = tmp_path / tfl.name
    old.write_bytes(tfl.read_bytes())
    side = json.loads(tfl.with_suffix(".json").read_text())
    del side["preprocess"]["resize"]
    old.with_suffix(".json").write_text(json.dumps(side))
    (tmp_path / "labels.txt").write_text((tfl.parent / "labels.txt").read_text())
    before = old.with_suffix(".json").read_text()
    engine = load_engine(old)
    assert engine.preprocess.resize == "crop"
    assert "assuming resize=crop" in capsys.readouterr().err
    assert old.with_suffix(".json").read_text() == before  # nothing rewritten


def test_runtime_logs_stay_out_of_the_output(squash_run: tuple[Path, Path, Path]) -> None:
    """LiteRT's "Created TensorFlow Lite XNNPACK delegate" and MediaPipe's absl lines are not edgeclf's output."""
    data, _, tfl = squash_run
    cli = subprocess.run([sys.executable, "-m", "edgeclf", "evaluate", str(tfl), "--data", str(data),
                          "--client", "mediapipe"], capture_output=True, text=True)
    assert cli.returncode == 0 and "accuracy" in cli.stdout
    for noise in ("XNNPACK", "I0000", "W0000"):
        assert noise not in cli.stdout + cli.stderr, noise
