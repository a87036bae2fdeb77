"""Resume: stopping after N epochs and continuing to N+M gives the uninterrupted run, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope import nn, optim
from convscope.data import Compose, Normalize, RandomShift
from convscope.errors import CheckpointError, ConfigError
from convscope.train import (
    EarlyStopping,
    ModelCheckpoint,
    fit,
    load_training_checkpoint,
)

from ._helpers import assert_same_weights, tiny_cnn, toy_images, without_times

X, Y = toy_images(40, seed=0)
XV, YV = toy_images(16, seed=1)
TRANSFORM = Compose([RandomShift(1), Normalize(0.1, 0.5)])


def _setup(kind: str, epochs: int):
    model = tiny_cnn(seed=0)  # Dropout (generator) and BatchNorm (buffers) included
    if kind == "sgd-cosine-per-batch":
        opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        sched = optim.CosineAnnealingLR(opt, T_max=epochs * 5)
        interval = "batch"
    else:
        opt = optim.Adam(model.named_parameters(), lr=0.01, weight_decay=1e-4)
        sched = optim.StepLR(opt, step_size=2, gamma=0.5)
        interval = "epoch"
    return model, opt, sched, interval


def _fit(model, opt, sched, interval, epochs, **kwargs):
    return fit(model, nn.CrossEntropyLoss(), opt, (X, Y), (XV, YV), epochs=epochs, batch_size=8,
               seed=11, scheduler=sched, scheduler_interval=interval, transform=TRANSFORM,
               progress=False, threads=1, **kwargs)


@pytest.mark.parametrize("kind", ["sgd-cosine-per-batch", "adam-step-per-epoch"])
def test_resume_after_n_epochs_equals_the_uninterrupted_run(tmp_path, kind):
    total, stop = 5, 2
    # the uninterrupted run, writing a checkpoint every epoch
    model_a, opt_a, sched_a, interval = _setup(kind, total)
    history_a = _fit(model_a, opt_a, sched_a, interval, total,
                     callbacks=[ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ckpt-{e}.npz" for e in range(1, total + 1)]
    # a fresh process would build everything again the same way, then resume at epoch 2
    model_b, opt_b, sched_b, _ = _setup(kind, total)
    history_b = _fit(model_b, opt_b, sched_b, interval, total, resume=tmp_path / f"ckpt-{stop}.npz")
    assert_same_weights(model_a, model_b)
    assert opt_a.lr == opt_b.lr
    assert without_times(history_a.records) == without_times(history_b.records)
    assert history_b.info["resumed"] == [{"path": str(tmp_path / f"ckpt-{stop}.npz"), "epoch": stop}]
    # the optimizer's buffers match as well, so the runs would go on identically
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["counters"] == sb["counters"] and sa["arrays"].keys() == sb["arrays"].keys()
    for key in sa["arrays"]:
        np.testing.assert_array_equal(sa["arrays"][key], sb["arrays"][key])


def test_the_checkpoint_holds_every_part_of_the_run(tmp_path):
    model, opt, sched, interval = _setup("sgd-cosine-per-batch", 2)
    _fit(model, opt, sched, interval, 2, callbacks=[ModelCheckpoint(tmp_path / "c.npz", every=5)])
    ckpt = load_training_checkpoint(tmp_path / "c.npz")  # every=5 but the last epoch is written
    assert ckpt.epoch == 2 and ckpt.seed == 11
    assert set(ckpt.model_state) == set(model.state_dict())  # parameters and BN buffers
    assert "4.running_mean" not in ckpt.model_state and "1.running_mean" in ckpt.model_state
    assert ckpt.optimizer_state["optimizer"] == "SGD"
    assert any(k.endswith("/momentum_buffer") for k in ckpt.optimizer_state["arrays"])
    assert ckpt.scheduler_state["last_epoch"] == 10
    assert ckpt.loader_state["epoch"] == 2 and ckpt.loader_state["num_samples"] == 40
    assert list(ckpt.generator_states) == ["5"]  # the Dropout's generator
    assert [r["epoch"] for r in ckpt.history["epochs"]] == [1, 2]
    assert ckpt.spec == nn.to_spec(model)


def test_resume_when_already_done_trains_nothing(tmp_path):
    model, opt, sched, interval = _setup("adam-step-per-epoch", 2)
    _fit(model, opt, sched, interval, 2, callbacks=[ModelCheckpoint(tmp_path / "c.npz")])
    model_b, opt_b, sched_b, _ = _setup("adam-step-per-epoch", 2)
    history = _fit(model_b, opt_b, sched_b, interval, 2, resume=tmp_path / "c.npz")
    assert len(history) == 2
    assert_same_weights(model, model_b)


def test_early_stopping_state_survives_a_resume(tmp_path):
    es = EarlyStopping("val_loss", patience=1)
    model, opt, sched, interval = _setup("adam-step-per-epoch", 3)
    _fit(model, opt, sched, interval, 3, callbacks=[es, ModelCheckpoint(tmp_path / "c.npz")])
    es2 = EarlyStopping("val_loss", patience=1)
    model_b, opt_b, sched_b, _ = _setup("adam-step-per-epoch", 3)
    _fit(model_b, opt_b, sched_b, interval, 3, resume=tmp_path / "c.npz",
         callbacks=[es2, ModelCheckpoint(tmp_path / "d.npz")])
    assert (es2.best, es2.best_epoch, es2.wait) == (es.best, es.best_epoch, es.wait)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    model, opt, sched, interval = _setup("sgd-cosine-per-batch", 2)
    _fit(model, opt, sched, interval, 2, callbacks=[ModelCheckpoint(folder / "c.npz")])
    return folder / "c.npz"


def test_resume_refuses_fewer_epochs_than_done(checkpoint):
    model, opt, sched, interval = _setup("sgd-cosine-per-batch", 2)
    with pytest.raises(ConfigError, match="already has 2 epochs but epochs=1"):
        _fit(model, opt, sched, interval, 1, resume=checkpoint)


def test_resume_refuses_another_architecture(checkpoint):
    model = tiny_cnn(seed=0, batch_norm=False)
    opt = optim.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    sched = optim.CosineAnnealingLR(opt, T_max=10)
    before = model.state_dict()
    with pytest.raises(CheckpointError, match="another architecture"):
        _fit(model, opt, sched, "batch", 3, resume=checkpoint)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_refuses_a_missing_scheduler_and_another_optimizer(checkpoint):
    model, opt, _, _ = _setup("sgd-cosine-per-batch", 3)
    with pytest.raises(ConfigError, match="with a learning-rate scheduler but fit got none"):
        _fit(model, opt, None, "epoch", 3, resume=checkpoint)
    model, _, _, _ = _setup("sgd-cosine-per-batch", 3)
    adam = optim.Adam(model.named_parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="'SGD' optimizer"):
        _fit(model, adam, optim.CosineAnnealingLR(adam, T_max=10), "batch", 3, resume=checkpoint)


def test_resume_refuses_other_data(checkpoint):
    model, opt, sched, interval = _setup("sgd-cosine-per-batch", 3)
    with pytest.raises(ConfigError, match="num_samples: state 40, loader 32"):
        fit(model, nn.CrossEntropyLoss(), opt, (X[:32], Y[:32]), epochs=3, batch_size=8, seed=11,
            scheduler=sched, scheduler_interval=interval, resume=checkpoint, progress=False)


def test_a_model_file_is_not_a_resume_checkpoint(tmp_path):
    model, opt, sched, interval = _setup("sgd-cosine-per-batch", 2)
    path = convscope.save(model, tmp_path / "model.npz")
    with pytest.raises(CheckpointError):
        _fit(model, opt, sched, interval, 2, resume=path)
    with pytest.raises(CheckpointError):
        _fit(model, opt, sched, interval, 2, resume=tmp_path / "missing.npz")
