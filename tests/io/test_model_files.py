"""convscope.save / convscope.load: a model comes back with the same architecture and outputs."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.errors import ArgumentTypeError, CheckpointError
from convscope.io import MODEL_FORMAT, load_checkpoint, save_checkpoint


def small_cnn(dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0, dtype=dtype),
        nn.BatchNorm2d(4, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding="same", groups=2, rng=1, dtype=dtype),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10, rng=2, dtype=dtype),
        nn.Softmax(),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_outputs_and_state(tmp_path, dtype):
    model = small_cnn(dtype)
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(dtype)
    model(x)  # train mode: moves the batch-norm running statistics away from their start
    model.eval()
    metadata = {"dataset": "digits", "history": {"loss": [1.5, 0.5]}, "test_accuracy": np.float64(0.97)}
    written = convscope.save(model, tmp_path / "model", metadata)
    assert written.name == "model.npz"

    again, info = convscope.load(written, return_metadata=True)
    assert info == {"dataset": "digits", "history": {"loss": [1.5, 0.5]}, "test_accuracy": 0.97}
    assert repr(again) == repr(model)
    assert nn.to_spec(again) == nn.to_spec(model)
    state, state_again = model.state_dict(), again.state_dict()
    assert list(state_again) == list(state)
    for key in state:
        assert state_again[key].dtype == state[key].dtype, key
        np.testing.assert_array_equal(state_again[key], state[key], err_msg=key)
    again.eval()
    y, y_again = model(x), again(x)
    assert y_again.dtype == dtype
    np.testing.assert_array_equal(y_again, y)


def test_load_without_suffix_and_plain_return(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    convscope.save(model, str(tmp_path / "tiny"))
    again = convscope.load(str(tmp_path / "tiny"))
    x = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(again(x), model(x))


def test_model_file_is_a_checkpoint_with_spec_and_version(tmp_path):
    model = nn.Sequential(nn.Conv1d(2, 3, 5, rng=0), nn.ReLU())
    path = convscope.save(model, tmp_path / "m")
    arrays, header = load_checkpoint(path, format=MODEL_FORMAT)
    assert set(arrays) == set(model.state_dict())
    assert header["spec"] == nn.to_spec(model)
    assert header["convscope_version"] == convscope.__version__ and header["metadata"] == {}


def test_load_refuses_a_training_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "resume", {"w": np.zeros(2)}, {"epoch": 1})
    with pytest.raises(CheckpointError, match="'convscope-checkpoint' file.*load_checkpoint"):
        convscope.load(path)


def test_load_refuses_a_spec_that_does_not_rebuild(tmp_path):
    path = save_checkpoint(tmp_path / "m", {}, {"spec": {"type": "NoSuchLayer"}, "metadata": {}},
                           format=MODEL_FORMAT)
    with pytest.raises(CheckpointError, match="could not be rebuilt.*NoSuchLayer"):
        convscope.load(path)


def test_load_refuses_weights_that_do_not_fit(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    state = model.state_dict()
    state["0.weight"] = np.zeros((2, 4), dtype=np.float32)
    path = save_checkpoint(tmp_path / "m", state, {"spec": nn.to_spec(model), "metadata": {}},
                           format=MODEL_FORMAT)
    with pytest.raises(CheckpointError, match="do not fit the stored architecture"):
        convscope.load(path)
    path = save_checkpoint(tmp_path / "n", {}, {"spec": nn.to_spec(model)}, format=MODEL_FORMAT)
    with pytest.raises(CheckpointError, match="lacks"):
        convscope.load(path)


def test_save_refuses_non_models_and_bad_metadata(tmp_path):
    with pytest.raises(ArgumentTypeError, match="Module"):
        convscope.save({"w": np.zeros(2)}, tmp_path / "m")
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ArgumentTypeError, match="metadata"):
        convscope.save(model, tmp_path / "m", metadata=[1, 2])
    with pytest.raises(ArgumentTypeError, match=r"metadata\['w'\]"):
        convscope.save(model, tmp_path / "m", metadata={"w": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_corrupted_model_file_is_refused(tmp_path):
    path = convscope.save(small_cnn(), tmp_path / "m")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="not a valid convscope file"):
        convscope.load(path)
