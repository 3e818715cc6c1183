"""int8 with a guarantee: the file is checked against the float model on validation, re-calibrated, or refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgeclf.cli import main
from edgeclf.errors import ConfigError
from test_export import _colour_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.training.trainer import train

    root = tmp_path_factory.mktemp("int8")
    data = _colour_dataset(root / "data", n=120)
    return train(data, "mobilenet_v2_0.35_96", root / "run", weights="none", epochs=10, val_percent=30,
                 feature_backend="torch", verbose=False, aug_views=0, hidden=0, dropout=0.2)  # a linear head


def test_int8_file_is_checked_against_float(run: Path) -> None:
    from edgeclf.workflows.export import export

    f = export(run, quantize="int8", max_drop=50, verbose=False)
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert c["checked"] and c["split"] == "val" and c["n"] >= 100
    assert c["drop_points"] == pytest.approx(100 * (c["val_acc_float"] - c["val_acc_int8"]), abs=0.01)
    assert c["passed"] == (c["drop_points"] <= 50) and 0 <= c["top1_agreement"] <= 1


def test_int8_over_budget_is_retried_then_refused(run: Path, tmp_path: Path) -> None:
    """Logits shrunk 10,000x: float keeps every argmax, int8's 1/256 output steps tie them all."""
    from edgeclf.artifacts.run import load_run, save_model
    from edgeclf.workflows.export import Int8DropError, export

    model, meta = load_run(run)
    with torch.no_grad():
        model.head[-1].weight.mul_(1e-4)
        model.head[-1].bias.mul_(1e-4)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("split.json", "labels.txt", "manifest.json", "metrics.json"):
        (flat / name).write_bytes((run / name).read_bytes())
    save_model(flat, model, meta)
    with pytest.raises(Int8DropError, match=r"loses .* points .*> --max-drop 1\).*the file is kept"):
        export(flat, quantize="int8", max_drop=1.0, verbose=False)
    f = flat / "export" / f"{meta['model']}_int8.tflite"
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert f.is_file() and c["passed"] is False and c["drop_points"] > 1 and "first_try" in c
    assert c["calibration_images"] == 400
    # The CLI says it in one line and exits non-zero; --no-int8-check exports without the check.
    assert main(["export", str(flat), "--quantize", "int8"]) == 2
    assert main(["export", str(flat), "--quantize", "int8", "--no-int8-check"]) == 0


def test_max_drop_is_validated(run: Path) -> None:
    from edgeclf.workflows.export import export

    with pytest.raises(ConfigError, match=r"--max-drop must be None or a number in \[0, 100\], got -1"):
        export(run, quantize="int8", max_drop=-1)


def test_small_validation_split_skips_the_check_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from edgeclf.training.trainer import train
    from edgeclf.workflows.export import export

    data = _colour_dataset(tmp_path / "data", n=10)
    small = train(data, "mobilenet_v2_0.35_96", tmp_path / "run", weights="none", epochs=2,
                  feature_backend="torch", verbose=False)
    f = export(small, quantize="int8")
    c = json.loads(f.with_suffix(".json").read_text())["int8_check"]
    assert c["checked"] is False and "validation images (< 100)" in c["note"]
    assert "int8 not checked against float" in capsys.readouterr().err
