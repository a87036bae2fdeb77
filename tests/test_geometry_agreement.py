"""The explainer and the library agree on every window geometry (issue 10).

For a few hundred random geometries of convolution and of every pooling (max, average,
blur), the explain traces (``trace_conv``, ``trace_pool``), the functional ops and the layers'
``output_shape`` must take the same decision (compute, or refuse with a convscope error) and,
when they compute, give the same output shape and values. One rule per question lives in
``convscope.shapes``; this test is what keeps the explainer from drifting from it.
"""

from __future__ import annotations

import numpy as np
import pytest

from convscope import functional as F
from convscope import nn
from convscope.errors import ConvscopeError
from convscope.explain import trace_conv, trace_pool

MODES = ("zeros", "reflect", "replicate", "circular")
CASES = 160          # per kind: 640 geometries in all


def _outcome(run):
    """``("ok", shape, value)`` or ``("refused", error class)``."""
    try:
        value = run()
    except ConvscopeError as exc:
        return ("refused", type(exc).__name__, str(exc))
    value = np.asarray(value)
    return ("ok", value.shape, value)


def _padding(rng, ndim, same_allowed):
    form = rng.integers(0, 4 if same_allowed else 3)
    if form == 0:
        return int(rng.integers(0, 4))
    if form == 1:
        return tuple(int(v) for v in rng.integers(0, 4, ndim))
    if form == 2:
        return tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (ndim, 2)))
    return "same"


def _agree(trace, op, layer, label):
    """Same decision everywhere; when all compute, one output shape and the same numbers.

    Every outcome is batched: ``(1, C, *out)`` (the layer's an array of zeros of its shape).
    """
    decisions = {name: o[0] for name, o in (("trace", trace), ("op", op), ("layer", layer))}
    assert len(set(decisions.values())) == 1, (label, decisions, trace[2:3], op[2:3], layer[2:3])
    if trace[0] == "ok":
        assert trace[1] == op[1] == layer[1], (label, trace[1], op[1], layer[1])
        np.testing.assert_allclose(trace[2], op[2], rtol=1e-12, atol=1e-12, err_msg=label)
    return trace[0]


def _geometry(rng):
    ndim = int(rng.integers(1, 3))
    channels = int(rng.integers(1, 3))
    n = tuple(int(v) for v in rng.integers(1, 10, ndim))
    return ndim, channels, n, rng.standard_normal((channels, *n))


def test_convolution_geometries_agree():
    rng = np.random.default_rng(10)
    seen = {"ok": 0, "refused": 0}
    for case in range(CASES):
        ndim, c, n, x = _geometry(rng)
        k = tuple(int(v) for v in rng.integers(1, 6, ndim))
        stride = int(rng.integers(1, 4))
        dilation = int(rng.integers(1, 4))
        padding = _padding(rng, ndim, same_allowed=True)
        mode = MODES[int(rng.integers(0, 4))]
        f = rng.standard_normal((c, *k))
        label = f"conv case {case}: n={n} k={k} s={stride} d={dilation} p={padding!r} {mode}"
        args = dict(stride=stride, padding=padding, dilation=dilation, padding_mode=mode)

        def layer():
            conv = nn.Conv1d if ndim == 1 else nn.Conv2d
            return np.zeros(conv(c, 1, k, bias=False, dtype=np.float64, **args).output_shape(
                (1, c, *n)))

        seen[_agree(_outcome(lambda: trace_conv(x, f, channels=True, **args).y[None, None]),
                    _outcome(lambda: F.conv(x[None], f[None], **args)),
                    _outcome(layer), label)] += 1
    assert min(seen.values()) > 20, seen        # both decisions are exercised


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_max_and_average_pooling_geometries_agree(kind):
    rng = np.random.default_rng(20 if kind == "max" else 30)
    seen = {"ok": 0, "refused": 0}
    for case in range(CASES):
        ndim, c, n, x = _geometry(rng)
        k = tuple(int(v) for v in rng.integers(1, 6, ndim))
        stride = None if rng.random() < 0.3 else int(rng.integers(1, 4))
        dilation = int(rng.integers(1, 4)) if kind == "max" else 1
        padding = _padding(rng, ndim, same_allowed=False)
        ceil_mode = bool(rng.random() < 0.5)
        include = bool(rng.random() < 0.5)
        label = (f"{kind} case {case}: n={n} k={k} s={stride} d={dilation} p={padding!r} "
                 f"ceil={ceil_mode} include_pad={include}")
        if kind == "max":
            trace_args = dict(kind="max", padding=padding, dilation=dilation, ceil_mode=ceil_mode)

            def op():
                return F.max_pool(x[None], k, stride, padding, dilation, ceil_mode)

            def layer():
                pool = nn.MaxPool1d if ndim == 1 else nn.MaxPool2d
                return np.zeros(pool(k, stride, padding, dilation, ceil_mode).output_shape((1, c, *n)))
        else:
            trace_args = dict(kind="avg", padding=padding, ceil_mode=ceil_mode,
                              count_include_pad=include)

            def op():
                return F.avg_pool(x[None], k, stride, padding, ceil_mode, include)

            def layer():
                pool = nn.AvgPool1d if ndim == 1 else nn.AvgPool2d
                return np.zeros(pool(k, stride, padding, ceil_mode, include).output_shape((1, c, *n)))

        seen[_agree(_outcome(lambda: trace_pool(x, k, stride, channels=True, **trace_args).y[None]),
                    _outcome(op), _outcome(layer), label)] += 1
    assert min(seen.values()) > 20, seen


def test_blur_pooling_geometries_agree():
    rng = np.random.default_rng(40)
    seen = {"ok": 0, "refused": 0}
    for case in range(CASES):
        ndim, c, n, x = _geometry(rng)
        f = int(rng.integers(1, 9))                  # 8 is refused (binomial filters up to 7)
        stride = int(rng.integers(1, 4))
        mode = MODES[int(rng.integers(0, 4))]
        label = f"blur case {case}: n={n} f={f} s={stride} {mode}"

        def layer():
            pool = nn.BlurPool1d if ndim == 1 else nn.BlurPool2d
            return np.zeros(pool(c, f, stride, mode).output_shape((1, c, *n)))

        seen[_agree(_outcome(lambda: trace_pool(x, f, stride, kind="blur", padding_mode=mode,
                                                channels=True).y[None]),
                    _outcome(lambda: F.blur_pool(x[None], f, stride, mode)),
                    _outcome(layer), label)] += 1
    assert min(seen.values()) > 20, seen


def test_the_padding_rule_of_the_issue_example():
    """7x7 input, kernel 3, padding 2, dilation 2: PyTorch refuses (padding > k // 2), so do all."""
    x = np.zeros((7, 7))
    for run in (lambda: trace_pool(x, 3, 1, padding=2, dilation=2),
                lambda: F.max_pool(x[None, None], 3, 1, 2, 2),
                lambda: nn.MaxPool2d(3, 1, 2, 2).output_shape((1, 1, 7, 7))):
        assert _outcome(run)[:2] == ("refused", "ConfigError")
