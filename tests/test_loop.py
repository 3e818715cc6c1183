"""The one fit loop: keep-best, early stopping, baseline epoch, callbacks and the LR schedule."""

from __future__ import annotations

import pytest
import torch

from edgeclf.training.loop import EarlyStopping, fit, warmup_cosine


def _scripted(scores: list[float | None]):
    """A real nn.Linear whose weight records the epoch it was trained in; validation follows `scores`."""
    model = torch.nn.Linear(1, 1, bias=False)
    state = {"epoch": 0}

    def train_epoch(epoch: int) -> list[float]:
        state["epoch"] = epoch
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return [2.0 * epoch, 1.0, 4.0]

    def val_score():
        s = scores[state["epoch"]]
        return None if s is None else (s, 1.0 - s)

    return model, train_epoch, val_score


def test_best_epoch_weights_come_back_and_patience_stops() -> None:
    model, train_epoch, val_score = _scripted([0.0, 0.5, 0.9, 0.7, 0.6, 0.8, 0.95])
    seen: list[int] = []
    history, best = fit(model, 6, train_epoch, val_score, lambda: 0.1,
                        [lambda row, _: seen.append(row["epoch"]), EarlyStopping(2)])
    assert seen == [1, 2, 3, 4]  # epochs 3 and 4 did not beat epoch 2: stopped before 5 and 6
    assert best.epoch == 2 and float(model.weight) == 2.0 and best.accuracy == 0.9
    assert history.rows[0] == {"epoch": 1, "train_loss": 0.5, "train_acc": 0.25, "lr": 0.1, "val_acc": 0.5,
                               "val_loss": 0.5}
    assert not model.training


def test_baseline_epoch_is_kept_when_nothing_beats_it() -> None:
    model, train_epoch, val_score = _scripted([0.9, 0.5, 0.8])
    with torch.no_grad():
        model.weight.fill_(-1.0)
    history, best = fit(model, 2, train_epoch, val_score, lambda: 0.1, baseline=True)
    assert [r["epoch"] for r in history.rows] == [0, 1, 2] and best.epoch == 0 and float(model.weight) == -1.0


def test_without_validation_the_last_epoch_counts() -> None:
    model, train_epoch, val_score = _scripted([None] * 4)
    history, best = fit(model, 3, train_epoch, val_score, lambda: 0.1, [EarlyStopping(1)])
    assert len(history.rows) == 3 and best.epoch == 3 and float(model.weight) == 3.0


def test_warmup_cosine() -> None:
    f = warmup_cosine(100, 10)
    assert [f(0), f(9)] == [pytest.approx(0.1), pytest.approx(1.0)]
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    g = warmup_cosine(100, 0)
    assert g(0) == 1.0 and g(50) == pytest.approx(0.5)


def test_class_weights_scale_each_samples_whole_loss() -> None:
    """Keras' class_weight: w[y] times the sample's smoothed loss; torch's weighted smoothing term is not that."""
    from edgeclf.training.loop import WeightedCrossEntropy

    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 0, 1, 2])
    w = torch.tensor([0.2, 1.4, 1.4])
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
    got = WeightedCrossEntropy(w, 0.1)(logits, y)
    assert torch.allclose(got, (w[y] * per).sum() / w[y].sum())
    assert torch.allclose(WeightedCrossEntropy(None, 0.1)(logits, y), per.mean())
    assert torch.allclose(WeightedCrossEntropy(w, 0.0)(logits, y), torch.nn.CrossEntropyLoss(weight=w)(logits, y))


def test_a_rare_class_does_not_take_over_the_head() -> None:
    """182 photos of one class and 1 of another (auto class weights, label smoothing): the head once answered the 1."""
    import numpy as np

    from edgeclf.training.head import HeadConfig, predict_probs, train_head

    rng = np.random.default_rng(0)
    centre = np.zeros((2, 32), np.float32)
    centre[1, :4] = 3.0

    def blob(c: int, n: int) -> np.ndarray:
        return (centre[c] + rng.normal(0, 1, (n, 32))).astype(np.float32)

    x, y = np.concatenate([blob(0, 182), blob(1, 1)]), np.array([0] * 182 + [1])
    head = train_head(x, y, None, None, 2, HeadConfig(epochs=15, hidden=512, dropout=0.5)).head
    fresh = blob(0, 200)
    assert (predict_probs(head, fresh).argmax(1) == 0).mean() > 0.95


def test_feature_mixup_trains_on_blended_pairs() -> None:
    """HeadConfig.mixup (bench/mixup.py's scout): the head still separates the classes, with softer scores."""
    import numpy as np

    from edgeclf.training.head import HeadConfig, predict_probs, train_head

    rng = np.random.default_rng(1)
    centre = np.zeros((2, 16), np.float32)
    centre[1, :4] = 2.0
    x = np.concatenate([centre[c] + rng.normal(0, 1, (100, 16)) for c in (0, 1)]).astype(np.float32)
    y = np.array([0] * 100 + [1] * 100)
    fresh = np.concatenate([centre[c] + rng.normal(0, 1, (100, 16)) for c in (0, 1)]).astype(np.float32)
    confidence = {}
    for alpha in (0.0, 1.0):
        cfg = HeadConfig(epochs=20, lr=1e-2, label_smoothing=0.0, dropout=0.0, mixup=alpha)
        p = predict_probs(train_head(x, y, None, None, 2, cfg).head, fresh)
        assert (p.argmax(1) == y).mean() > 0.9
        confidence[alpha] = p.max(1).mean()
    assert confidence[1.0] < confidence[0.0] - 0.02


def test_a_diverging_head_is_one_line_naming_the_learning_rate() -> None:
    """lr 1e9 turns the head's weights NaN: training stops there instead of crashing later in calibration."""
    import numpy as np

    from edgeclf.errors import ConfigError
    from edgeclf.training.head import HeadConfig, train_head

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 16)).astype(np.float32), rng.integers(0, 3, 96)
    with pytest.raises(ConfigError, match=r"^training diverged: the loss became nan in epoch \d+ of 5; "
                                          r"lower --learning-rate \(got 1e\+09\)$"):
        train_head(x, y, x[:24], y[:24], 3, HeadConfig(epochs=5, lr=1e9, hidden=32))
    assert train_head(x, y, x[:24], y[:24], 3, HeadConfig(epochs=5, hidden=32)).best_epoch >= 1
