"""The shared argument checks that ops, layers, losses, optimizers and exporters call."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, DTypeError, MissingDependencyError, ShapeError, import_optional
from convscope.nn.layer_types import ConvLayer
from convscope.shapes import check_matches, float_inputs, to_ndarray


def test_to_ndarray_passes_arrays_and_reads_lists():
    a = np.zeros(3)
    assert to_ndarray(a, "op", "x must be an array") is a
    np.testing.assert_array_equal(to_ndarray([1, 2], "op", "x must be an array"), [1, 2])


@pytest.mark.parametrize("value", [None, "1 2", b"1", {"a": 1}, {1}])
def test_to_ndarray_refuses_non_arrays_with_the_expectation_and_hint(value):
    with pytest.raises(ArgumentTypeError, match=r"^op: x must be an array; got \w+\. Use parse\.$"):
        to_ndarray(value, "op", "x must be an array", hint=" Use parse.")


def test_to_ndarray_names_unreadable_data_with_its_own_expectation():
    with pytest.raises(ArgumentTypeError, match=r"op: x must be rectangular; got a list that NumPy cannot turn"):
        to_ndarray([[1, 2], [3]], "op", "x must be an array", expected_list="x must be rectangular")


def test_float_inputs_converts_and_refuses_mixed_dtypes():
    x, w, b = float_inputs("op", [1.0], np.ones(1), None)
    assert x.dtype == w.dtype == np.float64 and b is None
    with pytest.raises(DTypeError, match="same dtype"):
        float_inputs("op", np.ones(1), np.ones(1, np.float32))


def test_check_matches_names_shape_then_dtype():
    ref = np.zeros((2,), np.float32)
    with pytest.raises(ShapeError, match=r"^op: g must have ref's shape; got \(3\)\. hint$"):
        check_matches("op", np.zeros(3, np.float32), ref, "g", "ref's shape", "ref's dtype", " hint")
    with pytest.raises(ShapeError, match=r"got \(3,\)\.$"):
        check_matches("op", np.zeros(3, np.float32), ref, "g", "ref's shape", "ref's dtype", show=str)
    with pytest.raises(DTypeError, match=r"^op: g must have ref's dtype; got float64\. cast$"):
        check_matches("op", np.zeros(2), ref, "g", "ref's shape", "ref's dtype", dtype_hint=" cast")
    check_matches("op", ref.copy(), ref, "g", "ref's shape", "ref's dtype")


def test_import_optional_names_the_package_and_the_install(monkeypatch):
    assert import_optional("json", "demo", "pip install x", ("decoder",)).decoder
    monkeypatch.setitem(sys.modules, "json.tool", None)
    with pytest.raises(MissingDependencyError, match=r"demo needs the optional package 'json'.*pip install x"):
        import_optional("json", "demo", "pip install x", ("tool",))


def test_layer_protocols_describe_convscope_layers_and_subclasses():
    class MyConv(nn.Conv2d):
        pass

    def bias_size(layer: ConvLayer) -> int:
        return 0 if layer.bias is None else layer.bias.size

    assert bias_size(MyConv(1, 4, 3, rng=0)) == 4
    assert bias_size(nn.Conv1d(1, 2, 3, bias=False, rng=0)) == 0
