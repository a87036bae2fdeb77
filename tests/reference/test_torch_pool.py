"""Differential tests of pooling against PyTorch (torch.nn.functional.max_pool1d/2d/3d,
avg_pool1d/2d/3d, and blur pooling rebuilt from F.pad + depthwise F.conv1d/2d/3d).

Random configurations drawn with hypothesis: dims 1-3, batch, channels, kernel, stride
(default or explicit), padding (valid and too large), dilation, ceil_mode, count_include_pad,
return_indices, float32 and float64, inputs with and without ties. Forward, indices and the
input gradient (torch autograd, random upstream gradient); tolerances from convscope.testing.
Whatever PyTorch rejects we reject too; the one documented exception is a dilated ceil_mode
max-pool window that covers no input entry (PyTorch returns -inf there with an index outside
the input; we raise). Also: the plain-loop references against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
TF = torch.nn.functional

from convscope.errors import ConfigError, ConvscopeError  # noqa: E402
from convscope.functional import (  # noqa: E402
    avg_pool,
    avg_pool_backward,
    binomial_filter,
    blur_pool,
    blur_pool_backward,
    max_pool,
    max_pool_backward,
)
from convscope.functional.reference import reference_avg_pool, reference_max_pool  # noqa: E402
from convscope.testing import assert_close  # noqa: E402

TORCH_MAX = {1: TF.max_pool1d, 2: TF.max_pool2d, 3: TF.max_pool3d}
TORCH_AVG = {1: TF.avg_pool1d, 2: TF.avg_pool2d, 3: TF.avg_pool3d}
TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
MODES = ("reflect", "replicate", "zeros", "circular")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The twins are tiny: one torch thread avoids oversubscribing a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@st.composite
def pool_configs(draw, kind: str, max_n: int = 9):
    """A pooling configuration (valid or not) and its input array."""
    ndim = draw(st.sampled_from((1, 2, 3)))
    small = ndim == 3
    k = tuple(draw(st.integers(1, 3 if small else 4)) for _ in range(ndim))
    low = 1 if draw(st.integers(0, 4)) == 0 else None  # now and then smaller than the kernel
    n = tuple(draw(st.integers(low or ki, 5 if small else max_n)) for ki in k)
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 4)] * ndim)))
    if draw(st.integers(0, 9)) == 0:  # now and then a padding above PyTorch's k // 2 limit
        padding = tuple(draw(st.integers(0, 3)) for _ in range(ndim))
    else:
        padding = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    cfg = {
        "ndim": ndim,
        "kernel_size": k,
        "stride": stride,
        "padding": padding,
        "ceil_mode": draw(st.booleans()),
    }
    if kind == "max":
        cfg["dilation"] = tuple(draw(st.integers(1, 2 if small else 3)) for _ in range(ndim))
    else:
        cfg["count_include_pad"] = draw(st.booleans())
    dtype = draw(st.sampled_from((np.float32, np.float64)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2 if small else 3))) + n
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape)
    if draw(st.booleans()):
        x = np.round(x)  # many ties: both sides must pick the first maximum
    return cfg, x.astype(dtype), rng


def _kwargs(cfg):
    return {k: v for k, v in cfg.items() if k != "ndim"}


def _torch_pool(kind, cfg, x, dy=None):
    """PyTorch's result (y[, indices]) and, given dy, the input gradient by autograd."""
    xt = torch.tensor(x, requires_grad=True)
    kw = _kwargs(cfg)
    if kind == "max":
        yt, it = TORCH_MAX[cfg["ndim"]](xt, return_indices=True, **kw)
    else:
        yt, it = TORCH_AVG[cfg["ndim"]](xt, **kw), None
    if dy is None:
        return yt.detach().numpy(), it
    (yt * torch.tensor(dy)).sum().backward()
    return yt.detach().numpy(), it, xt.grad.numpy()


def _compare(kind, cfg, x, rng):
    """Run both; on agreement that the config is valid, compare everything."""
    kw = _kwargs(cfg)
    ours = max_pool if kind == "max" else avg_pool
    try:
        torch_result = _torch_pool(kind, cfg, x)
        torch_error = None
    except RuntimeError as exc:
        torch_result, torch_error = None, exc
    if torch_error is not None:
        event("rejected by torch")
        with pytest.raises(ConvscopeError):
            ours(x, **kw)
        return
    if kind == "max" and np.isneginf(torch_result[0]).any():
        # windows that see no input entry (dilated, ceil_mode): PyTorch returns -inf with an
        # index outside the input; convscope refuses such a geometry instead.
        try:
            max_pool(x, **kw)
        except ConfigError as exc:
            assert "at least one input entry" in str(exc)
            event("window sees only padding")
            return
    event("compared")
    dy = rng.standard_normal(torch_result[0].shape).astype(x.dtype)
    yt, it, dxt = _torch_pool(kind, cfg, x, dy)
    context = f"{kind} {cfg} x{x.shape} {x.dtype}"
    if kind == "max":
        y, idx = max_pool(x, **kw, return_indices=True)
        np.testing.assert_array_equal(y, yt, err_msg=context)  # a max is one of the entries
        np.testing.assert_array_equal(idx, it.numpy(), err_msg=context)
        np.testing.assert_array_equal(max_pool(x, **kw), yt, err_msg=context)
        dx = max_pool_backward(dy, x, **kw)
    else:
        y = avg_pool(x, **kw)
        assert_close(y, yt, kind="forward", context=context)
        dx = avg_pool_backward(dy, x, **kw)
    assert y.dtype == x.dtype and dx.dtype == x.dtype
    assert_close(dx, dxt, kind="backward", context=context + " dx")


@settings(max_examples=320)
@given(pool_configs("max"))
def test_max_pool_matches_torch(case):
    _compare("max", *case)


@settings(max_examples=320)
@given(pool_configs("avg"))
def test_avg_pool_matches_torch(case):
    _compare("avg", *case)


# ----------------------------------------------------------------------------------------
# Blur pooling against F.pad + depthwise convolution with the binomial filter
# ----------------------------------------------------------------------------------------
def _torch_blur(x, filter_size, stride, padding_mode, dy):
    ndim = x.ndim - 2
    before, after = (filter_size - 1) // 2, filter_size - 1 - (filter_size - 1) // 2
    xt = torch.tensor(x, requires_grad=True)
    mode = "constant" if padding_mode == "zeros" else padding_mode
    xp = TF.pad(xt, (before, after) * ndim, mode=mode)
    c = x.shape[1]
    w = torch.tensor(binomial_filter(filter_size, ndim).astype(x.dtype))
    w = w.reshape((1, 1) + w.shape).repeat((c,) + (1,) * (ndim + 1))
    yt = TORCH_CONV[ndim](xp, w, stride=stride, groups=c)
    if dy is None:
        return yt.detach().numpy()
    (yt * torch.tensor(dy)).sum().backward()
    return yt.detach().numpy(), xt.grad.numpy()


@settings(max_examples=320)
@given(
    ndim=st.sampled_from((1, 2, 3)),
    filter_size=st.integers(1, 7),
    mode=st.sampled_from(MODES),
    data=st.data(),
)
def test_blur_pool_matches_torch_depthwise_conv(ndim, filter_size, mode, data):
    small = ndim == 3
    n = tuple(data.draw(st.integers(1, 6 if small else 10)) for _ in range(ndim))
    stride = data.draw(st.one_of(st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * ndim)))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))) + n
    dtype = data.draw(st.sampled_from((np.float32, np.float64)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    context = f"blur n={n} f={filter_size} s={stride} {mode} {dtype.__name__}"
    try:
        yt = _torch_blur(x, filter_size, stride, mode, None)
    except RuntimeError:
        event("rejected by torch")
        with pytest.raises(ConvscopeError):
            blur_pool(x, filter_size, stride, mode)
        return
    event("compared")
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt, dxt = _torch_blur(x, filter_size, stride, mode, dy)
    y = blur_pool(x, filter_size, stride, mode)
    assert_close(y, yt, kind="forward", context=context)
    assert_close(blur_pool_backward(dy, x, filter_size, stride, mode), dxt, kind="backward", context=context)


# ----------------------------------------------------------------------------------------
# The plain-loop references against PyTorch (a reference nobody tests is not a reference)
# ----------------------------------------------------------------------------------------
@settings(max_examples=80)
@given(pool_configs("max", max_n=6))
def test_reference_max_pool_matches_torch(case):
    cfg, x, _ = case
    try:
        yt, it = _torch_pool("max", cfg, x)
    except RuntimeError:
        with pytest.raises(ConvscopeError):
            reference_max_pool(x, **_kwargs(cfg))
        return
    if np.isneginf(yt).any():
        return  # the documented deviation, covered above
    y, idx = reference_max_pool(x, **_kwargs(cfg), return_indices=True)
    np.testing.assert_array_equal(y, yt)
    np.testing.assert_array_equal(idx, it.numpy())


@settings(max_examples=80)
@given(pool_configs("avg", max_n=6))
def test_reference_avg_pool_matches_torch(case):
    cfg, x, _ = case
    try:
        yt, _ = _torch_pool("avg", cfg, x)
    except RuntimeError:
        return  # validation is shared with the fast path and tested above
    assert_close(reference_avg_pool(x, **_kwargs(cfg)), yt, context=f"reference avg {cfg}")
