"""Optimizer.step checks every gradient before it updates anything, and rechecks only the
arrays that changed since the last step (the same errors, with the same messages)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.optim import SGD, Adam

from ._helpers import FakeParam

SHAPES = [(3, 4), (5,), (2, 3, 2, 2), (), (1, 7)]


def _params(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [FakeParam(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


def _named(params):
    return [(f"p{i}", p) for i, p in enumerate(params)]


def _steps(opt, params, n, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        for p in params:
            p.grad = np.asarray(rng.standard_normal(p.data.shape), dtype=p.data.dtype)
        opt.step()


@pytest.mark.parametrize("grad, error, words", [
    (np.ones(4), ShapeError, ["'p1'", "(5,)", "(4,)"]),
    (np.ones(5, dtype=np.float64), DTypeError, ["'p1'", "float32", "float64"]),
    ([1.0] * 5, ArgumentTypeError, ["'p1'", ".grad", "list"]),
])
def test_a_bad_gradient_after_good_steps_is_refused_and_nothing_moves(grad, error, words):
    params = _params()
    opt = Adam(_named(params), lr=1e-2)
    _steps(opt, params, 2)
    before = [p.data.copy() for p in params]
    params[1].grad = grad
    with pytest.raises(error) as info:
        opt.step()
    for word in words:
        assert word in str(info.value), str(info.value)
    for p, b in zip(params, before):  # every gradient is checked before any parameter moves
        np.testing.assert_array_equal(p.data, b)
    assert opt.state["p0"]["step"] == 2


def _read_only(shape):
    data = np.ones(shape, dtype=np.float32)
    data.flags.writeable = False
    return data


def _freeze(p):
    p.data.flags.writeable = False


@pytest.mark.parametrize("change, error, words", [
    (lambda p: setattr(p, "data", _read_only(5)), ConfigError, ["'p1'", "read-only"]),
    (_freeze, ConfigError, ["'p1'", "read-only"]),  # the same array, made read-only
    (lambda p: setattr(p, "data", np.ones(5, dtype=np.int32)), DTypeError, ["'p1'", "float32 or float64"]),
    (lambda p: setattr(p.grad, "shape", (5, 1)), ShapeError, ["'p1'", "(5,)", "(5, 1)"]),  # same array
])
def test_checks_skipped_for_unchanged_arrays_still_see_a_change(change, error, words):
    params = _params()
    opt = SGD(_named(params), lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones_like(p.data)
    for _ in range(2):
        opt.step()
    change(params[1])
    with pytest.raises(error) as info:
        opt.step()
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda opt: pickle.loads(pickle.dumps(opt))])
def test_a_copied_optimizer_checks_its_own_arrays_and_continues_identically(clone):
    params = _params()
    opt = Adam(_named(params), lr=1e-2, weight_decay=0.1)
    _steps(opt, params, 3)
    twin = clone(opt)
    assert twin._checked == []  # nothing of the original's arrays travels with the copy
    _steps(opt, params, 4, seed=5)
    _steps(twin, twin._params, 4, seed=5)
    for p, q in zip(params, twin._params):
        np.testing.assert_array_equal(p.data, q.data, strict=True)
