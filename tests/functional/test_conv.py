"""Tests of convscope.functional.conv / conv_backward: gradients by finite differences, the
fast path against the plain-loop reference, chunking under the workspace budget, dtypes,
input layouts, memory, and NaN propagation."""

from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
import pytest

from convscope.errors import ConvscopeError, DTypeError, ShapeError
from convscope.functional import conv, conv_backward
from convscope.functional.reference import reference_conv
from convscope.functional.windows import get_workspace_budget, set_workspace_budget
from convscope.testing import assert_close, gradcheck, tolerance


@pytest.fixture
def budget():
    """Yields set_workspace_budget; restores the previous budget afterwards."""
    old = get_workspace_budget()
    try:
        yield set_workspace_budget
    finally:
        set_workspace_budget(old)


def _case(rng, x_shape, w_shape, bias=True, dtype=np.float64):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


# ----------------------------------------------------------------------------------------
# Finite-difference gradient checks (float64, random upstream gradient)
# ----------------------------------------------------------------------------------------
GRAD_CASES = [
    # (id, x shape, w shape, kwargs, bias)
    ("1d", (2, 3, 9), (4, 3, 3), {}, True),
    ("1d-nobias", (2, 3, 9), (4, 3, 3), {}, False),
    ("1d-stride", (2, 2, 11), (3, 2, 4), {"stride": 3}, True),
    ("1d-pad-int", (1, 2, 6), (2, 2, 3), {"padding": 2}, True),
    ("1d-pad-pair", (1, 2, 6), (2, 2, 3), {"padding": ((2, 0),)}, True),
    ("1d-dilation", (2, 2, 10), (2, 2, 3), {"dilation": 3, "padding": 1}, True),
    ("1d-same-stride2", (2, 2, 9), (3, 2, 4), {"padding": "same", "stride": 2}, True),
    ("1d-reflect", (1, 2, 7), (3, 2, 3), {"padding": 2, "padding_mode": "reflect"}, True),
    ("1d-replicate", (1, 2, 5), (3, 2, 3), {"padding": (3,), "padding_mode": "replicate"}, True),
    ("1d-circular", (1, 2, 5), (3, 2, 3), {"padding": ((4, 2),), "padding_mode": "circular"}, True),
    ("1d-flip", (2, 2, 8), (3, 2, 3), {"flip": True, "padding": 1}, True),
    ("2d", (2, 3, 5, 6), (4, 3, 3, 2), {}, True),
    ("2d-nobias", (2, 2, 5, 5), (3, 2, 3, 3), {"padding": 1}, False),
    ("2d-stride-tuple", (2, 2, 7, 6), (3, 2, 3, 2), {"stride": (2, 3)}, True),
    ("2d-pad-axes", (1, 2, 5, 4), (2, 2, 3, 3), {"padding": (1, 2)}, True),
    ("2d-pad-pairs", (1, 2, 5, 4), (2, 2, 3, 3), {"padding": ((0, 2), (1, 0))}, True),
    ("2d-valid", (1, 2, 5, 4), (2, 2, 2, 3), {"padding": "valid"}, True),
    ("2d-same", (1, 2, 5, 4), (2, 2, 3, 2), {"padding": "same"}, True),
    ("2d-same-stride", (1, 2, 7, 6), (2, 2, 3, 3), {"padding": "same", "stride": (2, 3)}, True),
    ("2d-same-dilation", (1, 2, 6, 6), (2, 2, 3, 2), {"padding": "same", "dilation": 2}, True),
    ("2d-dilation", (1, 2, 7, 6), (2, 2, 3, 2), {"dilation": (2, 3)}, True),
    ("2d-reflect", (1, 2, 4, 5), (2, 2, 3, 3), {"padding": ((3, 1), 2), "padding_mode": "reflect"}, True),
    ("2d-replicate", (1, 2, 4, 3), (2, 2, 2, 3), {"padding": 2, "padding_mode": "replicate"}, True),
    ("2d-circular", (1, 2, 4, 3), (2, 2, 3, 3), {"padding": (4, 3), "padding_mode": "circular"}, True),
    ("2d-groups", (2, 4, 5, 5), (6, 2, 3, 3), {"groups": 2, "padding": 1}, True),
    ("2d-depthwise", (2, 3, 5, 5), (6, 1, 3, 3), {"groups": 3, "stride": 2}, True),
    ("2d-flip", (1, 2, 5, 6), (3, 2, 3, 2), {"flip": True, "stride": (1, 2), "padding": "same"}, True),
    ("2d-flip-groups-reflect", (1, 4, 5, 5), (4, 2, 2, 3),
     {"flip": True, "groups": 2, "padding": 1, "padding_mode": "reflect", "dilation": (2, 1)}, True),
    ("3d", (1, 2, 4, 4, 3), (2, 2, 2, 3, 2), {}, True),
    ("3d-stride-pad", (2, 2, 5, 4, 4), (2, 2, 3, 2, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1)}, True),
    ("3d-groups-dilation", (1, 4, 5, 4, 4), (4, 2, 2, 2, 2), {"groups": 2, "dilation": (2, 1, 2)}, False),
    ("3d-circular-same", (1, 2, 3, 4, 3), (2, 2, 2, 3, 2), {"padding": "same", "padding_mode": "circular"}, True),
    ("4d", (1, 2, 3, 3, 3, 3), (2, 2, 2, 2, 1, 2), {"padding": 1, "stride": 2}, True),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs, bias", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_conv_backward_gradcheck(x_shape, w_shape, kwargs, bias):
    rng = np.random.default_rng(zlib.crc32(repr((x_shape, w_shape, kwargs)).encode()))
    x, w, b = _case(rng, x_shape, w_shape, bias)
    y = conv(x, w, b, **kwargs)
    dy = rng.standard_normal(y.shape)
    rtol, _ = tolerance(np.float64, "gradcheck")

    if bias:
        def f(x_, w_, b_):
            return conv(x_, w_, b_, **kwargs)

        inputs = [x, w, b]
    else:
        def f(x_, w_):
            return conv(x_, w_, **kwargs)

        inputs = [x, w]

    def backward(dy_, x_, w_, *_):
        return conv_backward(dy_, x_, w_, **kwargs)

    err = gradcheck(f, backward, inputs, dy)
    assert err < rtol, f"{kwargs}: max relative error {err:.3g}"
    # db is returned with or without a bias: dy summed over the batch and spatial axes
    dx, dw, db = conv_backward(dy, x, w, **kwargs)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (w.shape[0],)
    assert_close(db, dy.sum(axis=(0, *range(2, dy.ndim))), kind="backward", context="db")


def test_backward_matches_reference_jacobian_transpose():
    """dx and dw against the adjoint identity <dy, conv(x, w)> with the reference loops:
    conv is linear in x and in w, so <dy, conv(dx_probe...)> checks need no finite steps."""
    rng = np.random.default_rng(11)
    kw = {"stride": (2, 1), "padding": ((1, 2), 1), "dilation": (1, 2), "groups": 2}
    x, w, _ = _case(rng, (2, 4, 7, 6), (6, 2, 3, 2), bias=False)
    dy = rng.standard_normal(conv(x, w, **kw).shape)
    dx, dw, _ = conv_backward(dy, x, w, **kw)
    # <dy, conv(u, w)> = <dx(dy), u> for any u (linearity in x); likewise for w.
    u = rng.standard_normal(x.shape)
    v = rng.standard_normal(w.shape)
    assert np.sum(dy * reference_conv(u, w, **kw)) == pytest.approx(np.sum(dx * u), rel=1e-12)
    assert np.sum(dy * reference_conv(x, v, **kw)) == pytest.approx(np.sum(dw * v), rel=1e-12)


# ----------------------------------------------------------------------------------------
# Fast path versus the plain-loop reference on odd shapes
# ----------------------------------------------------------------------------------------
ODD_CASES = [
    ((1, 1, 1), (1, 1, 1), {}),
    ((3, 1, 13), (5, 1, 13), {}),  # kernel as large as the input
    ((2, 3, 7), (2, 3, 5), {"padding": ((4, 0),), "stride": 5}),
    ((1, 2, 3), (1, 2, 6), {"padding": ((2, 1),)}),  # kernel larger than the input, padded to fit
    ((2, 5, 1, 7), (3, 5, 1, 3), {"stride": (3, 2)}),
    ((1, 3, 11, 2), (7, 3, 2, 2), {"padding": (0, 3), "dilation": (5, 3)}),
    ((3, 6, 5, 7), (9, 2, 3, 3), {"groups": 3, "stride": (2, 3), "padding": "same"}),
    ((2, 4, 6, 5), (4, 1, 5, 4), {"groups": 4, "padding": 2, "padding_mode": "reflect"}),
    ((1, 2, 3, 3), (4, 2, 3, 3), {"padding": 3, "padding_mode": "circular"}),
    ((2, 2, 2, 9), (3, 2, 2, 4), {"padding": ((5, 0), (3, 6)), "padding_mode": "replicate"}),
    ((1, 3, 4, 5, 6), (2, 3, 3, 1, 4), {"stride": (1, 3, 2), "padding": ((0, 1), 0, (2, 0))}),
    ((2, 2, 3, 3, 3), (2, 1, 2, 2, 2), {"groups": 2, "flip": True, "padding": "same", "stride": 2}),
    ((1, 1, 2, 3, 2, 3), (2, 1, 1, 2, 2, 2), {"padding": 1, "dilation": (1, 1, 2, 1)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", ODD_CASES)
def test_fast_path_matches_reference(x_shape, w_shape, kwargs, dtype):
    rng = np.random.default_rng(len(x_shape) * 100 + sum(x_shape))
    x, w, b = _case(rng, x_shape, w_shape, True, dtype)
    y = conv(x, w, b, **kwargs)
    expected = reference_conv(x, w, b, **kwargs)
    assert y.dtype == dtype
    assert_close(y, expected, kind="forward", context=f"conv {x_shape} {w_shape} {kwargs}")


def test_reference_flip_is_cross_correlation_with_reversed_filter():
    rng = np.random.default_rng(12)
    x, w, b = _case(rng, (2, 2, 5, 6), (3, 2, 3, 2))
    y = reference_conv(x, w, b, flip=True, padding=1)
    np.testing.assert_array_equal(y, reference_conv(x, w[:, :, ::-1, ::-1], b, padding=1))


# ----------------------------------------------------------------------------------------
# Chunking under the workspace budget
# ----------------------------------------------------------------------------------------
CHUNK_CASES = [
    ((3, 2, 12, 10), (4, 2, 3, 3), {"padding": 1}),
    ((5, 3, 9, 8), (6, 1, 3, 2), {"groups": 3, "stride": (2, 1), "padding": "same"}),
    ((2, 2, 40), (3, 2, 5), {"stride": 2, "dilation": 2, "padding": 3, "padding_mode": "reflect"}),
    ((2, 2, 6, 5, 4), (2, 2, 3, 2, 2), {"padding": (1, 0, 1), "flip": True}),
]


@pytest.mark.parametrize("nbytes", [1, 1024, 6 * 1024, 40 * 1024])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CHUNK_CASES)
def test_chunked_results_equal_default_budget(budget, x_shape, w_shape, kwargs, nbytes):
    rng = np.random.default_rng(13)
    x, w, b = _case(rng, x_shape, w_shape)
    y_full = conv(x, w, b, **kwargs)
    dy = rng.standard_normal(y_full.shape)
    grads_full = conv_backward(dy, x, w, **kwargs)
    budget(nbytes)  # 1 byte and 1 KiB force one output row per chunk; larger: samples per chunk
    y = conv(x, w, b, **kwargs)
    grads = conv_backward(dy, x, w, **kwargs)
    assert_close(y, y_full, kind="forward", context=f"budget {nbytes}: y")
    for name, g, g_full in zip(("dx", "dw", "db"), grads, grads_full):
        assert_close(g, g_full, kind="backward", context=f"budget {nbytes}: {name}")
    assert_close(y, reference_conv(x, w, b, **kwargs), kind="forward", context="vs reference")


def test_budget_fixture_restores(budget):
    old = get_workspace_budget()
    budget(1024)
    assert get_workspace_budget() == 1024
    budget(old)


def test_memory_stays_under_budget_plus_arrays(budget):
    # Unchunked, the window matrix would be 8 * (16*9) * (32*32) * 8 bytes = 9 MiB;
    # input 1 MiB, output 256 KiB. With a 1 MiB budget the peak must stay far below 9 MiB.
    rng = np.random.default_rng(14)
    x, w, b = _case(rng, (8, 16, 32, 32), (4, 16, 3, 3))
    limit = 2**20
    budget(limit)
    y_bytes = 8 * 4 * 32 * 32 * 8
    window_matrix = 8 * 16 * 9 * 32 * 32 * 8
    bound = limit + 2 * (x.nbytes + y_bytes) + 2**16
    assert bound < window_matrix / 2  # the test can fail if chunking is missing
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        y = conv(x, w, b, padding=1)
        _, peak_forward = tracemalloc.get_traced_memory()
        dy = rng.standard_normal(y.shape)
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        conv_backward(dy, x, w, padding=1)
        _, peak_backward = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_forward < bound, f"forward peak {peak_forward} bytes > {bound}"
    # backward holds dx (and its padded twin), dw and one window matrix at a time
    assert peak_backward - base < bound + x.nbytes, f"backward peak {peak_backward - base} bytes"


def test_large_image_runs_without_gigabytes():
    # 1 x 3 x 1024 x 1024 with 64 filters of 3 x 3: output 256 MiB in float32.
    x = np.ones((1, 3, 1024, 1024), dtype=np.float32)
    w = np.full((64, 3, 3, 3), 1 / 27, dtype=np.float32)
    tracemalloc.start()
    try:
        y = conv(x, w, padding=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y.shape == (1, 64, 1024, 1024) and y.dtype == np.float32
    assert y[0, 5, 500, 500] == pytest.approx(1.0, rel=1e-5)
    out_bytes = y.nbytes
    del y
    # Unchunked float64 work would be several GiB; the output itself is 256 MiB. Allow the
    # output, the padded input, one window matrix (<= the 256 MiB budget) and one block of
    # matrix-product results, and stay under 1 GiB.
    assert out_bytes == 2**28
    assert peak < 2**30, f"peak {peak / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    rng = np.random.default_rng(15)
    x, w, b = _case(rng, (2, 3, 6, 6), (4, 3, 3, 3), dtype=dtype)
    y = conv(x, w, b, padding=1, stride=2)
    assert y.dtype == dtype
    dx, dw, db = conv_backward(np.ones_like(y), x, w, padding=1, stride=2)
    assert dx.dtype == dw.dtype == db.dtype == dtype


def test_float32_matches_float64():
    rng = np.random.default_rng(16)
    x, w, b = _case(rng, (2, 3, 7, 7), (4, 3, 3, 3))
    kw = {"padding": "same", "stride": 2, "groups": 1}
    y64 = conv(x, w, b, **kw)
    y32 = conv(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
    assert_close(y32, y64, dtype=np.float32, kind="forward", context="float32 vs float64")


@pytest.mark.parametrize(
    "which, dtype",
    [("w", np.float64), ("b", np.float64), ("x", np.float64)],
)
def test_mixed_dtypes_are_refused(which, dtype):
    rng = np.random.default_rng(17)
    x, w, b = _case(rng, (1, 2, 5), (3, 2, 3), dtype=np.float32)
    arrays = {"x": x, "w": w, "b": b}
    arrays[which] = arrays[which].astype(dtype)
    if which == "x":
        arrays["b"] = None  # x float64 vs w float32
    with pytest.raises(DTypeError) as info:
        conv(arrays["x"], arrays["w"], arrays["b"])
    msg = str(info.value)
    assert "float32" in msg and "float64" in msg


def test_mixed_dtypes_in_backward_are_refused():
    x = np.ones((1, 1, 5), dtype=np.float32)
    w = np.ones((1, 1, 3), dtype=np.float32)
    with pytest.raises(DTypeError):
        conv_backward(np.ones((1, 1, 3), dtype=np.float64), x, w)
    with pytest.raises(DTypeError):
        conv_backward(np.ones((1, 1, 3), dtype=np.float32), x, w.astype(np.float64))


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((1, 1, 5), dtype=np.int64),
        np.ones((1, 1, 5), dtype=np.int8),
        np.ones((1, 1, 5), dtype=np.uint8),
        np.ones((1, 1, 5), dtype=np.complex128),
        np.ones((1, 1, 5), dtype=bool),
        np.ones((1, 1, 5), dtype=np.float16),
        np.ones((1, 1, 5)).astype(object),
    ],
    ids=["int64", "int8", "uint8", "complex", "bool", "float16", "object"],
)
def test_unsupported_dtypes_are_refused(bad):
    good_x = np.ones((1, 1, 5))
    good_w = np.ones((1, 1, 3))
    with pytest.raises(DTypeError) as info:
        conv(bad, good_w)
    assert "x" in str(info.value) and str(bad.dtype) in str(info.value)
    with pytest.raises(DTypeError):
        conv(good_x, bad[..., :3])
    with pytest.raises(DTypeError):
        conv(good_x, good_w, bad[0, 0, :1])
    with pytest.raises(DTypeError):
        conv_backward(bad[..., :3], good_x, good_w)
    with pytest.raises(DTypeError):
        conv_backward(np.ones((1, 1, 3)), bad, good_w)


def test_bad_bias_and_dy_shapes():
    x, w = np.ones((2, 2, 6)), np.ones((3, 2, 3))
    with pytest.raises(ShapeError) as info:
        conv(x, w, np.ones(2))
    assert "(3,)" in str(info.value)
    with pytest.raises(ShapeError) as info:
        conv_backward(np.ones((2, 3, 5)), x, w)
    assert "(2, 3, 4)" in str(info.value) and "(2, 3, 5)" in str(info.value)


def test_errors_are_convscope_errors_not_numpy():
    x, w = np.ones((1, 3, 8, 8)), np.ones((2, 3, 3, 3))
    bad_calls = [
        lambda: conv(x[0], w),
        lambda: conv(x.transpose(0, 2, 3, 1), w),
        lambda: conv(x, w, stride=0),
        lambda: conv(x, w, padding=-1),
        lambda: conv(x, w, groups=2),
        lambda: conv(x, w, dilation=5),
        lambda: conv(x, w, padding=1, padding_mode="mirror"),
        lambda: conv(x, w, padding=8, padding_mode="reflect"),
        lambda: conv(x, w, stride=1.0),
        lambda: conv(x, w, flip="yes"),
        lambda: conv("x", w),
        lambda: conv(x, None),
        lambda: conv_backward(np.ones((1, 2, 6, 6)), x, w, groups=2),
    ]
    for call in bad_calls:
        with pytest.raises(ConvscopeError):
            call()


# ----------------------------------------------------------------------------------------
# Layouts: read-only, non-contiguous, Fortran order; inputs are never modified
# ----------------------------------------------------------------------------------------
def _layouts(a):
    ro = a.copy()
    ro.setflags(write=False)
    yield "read-only", ro
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    yield "strided", big[..., ::2]
    yield "reversed", np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    broadcast = np.broadcast_to(a[:1], a.shape) if a.shape[0] == 1 else None
    if broadcast is not None:
        yield "broadcast", broadcast


LAYOUT_KWARGS = [
    {"padding": (1, 2), "stride": (1, 2), "padding_mode": "zeros", "groups": 2},
    {"padding": (1, 2), "stride": (1, 2), "padding_mode": "reflect", "groups": 2},
    {"padding": ((0, 2), 1), "padding_mode": "replicate", "groups": 2},
    {"padding": (2, 1), "stride": 2, "padding_mode": "circular", "groups": 2},
    {"groups": 2},  # no padding, stride 1: the input itself is read as windows
    {"dilation": (2, 1), "flip": True, "groups": 2},
    {"stride": (2, 1), "groups": 2},
]


@pytest.mark.parametrize("kw", LAYOUT_KWARGS)
def test_any_layout_gives_the_same_result(kw):
    rng = np.random.default_rng(18)
    x, w, b = _case(rng, (2, 4, 5, 6), (4, 2, 3, 3))
    y = conv(x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    grads = conv_backward(dy, x, w, **kw)
    for (nx, xv), (nw, wv), (nd, dyv) in zip(_layouts(x), _layouts(w), _layouts(dy)):
        assert_close(conv(xv, wv, b, **kw), y, context=f"y with {nx} x, {nw} w")
        for name, g, g_ref in zip(("dx", "dw", "db"), conv_backward(dyv, xv, wv, **kw), grads):
            assert_close(g, g_ref, kind="backward", context=f"{name} with {nx}/{nw}/{nd}")


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("flip", [False, True])
def test_backward_does_not_modify_its_inputs(mode, flip):
    rng = np.random.default_rng(19)
    kw = {"padding": 2, "stride": 2, "padding_mode": mode, "flip": flip}
    x, w, b = _case(rng, (2, 2, 5, 5), (3, 2, 3, 3))
    y = conv(x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    copies = [a.copy() for a in (dy, x, w, b)]
    conv(x, w, b, **kw)
    dx, dw, db = conv_backward(dy, x, w, **kw)
    for a, c in zip((dy, x, w, b), copies):
        np.testing.assert_array_equal(a, c)
    # and the gradients do not alias the inputs
    for g in (dx, dw, db):
        for a in (dy, x, w, b):
            assert not np.shares_memory(g, a)


def test_output_is_writeable_and_independent():
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 1))
    y = conv(x, w)
    y[...] = 7.0
    assert x[0, 0, 0] == 1.0
    dx, dw, db = conv_backward(np.ones((1, 1, 5)), x, w)
    dx[...] = 0.0
    dw[...] = 0.0
    db[...] = 0.0


# ----------------------------------------------------------------------------------------
# NaN and Inf propagate (they are not errors)
# ----------------------------------------------------------------------------------------
def test_nan_propagates_to_exactly_the_windows_that_see_it():
    rng = np.random.default_rng(20)
    x, w, b = _case(rng, (2, 1, 8, 8), (2, 1, 3, 3))
    x[1, 0, 4, 2] = np.nan
    y = conv(x, w, b, padding=1)
    hit = np.zeros_like(y, dtype=bool)
    hit[1, :, 3:6, 1:4] = True  # outputs whose 3x3 window (padding 1) covers (4, 2)
    np.testing.assert_array_equal(np.isnan(y), hit)
    assert_close(y[0], reference_conv(x[:1], w, b, padding=1)[0])
    dx, dw, db = conv_backward(np.ones_like(y), x, w, padding=1)
    assert np.isnan(dw).all()  # every tap of every filter meets the NaN in some window
    assert np.isfinite(dx).all() and np.isfinite(db).all()  # dx depends on w and dy only


def test_inf_propagates():
    x = np.zeros((1, 1, 5))
    x[0, 0, 2] = np.inf
    y = conv(x, np.ones((1, 1, 2)))
    assert y[0, 0].tolist() == [0.0, np.inf, np.inf, 0.0]
    y = conv(x, np.array([[[1.0, -1.0]]]))
    assert y[0, 0].tolist()[1:3] == [-np.inf, np.inf] and y[0, 0, 0] == 0.0


def test_nan_in_dy_propagates():
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 2))
    dy = np.zeros((1, 1, 4))
    dy[0, 0, 1] = np.nan
    dx, dw, db = conv_backward(dy, x, w)
    assert np.isnan(dx[0, 0]).tolist() == [False, True, True, False, False]
    assert np.isnan(dw).all() and np.isnan(db).all()


def test_impossible_output_is_refused_before_allocating():
    # A 10^6 x 10^6 image (a broadcast view: no memory) with 64 filters would need ~238,000 GiB.
    from convscope.errors import ResourceError

    x = np.broadcast_to(np.zeros(1, dtype=np.float32), (1, 1, 10**6, 10**6))
    w = np.ones((64, 1, 3, 3), dtype=np.float32)
    with pytest.raises(ResourceError) as info:
        conv(x, w, padding=1)
    assert "GiB" in str(info.value) and "64" in str(info.value)
    assert isinstance(info.value, MemoryError)


def test_empty_batch():
    x, w = np.zeros((0, 2, 5, 5)), np.ones((3, 2, 3, 3))
    y = conv(x, w, np.ones(3), padding=1)
    assert y.shape == (0, 3, 5, 5)
    dx, dw, db = conv_backward(np.zeros(y.shape), x, w, padding=1)
    assert dx.shape == x.shape and not dw.any() and not db.any()
