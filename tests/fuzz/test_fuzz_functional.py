"""Fuzz every public function of convscope.functional (and the public shape arithmetic).

Each op has a builder of valid random calls. Two kinds of test drive it:

* ``test_every_malformation``: one valid call per op, then every argument in turn replaced
  by every malformed value of its kind (wrong ndim, empty axes, channels-last, other
  dtypes, not-an-array, huge broadcast views, layouts, NaN/Inf; bad ints, floats, bools
  and mode strings). Deterministic and exhaustive.
* ``test_random_calls``: hypothesis draws the op, a random valid geometry and a random
  malformation (sometimes two at once).

Every call must end in a valid result or a ConvscopeError naming the argument (see
``_harness.judge``); layout changes must give the same result as the contiguous input;
NaN must flow through forward ops to exactly the outputs that see it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope.functional as F
from convscope import shapes
from convscope.errors import ConvscopeError, ResourceError
from convscope.functional import windows

from ._harness import (
    array_malformations,
    bool_malformations,
    float_malformations,
    int_malformations,
    judge,
    same_result,
    scalar_malformations,
    string_malformations,
)

# NaN, Inf and huge values are fed in on purpose; the warnings they raise are expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CATEGORY = "functional"

# ----------------------------------------------------------------------------------------
# Op table
# ----------------------------------------------------------------------------------------
ALIASES = {
    "x": ("x", "input"),
    "w": ("w", "weight", "kernel"),
    "b": ("b", "bias"),
    "dy": ("dy",),
    "padding": ("padding", "padded"),
    "kernel_size": ("kernel_size", "kernel", "window"),
    "filter_size": ("filter_size", "filter"),
    "targets": ("targets",),
    "logits": ("logits",),
    "y_pred": ("y_pred",),
    "y": ("y",),
    "z": ("z",),
    # max_pool_with_argmax_backward: the geometry checks speak of the x whose shape this is.
    "x_shape": ("x_shape", "x"),
}


@dataclasses.dataclass
class Op:
    """A public function, how to build a valid call, and what kind each argument is."""

    name: str
    fn: Callable[..., Any]
    build: Callable[[np.random.Generator], dict[str, Any]]
    #: argument -> "array" (channels on axis 1), "array_flat" (no channel axis),
    #: "tuple" (int or per-axis tuple), "int", "float", "bool", "mode", "shape".
    kinds: dict[str, str]
    #: forward ops: NaN in ``nan_arg`` must reach exactly the outputs ``nan_mask`` names.
    nan_mask: Callable[[dict[str, Any]], np.ndarray] | None = None
    nan_arg: str = "x"

    def aliases(self, arg: str) -> tuple[str, ...]:
        return ALIASES.get(arg, (arg,))


def _dtype(rng) -> Any:
    return np.float32 if rng.random() < 0.5 else np.float64


def _arr(rng, shape, dtype) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _padding_form(rng, ndim: int, limits: tuple[int, ...]) -> Any:
    """A random padding in one of the accepted forms, each side <= its limit."""
    choice = rng.integers(5)
    if choice == 0:
        return int(rng.integers(0, min(limits) + 1))
    if choice == 1:
        return tuple(int(rng.integers(0, lim + 1)) for lim in limits)
    if choice == 2:
        return tuple((int(rng.integers(0, lim + 1)), int(rng.integers(0, lim + 1))) for lim in limits)
    if choice == 3:
        return "valid"
    return 0


def build_conv(rng) -> dict[str, Any]:
    dt = _dtype(rng)
    for _ in range(100):
        ndim = int(rng.integers(1, 4))
        g = int(rng.integers(1, 3))
        c_in, c_out = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, ndim))
        d = tuple(int(v) for v in rng.integers(1, 3, ndim))
        s = tuple(int(v) for v in rng.integers(1, 3, ndim))
        n = tuple(int(v) for v in rng.integers(2, 7 - ndim, ndim))
        mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
        padding = "same" if rng.random() < 0.2 else _padding_form(rng, ndim, (1,) * ndim)
        batch = int(rng.integers(1, 3))
        try:
            shapes.conv_geometry((batch, c_in, *n), (c_out, c_in // g, *k), s, padding, d, g, mode)
        except ConvscopeError:
            continue
        return dict(
            x=_arr(rng, (batch, c_in, *n), dt), w=_arr(rng, (c_out, c_in // g, *k), dt),
            b=_arr(rng, (c_out,), dt) if rng.random() < 0.7 else None,
            stride=s, padding=padding, dilation=d, groups=g, padding_mode=mode,
            flip=bool(rng.random() < 0.3),
        )
    raise AssertionError("no valid conv geometry drawn")


def build_conv_backward(rng) -> dict[str, Any]:
    kw = build_conv(rng)
    kw.pop("b")
    y = F.conv(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), **kw)


def _pool_args(rng, avg: bool) -> dict[str, Any]:
    dt = _dtype(rng)
    for _ in range(100):
        ndim = int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 4, ndim))
        d = (1,) * ndim if avg else tuple(int(v) for v in rng.integers(1, 3, ndim))
        s = None if rng.random() < 0.3 else tuple(int(v) for v in rng.integers(1, 3, ndim))
        n = tuple(int(v) for v in rng.integers(2, 7 - ndim, ndim))
        limit = tuple(kk // 2 for kk in k)  # PyTorch's rule for both: at most half the kernel
        padding = _padding_form(rng, ndim, limit)
        ceil = bool(rng.random() < 0.3)
        x_shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3)), *n)
        try:
            shapes.pool_geometry(x_shape, k, s, padding, d, ceil, "pool")
        except ConvscopeError:
            continue
        # An int kernel_size means "x.ndim - 2 axes"; use it when every axis agrees.
        kernel_size = k[0] if len(set(k)) == 1 and rng.random() < 0.3 else k
        kw = dict(x=_arr(rng, x_shape, dt), kernel_size=kernel_size, stride=s, padding=padding,
                  ceil_mode=ceil)
        if avg:
            kw["count_include_pad"] = bool(rng.random() < 0.5)
        else:
            kw["dilation"] = d
        return kw
    raise AssertionError("no valid pool geometry drawn")


def build_max_pool(rng):
    kw = _pool_args(rng, avg=False)
    kw["return_indices"] = bool(rng.random() < 0.3)
    return kw


def build_max_pool_backward(rng):
    kw = _pool_args(rng, avg=False)
    y = F.max_pool(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), **kw)


def build_avg_pool(rng):
    return _pool_args(rng, avg=True)


def build_avg_pool_backward(rng):
    kw = _pool_args(rng, avg=True)
    y = F.avg_pool(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), **kw)


def _tuple_kernel(kw):
    """kernel_size as a tuple: with an int, a stride tuple that does not match x's spatial
    axes is reported as a stride error only (shapes.pool_geometry), not naming x."""
    k = kw["kernel_size"]
    if isinstance(k, int):
        kw["kernel_size"] = (k,) * (kw["x"].ndim - 2)
    return kw


def build_max_pool_with_argmax(rng):
    return _tuple_kernel(_pool_args(rng, avg=False))


def build_max_pool_with_argmax_backward(rng):
    kw = _tuple_kernel(_pool_args(rng, avg=False))
    y, argmax = F.max_pool_with_argmax(**kw)
    x = kw.pop("x")
    return dict(dy=_arr(rng, y.shape, y.dtype), argmax=argmax, x_shape=x.shape, **kw)


def _bn_arrays(rng, training: bool) -> dict[str, Any]:
    dt = _dtype(rng)
    ndim = int(rng.integers(0, 3))
    shape = (int(rng.integers(2, 4)), int(rng.integers(1, 4)), *(int(v) for v in rng.integers(1, 4, ndim)))
    c = shape[1]
    kw = dict(x=_arr(rng, shape, dt), weight=_arr(rng, (c,), dt), bias=_arr(rng, (c,), dt))
    if not training:
        kw.update(running_mean=_arr(rng, (c,), dt), running_var=rng.uniform(0.5, 2, c).astype(dt))
    return kw


def build_batch_norm(rng):
    """Running statistics (eval): the statistics are arguments, and never updated."""
    return dict(training=False, momentum=float(rng.uniform(0, 1)), eps=1e-5,
                return_stats=bool(rng.random() < 0.3), **_bn_arrays(rng, training=False))


def build_batch_norm_training(rng):
    """Batch statistics (no running statistics given, so nothing is updated in place)."""
    return dict(training=True, momentum=0.1, eps=float(rng.uniform(1e-6, 1e-2)),
                return_stats=bool(rng.random() < 0.3), **_bn_arrays(rng, training=True))


def build_batch_norm_backward(rng):
    kw = _bn_arrays(rng, training=True)
    kw.pop("bias")
    y, mean, invstd = F.batch_norm(kw["x"], kw["weight"], training=True, return_stats=True)
    stats = {"stats": (mean, invstd)} if rng.random() < 0.5 else {}
    return dict(dy=_arr(rng, y.shape, y.dtype), training=True, eps=1e-5, **stats, **kw)


def build_batch_norm_relu_backward(rng):
    kw = build_batch_norm_backward(rng)
    y = F.batch_norm_relu(kw["x"], kw["weight"], training=True)
    return dict(y=y, **kw)


def build_blur_pool(rng):
    dt = _dtype(rng)
    ndim = int(rng.integers(1, 4))
    f = int(rng.integers(1, 5))
    n = tuple(int(v) for v in rng.integers(max(2, f), 7, ndim))
    return dict(x=_arr(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 3)), *n), dt),
                filter_size=f, stride=int(rng.integers(1, 3)),
                padding_mode=str(rng.choice(["reflect", "zeros", "replicate", "circular"])))


def build_blur_pool_backward(rng):
    kw = build_blur_pool(rng)
    y = F.blur_pool(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), **kw)


def _any_shape(rng) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(1, 4, int(rng.integers(1, 5))))


def build_unary(rng):
    return dict(x=_arr(rng, _any_shape(rng), _dtype(rng)))


def build_unary_backward(rng):
    kw = build_unary(rng)
    return dict(dy=_arr(rng, kw["x"].shape, kw["x"].dtype), **kw)


def build_adaptive(rng):
    return dict(x=_arr(rng, (2, 3, 5, 4), _dtype(rng)), output_size=(2, 3))


def build_adaptive_backward(rng):
    kw = build_adaptive(rng)
    return dict(dy=_arr(rng, (2, 3, 2, 3), kw["x"].dtype), **kw)


def build_adaptive_argmax_backward(rng):
    kw = build_adaptive(rng)
    y, argmax = F.adaptive_max_pool_with_argmax(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), argmax=argmax, x_shape=kw["x"].shape)


def build_leaky(rng):
    return dict(negative_slope=float(rng.uniform(0, 0.5)), **build_unary(rng))


def build_leaky_backward(rng):
    return dict(negative_slope=float(rng.uniform(0, 0.5)), **build_unary_backward(rng))


def build_softmax(rng):
    kw = build_unary(rng)
    return dict(axis=int(rng.integers(-kw["x"].ndim, kw["x"].ndim)), **kw)


def build_softmax_backward(rng):
    kw = build_unary_backward(rng)
    return dict(axis=int(rng.integers(-kw["x"].ndim, kw["x"].ndim)), **kw)


def build_relu_jacobian(rng):
    return dict(z=_arr(rng, (int(rng.integers(1, 6)),), _dtype(rng)))


def build_linear(rng):
    dt = _dtype(rng)
    n, i, o = (int(v) for v in rng.integers(1, 5, 3))
    return dict(x=_arr(rng, (n, i), dt), w=_arr(rng, (o, i), dt),
                b=_arr(rng, (o,), dt) if rng.random() < 0.7 else None)


def build_linear_backward(rng):
    kw = build_linear(rng)
    kw.pop("b")
    return dict(dy=_arr(rng, (kw["x"].shape[0], kw["w"].shape[0]), kw["x"].dtype), **kw)


def build_flatten(rng):
    kw = build_unary(rng)
    return dict(start_dim=int(rng.integers(-kw["x"].ndim, kw["x"].ndim)), **kw)


def build_flatten_backward(rng):
    kw = build_flatten(rng)
    y = F.flatten(**kw)
    return dict(dy=_arr(rng, y.shape, y.dtype), x_shape=kw["x"].shape)


def build_squared(rng):
    dt = _dtype(rng)
    shape = (int(rng.integers(1, 4)), *_any_shape(rng)[:2])
    return dict(y_pred=_arr(rng, shape, dt), y=_arr(rng, shape, dt))


def build_cross_entropy(rng):
    dt = _dtype(rng)
    n, c = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    logits = _arr(rng, (n, c), dt)
    if rng.random() < 0.5:
        targets = rng.integers(0, c, n)
    else:
        p = rng.random((n, c)).astype(dt)
        targets = p / p.sum(axis=1, keepdims=True)
    return dict(logits=logits, targets=targets)


def build_binomial(rng):
    return dict(filter_size=int(rng.integers(1, 8)), ndim=int(rng.integers(1, 4)))


# NaN masks: which outputs see a NaN input (computed by the op itself on a 0/1 mask).
def _mask(kw, arg="x"):
    return np.isnan(kw[arg]).astype(kw[arg].dtype)


def nan_conv(kw):
    w = np.ones_like(kw["w"])
    return F.conv(_mask(kw), w, None, kw["stride"], kw["padding"], kw["dilation"], kw["groups"],
                  kw["padding_mode"]) > 0


def nan_max_pool(kw):
    args = {k: v for k, v in kw.items() if k not in ("x", "return_indices")}
    return F.max_pool(_mask(kw), **args) > 0


def nan_batch_norm_training(kw):
    """Batch statistics: a NaN makes its channel's mean and variance NaN."""
    x = kw["x"]
    axes = (0, *range(2, x.ndim))
    return np.broadcast_to(np.isnan(x).any(axis=axes, keepdims=True), x.shape)


def nan_avg_pool(kw):
    args = {k: v for k, v in kw.items() if k != "x"}
    return F.avg_pool(_mask(kw), **args) > 0


def nan_blur_pool(kw):
    args = {k: v for k, v in kw.items() if k != "x"}
    return F.blur_pool(_mask(kw), **args) > 0


def nan_elementwise(kw):
    return np.isnan(kw["x"])


def nan_softmax(kw):
    return np.broadcast_to(np.isnan(kw["x"]).any(axis=kw["axis"], keepdims=True), kw["x"].shape)


def nan_linear(kw):
    return np.broadcast_to(np.isnan(kw["x"]).any(axis=1, keepdims=True),
                           (kw["x"].shape[0], kw["w"].shape[0]))


def nan_flatten(kw):
    return F.flatten(_mask(kw), kw["start_dim"]) > 0


def nan_loss(kw, arg):
    return np.array(np.isnan(kw[arg]).any())


POOL_KINDS = {"x": "array", "kernel_size": "tuple", "stride": "tuple", "padding": "tuple",
              "ceil_mode": "bool"}
BN_KINDS = {"x": "array", "weight": "array_flat", "bias": "array_flat", "running_mean": "array_flat",
            "running_var": "array_flat", "training": "bool", "momentum": "float", "eps": "float",
            "return_stats": "bool"}

OPS = [
    Op("conv", F.conv, build_conv,
       {"x": "array", "w": "array", "b": "array_flat", "stride": "tuple", "padding": "tuple",
        "dilation": "tuple", "groups": "int", "padding_mode": "mode", "flip": "bool"}, nan_conv),
    Op("conv_backward", F.conv_backward, build_conv_backward,
       {"dy": "array", "x": "array", "w": "array", "stride": "tuple", "padding": "tuple",
        "dilation": "tuple", "groups": "int", "padding_mode": "mode", "flip": "bool"}),
    Op("max_pool", F.max_pool, build_max_pool,
       {**POOL_KINDS, "dilation": "tuple", "return_indices": "bool"}, nan_max_pool),
    Op("max_pool_backward", F.max_pool_backward, build_max_pool_backward,
       {"dy": "array", **POOL_KINDS, "dilation": "tuple"}),
    Op("max_pool_with_argmax", F.max_pool_with_argmax, build_max_pool_with_argmax,
       {**POOL_KINDS, "dilation": "tuple"}, nan_max_pool),
    Op("max_pool_with_argmax_backward", F.max_pool_with_argmax_backward, build_max_pool_with_argmax_backward,
       {"dy": "array", "argmax": "array", "x_shape": "shape", "kernel_size": "tuple",
        "stride": "tuple", "padding": "tuple", "dilation": "tuple", "ceil_mode": "bool"}),
    Op("batch_norm", F.batch_norm, build_batch_norm, BN_KINDS, nan_elementwise),
    Op("batch_norm_training", F.batch_norm, build_batch_norm_training,
       {k: v for k, v in BN_KINDS.items() if not k.startswith("running")}, nan_batch_norm_training),
    Op("batch_norm_relu", F.batch_norm_relu, build_batch_norm, BN_KINDS, nan_elementwise),
    Op("batch_norm_backward", F.batch_norm_backward, build_batch_norm_backward,
       {"dy": "array", "x": "array", "weight": "array_flat", "training": "bool", "eps": "float"}),
    Op("batch_norm_relu_backward", F.batch_norm_relu_backward, build_batch_norm_relu_backward,
       {"dy": "array", "y": "array", "x": "array", "weight": "array_flat", "training": "bool",
        "eps": "float"}),
    Op("avg_pool", F.avg_pool, build_avg_pool,
       {**POOL_KINDS, "count_include_pad": "bool"}, nan_avg_pool),
    Op("avg_pool_backward", F.avg_pool_backward, build_avg_pool_backward,
       {"dy": "array", **POOL_KINDS, "count_include_pad": "bool"}),
    Op("blur_pool", F.blur_pool, build_blur_pool,
       {"x": "array", "filter_size": "int", "stride": "tuple", "padding_mode": "mode"},
       nan_blur_pool),
    Op("blur_pool_backward", F.blur_pool_backward, build_blur_pool_backward,
       {"dy": "array", "x": "array", "filter_size": "int", "stride": "tuple",
        "padding_mode": "mode"}),
    Op("binomial_filter", F.binomial_filter, build_binomial, {"filter_size": "int", "ndim": "int"}),
    Op("relu", F.relu, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("relu_backward", F.relu_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("relu_jacobian", F.relu_jacobian, build_relu_jacobian, {"z": "array_flat"}),
    Op("leaky_relu", F.leaky_relu, build_leaky, {"x": "array_flat", "negative_slope": "float"},
       nan_elementwise),
    Op("leaky_relu_backward", F.leaky_relu_backward, build_leaky_backward,
       {"dy": "array_flat", "x": "array_flat", "negative_slope": "float"}),
    Op("sigmoid", F.sigmoid, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("sigmoid_backward", F.sigmoid_backward, build_unary_backward,
       {"dy": "array_flat", "x": "array_flat"}),
    Op("tanh", F.tanh, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("tanh_backward", F.tanh_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("relu6", F.relu6, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("relu6_backward", F.relu6_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("hardsigmoid", F.hardsigmoid, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("hardsigmoid_backward", F.hardsigmoid_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("hardswish", F.hardswish, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("hardswish_backward", F.hardswish_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("silu", F.silu, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("silu_backward", F.silu_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("gelu", F.gelu, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("gelu_backward", F.gelu_backward, build_unary_backward, {"dy": "array_flat", "x": "array_flat"}),
    Op("erf", F.erf, build_unary, {"x": "array_flat"}, nan_elementwise),
    Op("adaptive_avg_pool", F.adaptive_avg_pool, build_adaptive, {"x": "array", "output_size": "tuple"}),
    Op("adaptive_max_pool", F.adaptive_max_pool, build_adaptive, {"x": "array", "output_size": "tuple"}),
    Op("adaptive_max_pool_with_argmax", F.adaptive_max_pool_with_argmax, build_adaptive,
       {"x": "array", "output_size": "tuple"}),
    Op("adaptive_avg_pool_backward", F.adaptive_avg_pool_backward, build_adaptive_backward,
       {"dy": "array", "x": "array", "output_size": "tuple"}),
    Op("adaptive_max_pool_backward", F.adaptive_max_pool_backward, build_adaptive_backward,
       {"dy": "array", "x": "array", "output_size": "tuple"}),
    Op("adaptive_max_pool_with_argmax_backward", F.adaptive_max_pool_with_argmax_backward,
       build_adaptive_argmax_backward, {"dy": "array", "argmax": "array", "x_shape": "shape"}),
    Op("softmax", F.softmax, build_softmax, {"x": "array_flat", "axis": "int"}, nan_softmax),
    Op("softmax_backward", F.softmax_backward, build_softmax_backward,
       {"dy": "array_flat", "x": "array_flat", "axis": "int"}),
    Op("log_softmax", F.log_softmax, build_softmax, {"x": "array_flat", "axis": "int"}, nan_softmax),
    Op("log_softmax_backward", F.log_softmax_backward, build_softmax_backward,
       {"dy": "array_flat", "x": "array_flat", "axis": "int"}),
    Op("linear", F.linear, build_linear, {"x": "array_flat", "w": "array_flat", "b": "array_flat"},
       nan_linear),
    Op("linear_backward", F.linear_backward, build_linear_backward,
       {"dy": "array_flat", "x": "array_flat", "w": "array_flat"}),
    Op("flatten", F.flatten, build_flatten, {"x": "array_flat", "start_dim": "int"}, nan_flatten),
    Op("flatten_backward", F.flatten_backward, build_flatten_backward,
       {"dy": "array_flat", "x_shape": "shape"}),
    Op("squared_loss", F.squared_loss, build_squared, {"y_pred": "array_flat", "y": "array_flat"},
       lambda kw: nan_loss(kw, "y_pred"), "y_pred"),
    Op("squared_loss_backward", F.squared_loss_backward, build_squared,
       {"y_pred": "array_flat", "y": "array_flat"}),
    Op("cross_entropy", F.cross_entropy, build_cross_entropy,
       {"logits": "array_flat", "targets": "targets"}, lambda kw: nan_loss(kw, "logits"), "logits"),
    Op("cross_entropy_backward", F.cross_entropy_backward, build_cross_entropy,
       {"logits": "array_flat", "targets": "targets"}),
]
OPS_BY_NAME = {op.name: op for op in OPS}


def test_every_public_function_is_fuzzed():
    """A new public function in convscope.functional must get an entry in OPS."""
    public = {
        name for name in dir(F)
        if not name.startswith("_") and callable(getattr(F, name))
        and getattr(getattr(F, name), "__module__", "").startswith("convscope.functional")
    }
    # Budget setters are fuzzed in test_limits_setters below.
    covered = set(OPS_BY_NAME) | {"get_workspace_budget", "set_workspace_budget"}
    assert public <= covered, f"not fuzzed: {sorted(public - covered)}"


# ----------------------------------------------------------------------------------------
# Malformations per argument kind
# ----------------------------------------------------------------------------------------
def _ndim_of(kw: dict[str, Any]) -> int:
    for key in ("w", "x", "dy"):
        a = kw.get(key)
        if isinstance(a, np.ndarray) and a.ndim >= 3 and key in ("w", "x", "dy"):
            return a.ndim - 2
    return 1


def malformations(op: Op, arg: str, kw: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(label, value, kind) replacements for ``arg`` in the valid call ``kw``."""
    kind = op.kinds[arg]
    value = kw.get(arg)
    if kind in ("array", "array_flat"):
        if value is None:  # the optional bias left out: malform a valid one
            value = np.ones(kw["w"].shape[0], dtype=kw["w"].dtype)
        return array_malformations(value, 1 if kind == "array" else None)
    if kind == "targets":
        cases = array_malformations(value, None)
        n, c = kw["logits"].shape
        cases += [
            ("label -1", np.full(n, -1), "bad"),
            ("label == C", np.full(n, c), "bad"),
            ("label huge", np.full(n, 2**62), "bad"),
            ("labels as float (N,)", np.zeros(n, dtype=kw["logits"].dtype), "bad"),
            ("bool labels", np.zeros(n, dtype=bool), "bad"),
            ("labels (N, 1)", np.zeros((n, 1), dtype=np.int64), "bad"),
            ("labels (N + 1,)", np.zeros(n + 1, dtype=np.int64), "bad"),
            ("one-hot int (N, C)", np.eye(c, dtype=np.int64)[np.zeros(n, dtype=int)], "bad"),
            ("probabilities (N, C + 1)", np.full((n, c + 1), 1.0 / (c + 1), kw["logits"].dtype), "bad"),
            ("uint8 labels", np.zeros(n, dtype=np.uint8), "bad"),
            ("python list of ints", [0] * n, "bad"),
        ]
        return cases
    if kind == "tuple":
        return [(label, v, "bad") for label, v in int_malformations(_ndim_of(kw))]
    if kind == "int":
        return [(label, v, "bad") for label, v in scalar_malformations()]
    if kind == "float":
        return [(label, v, "bad") for label, v in float_malformations()]
    if kind == "bool":
        return [(label, v, "bad") for label, v in bool_malformations()]
    if kind == "mode":
        return [(label, v, "bad") for label, v in string_malformations()]
    if kind == "shape":
        return [(label, v, "bad") for label, v in int_malformations(len(value))] + [
            ("negative entry", (-1,) + tuple(value[1:]), "bad"),
            ("huge entry", (2**62,) + tuple(value[1:]), "bad"),
            ("string", "abc", "bad"),
            ("generator", (v for v in value), "bad"),
            ("array shape", np.array(value), "bad"),
        ]
    raise AssertionError(kind)


def _names(op: Op, *args: str) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    for a in args:
        out += op.aliases(a)
    return out


GEOMETRY_ARGS = ("kernel_size", "stride", "padding", "dilation", "filter_size", "ceil_mode",
                 "w", "x")


def run_case(op: Op, kw: dict[str, Any], arg: str, label: str, value: Any, kind: str) -> None:
    """Judge ``op`` with ``arg`` replaced by ``value``; check layout and NaN rules."""
    call = dict(kw, **{arg: value})
    context = f"{op.name}({arg} = {label}) with valid call {_summ(kw)}"
    names = _names(op, arg)
    if op.name.endswith("_backward") and arg != "dy":
        # A backward recomputes the forward's output shape from its arguments; when one of
        # them changes, the message may rightly be about dy no longer matching that shape.
        names += ("dy",)
    if arg in GEOMETRY_ARGS:
        # "kernel/window size k does not fit the padded input" names the geometry as a whole
        # and shows every number of the output-size formula: any of them may be the culprit.
        names += ("kernel", "window", "padded", "filter")
    outcome = judge(lambda: op.fn(**call), names, category=CATEGORY,
                    expect="ok" if kind in ("layout", "values") else "either", context=context)
    if kind == "layout":
        reference = dict(kw, **{arg: np.array(value, copy=True, order="C")})
        same_result(outcome.value, op.fn(**reference), context)
    if kind == "values" and op.nan_mask is not None and arg == op.nan_arg and "NaN" in label:
        y = outcome.value[0] if isinstance(outcome.value, tuple) else outcome.value
        got = np.isnan(np.asarray(y))
        want = np.asarray(op.nan_mask(call))
        assert got.shape == want.shape and np.array_equal(got, want), (
            f"{context}: NaN did not propagate to exactly the outputs whose windows hold it: "
            f"{int(got.sum())} NaN outputs, {int(want.sum())} expected"
        )
    if outcome.ok:
        _check_result_arrays(outcome.value, context)


def _check_result_arrays(value: Any, context: str) -> None:
    """Returned arrays are real ndarrays, never object/complex."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, np.ndarray):
            assert v.dtype.kind in "fiub", f"{context}: result dtype {v.dtype}"


def _summ(kw: dict[str, Any]) -> str:
    parts = []
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            parts.append(f"{k}={v.dtype.name}{v.shape}")
        else:
            parts.append(f"{k}={v!r}")
    return "{" + ", ".join(parts) + "}"


@pytest.mark.parametrize("name", [op.name for op in OPS])
def test_every_malformation(name):
    op = OPS_BY_NAME[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    kw = op.build(rng)
    op.fn(**kw)
    for arg in op.kinds:
        for label, value, kind in malformations(op, arg, kw):
            run_case(op, kw, arg, label, value, kind)


@settings(max_examples=250)
@given(
    name=st.sampled_from([op.name for op in OPS]),
    seed=st.integers(0, 2**32 - 1),
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=2),
)
def test_random_calls(name, seed, picks):
    """Random valid geometry, then one or two arguments malformed at random."""
    op = OPS_BY_NAME[name]
    rng = np.random.default_rng(seed)
    kw = op.build(rng)
    judge(lambda: op.fn(**kw), category=CATEGORY, expect="ok",
          context=f"{op.name} valid call {_summ(kw)}")
    args = list(op.kinds)
    call, bad, labels, kinds = dict(kw), [], [], []
    for pick in picks:
        arg = args[pick % len(args)]
        cases = malformations(op, arg, kw)
        label, value, kind = cases[(pick // len(args)) % len(cases)]
        call[arg] = value
        bad.append(arg)
        labels.append(f"{arg} = {label}")
        kinds.append(kind)
    if len(bad) == 1:
        run_case(op, kw, bad[0], labels[0].split(" = ", 1)[1], call[bad[0]], kinds[0])
        return
    strict = all(k in ("layout", "values") for k in kinds)
    context = f"{op.name}({'; '.join(labels)}) with valid call {_summ(kw)}"
    judge(lambda: op.fn(**call), _names(op, *bad), category=CATEGORY,
          expect="ok" if strict else "either", context=context)


# ----------------------------------------------------------------------------------------
# Pathological sizes: refused quickly, with the arithmetic
# ----------------------------------------------------------------------------------------
HUGE_CASES = [
    ("conv 1-tap kernel on a huge 1-D input",
     lambda: F.conv(np.broadcast_to(np.float32(1), (1, 1, 2**40)), np.ones((1, 1, 1), np.float32))),
    ("conv huge padding",
     lambda: F.conv(np.ones((1, 1, 4), np.float32), np.ones((1, 1, 1), np.float32), padding=2**40)),
    ("conv huge batch",
     lambda: F.conv(np.broadcast_to(np.float32(1), (2**40, 1, 4)), np.ones((1, 1, 3), np.float32))),
    ("conv many filters",
     lambda: F.conv(np.ones((1, 1, 4, 4), np.float32),
                    np.broadcast_to(np.float32(1), (2**36, 1, 1, 1)))),
    ("conv_backward huge input",
     lambda: F.conv_backward(np.broadcast_to(np.float32(1), (1, 1, 2**40)),
                             np.broadcast_to(np.float32(1), (1, 1, 2**40)),
                             np.ones((1, 1, 1), np.float32))),
    ("max_pool kernel 1 on a huge input",
     lambda: F.max_pool(np.broadcast_to(np.float32(1), (1, 1, 2**40)), 1)),
    ("avg_pool kernel 1 on a huge input",
     lambda: F.avg_pool(np.broadcast_to(np.float32(1), (1, 1, 2**20, 2**20)), 1)),
    ("max_pool_backward kernel 1 on a huge input",
     lambda: F.max_pool_backward(np.broadcast_to(np.float32(1), (1, 1, 2**40)),
                                 np.broadcast_to(np.float32(1), (1, 1, 2**40)), 1)),
    ("max_pool_with_argmax kernel 1 on a huge input",
     lambda: F.max_pool_with_argmax(np.broadcast_to(np.float32(1), (1, 1, 2**40)), 1)),
    ("max_pool_with_argmax_backward to a huge input",
     lambda: F.max_pool_with_argmax_backward(np.ones((1, 1, 1), np.float32), np.zeros((1, 1, 1), np.uint8),
                                             (1, 1, 2**40), 2**40)),
    ("batch_norm on a huge input",
     lambda: F.batch_norm(np.broadcast_to(np.float32(1), (2**20, 2, 2**19)))),
    ("blur_pool on a huge input",
     lambda: F.blur_pool(np.broadcast_to(np.float32(1), (1, 1, 2**40)), 1, 1)),
    ("relu on a huge input", lambda: F.relu(np.broadcast_to(np.float32(1), (2**20, 2**20)))),
    ("sigmoid_backward on a huge input",
     lambda: F.sigmoid_backward(np.broadcast_to(np.float32(1), (2**20, 2**20)),
                                np.broadcast_to(np.float32(1), (2**20, 2**20)))),
    ("softmax on a huge input", lambda: F.softmax(np.broadcast_to(np.float32(1), (2**20, 2**20)))),
    ("linear to many features",
     lambda: F.linear(np.ones((2**20, 4), np.float32), np.broadcast_to(np.float32(1), (2**20, 4)))),
    ("linear_backward huge",
     lambda: F.linear_backward(np.broadcast_to(np.float32(1), (2**20, 2**20)),
                               np.ones((2**20, 1), np.float32), np.ones((2**20, 1), np.float32))),
    ("flatten of a broadcast view",
     lambda: F.flatten(np.broadcast_to(np.float32(1), (2**20, 2**20)))),
    ("flatten_backward to a huge shape",
     lambda: F.flatten_backward(np.broadcast_to(np.float32(1), (1, 2**40)), (1, 2**20, 2**20))),
    ("squared_loss huge", lambda: F.squared_loss(np.broadcast_to(np.float32(1), (2**20, 2**20)),
                                                 np.broadcast_to(np.float32(0), (2**20, 2**20)))),
    ("cross_entropy huge", lambda: F.cross_entropy(np.broadcast_to(np.float32(1), (2**20, 2**20)),
                                                   np.zeros(2**20, np.int64))),
    ("relu_jacobian of a long vector",
     lambda: F.relu_jacobian(np.broadcast_to(np.float32(1), (2**20,)))),
    ("binomial_filter in many dimensions", lambda: F.binomial_filter(7, 64)),
]


@pytest.mark.parametrize("label", [c[0] for c in HUGE_CASES])
def test_pathological_sizes_are_refused(label):
    """Work over the array limit ends in ResourceError with the arithmetic, fast."""
    call = dict(HUGE_CASES)[label]
    outcome = judge(call, ("input", "output", "x", "dy", "w", "padded", "ndim", "filter_size",
                           "logits", "y_pred", "x_shape", "z", "padding", "batch"),
                    category=CATEGORY, context=label)
    if not outcome.ok:
        assert isinstance(outcome.error, (ResourceError, ConvscopeError))
        if isinstance(outcome.error, ResourceError):
            assert "bytes" in str(outcome.error) and "limit" in str(outcome.error)
    else:
        # Reductions (losses) may legitimately finish on a broadcast view without copying.
        assert np.ndim(outcome.value) == 0, f"{label}: returned {outcome.value!r}"


# ----------------------------------------------------------------------------------------
# Public arithmetic helpers and global settings
# ----------------------------------------------------------------------------------------
ARITH = [
    ("conv_output_size", shapes.conv_output_size, dict(n=10, k=3, p=1, s=2, d=1)),
    ("pool_output_size", shapes.pool_output_size, dict(n=10, k=3, p=1, s=2, d=1, ceil_mode=False)),
    ("key_equation_48_ceil", shapes.key_equation_48_ceil, dict(n=10, k=3, p=1, s=2)),
    ("key_equation_48_floor", shapes.key_equation_48_floor, dict(n=10, k=3, p=1, s=2)),
    ("same_padding", shapes.same_padding, dict(n=10, k=3, s=2, d=1)),
    # Only the user's value is fuzzed: ndim, name and op come from convscope itself.
    ("normalize_int", lambda value: shapes.normalize_int(value, "groups", "op", 1), dict(value=2)),
    ("normalize_tuple", lambda value: shapes.normalize_tuple(value, 2, "stride", "op"),
     dict(value=2)),
    ("normalize_padding", lambda padding: shapes.normalize_padding(padding, 2, "op"),
     dict(padding=1)),
    ("conv_geometry", shapes.conv_geometry,
     dict(x_shape=(1, 2, 5, 5), w_shape=(3, 2, 3, 3), stride=1, padding=0, dilation=1, groups=1)),
    ("pool_geometry", shapes.pool_geometry, dict(x_shape=(1, 2, 5, 5), kernel_size=2, stride=None,
                                                 padding=0, dilation=1, ceil_mode=False)),
    ("set_array_limit", lambda nbytes: windows.set_array_limit(windows.set_array_limit(nbytes)),
     dict(nbytes=2**20)),
    ("set_workspace_budget",
     lambda nbytes: windows.set_workspace_budget(windows.set_workspace_budget(nbytes)),
     dict(nbytes=2**20)),
]


@pytest.mark.parametrize("name", [a[0] for a in ARITH])
def test_arithmetic_helpers(name):
    """The public size arithmetic refuses nonsense sizes with a clean, named error."""
    _, fn, valid = next(a for a in ARITH if a[0] == name)
    fn(**valid)
    limit_before = windows.get_array_limit()
    budget_before = windows.get_workspace_budget()
    try:
        for arg, value in valid.items():
            if isinstance(value, tuple):
                cases = [(label, v) for label, v in int_malformations(len(value))] + [
                    ("negative entry", (-1,) + value[1:]), ("zero entry", (0,) + value[1:]),
                    ("string", "abc"), ("float entry", (2.5,) + value[1:]),
                    ("huge entries", (2**62,) * len(value)),
                ]
            elif isinstance(value, bool):
                cases = bool_malformations()
            else:
                cases = int_malformations(1)
            for label, bad in cases:
                call = dict(valid, **{arg: bad})
                names = {"value": ("groups", "stride"), "nbytes": ("limit", "budget"),
                         "x_shape": ("x_shape", "x"), "w_shape": ("w_shape", "weight"),
                         }.get(arg, (arg,)) + (("kernel", "window") if "geometry" in name else ())
                judge(lambda: fn(**call), names, category=CATEGORY,
                      context=f"{name}({arg} = {label})")
    finally:
        windows.set_array_limit(limit_before)
        windows.set_workspace_budget(budget_before)
