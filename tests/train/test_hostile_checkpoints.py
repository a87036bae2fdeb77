"""Resume checkpoints with a valid digest but hostile fields: each is a CheckpointError
naming the field, checked before any part of the run is changed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from convscope import nn, optim
from convscope.errors import CheckpointError
from convscope.io import load_checkpoint, save_checkpoint
from convscope.train import EarlyStopping, ModelCheckpoint, fit, load_training_checkpoint

from ._helpers import assert_same_weights, tiny_cnn, toy_images

X, Y = toy_images(24, seed=0)


def _run(model, epochs, **kwargs):
    opt = optim.Adam(model.named_parameters(), lr=0.01)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    return fit(model, nn.CrossEntropyLoss(), opt, (X, Y), (X[:8], Y[:8]), epochs=epochs, batch_size=8,
               seed=3, scheduler=sched, progress=False, **kwargs)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.npz"
    _run(tiny_cnn(seed=0), 2, callbacks=[ModelCheckpoint(path), EarlyStopping("val_loss", patience=5)])
    return load_checkpoint(path)


def _set(header, dotted, value):
    *parents, last = dotted.split(".")
    target = header
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


HOSTILE = [
    ("epoch", "abc", "['epoch'] must be an int >= 0"),
    ("epoch", None, "['epoch'] must be an int >= 0"),
    ("epoch", -5, "['epoch'] must be an int >= 0"),
    ("epoch", 2.0, "['epoch'] must be an int >= 0"),
    ("epoch", 1, "says 1 epochs were completed but its history holds 2"),
    ("optimizer", 5, "['optimizer'] must be an object"),
    ("optimizer.param_names", 5, "['param_names'] must be a list"),
    ("optimizer.counters", {"0.weight": {"step": "x"}}, "['step'] must be an int >= 0"),
    ("seed", "x", "['seed'] must be null or an int >= 0"),
    ("spec", [1], "['spec'] must be null or an object"),
    ("scheduler", "x", "['scheduler'] must be null or an object"),
    ("scheduler.last_epoch", -1, "['last_epoch'] must be an int >= 0"),
    ("loader", [], "['loader'] must be an object"),
    ("loader.batch_size", 0, "['batch_size'] must be an int >= 1"),
    ("loader.rng", "garbage", "['rng'] must be null or an object"),
    ("loader.epoch_rng.state.state", -1, "['state'] must be an int from 0"),
    ("generators", {"5": "garbage"}, "['generators']['5'] must be an object"),
    ("generators.5.state.inc", "x", "['inc'] must be an int from 0"),
    ("generators.5.has_uint32", 7, "['has_uint32'] must be an int from 0 to 1"),
    ("history", "x", "['history'] must be an object"),
    ("history.epochs", [1, 2], "['epochs'][0] must be an object"),
    ("callbacks", "x", "['callbacks'] must be a list"),
    ("callbacks.0", {"type": 3, "state": {}}, "['type'] must be a str"),
    ("callbacks.1.state", {"wait": "x"}, "['wait'] must be an int >= 0"),
    ("callbacks.1.state.best", "x", "['best'] must be null or a number"),
]


@pytest.mark.parametrize("field, value, words", HOSTILE, ids=[f"{f}={v!r}" for f, v, _ in HOSTILE])
def test_a_hostile_field_is_a_checkpoint_error_naming_it(tmp_path, checkpoint, field, value, words):
    arrays, header = checkpoint
    header = copy.deepcopy(header)
    assert "5" in header["generators"], sorted(header["generators"])  # the Dropout layer
    _set(header, field, value)
    path = save_checkpoint(tmp_path / "hostile.npz", arrays, header)  # a valid digest
    with pytest.raises(CheckpointError) as info:
        load_training_checkpoint(path)
    assert words in str(info.value), str(info.value)
    model = tiny_cnn(seed=1)
    before = model.state_dict()
    with pytest.raises(CheckpointError):
        _run(model, 3, resume=path)
    for name, array in model.state_dict().items():
        assert np.array_equal(array, before[name]), name


def test_a_pcg64_state_with_unknown_entries_is_refused(tmp_path, checkpoint):
    arrays, header = copy.deepcopy(checkpoint)
    header["generators"]["5"] = {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1},
                                 "has_uint32": 0, "uinteger": 0, "extra": 1}
    path = save_checkpoint(tmp_path / "gen.npz", arrays, header)
    with pytest.raises(CheckpointError, match="unexpected entry 'extra'"):
        load_training_checkpoint(path)


def test_a_generator_state_numpy_refuses_is_a_checkpoint_error(tmp_path):
    def model():
        mt = np.random.Generator(np.random.MT19937(0))  # a state the schema checks loosely
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5, rng=mt), nn.Linear(36, 3, rng=0))

    path = tmp_path / "mt.npz"
    fit(model(), nn.CrossEntropyLoss(), optim.SGD(model().named_parameters(), lr=0.1), (X, Y), epochs=1,
        batch_size=8, progress=False, callbacks=[ModelCheckpoint(path)])
    arrays, header = load_checkpoint(path)
    header["generators"]["1"]["state"]["key"] = [1, 2, 3]  # MT19937 needs 624 words
    save_checkpoint(path, arrays, header)
    fresh = model()
    with pytest.raises(CheckpointError, match="generator state of module '1' is malformed"):
        fit(fresh, nn.CrossEntropyLoss(), optim.SGD(fresh.named_parameters(), lr=0.1), (X, Y), epochs=2,
            batch_size=8, progress=False, resume=path)


def test_the_untouched_checkpoint_still_resumes(tmp_path, checkpoint):
    arrays, header = checkpoint
    path = save_checkpoint(tmp_path / "same.npz", arrays, header)
    resumed, straight = tiny_cnn(seed=1), tiny_cnn(seed=0)
    _run(resumed, 3, resume=path)
    _run(straight, 3)
    assert_same_weights(resumed, straight)


def test_a_loader_generator_state_numpy_refuses_is_a_config_error():
    from convscope.data import DataLoader
    from convscope.errors import ConfigError

    loader = DataLoader((X, Y), 8, rng=np.random.Generator(np.random.MT19937(0)))
    state = copy.deepcopy(loader.state)
    state["epoch_rng"]["state"]["key"] = [1, 2, 3]
    before = loader.rng.bit_generator.state
    with pytest.raises(ConfigError, match="malformed generator state"):
        loader.load_state(state)
    assert loader.rng.bit_generator.state["state"]["pos"] == before["state"]["pos"]
