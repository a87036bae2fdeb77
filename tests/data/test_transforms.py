"""Batch transforms: values, shapes, determinism, flip correctness, a per-image loop oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomShift
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError


def _batch(n=6, c=3, h=5, w=7, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(dtype)


def test_normalize_per_channel():
    x = _batch()
    out = Normalize([0.1, 0.2, 0.3], [1.0, 2.0, 4.0])(x)
    for c, (m, s) in enumerate([(0.1, 1.0), (0.2, 2.0), (0.3, 4.0)]):
        np.testing.assert_allclose(out[:, c], (x[:, c] - np.float32(m)) / np.float32(s), rtol=1e-6)
    assert out.dtype == np.float32
    assert Normalize(0.5, 0.5)(x.astype(np.float64)).dtype == np.float64


def test_normalize_errors():
    with pytest.raises(ConfigError, match="std positive"):
        Normalize([0.0], [0.0])
    with pytest.raises(ConfigError, match="same count"):
        Normalize([0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ShapeError, match="3 channels"):
        Normalize([0.0, 0.0], [1.0, 1.0])(_batch())
    with pytest.raises(DTypeError, match="astype"):
        Normalize(0.0, 1.0)(np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ShapeError, match=r"x\[None\]"):
        Normalize(0.0, 1.0)(np.zeros((1, 2, 2), np.float32))


def _crop_oracle(x, padding, size, top, left):
    """Per-image loop: pad with zeros, slice the window."""
    oh, ow = size
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return np.stack([xp[i, :, t : t + oh, l : l + ow] for i, (t, l) in enumerate(zip(top, left))])


@settings(max_examples=30)
@given(
    n=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6), padding=st.integers(0, 3),
    shrink=st.tuples(st.integers(0, 2), st.integers(0, 2)), seed=st.integers(0, 1000),
)
def test_random_crop_matches_per_image_loop(n, h, w, padding, shrink, seed):
    x = _batch(n, 2, h, w, seed=seed)
    size = (max(1, h - shrink[0]), max(1, w - shrink[1]))
    out = RandomCrop(size, padding)(x, np.random.default_rng(seed))
    # The same draws, in the documented order: all row offsets, then all column offsets.
    gen = np.random.default_rng(seed)
    top = gen.integers(0, h + 2 * padding - size[0] + 1, size=n)
    left = gen.integers(0, w + 2 * padding - size[1] + 1, size=n)
    np.testing.assert_array_equal(out, _crop_oracle(x, padding, size, top, left))
    assert out.shape == (n, 2) + size and out.dtype == x.dtype


def test_random_shift_moves_content_with_zero_fill_and_is_seeded():
    x = np.zeros((200, 1, 5, 5), np.float32)
    x[:, 0, 2, 2] = 1.0  # one bright pixel in the centre
    out = RandomShift(2, rng=0)(x)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out.sum(axis=(1, 2, 3)), 1.0)  # a shift of <= 2 keeps it inside
    where = np.argwhere(out[:, 0] == 1.0)[:, 1:]
    offsets = {tuple(int(v) for v in p) for p in where - 2}
    assert offsets == {(i, j) for i in range(-2, 3) for j in range(-2, 3)}  # all 25 shifts occur
    np.testing.assert_array_equal(RandomShift(2, rng=0)(x), out)
    assert not np.array_equal(RandomShift(2, rng=1)(x), out)


def test_random_crop_errors():
    with pytest.raises(ConfigError, match="larger than the padded input"):
        RandomCrop(8, padding=1)(_batch(h=5, w=5))
    with pytest.raises(ConfigError, match="padding"):
        RandomCrop(padding=-1)
    with pytest.raises(ConfigError, match="size"):
        RandomCrop((3, 0))
    with pytest.raises(ArgumentTypeError, match="Generator"):
        RandomCrop(padding=1, rng="seed")


def test_flip_correctness_and_probability():
    x = _batch(n=400)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    out = RandomHorizontalFlip(0.5)(x, np.random.default_rng(3))
    flipped = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    kept = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(flipped ^ kept)  # every image is exactly one of the two
    expected = np.random.default_rng(3).random(400) < 0.5
    np.testing.assert_array_equal(flipped, expected)
    assert 150 < flipped.sum() < 250
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        RandomHorizontalFlip(1.5)


def test_inputs_are_never_modified_and_outputs_are_new():
    x = _batch()
    before = x.copy()
    for t in (Normalize(0.5, 0.2), RandomCrop(padding=2), RandomShift(1), RandomHorizontalFlip(1.0)):
        out = t(x, np.random.default_rng(0))
        np.testing.assert_array_equal(x, before)
        assert not np.shares_memory(out, x)


def test_compose_threads_one_generator_and_is_deterministic():
    x = _batch(n=32)
    t = Compose([RandomCrop(padding=2), RandomHorizontalFlip(0.5), Normalize([0.5] * 3, [0.25] * 3)])
    a = t(x, np.random.default_rng(11))
    b = t(x, np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(12)))
    gen = np.random.default_rng(11)
    manual = Normalize([0.5] * 3, [0.25] * 3)(RandomHorizontalFlip(0.5)(RandomCrop(padding=2)(x, gen), gen))
    np.testing.assert_array_equal(a, manual)
    # Without a call-time generator each transform uses its own seeded one.
    own = Compose([RandomCrop(padding=2, rng=5)])
    np.testing.assert_array_equal(own(x), RandomCrop(padding=2, rng=5)(x))
    with pytest.raises(ArgumentTypeError, match="callable"):
        Compose([1])
    assert "RandomCrop" in repr(t) and "Normalize" in repr(t)
