"""Differential tests of convolution against PyTorch (torch.nn.functional.conv1d/2d/3d).

Random configurations drawn with hypothesis: dims 1-3, batch, channels, groups, kernel,
stride, every padding form (int, per-axis, pairs, 'valid', 'same') and mode (zeros, reflect,
replicate, circular: non-zero modes go through F.pad first, as torch.nn.ConvNd does),
dilation, bias on/off, flip, float32 and float64. Forward and all three gradients (torch
autograd with a random upstream gradient), tolerances from convscope.testing. Also: what
PyTorch rejects we reject (except 'same' with stride > 1, which we support), and the
plain-loop reference against PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
TF = torch.nn.functional

from convscope.errors import ConvscopeError  # noqa: E402
from convscope.functional import conv, conv_backward  # noqa: E402
from convscope.functional.reference import reference_conv  # noqa: E402
from convscope.shapes import same_padding  # noqa: E402
from convscope.testing import assert_close  # noqa: E402

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The twins are tiny: one torch thread avoids oversubscribing a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
MODES = ("zeros", "reflect", "replicate", "circular")
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _torch_pad_arg(pairs):
    """F.pad lists the last axis first: (before_last, after_last, before_prev, ...)."""
    out = []
    for before, after in reversed(pairs):
        out += [before, after]
    return tuple(out)


def _torch_conv(cfg, x, w, b, dy=None):
    """The torch twin of our call: y and, given dy, (dx, dw, db) by autograd."""
    ndim = cfg["ndim"]
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    weight = wt.flip(dims=tuple(range(2, 2 + ndim))) if cfg["flip"] else wt
    inp = xt
    padding = cfg["torch_padding"]
    if cfg["torch_pairs"] is not None:  # explicit padding first, as nn.ConvNd does
        mode = "constant" if cfg["padding_mode"] == "zeros" else cfg["padding_mode"]
        inp = TF.pad(xt, _torch_pad_arg(cfg["torch_pairs"]), mode=mode)
        padding = 0
    yt = TORCH_CONV[ndim](
        inp, weight, bt, stride=cfg["stride"], padding=padding, dilation=cfg["dilation"], groups=cfg["groups"]
    )
    if dy is None:
        return yt.detach().numpy()
    (yt * torch.tensor(dy)).sum().backward()
    # without a bias, db is still the gradient a bias would get: dy summed over N and space
    db = dy.sum(axis=(0, *range(2, dy.ndim))) if bt is None else bt.grad.numpy()
    return yt.detach().numpy(), (xt.grad.numpy(), wt.grad.numpy(), db)


@st.composite
def conv_configs(draw, ndims=(1, 2, 3), flip=None, strided_same=False):
    """A valid convolution configuration, its arrays and the matching torch call."""
    ndim = draw(st.sampled_from(ndims))
    small = ndim == 3
    g = draw(st.integers(1, 2 if small else 3))
    c_in = g * draw(st.integers(1, 2 if small else 3))
    c_out = g * draw(st.integers(1, 2 if small else 3))
    batch = draw(st.integers(1, 2 if small else 3))
    k = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(ndim))
    d = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(ndim))
    s = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    mode = draw(st.sampled_from(MODES))
    form = draw(st.sampled_from(["int", "axes", "pairs", "valid", "same"]))
    max_p = 2 if small else 3
    if form == "int":
        p = draw(st.integers(0, max_p))
        padding, pairs = p, ((p, p),) * ndim
    elif form == "axes":
        ps = tuple(draw(st.integers(0, max_p)) for _ in range(ndim))
        padding, pairs = ps, tuple((v, v) for v in ps)
    elif form == "pairs":
        pairs = tuple((draw(st.integers(0, max_p)), draw(st.integers(0, max_p))) for _ in range(ndim))
        padding = pairs
    else:
        padding, pairs = form, None
    if form == "same" and not strided_same:
        s = (1,) * ndim  # torch's own 'same' is stride 1 only; strided 'same' has its own test
    if strided_same:
        padding, pairs = "same", None
        s = tuple(draw(st.integers(2, 3)) for _ in range(ndim))
    n = []
    for i in range(ndim):
        span = d[i] * (k[i] - 1) + 1
        before, after = pairs[i] if pairs is not None else (0, 0)
        lower = max(1, span - before - after)
        if padding == "same":
            lower = 1
        if mode == "reflect":
            lower = max(lower, before + 1, after + 1)
        if mode == "circular":
            lower = max(lower, before, after)
        n.append(draw(st.integers(lower, lower + (3 if small else 5))))
    n = tuple(n)
    if padding == "same":
        pairs = tuple(same_padding(n[i], k[i], s[i], d[i]) for i in range(ndim))
        if mode == "reflect":
            assume(all(max(pair) < n[i] for i, pair in enumerate(pairs)))
        if mode == "circular":
            assume(all(max(pair) <= n[i] for i, pair in enumerate(pairs)))
    # How torch gets the padding: its own int/tuple/'valid'/'same' where it can, else F.pad.
    torch_padding, torch_pairs = 0, None
    if mode != "zeros" or form == "pairs" or (padding == "same" and any(v > 1 for v in s)):
        torch_pairs = pairs
    elif form in ("int", "axes", "valid", "same"):
        torch_padding = padding
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    cfg = {
        "ndim": ndim,
        "stride": s,
        "padding": padding,
        "dilation": d,
        "groups": g,
        "padding_mode": mode,
        "flip": draw(st.booleans()) if flip is None else flip,
        "bias": draw(st.booleans()),
        "torch_padding": torch_padding,
        "torch_pairs": torch_pairs,
        "pairs": pairs,
    }
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, c_in, *n)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // g, *k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if cfg["bias"] else None
    return cfg, x, w, b, rng


def _ours_kwargs(cfg):
    return {key: cfg[key] for key in ("stride", "padding", "dilation", "groups", "padding_mode", "flip")}


def _check_against_torch(cfg, x, w, b, rng):
    kw = _ours_kwargs(cfg)
    y = conv(x, w, b, **kw)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    y_t, grads_t = _torch_conv(cfg, x, w, b, dy)
    context = f"{kw}, bias={b is not None}, x {x.shape} {x.dtype}, w {w.shape}"
    assert y.dtype == x.dtype
    assert_close(y, y_t, kind="forward", context=f"y: {context}")
    grads = conv_backward(dy, x, w, **kw)
    for name, g, g_t in zip(("dx", "dw", "db"), grads, grads_t):
        assert g.dtype == x.dtype, name
        assert_close(g, g_t, kind="backward", context=f"{name}: {context}")


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@settings(max_examples=350)
@given(conv_configs())
def test_conv_matches_torch(case):
    _check_against_torch(*case)


@settings(max_examples=120)
@given(conv_configs(ndims=(2,), flip=True))
def test_true_convolution_matches_torch_with_flipped_weight(case):
    _check_against_torch(*case)


@settings(max_examples=120)
@given(conv_configs(strided_same=True))
def test_same_with_stride_matches_explicit_pad_in_torch(case):
    cfg, x, w, b, rng = case
    # our 'same' keeps ceil(n / s) outputs, with the TensorFlow/Keras split of the padding
    y = conv(x, w, b, **_ours_kwargs(cfg))
    assert y.shape[2:] == tuple(math.ceil(n / s) for n, s in zip(x.shape[2:], cfg["stride"]))
    _check_against_torch(cfg, x, w, b, rng)


def test_torch_refuses_same_with_stride_but_we_support_it():
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 8))
    w = np.random.default_rng(1).standard_normal((2, 1, 3, 3))
    with pytest.raises((RuntimeError, ValueError)):
        TF.conv2d(torch.tensor(x), torch.tensor(w), stride=2, padding="same")
    y = conv(x, w, stride=2, padding="same")
    assert y.shape == (1, 2, 4, 4)
    pairs = (same_padding(7, 3, 2), same_padding(8, 3, 2))
    assert pairs == ((1, 1), (0, 1))
    expected = TF.conv2d(TF.pad(torch.tensor(x), _torch_pad_arg(pairs)), torch.tensor(w), stride=2)
    assert_close(y, expected.numpy(), context="same, stride 2")


# ----------------------------------------------------------------------------------------
# We reject what PyTorch rejects
# ----------------------------------------------------------------------------------------
@st.composite
def maybe_invalid_configs(draw):
    ndim = draw(st.integers(1, 2))
    c_in = draw(st.integers(1, 4))
    c_out = draw(st.integers(1, 4))
    # zeros are drawn rarely so that the subtler rejections (kernel too large, groups not
    # dividing, padding too large for the mode) make up most of the rejected cases
    groups = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4]))
    n = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    k = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    stride = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
    dilation = draw(st.sampled_from([0, 1, 1, 1, 2, 3]))
    mode = draw(st.sampled_from(MODES))
    padding = draw(st.integers(-1 if mode == "zeros" else 0, 4))
    c_per_group = c_in // groups if groups and c_in % groups == 0 else max(1, c_in // max(groups, 1))
    return {
        "ndim": ndim,
        "x_shape": (2, c_in, *n),
        "w_shape": (c_out, c_per_group, *k),
        "stride": stride,
        "dilation": dilation,
        "groups": groups,
        "padding": padding,
        "padding_mode": mode,
    }


def _torch_accepts(cfg, x, w):
    try:
        xt = torch.tensor(x)
        padding = cfg["padding"]
        if cfg["padding_mode"] != "zeros":
            xt = TF.pad(xt, (padding,) * (2 * cfg["ndim"]), mode=cfg["padding_mode"])
            padding = 0
        y = TORCH_CONV[cfg["ndim"]](
            xt, torch.tensor(w), stride=cfg["stride"], padding=padding, dilation=cfg["dilation"], groups=cfg["groups"]
        )
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None
    if y.numel() == 0:  # torch accepted but produced nothing: treat as a rejection
        return None
    return y.numpy()


@settings(max_examples=300)
@given(maybe_invalid_configs())
def test_we_reject_what_torch_rejects(cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(cfg["x_shape"])
    w = rng.standard_normal(cfg["w_shape"])
    kw = {key: cfg[key] for key in ("stride", "padding", "dilation", "groups", "padding_mode")}
    expected = _torch_accepts(cfg, x, w)
    event("torch rejects" if expected is None else "torch accepts")
    if expected is None:
        with pytest.raises(ConvscopeError):
            conv(x, w, **kw)
        with pytest.raises(ConvscopeError):
            conv_backward(np.ones((2, cfg["w_shape"][0], *([1] * cfg["ndim"]))), x, w, **kw)
    else:
        y = conv(x, w, **kw)
        assert_close(y, expected, context=f"accepted by torch: {cfg}")


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, words",
    [
        ((1, 1, 4, 4), (1, 1, 5, 5), {}, ["kernel size 5", "would be 0"]),
        ((1, 3, 8), (2, 2, 3), {"groups": 2}, ["groups=2", "C_in=3"]),
        ((1, 4, 8), (3, 2, 3), {"groups": 2}, ["groups=2", "C_out=3"]),
        ((1, 1, 8), (1, 1, 3), {"stride": 0}, ["stride"]),
        ((1, 1, 8), (1, 1, 3), {"dilation": 0}, ["dilation"]),
        ((1, 1, 8), (1, 1, 3), {"padding": -1}, ["padding", "-1"]),
        ((1, 1, 3), (1, 1, 3), {"padding": 3, "padding_mode": "reflect"}, ["reflect"]),
        ((1, 1, 3), (1, 1, 3), {"padding": 4, "padding_mode": "circular"}, ["circular"]),
    ],
)
def test_named_torch_rejections(x_shape, w_shape, kwargs, words):
    x, w = np.ones(x_shape), np.ones(w_shape)
    cfg = {"ndim": len(w_shape) - 2, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros",
           **kwargs}
    assert _torch_accepts(cfg, x, w) is None, "torch should refuse this configuration"
    with pytest.raises(ConvscopeError) as info:
        conv(x, w, **kwargs)
    for word in words:
        assert word in str(info.value)


# ----------------------------------------------------------------------------------------
# The plain-loop reference is itself checked against PyTorch
# ----------------------------------------------------------------------------------------
REFERENCE_CASES = [
    ((1, 1, 10), (1, 1, 3), {}),
    ((2, 3, 9), (4, 3, 4), {"stride": 2, "padding": 2, "dilation": 2}),
    ((2, 4, 6, 5), (6, 2, 3, 2), {"groups": 2, "padding": ((1, 0), (2, 1)), "padding_mode": "reflect"}),
    ((1, 3, 5, 5), (3, 1, 3, 3), {"groups": 3, "padding": "same", "padding_mode": "circular"}),
    ((2, 2, 4, 6), (3, 2, 2, 3), {"stride": (2, 3), "padding": (3, 1), "padding_mode": "replicate", "flip": True}),
    ((1, 2, 4, 4, 3), (2, 2, 2, 3, 2), {"padding": 1, "dilation": (1, 1, 2), "stride": (1, 2, 1)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", REFERENCE_CASES)
def test_reference_conv_matches_torch(x_shape, w_shape, kwargs, dtype):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    ndim = len(w_shape) - 2
    full = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros", "flip": False, **kwargs}
    stride = (full["stride"],) * ndim if isinstance(full["stride"], int) else full["stride"]
    dilation = (full["dilation"],) * ndim if isinstance(full["dilation"], int) else full["dilation"]
    padding = full["padding"]
    if padding == "same":
        pairs = tuple(same_padding(n, k, s, d) for n, k, s, d in zip(x_shape[2:], w_shape[2:], stride, dilation))
    elif isinstance(padding, int):
        pairs = ((padding, padding),) * ndim
    else:
        pairs = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
    cfg = {
        "ndim": ndim, "stride": stride, "dilation": dilation, "groups": full["groups"],
        "padding_mode": full["padding_mode"], "flip": full["flip"], "torch_padding": 0, "torch_pairs": pairs,
    }
    y = reference_conv(x, w, b, **kwargs)
    assert y.dtype == dtype
    assert_close(y, _torch_conv(cfg, x, w, b), kind="forward", context=f"reference {kwargs}")
