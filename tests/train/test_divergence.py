"""Training that runs but goes nowhere is reported: a TrainingWarning naming the likely
cause (the learning rate) and the layer the first step changed most."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from convscope import nn, optim
from convscope.errors import ConvscopeWarning, TrainingWarning
from convscope.train import fit
from convscope.train.diagnose import progress_warning, update_ratios

RNG = np.random.default_rng(0)
X = RNG.normal(0.0, 1.0, size=(128, 16)).astype(np.float32)
Y = (X[:, :4].sum(axis=1) > 0).astype(np.int64) + 2 * (X[:, 4:8].sum(axis=1) > 0)


def _fit(opt_class, lr, epochs=2, val=None, model=None):
    model = model or nn.Sequential(nn.Linear(16, 4, rng=0))
    return fit(model, nn.CrossEntropyLoss(), opt_class(model.named_parameters(), lr=lr), (X, Y), val,
               epochs=epochs, batch_size=16, seed=0, progress=False)


@pytest.mark.parametrize("opt_class", [optim.SGD, optim.Adam])
def test_a_diverging_run_warns_naming_the_learning_rate_and_the_layer(opt_class):
    with pytest.warns(TrainingWarning) as caught:
        history = _fit(opt_class, 1e10, epochs=3)
    messages = [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]
    assert len(messages) == 1, messages  # once per fit, not once per epoch
    text = messages[0]
    assert "training has diverged at epoch 1" in text
    assert "learning rate too large" in text and "lr=10000000000.0" in text
    assert "of layer '0' (Linear(in_features=16, out_features=4))" in text
    assert "|update| / |weight|" in text
    assert history.info["warnings"] == messages
    assert history.records[0]["train_loss"] > 1e6  # finite, far above the start: no NaN check fires
    assert issubclass(TrainingWarning, ConvscopeWarning) and issubclass(TrainingWarning, RuntimeWarning)


@pytest.mark.parametrize("opt_class, lr", [(optim.SGD, 0.5), (optim.Adam, 0.01), (optim.SGD, 1e-6)])
def test_healthy_and_slow_runs_do_not_warn(opt_class, lr):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        history = _fit(opt_class, lr, epochs=3)
    assert "warnings" not in history.info


def test_a_nan_validation_loss_is_reported():
    xv = X[:16].copy()
    xv[3, 2] = np.nan
    with pytest.warns(TrainingWarning, match="epoch 1: the validation loss is nan although the training loss"):
        history = _fit(optim.SGD, 0.1, epochs=2, val=(xv, Y[:16]))
    assert np.isnan(history.records[0]["val_loss"])
    assert len(history.info["warnings"]) == 1


def test_progress_warning_names_the_largest_update_ratio_and_stalls():
    owners = {"0.weight": ("0", nn.Linear(2, 2, rng=0)), "2.weight": ("2", nn.ReLU())}
    ratios = {"0.weight": 1e-3, "2.weight": 5e4}
    stalled = progress_warning({"epoch": 2, "train_loss": 4.0, "train_accuracy": 0.1}, 2.3, 10, ratios,
                               owners, 0.5)
    assert stalled.startswith("training has stalled at epoch 2")
    assert "accuracy 0.100 is at chance (1/10)" in stalled
    assert "parameter '2.weight' of layer '2' (ReLU()) by 5e+04 times its size" in stalled
    # loss far above the start without chance accuracy, or close to the start at chance: no warning
    assert progress_warning({"epoch": 1, "train_loss": 4.0, "train_accuracy": 0.6}, 2.3, 10, ratios, owners,
                            0.5) is None
    assert progress_warning({"epoch": 1, "train_loss": 2.3, "train_accuracy": 0.1}, 2.3, 10, ratios, owners,
                            0.5) is None
    assert progress_warning({"epoch": 1, "train_loss": 30.0}, 2.3, None, {}, {}, 0.5).startswith(
        "training has diverged")


def test_update_ratios_are_relative_to_the_weights():
    class P:
        def __init__(self, data):
            self.data = data

    before = [np.ones(4), np.zeros(2)]
    after = [("a", P(np.ones(4) * 1.5)), ("b", P(np.ones(2)))]
    ratios = update_ratios(after, before)
    assert ratios["a"] == pytest.approx(0.5) and ratios["b"] == float("inf")

