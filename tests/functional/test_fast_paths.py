"""The private fast paths of convolution and pooling give exactly what the public ops give.

Each test forces one path that the public functions would pick only for some shapes
(chunk sizes, window-matrix layouts, the max-pool argmax kept by the forward for the
layers), so every path is exercised on small inputs whatever the shapes of the other tests.
"""

from __future__ import annotations

import importlib
import zlib

import numpy as np
import pytest

import convscope
from convscope import nn, settings
from convscope.functional import (
    conv,
    conv_backward,
    max_pool,
    max_pool_backward,
    max_pool_with_argmax,
    max_pool_with_argmax_backward,
)
from convscope.functional.reference import reference_conv
from convscope.testing import assert_close

conv_module = importlib.import_module("convscope.functional.conv")
conv_plan = importlib.import_module("convscope.functional.conv_plan")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# ----------------------------------------------------------------------------------------
# Max pooling: the argmax kept by the forward (nn.MaxPool* in training mode)
# ----------------------------------------------------------------------------------------
POOL_CASES = [
    # (x shape, kwargs)
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 2, 11), dict(kernel_size=3, stride=2, dilation=2, padding=1, ceil_mode=True)),
    ((2, 1, 5, 6, 4), dict(kernel_size=(2, 3, 2), stride=(1, 2, 2))),
    ((3, 2, 10, 10), dict(kernel_size=3, stride=1, padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kwargs", POOL_CASES)
def test_max_pool_argmax_pair_equals_public(x_shape, kwargs, dtype):
    rng = _rng("pool", x_shape, dtype)
    # Few distinct values: many ties, so the tie rule (first tap in window order) is tested.
    x = rng.integers(-3, 3, x_shape).astype(dtype)
    y, argmax = max_pool_with_argmax(x, **kwargs)
    np.testing.assert_array_equal(y, max_pool(x, **kwargs))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(max_pool_with_argmax_backward(dy, argmax, x.shape, **kwargs),
                                  max_pool_backward(dy, x, **kwargs))


def test_max_pool_argmax_pair_nan_and_inf():
    x = np.array([[[1.0, np.nan, 3.0, np.inf, -np.inf, -np.inf, 2.0, np.nan]]])
    y, argmax = max_pool_with_argmax(x, 2)
    np.testing.assert_array_equal(y, max_pool(x, 2))
    dy = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    np.testing.assert_array_equal(max_pool_with_argmax_backward(dy, argmax, x.shape, 2), max_pool_backward(dy, x, 2))


def test_max_pool_argmax_backward_rejects_wrong_dy():
    _, argmax = max_pool_with_argmax(np.zeros((1, 1, 4, 4), np.float32), 2)
    with pytest.raises(ValueError, match="shape"):
        max_pool_with_argmax_backward(np.zeros((1, 1, 3, 3), np.float32), argmax, (1, 1, 4, 4), 2)


def test_maxpool_layer_training_and_eval_give_the_same_gradient():
    rng = _rng("layer")
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    layer = nn.MaxPool2d(3, stride=2, padding=1)
    y_train = layer(x)
    dx_train = layer.backward(dy)
    layer.eval()
    y_eval = layer(x)
    dx_eval = layer.backward(dy)
    np.testing.assert_array_equal(y_train, y_eval)
    np.testing.assert_array_equal(dx_train, dx_eval)


# ----------------------------------------------------------------------------------------
# Convolution: layouts and chunk sizes
# ----------------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, w shape, kwargs)
    ((3, 2, 9, 8), (4, 2, 3, 3), dict(padding=1)),
    ((2, 4, 10, 9), (6, 2, 3, 2), dict(stride=(2, 3), padding=(1, 0), groups=2)),
    ((2, 2, 13), (3, 2, 4), dict(stride=2, dilation=2, padding=3, padding_mode="reflect")),
    ((2, 2, 6, 5, 4), (2, 2, 3, 2, 2), dict(padding=1, flip=True)),
    ((2, 3, 7, 7), (2, 3, 3, 3), dict(stride=2, padding="same", padding_mode="circular")),
    ((2, 4, 11), (3, 4, 4), dict(padding=((3, 1),), dilation=2)),  # asymmetric, dilated
    ((3, 5, 8, 9), (5, 5, 2, 3), dict(padding="same")),  # even kernel: (0, 1) and (1, 1) pairs
]


@pytest.fixture
def chunking():
    """Yields a setter for the chunk size (bytes) and minimum columns; restores both."""
    old = (conv_plan._CHUNK_BYTES, conv_plan._MIN_COLUMNS)

    def set_chunks(nbytes, min_columns):
        conv_plan._CHUNK_BYTES, conv_plan._MIN_COLUMNS = nbytes, min_columns

    try:
        yield set_chunks
    finally:
        conv_plan._CHUNK_BYTES, conv_plan._MIN_COLUMNS = old


def _layout_cases():
    """Every case with every layout it allows (flat and batch-last need stride 1)."""
    for x_shape, w_shape, kwargs in CONV_CASES:
        unit = all(s == 1 for s in np.broadcast_to(kwargs.get("stride", 1), len(x_shape) - 2))
        for layout in ("flat", "batch_last", "strided") if unit else ("strided",):
            yield x_shape, w_shape, kwargs, layout


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("chunk", [(1, 1), (2048, 16), (1 << 20, 1024)])
@pytest.mark.parametrize("x_shape, w_shape, kwargs, layout", list(_layout_cases()))
def test_conv_layouts_and_chunks_match_reference(chunking, x_shape, w_shape, kwargs, layout, chunk, threads):
    """Every layout, chunking and thread count (2: sample groups, or the row blocks of a
    single group, shared out to two threads) agrees with the plain loops."""
    chunking(*chunk)  # (1, 1): one output row per block; larger: several samples per block
    previous = convscope.get_num_threads()
    convscope.set_num_threads(threads)
    split = settings.force_path(conv_split=threads > 1)  # small shapes: split them anyway
    split.__enter__()
    try:
        rng = _rng("conv", x_shape, w_shape, layout, chunk)
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        b = rng.standard_normal(w_shape[0])
        with settings.force_path(conv_layout=layout):
            y = conv(x, w, b, **kwargs)
            assert conv_plan.plan_for(_geometry(x, w, kwargs), 8).layout == layout
        assert_close(y, reference_conv(x, w, b, **kwargs), kind="forward", context=f"{layout} {chunk}")
        dy = rng.standard_normal(y.shape)
        expected = conv_backward(dy, x, w, **kwargs)  # the default plan
        with settings.force_path(conv_layout=layout):
            got = conv_backward(dy, x, w, **kwargs)
        for name, g, want in zip(("dx", "dw", "db"), got, expected):
            assert_close(g, want, kind="backward", context=f"{layout} {chunk}: {name}")
    finally:
        split.__exit__(None, None, None)
        convscope.set_num_threads(previous)


def _geometry(x, w, kwargs):
    return conv_module._prepare("conv", x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0),
                                kwargs.get("dilation", 1), kwargs.get("groups", 1),
                                kwargs.get("padding_mode", "zeros"), kwargs.get("flip", False))[3]


def test_layout_choice():
    """Batch-last where flat would waste many columns on small images; else flat/strided."""

    def layout(x_shape, w_shape, **kwargs):
        x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32)
        geo = conv_module._prepare("conv", x, w, None, kwargs.get("stride", 1), kwargs.get("padding", 0), 1, 1,
                                   "zeros", False)[3]
        return conv_plan.Plan(geo, 4).layout

    assert layout((64, 6, 14, 14), (16, 6, 5, 5)) == "batch_last"  # LeNet's 2nd layer: 36% waste
    assert layout((64, 32, 32, 32), (64, 32, 3, 3), padding=1) == "flat"  # 6% waste
    assert layout((64, 1, 28, 28), (6, 1, 5, 5), padding=2) == "flat"  # 25 rows only
    assert layout((32, 64, 16, 16), (128, 64, 3, 3), stride=2, padding=1) == "strided"


def test_plan_cache_follows_the_budget(chunking):
    from convscope.functional.windows import get_workspace_budget, set_workspace_budget

    x = np.ones((4, 2, 16, 16))
    w = np.ones((3, 2, 3, 3))
    y = conv(x, w, padding=1)
    old = set_workspace_budget(1)  # one output row per block from now on
    try:
        assert get_workspace_budget() == 1
        np.testing.assert_allclose(conv(x, w, padding=1), y)
        geo = conv_module._prepare("conv", x, w, None, 1, 1, 1, 1, "zeros", False)[3]
        assert conv_plan.plan_for(geo, 8).step == 1
    finally:
        set_workspace_budget(old)


# ----------------------------------------------------------------------------------------
# Remembered geometries and tables never skip validation
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [2.0, True, np.float64(2.0)])
def test_remembered_geometry_still_refuses_bad_arguments(bad):
    x = np.ones((1, 1, 6, 6))
    w = np.ones((1, 1, 3, 3))
    conv(x, w, stride=2)
    max_pool(x, 2, stride=2)
    with pytest.raises(TypeError, match="stride"):
        conv(x, w, stride=bad)
    with pytest.raises(TypeError, match="stride"):
        max_pool(x, 2, stride=bad)


def test_remembered_pool_tables_are_read_only():
    import convscope.functional.pool as pool_module

    x = np.arange(16.0).reshape(1, 1, 4, 4)
    max_pool_backward(np.ones((1, 1, 2, 2)), x, 2)
    for (kind, _), value in list(pool_module._CACHE.items()):
        arrays = [v for v in (value if isinstance(value, tuple) else ()) if isinstance(v, np.ndarray)]
        assert all(not a.flags.writeable for a in arrays), kind


# ----------------------------------------------------------------------------------------
# Blur pooling: matrix products (small planes) and tap passes (large planes)
# ----------------------------------------------------------------------------------------
BLUR_CASES = [
    # (x shape, filter_size, stride, padding_mode)
    ((2, 3, 9), 4, 2, "reflect"),
    ((2, 2, 8, 7), 3, 2, "zeros"),
    ((1, 2, 6, 10), 5, (2, 3), "replicate"),
    ((1, 1, 5, 4, 6), 2, 2, "circular"),
    ((2, 1, 7, 7), 1, 3, "reflect"),
]


@pytest.mark.parametrize("x_shape, f, s, mode", BLUR_CASES)
def test_blur_pool_matrix_path_equals_tap_path(x_shape, f, s, mode):
    from convscope.functional import blur_pool, blur_pool_backward

    rng = _rng("blur", x_shape, f, s, mode)
    x = rng.standard_normal(x_shape)
    y = blur_pool(x, f, s, mode)  # planes <= _BLUR_MATRIX_MAX: matrices
    dy = rng.standard_normal(y.shape)
    dx = blur_pool_backward(dy, x, f, s, mode)
    with settings.force_path(blur_matrix=False):  # the tap passes
        assert_close(y, blur_pool(x, f, s, mode), kind="forward", context="matrix vs taps")
        assert_close(dx, blur_pool_backward(dy, x, f, s, mode), kind="backward", context="matrix vs taps")


def test_blur_pool_large_plane_uses_taps_and_matches_small_tiles():
    blur_module = importlib.import_module("convscope.functional.blur_pool")
    from convscope.functional import blur_pool

    x = _rng("large").standard_normal((1, 1, blur_module._BLUR_MATRIX_MAX + 6, 5))
    # Rows far from the edges only see their neighbourhood: compare with a cropped input.
    y = blur_pool(x, 3, 2, "zeros")
    y_crop = blur_pool(x[:, :, :20], 3, 2, "zeros")
    assert_close(y[:, :, 1:9], y_crop[:, :, 1:9], kind="forward")


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_input_gradient_as_transposed_conv_matches_col2im(x_shape, w_shape, kwargs):
    """dx as a transposed convolution (forced on wherever stride, groups and padding allow
    it) agrees with spreading W^T dy back through the windows (forced off)."""
    rng = _rng("transposed", x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    y = conv(x, w, **kwargs)
    dy = rng.standard_normal(y.shape)
    with settings.force_path(transposed_dx=False):
        want = conv_backward(dy, x, w, **kwargs)
    with settings.force_path(transposed_dx=True):
        got = conv_backward(dy, x, w, **kwargs)
        geo = _geometry(x, w, dict(kwargs, flip=False))
        stride1 = all(s == 1 for s in geo.s)
        if stride1 and geo.g == 1 and geo.padding_mode == "zeros":
            assert conv_plan.use_transposed_dx(geo)  # the case really took the transposed path
    for name, g, e in zip(("dx", "dw", "db"), got, want):
        assert_close(g, e, kind="backward", context=name)


def test_transposed_input_gradient_rule():
    def rule(x_shape, w_shape, **kwargs):
        geo = conv_module._prepare("conv", np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), None,
                                   kwargs.get("stride", 1), kwargs.get("padding", 0), 1, 1, "zeros", False)[3]
        return conv_plan.use_transposed_dx(geo)

    assert rule((8, 32, 32, 32), (32, 32, 3, 3), padding=1)  # measured 0.65x the col2im time
    assert not rule((8, 3, 32, 32), (32, 3, 3, 3), padding=1)  # more outputs than inputs
    assert not rule((8, 32, 32, 32), (32, 32, 3, 3), padding=1, stride=2)
    assert not rule((8, 32, 8, 8), (32, 32, 3, 3), padding=3)  # padding beyond k - 1


@pytest.mark.parametrize("bad", [np.array(4, np.uint8), np.array(-1, np.int64), np.array(255, np.uint8)])
def test_max_pool_argmax_backward_refuses_tap_numbers_outside_the_window(bad):
    x = np.zeros((1, 2, 4, 4), np.float32)
    _, argmax = max_pool_with_argmax(x, 2)
    argmax = argmax.astype(bad.dtype)
    argmax[0, 1, 1, 0] = bad  # a 2x2 window has taps 0 .. 3
    with pytest.raises(ValueError, match="tap numbers 0 .. 3"):
        max_pool_with_argmax_backward(np.ones((1, 2, 2, 2), np.float32), argmax, x.shape, 2)
    with pytest.raises(TypeError, match="argmax must hold integers"):
        max_pool_with_argmax_backward(np.ones((1, 2, 2, 2), np.float32), argmax.astype(np.float32), x.shape, 2)


# ----------------------------------------------------------------------------------------
# Skinny products: blocks of columns, the filter gradient as its transpose
# ----------------------------------------------------------------------------------------
@pytest.fixture
def small_blocks():
    """Blocks of a few columns, so small arrays take the blocked products."""
    old = (conv_plan._PANEL_BYTES, conv_plan._MIN_BLOCK, conv_plan._INNER_BYTES)
    conv_plan._PANEL_BYTES, conv_plan._MIN_BLOCK, conv_plan._INNER_BYTES = 1024, 4, 64
    try:
        yield
    finally:
        conv_plan._PANEL_BYTES, conv_plan._MIN_BLOCK, conv_plan._INNER_BYTES = old


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g, m, k, n", [(1, 6, 26, 28544), (2, 8, 20, 5000), (3, 24, 6, 2050), (1, 16, 151, 3200),
                                        (3, 64, 6, 2050), (1, 8, 109, 9000)])
def test_skinny_products_in_blocks_equal_one_product(g, m, k, n, dtype):
    rng = _rng("skinny", g, m, k, n, dtype)
    a = rng.standard_normal((g, m, k)).astype(dtype)
    b = rng.standard_normal((g, k, n)).astype(dtype)
    blocked = conv_plan._column_block(m, k, np.dtype(dtype).itemsize)
    assert bool(blocked) == (m <= 32 and k <= 32)
    got = conv_plan.group_matmul(a, b)
    want = np.stack([a[q].astype(np.float64) @ b[q] for q in range(g)])
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(k))
    # the filter gradient's form: dy (m x n) times V (k x n) transposed
    dy = rng.standard_normal((g, m, n)).astype(dtype)
    cols = rng.standard_normal((g, k, n)).astype(dtype)
    out_t = np.empty((g, k, m), dtype=dtype)
    got = conv_plan.group_matmul_nt(dy, cols, out_t)
    assert got.shape == (g, m, k) and np.shares_memory(got, out_t)
    want = np.stack([dy[q].astype(np.float64) @ cols[q].T for q in range(g)])
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(n))


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((3, 1, 14, 14), (6, 1, 5, 5), dict(padding=2)),  # LeNet's first layer: 6 filters, 26 rows
    ((2, 6, 9, 9), (16, 6, 5, 5), dict()),  # its second: 16 filters, 150 rows (columns not blocked)
    ((2, 3, 10, 10), (32, 3, 3, 3), dict(padding=1, stride=2)),  # 32 filters, 27 rows
    ((2, 4, 8, 8), (4, 2, 3, 3), dict(groups=2, padding=1)),  # groups
])
def test_conv_with_blocked_products_matches_reference(small_blocks, x_shape, w_shape, kwargs):
    """A convolution whose products run in blocks (forward, filter and input gradients)
    agrees with the plain loops, in float64."""
    from convscope.functional.reference import reference_conv_backward

    rng = _rng("blocked conv", x_shape, w_shape)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = conv(x, w, b, **kwargs)
    assert_close(y, reference_conv(x, w, b, **kwargs), kind="forward")
    dy = rng.standard_normal(y.shape)
    for name, got, want in zip(("dx", "dw", "db"), conv_backward(dy, x, w, **kwargs),
                               reference_conv_backward(dy, x, w, **kwargs)):
        assert_close(got, want, kind="backward", context=name)


# ----------------------------------------------------------------------------------------
# The direct forward: one sample per product, written straight into y
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_direct_forward_matches_reference_and_the_chunked_layouts(x_shape, w_shape, kwargs, threads):
    """Every case (groups, strides, dilation, padding modes, 1-D to 3-D, bias folded or not)
    gives the plain loops' result through the direct forward, and the chunked layouts'."""
    rng = _rng("direct", x_shape, w_shape)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    with convscope.num_threads(threads), settings.force_path(conv_split=threads > 1):
        for fold in (None, False):
            with settings.force_path(conv_direct=True, fold_bias=fold):
                y = conv(x, w, b, **kwargs)
                assert conv_plan.plan_for(_geometry(x, w, kwargs), 8, forward=True).direct
            assert_close(y, reference_conv(x, w, b, **kwargs), kind="forward", context=f"fold={fold}")
        with settings.force_path(conv_direct=False):
            chunked = conv(x, w, b, **kwargs)
            assert not conv_plan.plan_for(_geometry(x, w, kwargs), 8, forward=True).direct
    assert_close(y, chunked, kind="forward")


def test_direct_forward_rule():
    """Large planes (>= 256 outputs a channel, >= 16 filters of >= 27 rows, one sample's
    window matrix within the chunk size) take the direct forward; small planes or filter
    banks, and any forced layout, do not; the backward's plan is never the direct one."""
    def direct(x_shape, w_shape, padding):
        geo = _geometry(np.empty(x_shape, np.float32), np.empty(w_shape, np.float32), dict(padding=padding))
        return conv_plan.use_direct_forward(geo, 4)

    assert direct((128, 32, 32, 32), (32, 32, 3, 3), 1)  # CIFAR's 32x32 layers
    assert direct((128, 64, 16, 16), (64, 64, 3, 3), 1)  # 16x16: 256 outputs
    assert direct((256, 3, 32, 32), (16, 3, 3, 3), 1)  # 27 rows, 16 filters
    assert not direct((64, 1, 28, 28), (8, 1, 5, 5), 2)  # shape A: 8 filters of 25 rows
    assert not direct((64, 8, 14, 14), (16, 8, 5, 5), 2)  # shape B: 196 outputs
    assert not direct((128, 64, 8, 8), (128, 64, 3, 3), 1)
    assert not direct((2, 512, 64, 64), (8, 512, 3, 3), 1)  # one sample's windows: 75 MB
    with settings.force_path(conv_layout="flat"):
        assert not direct((128, 32, 32, 32), (32, 32, 3, 3), 1)
    geo = _geometry(np.empty((128, 32, 32, 32)), np.empty((32, 32, 3, 3)), dict(padding=1))
    assert conv_plan.plan_for(geo, 8, forward=True).direct and not conv_plan.plan_for(geo, 8).direct
