"""train --time-budget: the plan fits the budget, falls back when it must, and refuses what cannot fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeclf.cli import main
from edgeclf.errors import ConfigError
from edgeclf.training.budget import MAX_FT_EPOCHS, MIN_FT_EPOCHS, Costs, Work, plan

MODEL = "mobilenet_v2_1.0_96"  # ImageNet weights: a real backbone, small and fast
# Seconds per unit of work of the order of EfficientNet-Lite0 on this 2-core machine.
COSTS = Costs(decode=0.004, feature=0.008, activation=0.008, ft_sample=0.001, predict=0.02, head_sample=3e-5,
              convert=20.0)
COLD = Work(n_train=2936, n_val=367, n_test=367, missing_plain=3670, missing_aug={0: 0, 4: 4 * 2936},
            missing_act={0: 2936 + 367, 4: 5 * 2936 + 367}, converted=False, converted_bottom=False)


def test_bigger_budgets_buy_more_and_every_plan_fits() -> None:
    plans = [plan(s, COSTS, COLD, 4) for s in (100, 300, 450, 600, 3600)]
    assert [p.fine_tune for p in plans] == [None, None, 3, 3, 3]
    assert [p.aug_views for p in plans] == [0, 4, 4, 4, 4]
    assert "plain features" in plans[0].why and "too small for fine-tuning" in plans[1].why
    epochs = [p.fine_tune_epochs for p in plans[2:]]
    assert MIN_FT_EPOCHS <= epochs[0] < epochs[1] <= epochs[2] == MAX_FT_EPOCHS
    for p in plans:
        assert p.estimate_s <= p.budget_s, p
        assert abs(sum(p.stages.values()) - p.estimate_s) < 1e-6


def test_warm_caches_leave_more_time_for_epochs() -> None:
    warm = Work(n_train=2936, n_val=367, n_test=367, missing_plain=0, missing_aug={0: 0, 4: 0},
                missing_act={0: 0, 4: 0}, converted=True, converted_bottom=True)
    cold, hot = plan(240, COSTS, COLD, 4), plan(240, COSTS, warm, 4)
    assert (hot.fine_tune_epochs or 0) > (cold.fine_tune_epochs or 0)


def test_a_budget_nothing_fits_names_the_minimum() -> None:
    with pytest.raises(ConfigError, match=r"--time-budget 5s is too small .* needs about \d+s here; give at least"):
        plan(5, COSTS, COLD, 4)


def test_cli_budget_errors_are_one_line(data3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, needle in ((["--time-budget", "soon"], "--time-budget takes a duration"),
                         (["--time-budget", "10m", "--aug-views", "2"], "--time-budget plans --aug-views itself"),
                         (["--time-budget", "1s"], "--time-budget 1s is too small")):
        assert main(["train", str(data3), "--model", MODEL, "--out", str(tmp_path / "r"), *args]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        assert needle in err.strip().splitlines()[-1], err  # the converter's own warnings may come before
        assert not (tmp_path / "r").exists(), args  # refused before any work: no run folder left behind


def test_budget_plans_fine_tuning_and_records_the_recipe(data3: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(data3), "--model", MODEL, "--out", str(tmp_path / "r"), "--time-budget", "10m"]) == 0
    printed = capsys.readouterr().out
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    r = man["recipe"]
    assert r["fine_tune"] == 3 and r["aug_views"] == 4 and MIN_FT_EPOCHS <= r["fine_tune_epochs"] <= MAX_FT_EPOCHS
    assert metrics["fine_tune"]["epochs"] == r["fine_tune_epochs"]
    assert r["budget_s"] == 600 and r["estimate_s"] <= 600 and man["timings_s"]["total"] < 600
    assert {"probe", "features", "fine-tune"} <= set(r["stages"])
    assert "time budget 10m:" in printed and "recipe    4 augmented views" in printed
    # Without the flag the manifest says the recipe is the defaults.
    assert main(["train", str(data3), "--model", MODEL, "--out", str(tmp_path / "d")]) == 0
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["recipe"]["why"].startswith("defaults")
    # ... also when an option names its default value (the demo passes --epochs 30); another value is the user's.
    for epochs, why in (("30", "defaults"), ("5", "as given")):
        out = tmp_path / f"e{epochs}"
        assert main(["train", str(data3), "--model", MODEL, "--out", str(out), "--epochs", epochs]) == 0
        assert json.loads((out / "manifest.json").read_text())["recipe"]["why"].startswith(why)
