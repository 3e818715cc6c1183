"""Distillation: a teacher run's soft labels reach the student's loss, are cached, and bad teachers are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_dataset
from edgeclf.artifacts.run import load_run, save_model
from edgeclf.cli import main
from edgeclf.errors import ConfigError
from edgeclf.training.distill import Distill
from edgeclf.training.trainer import train

MODEL = "mobilenet_v2_1.0_96"  # ImageNet weights ship offline: features that tell colours apart
COLOURS = {"blue": (40, 60, 220), "green": (40, 200, 60), "red": (220, 50, 40)}


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes a random backbone can tell apart: noisy images of one dominant colour each."""
    root = tmp_path_factory.mktemp("d") / "data"
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(20):
            img = np.clip(np.array(rgb) + rng.normal(0, 35, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i:02d}.jpg", quality=90)
    return root


KW = dict(epochs=15, workers=1, verbose=False, feature_backend="torch", seed=0)


@pytest.fixture(scope="module")
def liar(colours: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher that has learned the colours, then had its blue and green outputs swapped."""
    run = train(colours, MODEL, tmp_path_factory.mktemp("t") / "teacher", **KW)
    model, meta = load_run(run)
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight[[0, 1]] = last.weight[[1, 0]].clone()
        last.bias[[0, 1]] = last.bias[[1, 0]].clone()
    save_model(run, model, meta)
    return run


def _test_predictions(run: Path) -> tuple[float, dict]:
    m = json.loads((run / "metrics.json").read_text())
    return m["test"]["accuracy"], m


def test_loss_mixes_labels_and_teacher() -> None:
    s = torch.tensor([[2.0, 0.0, -1.0]])
    hard = torch.nn.functional.cross_entropy(s, torch.tensor([0]))
    assert torch.allclose(Distill(0.0, 2.0).loss(hard, s, torch.zeros(1, 3)), hard)
    assert float(Distill(1.0, 2.0).loss(hard, s, s.clone())) == pytest.approx(0.0, abs=1e-6)
    # Gradient of the soft term points the student towards the teacher's favourite class.
    s = s.clone().requires_grad_(True)
    Distill(1.0, 4.0).loss(hard, s, torch.tensor([[0.0, 5.0, 0.0]])).backward()
    assert s.grad[0, 1] < 0 < s.grad[0, 0]


def test_student_follows_the_teacher_and_its_labels_are_cached(colours: Path, liar: Path, tmp_path: Path) -> None:
    honest = train(colours, MODEL, tmp_path / "alone", cache_dir=tmp_path / "c", aug_views=1, **KW)
    acc_alone, _ = _test_predictions(honest)
    assert acc_alone >= 0.8  # the colours are learnable without a teacher
    taught = train(colours, MODEL, tmp_path / "taught", cache_dir=tmp_path / "c", teacher=liar,
                   distill_weight=1.0, aug_views=1, **KW)
    acc_taught, m = _test_predictions(taught)
    # Only the (lying) teacher spoke: the student swaps blue and green as it does.
    assert acc_taught <= 0.5
    d = m["distillation"]
    assert d["model"] == MODEL and d["weight"] == 1.0
    assert d["val_accuracy"] < 0.8 <= d["val_acc_head_without_teacher"]  # red is the only class it gets right
    manifest = json.loads((taught / "manifest.json").read_text())
    assert manifest["teacher"]["sha256"] == d["sha256"] and manifest["config"]["teacher"] == str(liar.resolve())
    # The teacher's logits for the plain and the augmented view are cached beside the features.
    dims = sorted(json.loads(p.read_text())["dim"] for p in (tmp_path / "c").glob("*/meta.json"))
    # Teacher logits (plain, augmented view), then the student's features: 1,280 final + 160 + 320 pooled.
    assert dims == [3, 3, 1760, 1760]
    again = train(colours, MODEL, tmp_path / "again", cache_dir=tmp_path / "c", teacher=liar,
                  distill_weight=1.0, aug_views=1, **KW)
    assert json.loads((again / "manifest.json").read_text())["feature_backend"] == "cache"


def test_weak_teacher_warns(colours: Path, liar: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", str(colours), "--model", MODEL, "--epochs", "15", "--workers", "1",
                 "--feature-backend", "torch", "--out", str(tmp_path / "r"), "--teacher", str(liar),
                 "--distill-weight", "0.3", "--cache-dir", str(tmp_path / "c")])
    assert code == 0
    assert "warning: teacher" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--distill-weight", "1.5"], "--distill-weight must be a number in [0, 1], got 1.5"),
    (["--distill-temperature", "0"], "--distill-temperature must be a number in (0, inf), got 0"),
    (["--fine-tune", "all"], "--teacher works with head training and cached fine-tuning"),
    (["--val-percent", "30"], "holds out for validation/test"),
])
def test_bad_teacher_options(colours: Path, liar: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                             args: list[str], message: str) -> None:
    code = main(["train", str(colours), "--model", MODEL, "--out", str(tmp_path / "r"),
                 "--teacher", str(liar), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_teacher_of_another_dataset_or_unfinished_is_refused(colours: Path, liar: Path, tmp_path: Path) -> None:
    other = make_dataset(tmp_path / "other", {"blue": 8, "green": 8, "red": 8}, seed=3)
    with pytest.raises(ConfigError, match="trained on another dataset"):
        train(other, MODEL, tmp_path / "r", teacher=liar, **KW)
    renamed = make_dataset(tmp_path / "renamed", {"cyan": 8, "green": 8, "red": 8})
    with pytest.raises(ConfigError, match="was trained on classes blue, green, red"):
        train(renamed, MODEL, tmp_path / "r", teacher=liar, **KW)
    from edgeclf.table import short_list  # many classes: the message stays one readable line

    assert short_list([f"c{i}" for i in range(120)]) == "c0, c1, c2, c3, c4 and 115 more"
    with pytest.raises(ConfigError, match="is not a finished edgeclf run"):
        train(colours, MODEL, tmp_path / "r", teacher=tmp_path, **KW)
