"""Shift consistency (Zhang 2019) and the per-shift probability curve."""

import numpy as np
import pytest

from convscope import functional as F
from convscope import nn
from convscope.errors import ConfigError, DataError, ShapeError
from convscope.explain import per_shift_probability, shift_consistency, shift_images


def test_crop_shift_is_a_crop_of_the_zero_padded_canvas():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 7, 6))
    m = 3
    shifts = rng.integers(-m, m + 1, size=(5, 2))
    canvas = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)))
    expected = np.stack([canvas[i, :, m - dy:m - dy + 7, m - dx:m - dx + 6]
                         for i, (dy, dx) in enumerate(shifts)])
    np.testing.assert_array_equal(shift_images(x, shifts), expected)
    circular = shift_images(x, shifts, "circular")
    for i, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(circular[i], np.roll(x[i], (dy, dx), axis=(1, 2)))
    assert not shift_images(x, np.full((5, 2), 7)).any()          # shifted out entirely


def _softmax_model(model):
    return lambda batch: F.softmax(model(batch.astype(np.float32)), axis=1)


def test_invariant_predictor_is_fully_consistent():
    def total(x):
        return np.stack([x.sum(axis=(1, 2, 3)), -x.sum(axis=(1, 2, 3))], axis=1)

    rng = np.random.default_rng(1)
    images = rng.standard_normal((30, 1, 8, 8))
    labels = (images.sum(axis=(1, 2, 3)) < 0).astype(int)
    r = shift_consistency(total, images, labels, 4, n_pairs=3, mode="circular")
    assert r.consistency == 1.0 and r.accuracy == 1.0 and r.shifted_accuracy == 1.0
    assert "100.00% of pairs" in r.text()


def test_position_sensitive_predictor_is_not():
    # class = whether the brightest pixel is in an even column: flips under odd shifts
    def parity(x):
        return np.eye(2)[np.argmax(x.reshape(len(x), -1), axis=1) % 2]

    rng = np.random.default_rng(2)
    images = rng.random((200, 1, 1, 16))
    labels = np.argmax(images.reshape(200, -1), axis=1) % 2
    r = shift_consistency(parity, images, labels, 2, mode="circular", rng=5)
    assert r.accuracy == 1.0
    # the two shifts differ by an odd amount with probability 12/25
    assert 0.35 < r.consistency < 0.7 and r.shifted_accuracy < 0.8
    again = shift_consistency(parity, images, labels, 2, mode="circular", rng=5)
    assert again == r                                                  # seeded: repeatable


def test_with_a_model_and_zero_shift():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 3, rng=1))
    predict = _softmax_model(model)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((10, 1, 8, 8)).astype(np.float32)
    labels = predict(images).argmax(axis=1)
    r = shift_consistency(predict, images, labels, 0, batch_size=3)
    assert r.consistency == 1.0 and r.accuracy == r.shifted_accuracy == 1.0
    r = shift_consistency(predict, images, labels, 2, n_pairs=2, rng=np.random.default_rng(0))
    assert 0.0 <= r.consistency <= 1.0 and r.n_images == 10 and r.n_pairs == 2
    curve = per_shift_probability(predict, images[0], int(labels[0]), range(-2, 3))
    assert curve.shifts.tolist() == [[-2, -2], [-1, -1], [0, 0], [1, 1], [2, 2]]
    assert curve.probabilities[2] == pytest.approx(float(predict(images[:1])[0, labels[0]]))
    assert curve.predicted[2] == labels[0]
    assert "shift (0, 0)" in curve.text()
    explicit = per_shift_probability(predict, images[0], int(labels[0]), [(0, 1), (1, 0)], mode="circular")
    assert explicit.shifts.tolist() == [[0, 1], [1, 0]]


def test_errors():
    def ok(x):
        return np.full((len(x), 2), 0.5)

    images = np.zeros((4, 1, 5, 5))
    labels = np.zeros(4, dtype=int)
    with pytest.raises(ShapeError, match="channel axis"):
        shift_consistency(ok, np.zeros((4, 5)), labels, 1)
    with pytest.raises(ShapeError, match="labels"):
        shift_consistency(ok, images, np.zeros(3, dtype=int), 1)
    with pytest.raises(ConfigError, match="mode"):
        shift_consistency(ok, images, labels, 1, mode="reflect")
    with pytest.raises(ConfigError, match="max_shift"):
        shift_consistency(ok, images, labels, -1)
    with pytest.raises(ShapeError, match="predict_fn"):
        shift_consistency(lambda x: np.zeros(len(x)), images, labels, 1)
    with pytest.raises(DataError, match="softmax"):
        per_shift_probability(lambda x: np.full((len(x), 2), 3.0), images[0], 0, [0, 1])
    with pytest.raises(ShapeError, match="tuple of 2 ints"):
        per_shift_probability(ok, images[0], 0, [(1, 2, 3)])
