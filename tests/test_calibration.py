"""Temperature scaling: fitted on validation, folded into the model and its exports, ECE reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_dataset
from edgeclf.metrics import expected_calibration_error, softmax
from edgeclf.training.calibrate import calibrate, fit_temperature, fold_temperature, rescale


def test_fit_recovers_a_known_temperature() -> None:
    """Labels drawn from softmax(z / 2.5): the temperature that explains them is 2.5."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20000, 5))
    p_true = softmax(z / 2.5)
    y = np.array([rng.choice(5, p=p) for p in p_true])
    t = fit_temperature(softmax(z), y)
    assert t == pytest.approx(2.5, rel=0.05)
    # Overconfident before, calibrated after.
    assert expected_calibration_error(y, softmax(z)) > 0.1 > 0.02 > expected_calibration_error(y, rescale(softmax(z), t))


def test_folding_divides_the_logits() -> None:
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(8, 3)).eval()
    x = torch.randn(4, 8)
    before = head(x)
    fold_temperature(head, 1.7)
    torch.testing.assert_close(head(x), before / 1.7)


def test_ece_of_known_bins() -> None:
    # Four predictions at confidence 0.9, three right: |0.75 - 0.9| = 0.15.
    probs = np.array([[0.9, 0.1]] * 4)
    assert expected_calibration_error(np.array([0, 0, 0, 1]), probs) == pytest.approx(0.15)


def test_too_few_validation_images_are_skipped_with_a_reason() -> None:
    t, why = calibrate(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]), 3)
    assert t is None and "4 validation images for 3 classes" in why


def test_many_classes_with_few_validation_images_each_are_calibrated() -> None:
    """100 classes, 2 validation images each: one temperature is well fitted on 200 images (was skipped)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 100, 200)
    z = rng.normal(0, 1, (200, 100))
    z[np.arange(200), y] += 3.0  # right most of the time, with soft (under-confident) scores
    t, why = calibrate(softmax(z), y, 100)
    assert t is not None and t < 1 and why.startswith("temperature")
    assert calibrate(softmax(z[:29]), y[:29], 100)[0] is None  # under 30 in all and under 3 per class


def test_a_validation_split_without_errors_is_not_fitted() -> None:
    """Every validation image right: the log loss has no minimum, so no temperature (it would be ~0)."""
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]] * 4)
    y = np.array([0, 1, 2] * 4)
    assert fit_temperature(probs, y) < 0.06  # what fitting would give: logits x 17, every score ~1.0
    t, why = calibrate(probs, y, 3)
    assert t is None and "all 12 validation images are classified correctly" in why
    y[0] = 1  # one error: a temperature exists again
    assert calibrate(probs, y, 3)[0] is not None


def test_training_calibrates_and_exports_carry_it(tmp_path: Path) -> None:
    from edgeclf.runtime.evaluate import evaluate
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    data = make_dataset(tmp_path / "data", {"a": 40, "b": 40, "c": 40}, size=(72, 56))
    run = train(data, "mobilenet_v2_0.35_96", tmp_path / "run", weights="none", epochs=15, val_percent=30,
                feature_backend="torch", verbose=False)
    m = json.loads((run / "metrics.json").read_text())
    cal = m["calibration"]
    assert cal["temperature"] is not None and cal["temperature"] != 1.0
    assert (run / "reliability.png").is_file()
    assert m["test"]["ece"] == cal["ece_after"]["test"]
    # The file's probabilities are the calibrated ones: its ECE on test is the run's, to rounding.
    r = evaluate(export(run, verbose=False), data, verbose=False, out=tmp_path / "eval")
    assert r["ece"] == pytest.approx(m["test"]["ece"], abs=0.01)
    assert (tmp_path / "eval" / "reliability.png").is_file()
    off = train(data, "mobilenet_v2_0.35_96", tmp_path / "raw", weights="none", epochs=15, val_percent=30,
                feature_backend="torch", verbose=False, calibrate=False)
    assert json.loads((off / "metrics.json").read_text())["calibration"] == {"temperature": None,
                                                                              "note": "--no-calibrate"}
