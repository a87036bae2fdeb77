"""DataLoader: seeded order, drop_last, len, transforms, and exact resume from its state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.data import Compose, DataLoader, Dataset, RandomCrop, RandomHorizontalFlip
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError


def _arrays(n=10):
    return np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) * np.ones((1, 1, 2, 2), np.float32), np.arange(n)


def _labels(loader):
    return [y.tolist() for _, y in loader]


def test_no_shuffle_keeps_order_and_last_batch():
    loader = DataLoader(_arrays(10), batch_size=4)
    assert len(loader) == 3
    assert _labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, _ = next(iter(loader))
    assert x.shape == (4, 1, 2, 2) and x.dtype == np.float32


@pytest.mark.parametrize("n, b, drop, expected", [(10, 4, False, 3), (10, 4, True, 2), (8, 4, True, 2),
                                                  (8, 4, False, 2), (3, 4, True, 0), (3, 4, False, 1)])
def test_len_matches_batches_yielded(n, b, drop, expected):
    loader = DataLoader(_arrays(n), batch_size=b, shuffle=True, drop_last=drop, seed=0)
    assert len(loader) == expected
    batches = list(loader)
    assert len(batches) == expected
    assert all(len(y) == b for _, y in batches) or not drop


def test_same_seed_same_order_other_seed_other_order_each_epoch_a_permutation():
    a = DataLoader(_arrays(50), batch_size=7, shuffle=True, seed=3)
    b = DataLoader(_arrays(50), batch_size=7, shuffle=True, seed=3)
    c = DataLoader(_arrays(50), batch_size=7, shuffle=True, seed=4)
    epochs_a = [_labels(a) for _ in range(3)]
    assert epochs_a == [_labels(b) for _ in range(3)]
    assert epochs_a[0] != _labels(c)
    assert epochs_a[0] != epochs_a[1]  # a new order every epoch
    for epoch in epochs_a:
        assert sorted(sum(epoch, [])) == list(range(50))
    assert a.epoch == 3


def test_rng_argument_is_used_and_advanced():
    rng = np.random.default_rng(9)
    first = _labels(DataLoader(_arrays(20), 5, shuffle=True, rng=rng))
    assert first == _labels(DataLoader(_arrays(20), 5, shuffle=True, rng=np.random.default_rng(9)))
    assert _labels(DataLoader(_arrays(20), 5, shuffle=True, rng=rng)) != first


def test_dataset_input_gives_float_batches():
    ds = Dataset(np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * 51, np.arange(6) % 2, ["a", "b"])
    x, y = next(iter(DataLoader(ds, batch_size=6)))
    np.testing.assert_allclose(x.ravel(), np.arange(6) * 0.2, rtol=1e-6)
    assert y.dtype == np.int64


def test_transform_receives_the_loader_generator():
    seen = []

    def transform(x, rng):
        seen.append(rng)
        return x + 1

    loader = DataLoader(_arrays(4), batch_size=2, seed=0, transform=transform)
    x, _ = next(iter(loader))
    assert seen[0] is loader.rng and x[0, 0, 0, 0] == 1.0


def _augmenting(seed, n=23, batch=4, shuffle=True, drop_last=False):
    rng = np.random.default_rng(100)
    x = rng.random((n, 1, 5, 5)).astype(np.float32)
    transform = Compose([RandomCrop(padding=1), RandomHorizontalFlip(0.5)])
    return DataLoader((x, np.arange(n)), batch, shuffle=shuffle, drop_last=drop_last, seed=seed, transform=transform)


def _stream(loader, epochs):
    return [(x.copy(), y.copy()) for _ in range(epochs) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2)
                                    in zip(a, b))


@pytest.mark.parametrize("shuffle", [True, False])
def test_resume_at_epoch_boundary_equals_uninterrupted(shuffle):
    full = _stream(_augmenting(7, shuffle=shuffle), 4)
    first = _augmenting(7, shuffle=shuffle)
    head = _stream(first, 2)
    state = json.loads(json.dumps(first.state))
    assert state["epoch"] == 2 and state["batch"] == 0 and state["rng"] is None
    resumed = _augmenting(12345, shuffle=shuffle)  # another seed: the state overrides it
    resumed.load_state(state)
    assert _same(head + _stream(resumed, 2), full)
    assert resumed.epoch == 4


@pytest.mark.parametrize("stop_after", [0, 1, 3, 6])
def test_resume_mid_epoch_equals_uninterrupted(stop_after):
    full = _stream(_augmenting(7), 3)
    per_epoch = len(_augmenting(7))  # 6 batches
    first = _augmenting(7)
    got = _stream(first, 1)
    it = iter(first)
    for _ in range(stop_after):
        x, y = next(it)
        got.append((x.copy(), y.copy()))
    state = json.loads(json.dumps(first.state))
    assert state["epoch"] == 1
    resumed = _augmenting(0)
    resumed.load_state(state)
    assert resumed.state == state or stop_after == per_epoch
    got += _stream(resumed, 1 if stop_after < per_epoch else 0)
    got += _stream(resumed, 1)
    assert _same(got, full)


def test_state_is_plain_json_and_version_checked():
    loader = _augmenting(1)
    list(loader)
    state = loader.state
    assert json.loads(json.dumps(state)) == state
    for key, value, words in [
        ("version", 99, "version"),
        ("num_samples", 24, "num_samples: state 24, loader 23"),
        ("batch_size", 5, "batch_size"),
        ("shuffle", False, "shuffle"),
        ("batch", 99, "0 <= batch <= 6"),
    ]:
        with pytest.raises(ConfigError, match=words):
            _augmenting(1).load_state({**state, key: value})
    with pytest.raises(ConfigError, match="lacks"):
        _augmenting(1).load_state({"epoch": 1})
    mt = DataLoader(_arrays(23), 4, shuffle=True, rng=np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(ConfigError, match="MT19937"):
        mt.load_state({**state, "batch_size": 4})
    with pytest.raises(ConfigError, match="malformed"):
        _augmenting(1).load_state({**state, "epoch_rng": {"bit_generator": "PCG64", "state": "x"}})


def test_abandoned_epoch_counts_as_done():
    loader = _augmenting(2)
    next(iter(loader))
    assert loader.epoch == 0 and loader.state["batch"] == 1
    list(loader)
    assert loader.epoch == 2


def test_other_bit_generators_round_trip_through_json():
    def make():
        return DataLoader(_arrays(9), 2, shuffle=True, rng=np.random.Generator(np.random.MT19937(5)))

    a = make()
    list(a)
    it = iter(a)
    next(it)
    state = json.loads(json.dumps(a.state))  # MT19937's key array becomes a list
    expected = [y.tolist() for _, y in it]
    b = make()
    b.load_state(state)
    assert _labels(b) == expected and len(expected) == 4


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"data": "nope", "batch_size": 2}, ArgumentTypeError, "Dataset or a pair"),
        ({"data": (np.zeros((3, 1)), np.zeros(4)), "batch_size": 2}, ShapeError, "same first axis"),
        ({"data": _arrays(3), "batch_size": 0}, ConfigError, ">= 1"),
        ({"data": _arrays(3), "batch_size": 2.0}, ArgumentTypeError, "int"),
        ({"data": _arrays(3), "batch_size": 2, "seed": 1, "rng": np.random.default_rng()}, ConfigError, "not both"),
        ({"data": _arrays(3), "batch_size": 2, "rng": 5}, ArgumentTypeError, "seed="),
        ({"data": _arrays(3), "batch_size": 2, "transform": 3}, ArgumentTypeError, "callable"),
    ],
)
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        DataLoader(**kwargs)
