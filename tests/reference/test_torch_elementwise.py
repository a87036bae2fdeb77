"""Activations, linear and losses against PyTorch: forward values and every gradient.

Random shapes, scales and both float dtypes are drawn by hypothesis; array values come from a
seeded NumPy generator (fast, and hypothesis still shrinks the seed and the shape). The torch
twin gets the same arrays; we compare the output, its dtype, and the gradient of a random
upstream gradient with tolerances from ``convscope.testing``.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope.functional as F
from convscope.testing import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)
SCALES = st.sampled_from([0.1, 1.0, 3.0, 30.0])
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


def _t(a, grad=False):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(True) if grad else t


def _np(t):
    return t.detach().numpy()


def _check(ours, theirs, dtype, kind, context):
    assert ours.dtype == dtype, f"{context}: dtype {ours.dtype}, expected {np.dtype(dtype)}"
    assert_close(ours, _np(theirs), dtype=dtype, kind=kind, context=context)


# name -> (ours forward, ours backward, torch forward); "axis"/"slope" filled per example.
def _ops(axis, slope):
    return {
        "relu": (F.relu, F.relu_backward, TF.relu),
        "leaky_relu": (
            lambda x: F.leaky_relu(x, slope),
            lambda dy, x: F.leaky_relu_backward(dy, x, slope),
            lambda x: TF.leaky_relu(x, slope),
        ),
        "sigmoid": (F.sigmoid, F.sigmoid_backward, torch.sigmoid),
        "tanh": (F.tanh, F.tanh_backward, torch.tanh),
        "softmax": (
            lambda x: F.softmax(x, axis),
            lambda dy, x: F.softmax_backward(dy, x, axis),
            lambda x: TF.softmax(x, dim=axis),
        ),
        "log_softmax": (
            lambda x: F.log_softmax(x, axis),
            lambda dy, x: F.log_softmax_backward(dy, x, axis),
            lambda x: TF.log_softmax(x, dim=axis),
        ),
    }


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax"])
@settings(max_examples=50)
@given(shape=SHAPES, dtype=DTYPES, seed=SEEDS, scale=SCALES, data=st.data())
def test_activation_matches_torch(name, shape, dtype, seed, scale, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    slope = data.draw(st.sampled_from([0.01, 0.2, -0.5, 1.5]), label="slope")
    ours_f, ours_b, torch_f = _ops(axis, slope)[name]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    context = f"{name} shape={shape} dtype={np.dtype(dtype)} scale={scale} axis={axis} slope={slope}"

    xt = _t(x, grad=True)
    yt = torch_f(xt)
    yt.backward(_t(dy))
    _check(ours_f(x), yt, dtype, "forward", context + " (forward)")
    _check(ours_b(dy, x), xt.grad, dtype, "backward", context + " (dx)")


@settings(max_examples=60)
@given(
    n=st.integers(0, 6),
    fin=st.integers(1, 9),
    fout=st.integers(1, 7),
    bias=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_linear_matches_torch(n, fin, fout, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype) if bias else None
    dy = rng.standard_normal((n, fout)).astype(dtype)
    context = f"linear n={n} in={fin} out={fout} bias={bias} dtype={np.dtype(dtype)}"

    xt, wt = _t(x, True), _t(w, True)
    bt = _t(b, True) if bias else None
    yt = TF.linear(xt, wt, bt)
    yt.backward(_t(dy))
    _check(F.linear(x, w, b), yt, dtype, "forward", context)
    dx, dw, db = F.linear_backward(dy, x, w)
    _check(dx, xt.grad, dtype, "backward", context + " (dx)")
    _check(dw, wt.grad, dtype, "backward", context + " (dw)")
    if bias:
        _check(db, bt.grad, dtype, "backward", context + " (db)")
    else:
        assert_close(db, dy.sum(axis=0), dtype=dtype, kind="backward", context=context + " (db)")


@settings(max_examples=60)
@given(
    n=st.integers(1, 8),
    c=st.integers(1, 10),
    dtype=DTYPES,
    seed=SEEDS,
    scale=SCALES,
)
def test_cross_entropy_with_class_indices_matches_torch(n, c, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    t = rng.integers(0, c, size=n)
    context = f"cross_entropy indices n={n} c={c} dtype={np.dtype(dtype)} scale={scale}"

    zt = _t(z, True)
    lt = TF.cross_entropy(zt, torch.from_numpy(t))
    lt.backward()
    _check(np.asarray(F.cross_entropy(z, t)), lt, dtype, "forward", context)
    _check(F.cross_entropy_backward(z, t), zt.grad, dtype, "backward", context + " (dlogits)")


@settings(max_examples=60)
@given(
    n=st.integers(1, 8),
    c=st.integers(1, 10),
    normalised=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
    scale=SCALES,
)
def test_cross_entropy_with_probabilities_matches_torch(n, c, normalised, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    raw = rng.uniform(0.0, 1.0, size=(n, c))
    p = (raw / raw.sum(axis=1, keepdims=True) if normalised else raw).astype(dtype)
    context = f"cross_entropy probs n={n} c={c} normalised={normalised} dtype={np.dtype(dtype)}"

    zt = _t(z, True)
    lt = TF.cross_entropy(zt, _t(p))
    lt.backward()
    _check(np.asarray(F.cross_entropy(z, p)), lt, dtype, "forward", context)
    _check(F.cross_entropy_backward(z, p), zt.grad, dtype, "backward", context + " (dlogits)")


@settings(max_examples=60)
@given(shape=SHAPES, dtype=DTYPES, seed=SEEDS, scale=SCALES)
def test_squared_loss_matches_scaled_mse_loss(shape, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    y_pred = (rng.standard_normal(shape) * scale).astype(dtype)
    y = (rng.standard_normal(shape) * scale).astype(dtype)
    per_sample = int(np.prod(shape[1:]))
    context = f"squared_loss shape={shape} dtype={np.dtype(dtype)} scale={scale}"

    pt, yt = _t(y_pred, True), _t(y, True)
    # mse_loss averages over every entry; squared_loss sums each sample and averages over N.
    lt = TF.mse_loss(pt, yt) * per_sample
    lt.backward()
    _check(np.asarray(F.squared_loss(y_pred, y)), lt, dtype, "forward", context)
    grad = F.squared_loss_backward(y_pred, y)
    _check(grad, pt.grad, dtype, "backward", context + " (dy_pred)")
    _check(-grad, yt.grad, dtype, "backward", context + " (dy)")
