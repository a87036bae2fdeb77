"""Callbacks: hook order, early stopping, checkpoint every epoch, best-only checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn, optim
from convscope.errors import ArgumentTypeError, ConfigError
from convscope.train import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    fit,
    load_training_checkpoint,
)

from ._helpers import tiny_cnn, toy_images

X, Y = toy_images(24, seed=0)


def _fit(model, epochs, callbacks, lr=0.1, val=True, **kwargs):
    opt = optim.SGD(model.named_parameters(), lr=lr)
    return fit(model, nn.CrossEntropyLoss(), opt, (X, Y), (X, Y) if val else None, epochs=epochs,
               batch_size=8, seed=0, callbacks=callbacks, progress=False, **kwargs)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, run):
        self.events.append(("train_begin", run.epoch))

    def on_epoch_begin(self, run, epoch):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, run, batch, logs):
        self.events.append(("batch_end", batch, logs["size"], "correct" in logs))

    def on_epoch_end(self, run, epoch, logs):
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, run):
        self.events.append(("train_end", run.epoch))


def test_hooks_run_in_order_with_their_arguments():
    rec = Recorder()
    _fit(tiny_cnn(), 2, [rec], val=False)
    keys = ["epoch", "images_per_second", "lr", "seconds", "train_accuracy", "train_loss", "train_seconds"]
    batches = [("batch_end", 1, 8, True), ("batch_end", 2, 8, True), ("batch_end", 3, 8, True)]
    assert rec.events == (
        [("train_begin", 0), ("epoch_begin", 1), *batches, ("epoch_end", 1, keys)]
        + [("epoch_begin", 2), *batches, ("epoch_end", 2, keys), ("train_end", 2)]
    )


def test_a_callback_can_stop_training_after_the_current_epoch():
    def stop(run, batch, logs):
        run.stop_training, run.stop_reason = True, "enough"

    history = _fit(tiny_cnn(), 5, [LambdaCallback(on_batch_end=stop)], val=False)
    assert len(history) == 1
    assert history.info == {"stopped_early": True, "stop_reason": "enough"}


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(ConfigError, match="unknown hooks"):
        LambdaCallback(on_step=print)
    with pytest.raises(ArgumentTypeError, match="callable"):
        LambdaCallback(on_epoch_end=3)


def test_early_stopping_stops_when_nothing_improves_and_says_why():
    es = EarlyStopping("val_loss", patience=2)
    # lr 0 and no batch norm: the model, hence the validation loss, never changes
    history = _fit(tiny_cnn(batch_norm=False), 10, [es], lr=0.0)
    assert len(history) == 3  # best at epoch 1, then 2 epochs without improvement
    assert (es.best_epoch, es.wait, es.stopped_epoch) == (1, 2, 3)
    assert history.info["stopped_early"] is True
    assert "val_loss has not improved" in history.info["stop_reason"]
    assert "patience 2" in history.info["stop_reason"]


def test_early_stopping_restores_the_best_weights():
    es = EarlyStopping("val_accuracy", patience=1, restore_best_weights=True, min_delta=0.5)
    model = tiny_cnn()
    seen = []
    _fit(model, 10, [es, LambdaCallback(on_epoch_end=lambda run, e, logs: seen.append(run.model.state_dict()))])
    assert es.mode == "max" and es.best_epoch == 1  # nothing beats epoch 1 by 0.5
    for key, value in seen[0].items():
        np.testing.assert_array_equal(model.state_dict()[key], value)


def test_early_stopping_names_the_missing_metric():
    with pytest.raises(ConfigError, match="Pass val= to fit"):
        _fit(tiny_cnn(), 2, [EarlyStopping("val_loss")], val=False)
    with pytest.raises(ConfigError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ConfigError, match="mode"):
        EarlyStopping(mode="best")


def test_model_checkpoint_writes_every_epoch_and_the_last(tmp_path):
    cb = ModelCheckpoint(tmp_path / "ep{epoch:02d}.npz", every=2)
    _fit(tiny_cnn(), 5, [cb], val=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep02.npz", "ep04.npz", "ep05.npz"]
    assert cb.last_path == tmp_path / "ep05.npz"
    assert load_training_checkpoint(cb.last_path).epoch == 5


def test_model_checkpoint_best_only(tmp_path):
    cb = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True, monitor="val_loss")
    history = _fit(tiny_cnn(), 4, [cb])
    best = history.best("val_loss")
    assert cb.best == best["val_loss"]
    assert load_training_checkpoint(tmp_path / "best.npz").epoch == best["epoch"]


def test_model_checkpoint_validates_its_arguments():
    with pytest.raises(ConfigError, match="every"):
        ModelCheckpoint("x.npz", every=0)
    with pytest.raises(ConfigError, match=r"\{epoch\}"):
        ModelCheckpoint("x-{step}.npz")
