"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, NumericalError
from convscope.optim import clip_grad_norm_
from convscope.testing import assert_close

from ._helpers import SHAPES, FakeParam

torch = pytest.importorskip("torch")


def _twins(dtype, scale, seed=0):
    rng = np.random.default_rng(seed)
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    ours = []
    for g in grads:
        p = FakeParam(np.zeros(g.shape, dtype))
        p.grad = g.copy()
        ours.append(p)
    theirs = []
    for g in grads:
        q = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        q.grad = torch.from_numpy(g.copy())
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm, scale", [(1.0, 1.0), (100.0, 1.0), (0.5, 1e-3), (0.0, 1.0)])
def test_matches_torch(dtype, norm_type, max_norm, scale):
    ours, theirs = _twins(dtype, scale)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert_close(np.array(total), expected.numpy().astype(np.float64), dtype, context="total norm")
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert p.grad.dtype == dtype
        assert_close(p.grad, q.grad.numpy(), dtype, context=f"grad {i} norm_type={norm_type}")


def test_clipped_norm_is_max_norm_and_direction_kept():
    ours, _ = _twins(np.float64, 10.0)
    before = [p.grad.copy() for p in ours]
    total = clip_grad_norm_([(f"p{i}", p) for i, p in enumerate(ours)], 2.0)  # named pairs work too
    after = math.sqrt(sum(float(np.sum(p.grad**2)) for p in ours))
    assert after == pytest.approx(2.0, rel=1e-6)
    for b, p in zip(before, ours):
        np.testing.assert_allclose(p.grad * total / 2.0, b, rtol=1e-5)


def test_single_parameter_none_grad_and_empty():
    p = FakeParam(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    assert clip_grad_norm_(p, 10.0) == 5.0
    q = FakeParam(np.zeros(2))
    q.grad = None
    assert clip_grad_norm_([q], 1.0) == 0.0
    assert clip_grad_norm_([], 1.0) == 0.0


def test_nonfinite_norm():
    p = FakeParam(np.zeros(2))
    p.grad = np.array([np.nan, 1.0])
    with pytest.raises(NumericalError, match="NaN or Inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert np.isnan(clip_grad_norm_([p], 1.0))  # PyTorch's default: no error, NaN gradients
    assert np.isnan(p.grad).all()


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(max_norm=-1.0), ConfigError, "max_norm"),
    (dict(max_norm="1"), ArgumentTypeError, "max_norm"),
    (dict(max_norm=1.0, norm_type=0), ConfigError, "norm_type"),
    (dict(max_norm=1.0, error_if_nonfinite="yes"), ArgumentTypeError, "error_if_nonfinite"),
])
def test_argument_errors(kwargs, error, word):
    p = FakeParam(np.zeros(2))
    with pytest.raises(error, match=word):
        clip_grad_norm_([p], **kwargs)


def test_bad_params():
    with pytest.raises(ArgumentTypeError, match="entry 0"):
        clip_grad_norm_([np.ones(2)], 1.0)
    with pytest.raises(ArgumentTypeError, match="int"):
        clip_grad_norm_(3, 1.0)
