"""The numbers the explainer embeds for the pointwise activations (ReLU6, Hardsigmoid, Hardswish,
SiLU, GELU, Identity, Dropout), Normalize and adaptive pooling recompute every shown value of
those layers in float64, by formulas written out here independently of the library; and a value
with no receptive field says why (a global pooling, a squeeze-and-excitation gate)."""

import math

import numpy as np
import pytest

from convscope import nn
from convscope.functional.adaptive_pool import adaptive_windows
from convscope.nn.graph import GraphBuilder
from convscope.viz import forward_layers
from convscope.viz._explainer_data import backward_passes
from convscope.viz._explainer_slices import adaptive_region
from convscope.viz.html import explainer_parts

from .test_explainer_slices import Embedded, _positions

F64 = np.float64


def _model():
    return nn.Sequential(
        nn.Normalize([0.4, 0.6], [0.2, 0.3], dtype=F64),             # 1
        nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype=F64),             # 2
        nn.Hardswish(),                                              # 3
        nn.Conv2d(3, 3, 3, padding=1, rng=1, dtype=F64),             # 4
        nn.ReLU6(), nn.Hardsigmoid(), nn.SiLU(),                     # 5, 6, 7
        nn.GELU(), nn.GELU("tanh"), nn.Identity(), nn.Dropout(0.3),  # 8, 9, 10, 11
        nn.AdaptiveMaxPool2d(5),                                     # 12: 9 -> 5, overlapping windows
        nn.AdaptiveAvgPool2d((2, 3)),                                # 13: 5 -> (2, 3)
        nn.AdaptiveAvgPool2d(1),                                     # 14: global
        nn.Flatten(), nn.Linear(3, 4, rng=2, dtype=F64))


def _x():
    return np.random.default_rng(3).normal(0.5, 2.0, (2, 9, 9))


def _expected(kind, z, lay, c):
    """Each formula as the notes and PyTorch write it, in float64."""
    if kind == "relu6":
        return min(max(z, 0.0), 6.0)
    if kind == "hardsigmoid":
        return min(max(z + 3.0, 0.0), 6.0) / 6.0
    if kind == "hardswish":
        return z * (min(max(z + 3.0, 0.0), 6.0) / 6.0)
    if kind == "silu":
        return z / (1.0 + math.exp(-z))
    if kind == "gelu" and lay["act"]["approximate"] == "tanh":
        return 0.5 * z * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))
    if kind == "gelu":
        return z * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    if kind == "normalize":
        return (z - lay["norm"]["mean"][c]) / lay["norm"]["std"][c]
    assert kind in ("identity", "dropout")
    return z


EXACT = ("relu6", "hardsigmoid", "identity", "dropout", "normalize", "adaptive_max_pool")


@pytest.mark.parametrize("cap", [24_000, 120])     # the whole maps; small blocks with slices of their own
def test_embedded_numbers_recompute_every_shown_value(cap):
    data = explainer_parts(_model(), _x(), max_layer_numbers=cap).data
    e = Embedded(data)
    kinds = set()
    for lay in data["layers"]:
        kind = lay["kind"]
        if kind not in EXACT + ("hardswish", "silu", "gelu", "adaptive_avg_pool"):
            continue
        kinds.add(kind)
        count = 0
        for c in lay["values"]["channels"]:
            for pos in _positions(lay):
                got = e.output(lay, c, pos)
                if kind.startswith("adaptive"):
                    ad = lay["adaptive"]
                    lo = [i * n // o for i, n, o in zip(pos, ad["n"], ad["out"])]
                    hi = [-(-(i + 1) * n // o) for i, n, o in zip(pos, ad["n"], ad["out"])]
                    window = [e.input(lay, 0, c, [r, q]) for r in range(lo[0], hi[0]) for q in range(lo[1], hi[1])]
                    assert None not in window, (lay["index"], pos)          # every value the window reads
                    want = max(window) if ad["op"] == "max" else math.fsum(window) / len(window)
                else:
                    want = _expected(kind, e.input(lay, 0, c, pos), lay, c)
                if kind in EXACT:
                    assert got == want, (lay["index"], kind, c, pos)
                else:
                    assert abs(got - want) <= 4e-15 * max(1.0, abs(want)), (lay["index"], kind, c, pos, got, want)
                count += 1
        assert count > 0
    assert kinds == set(EXACT + ("hardswish", "silu", "gelu", "adaptive_avg_pool"))


def test_the_inputs_reach_every_regime_of_the_formulas():
    _, acts = forward_layers(_model(), _x())
    z = {a.module.layer_kind: np.asarray(a.x) for a in acts[2:7]}
    assert (z["hardswish"] < -3).any() and (z["hardswish"] > 3).any() and (abs(z["hardswish"]) < 3).any()
    assert (z["relu6"] < 0).any() and (z["relu6"] > 0).any()
    assert (abs(z["hardsigmoid"]) < 3).any()


def test_adaptive_pooling_embeds_the_windows_of_its_tile_only():
    data = explainer_parts(_model(), _x(), max_layer_numbers=120).data
    lay = {layer["index"]: layer for layer in data["layers"]}[12]
    (inp,) = lay["inputs"]
    start, size = lay["values"]["start"], lay["values"]["tile"]
    assert size != [5, 5] and inp.get("data") is not None     # a block; the producer's block does not cover it
    lo, span = adaptive_region([9, 9], [5, 5], start, size)
    assert (inp["start"], inp["tile"]) == (lo, span)
    assert inp["channels"] == lay["values"]["channels"]


@pytest.mark.parametrize("n, out", [(9, 5), (7, 3), (2, 4), (6, 1), (8, 8)])
def test_adaptive_region_is_the_union_of_pytorchs_windows(n, out):
    windows = adaptive_windows(n, out)
    for first in range(out):
        for size in range(1, out - first + 1):
            lo, span = adaptive_region([n], [out], [first], [size])
            assert (lo[0], lo[0] + span[0]) == (windows[first][0], windows[first + size - 1][1])


def _se_graph():
    g = GraphBuilder()
    conv = g.add("conv", nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype=F64), g.input)
    gate = g.add("gate", nn.Hardsigmoid(), g.add("pool", nn.AdaptiveAvgPool2d(1), conv))
    act = g.add("act", nn.Hardswish(), g.add("scale", nn.Mul(), conv, gate))
    flat = g.add("flat", nn.Flatten(), g.add("gap", nn.AdaptiveAvgPool2d(1), act))
    return g.build(g.add("fc", nn.Linear(3, 2, rng=1, dtype=F64), flat))


def test_a_value_without_a_receptive_field_says_why():
    data = explainer_parts(_se_graph(), np.random.default_rng(0).random((2, 6, 6))).data
    reason = {lay["kind"] + str(lay["index"]): lay["field_reason"] for lay in data["layers"]}
    assert reason["conv1"] is None                                   # it has a receptive field
    assert reason["adaptive_avg_pool2"] == "a global pooling: each value reads its whole channel"
    assert reason["hardsigmoid3"] == "after the global pooling of layer 2: each of its values reads its whole channel"
    assert reason["mul4"].startswith("it multiplies by a gate (squeeze-and-excitation) made from the global "
                                     "pooling of layer 2")
    assert reason["hardswish5"] == ("after the squeeze-and-excitation gate of layer 4, made from the global "
                                    "pooling of layer 2")
    assert reason["adaptive_avg_pool6"].startswith("a global pooling")      # its own reason, not layer 2's
    assert reason["flatten7"] == "after the global pooling of layer 6: each of its values reads its whole channel"
    assert reason["linear8"] == "a Linear layer: each value is a dot product over every feature"


def test_identity_passes_its_gradient_back_once():
    m = _model()
    xb, acts = forward_layers(m, _x())
    assert acts[9].module.layer_kind == "identity" and acts[9].y is not acts[9].x
    (grad,) = backward_passes(m, xb, acts, [0])
    assert np.abs(grad.grads[11]).max() > 0
    assert np.array_equal(grad.grads[9], grad.grads[10]) and np.array_equal(grad.grads[10], grad.grads[11])
