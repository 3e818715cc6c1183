"""'Unknown': a validation-chosen threshold that MediaPipe's ImageClassifier applies from the file's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.cli import main
from edgeclf.metrics import auroc, coverage_report
from edgeclf.training.trainer import train
from edgeclf.training.unknown import choose_threshold

MODEL = "mobilenet_v2_1.0_96"  # ImageNet weights ship offline: features that tell colours apart


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colour classes, noisy enough that some photos are answered with little confidence."""
    root = tmp_path_factory.mktemp("u") / "data"
    rng = np.random.default_rng(1)
    for name, rgb in {"blue": (40, 60, 220), "green": (40, 200, 60), "red": (220, 50, 40)}.items():
        (root / name).mkdir(parents=True)
        for i in range(24):
            img = np.clip(np.array(rgb) + rng.normal(0, 70, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i:02d}.jpg", quality=90)
    return root


def test_threshold_rejects_the_asked_share() -> None:
    probs = np.stack([np.linspace(0.4, 0.95, 40), 1 - np.linspace(0.4, 0.95, 40)], 1)
    t = choose_threshold(probs, np.zeros(40, int), 0.25, log=lambda *a, **k: None)
    assert (probs.max(1) < t).sum() == 10  # a quarter turned away, the rest answered
    assert choose_threshold(probs, np.zeros(40, int), 0.0) == 0.0
    said: list[str] = []
    assert choose_threshold(probs[:5], np.zeros(5, int), 0.1, log=lambda m, **k: said.append(m)) is None
    assert "at least 20 validation images" in said[0]


def test_auroc_counts_pairs() -> None:
    rng = np.random.default_rng(0)
    known, unknown = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 20).astype(float)
    pairs = np.mean([(k > u) + 0.5 * (k == u) for k in known for u in unknown])
    assert auroc(known, unknown) == pytest.approx(pairs)
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_saturated_scores_leave_no_threshold() -> None:
    """A model certain of most validation photos (float32 softmax = 1.0) cannot turn away 25 % of them: it says so."""
    probs = np.zeros((40, 3), np.float32)
    probs[:, 0] = 1.0
    probs[:5] = [0.6, 0.3, 0.1]
    said: list[str] = []
    assert choose_threshold(probs, np.zeros(40, int), 0.25, log=lambda m, **k: said.append(m)) is None
    assert "88% of the validation photos score a top probability of 1.0" in said[0]


@pytest.fixture(scope="module")
def exported(colours: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run trained with --unknown-rate 0.25 and its float32 export."""
    from edgeclf.workflows.export import export

    # The linear head: on these easy colours the default hidden-layer head scores over a quarter of the
    # validation photos at exactly 1.0, and choose_threshold declines (test_saturated_scores_leave_no_threshold).
    run = train(colours, MODEL, tmp_path_factory.mktemp("r") / "run", val_percent=40, unknown_rate=0.25, epochs=10,
                workers=1, feature_backend="torch", verbose=False, aug_views=0, hidden=0, dropout=0.2)
    return run, export(run, quantize="float32", verbose=False)


def test_unknown_threshold_reaches_mediapipe(colours: Path, exported: tuple[Path, Path], tmp_path: Path) -> None:
    from mediapipe.tasks.python import BaseOptions, vision
    import mediapipe as mp

    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.runtime.predict import predict

    run, f = exported
    u = json.loads((run / "metrics.json").read_text())["unknown"]
    assert 0 < u["threshold"] < 1 and u["val"]["coverage"] == pytest.approx(0.75, abs=0.1)
    assert json.loads(f.with_suffix(".json").read_text())["score_threshold"] == u["threshold"]
    photos = sorted(str(p) for p in colours.rglob("*.jpg"))
    rows = {r["path"]: r for r in predict(f, photos, top_k=3)}
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(f)))  # an app's defaults
    answered = 0
    with vision.ImageClassifier.create_from_options(opts) as clf:
        for p in photos:
            cats = clf.classify(mp.Image.create_from_file(p)).classifications[0].categories
            # MediaPipe read the threshold from the metadata: nothing below it, exactly where edgeclf says unknown.
            top = rows[p]["top"][0]
            if abs(top["score"] - u["threshold"]) > 1e-3:
                assert (not cats) == rows[p]["unknown"], (p, top, u["threshold"])
            assert all(c.score >= u["threshold"] - 1e-6 for c in cats)
            answered += bool(cats)
    assert 0 < answered < len(photos)  # some photos answered 'unknown', most not
    m = evaluate(f, str(colours), split="val", out=tmp_path / "ev", verbose=False, client="mediapipe")
    assert m["unknown"]["threshold"] == u["threshold"]
    # 32 validation photos: one or two near the threshold may land on the other side in the exported file.
    assert m["unknown"]["coverage"] == pytest.approx(u["val"]["coverage"], abs=0.1)
    assert m["accuracy"] == pytest.approx(u["val"]["accuracy_all"], abs=0.05)  # every score, not only those above
    assert (tmp_path / "ev" / "risk_coverage.png").stat().st_size > 5000


def test_unknown_threshold_reaches_an_onnx_app(colours: Path, exported: tuple[Path, Path], tmp_path: Path) -> None:
    """The ONNX export carried no threshold: predict and evaluate on it never said 'unknown', and an app had only the
    sidecar JSON to find it in. It is in the file's metadata, and edgeclf answers as with the .tflite."""
    import onnx

    from edgeclf.runtime.predict import predict
    from edgeclf.workflows.export import export

    run, f = exported
    onx = export(run, "onnx", out=tmp_path / "m.onnx", verbose=False)
    props = {p.key: p.value for p in onnx.load(str(onx)).metadata_props}
    assert float(props["score_threshold"]) == json.loads((run / "metrics.json").read_text())["unknown"]["threshold"]
    photos = sorted(str(p) for p in colours.rglob("*.jpg"))
    said = [r["unknown"] for r in predict(onx, photos, top_k=1)]
    assert said == [r["unknown"] for r in predict(f, photos, top_k=1)] and 0 < sum(said) < len(said)


def test_coverage_report() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    r = coverage_report(probs, np.array([0, 1, 1, 0]), 0.6)
    assert r == {"n": 4, "coverage": 0.75, "accuracy_accepted": round(2 / 3, 4), "accuracy_all": 0.5}


def test_unknown_rate_bad_input(colours: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", str(colours), "--model", MODEL, "--out", str(tmp_path / "r"), "--unknown-rate", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--unknown-rate must be a number in [0, 1), got 1.0" in err
    # Too few validation photos for a quantile: a warning, a model that answers everything, no crash.
    run = train(colours, MODEL, tmp_path / "small", val_percent=5, unknown_rate=0.1, epochs=2, workers=1,
                feature_backend="torch")
    assert "at least 20 validation images" in capsys.readouterr().out
    assert "unknown" not in json.loads((run / "metrics.json").read_text())


def test_predict_cli_says_unknown(colours: Path, exported: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    from edgeclf.runtime.predict import predict

    _, f = exported
    photos = sorted(str(p) for p in colours.rglob("*.jpg"))
    rows = predict(f, photos, top_k=2)
    unknown = [r["path"] for r in rows if r["unknown"]]
    assert unknown and len(unknown) < len(rows)
    assert main(["predict", str(f), *photos]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert all(lines[p].startswith("unknown (best: ") for p in unknown)
    assert main(["predict", str(f), photos[0], "--csv", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "path,rank,label,score,unknown,error" and len(out) == 3 and out[1].startswith(photos[0] + ",1,")
    # --csv once dropped the verdict (an "unknown" photo read as answered) and unreadable files.
    broken = Path(photos[0]).parent.parent.parent / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    assert main(["predict", str(f), unknown[0], str(broken), "--csv", "--top-k", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"{unknown[0]},1,") and out[1].endswith(",true,")
    assert out[2].startswith(f"{broken},,,,,") and "not an image" in out[2]
