"""SGD, Adam and AdamW against torch.optim, state_dict round trips, and argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError
from convscope.optim import SGD, Adam, AdamW
from convscope.testing import assert_close

from ._helpers import FakeParam, fake_gradient, make_params, run_twins

torch = pytest.importorskip("torch")

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01),
    dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1),
    dict(lr=0.1, weight_decay=0.5),
]
ADAM_CONFIGS = [
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-6),
    dict(lr=1e-2, betas=(0.3, 0.99)),  # 1 - beta1 >= 0.5: the other branch of lerp
    dict(lr=0.0),
]
CASES = (
    [(SGD, torch.optim.SGD, c) for c in SGD_CONFIGS]
    + [(Adam, torch.optim.Adam, c) for c in ADAM_CONFIGS]
    + [(AdamW, torch.optim.AdamW, c) for c in ADAM_CONFIGS if c["lr"] > 0]
    + [(AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.5))]
)


def _case_id(case):
    cls, _, config = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in config.items())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_torch_over_20_steps(case, dtype):
    cls, torch_cls, config = case
    for t, ours, theirs in run_twins(
        lambda p: cls(p, **config), lambda p: torch_cls(p, **config), dtype, steps=20
    ):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert a.dtype == dtype
            assert_close(a, b, dtype, context=f"{_case_id(case)} {np.dtype(dtype).name} step {t} param {i}")


@pytest.mark.parametrize("cls, config", [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=1e-2, weight_decay=0.1)),
    (AdamW, dict(lr=1e-2)),
])
def test_float32_stays_float32(cls, config):
    params = [FakeParam(x) for x in make_params(np.float32)]
    opt = cls(params, **config)
    rng = np.random.default_rng(3)
    for _ in range(3):
        for p in params:
            p.grad[...] = fake_gradient(p.data, rng)
        opt.step()
    for p in params:
        assert p.data.dtype == np.float32
    for name, state in opt.state.items():
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, (name, key)


def test_updates_in_place_and_leaves_grad_alone():
    p = FakeParam(np.array([1.0, 2.0]))
    data = p.data
    p.grad[...] = [1.0, 1.0]
    grad_before = p.grad.copy()
    SGD([p], lr=0.1, weight_decay=0.5, momentum=0.9, nesterov=True).step()
    assert p.data is data
    np.testing.assert_array_equal(p.grad, grad_before)


def test_parameters_without_grad_are_skipped_like_torch():
    a, b = FakeParam(np.ones(3)), FakeParam(np.ones(2))
    b.grad = None
    a.grad[...] = 1.0
    opt = Adam([("a", a), ("b", b)], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(b.data, np.ones(2))
    assert "b" not in opt.state or not opt.state["b"]
    assert opt.state["a"]["step"] == 1


def test_zero_grad():
    a, b = FakeParam(np.ones(3)), FakeParam(np.ones(2))
    a.grad[...] = 5
    b.grad = None
    SGD([a, b], lr=1).zero_grad()
    np.testing.assert_array_equal(a.grad, 0)
    assert b.grad is None


def test_state_keys_are_parameter_names_or_positions():
    named = [("conv.weight", FakeParam(np.ones(2))), ("conv.bias", FakeParam(np.ones(1)))]
    opt = SGD(named, lr=0.1, momentum=0.5)
    for _, p in named:
        p.grad[...] = 1
    opt.step()
    assert set(opt.state) == {"conv.weight", "conv.bias"}
    assert set(opt.state_dict()["arrays"]) == {"conv.weight/momentum_buffer", "conv.bias/momentum_buffer"}
    plain = SGD([p for _, p in named], lr=0.1)
    assert plain.param_names == ["0", "1"]
    assert SGD(dict(named), lr=0.1).param_names == ["conv.weight", "conv.bias"]


# ---------------------------------------------------------------------------------------
# state_dict round trips: a restored optimizer continues bit for bit
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, config", [
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)),
    (AdamW, dict(lr=1e-2, weight_decay=0.2)),
])
def test_state_dict_round_trip_continues_identically(cls, config, dtype):
    rng = np.random.default_rng(7)
    grads = [[rng.standard_normal(x.shape).astype(dtype) for x in make_params(dtype)] for _ in range(20)]

    def run(opt, params, ts):
        for t in ts:
            for p, g in zip(params, grads[t]):
                p.grad[...] = g + p.data
            opt.step()

    straight = [FakeParam(x) for x in make_params(dtype)]
    opt = cls([(f"layer{i}.w", p) for i, p in enumerate(straight)], **config)
    run(opt, straight, range(20))

    first = [FakeParam(x) for x in make_params(dtype)]
    opt1 = cls([(f"layer{i}.w", p) for i, p in enumerate(first)], **config)
    run(opt1, first, range(10))
    saved = opt1.state_dict()
    json_part = {k: v for k, v in saved.items() if k != "arrays"}
    json_part = json.loads(json.dumps(json_part))  # the non-array part is JSON-safe
    arrays = {k: v.copy() for k, v in saved["arrays"].items()}
    for v in saved["arrays"].values():
        v[...] = 123  # state_dict returns copies: scribbling on them changes nothing
    run(opt1, first, range(10, 20))

    resumed = [FakeParam(np.array(p.data)) for p in first]  # placeholders, overwritten below
    second = [FakeParam(x) for x in make_params(dtype)]
    opt2 = cls([(f"layer{i}.w", p) for i, p in enumerate(second)], **config)
    run(opt2, second, range(10))
    fresh = [FakeParam(np.array(p.data)) for p in second]
    opt3 = cls([(f"layer{i}.w", p) for i, p in enumerate(fresh)], lr=0.5)  # other lr: restored
    opt3.load_state_dict({**json_part, "arrays": arrays})
    assert opt3.hyperparameters() == opt1.hyperparameters()
    run(opt3, fresh, range(10, 20))
    for a, b, c in zip(straight, first, fresh):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.data, c.data)
    del resumed


def test_load_state_dict_casts_buffers_to_parameter_dtype():
    p = FakeParam(np.ones(3, dtype=np.float32))
    opt = SGD([("w", p)], lr=0.1, momentum=0.9)
    state = opt.state_dict()
    state["arrays"] = {"w/momentum_buffer": np.ones(3, dtype=np.float64)}
    opt.load_state_dict(state)
    assert opt.state["w"]["momentum_buffer"].dtype == np.float32


@pytest.mark.parametrize("mutate, error, words", [
    (lambda s: s.update(optimizer="Adam"), ConfigError, ["'Adam'", "SGD"]),
    (lambda s: s.update(param_names=["w", "extra"]), ConfigError, ["unexpected ['extra']"]),
    (lambda s: s["arrays"].update({"w/momentum_buffer": np.ones(4)}), ShapeError, ["(3,)", "(4,)"]),
    (lambda s: s["arrays"].update({"w/velocity": np.ones(3)}), ConfigError, ["w/velocity"]),
    (lambda s: s["hyperparameters"].update(lr=-1.0), ConfigError, ["lr", "-1.0"]),
    (lambda s: s["hyperparameters"].update(nesterov=True, dampening=0.5), ConfigError, ["nesterov"]),
    (lambda s: s.pop("counters"), ConfigError, ["counters"]),
])
def test_load_state_dict_rejects_mismatches_and_changes_nothing(mutate, error, words):
    p = FakeParam(np.ones(3))
    opt = SGD([("w", p)], lr=0.1, momentum=0.9)
    p.grad[...] = 1
    opt.step()
    before = opt.state_dict()
    bad = opt.state_dict()
    mutate(bad)
    with pytest.raises(error) as info:
        opt.load_state_dict(bad)
    for word in words:
        assert word in str(info.value)
    after = opt.state_dict()
    assert after["hyperparameters"] == before["hyperparameters"]
    np.testing.assert_array_equal(after["arrays"]["w/momentum_buffer"], before["arrays"]["w/momentum_buffer"])


# ---------------------------------------------------------------------------------------
# argument errors
# ---------------------------------------------------------------------------------------
def _one():
    return [FakeParam(np.ones(2))]


@pytest.mark.parametrize("make, error, words", [
    (lambda: SGD(_one(), lr=-0.1), ConfigError, ["lr", ">= 0", "-0.1"]),
    (lambda: SGD(_one(), lr=float("nan")), ConfigError, ["lr", "finite"]),
    (lambda: SGD(_one(), lr="0.1"), ArgumentTypeError, ["lr", "str"]),
    (lambda: SGD(_one(), lr=True), ArgumentTypeError, ["lr", "bool"]),
    (lambda: SGD(_one(), lr=0.1, momentum=-0.5), ConfigError, ["momentum"]),
    (lambda: SGD(_one(), lr=0.1, weight_decay=-1), ConfigError, ["weight_decay"]),
    (lambda: SGD(_one(), lr=0.1, nesterov=True), ConfigError, ["nesterov", "momentum > 0"]),
    (lambda: SGD(_one(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ConfigError, ["dampening == 0"]),
    (lambda: SGD(_one(), lr=0.1, nesterov=1), ArgumentTypeError, ["nesterov", "True or False"]),
    (lambda: Adam(_one(), betas=(1.0, 0.999)), ConfigError, ["betas[0]", "< 1.0"]),
    (lambda: Adam(_one(), betas=(0.9, -0.1)), ConfigError, ["betas[1]"]),
    (lambda: Adam(_one(), betas=0.9), ArgumentTypeError, ["betas", "tuple of 2"]),
    (lambda: Adam(_one(), eps=-1e-8), ConfigError, ["eps"]),
    (lambda: AdamW(_one(), weight_decay=-0.01), ConfigError, ["weight_decay"]),
    (lambda: AdamW(_one(), lr=-1), ConfigError, ["AdamW", "lr"]),
    (lambda: SGD([], lr=0.1), ConfigError, ["empty"]),
    (lambda: SGD(iter([]), lr=0.1), ConfigError, ["empty"]),
    (lambda: SGD(FakeParam(np.ones(2)), lr=0.1), ArgumentTypeError, ["single", "[param]"]),
    (lambda: SGD(np.ones(3), lr=0.1), ArgumentTypeError, ["ndarray"]),
    (lambda: SGD([np.ones(3)], lr=0.1), ArgumentTypeError, ["entry 0", ".data and .grad"]),
    (lambda: SGD([("a", FakeParam(np.ones(1))), FakeParam(np.ones(1))], lr=0.1), ArgumentTypeError, ["mixes"]),
    (lambda: SGD([("a", FakeParam(np.ones(1))), ("a", FakeParam(np.ones(1)))], lr=0.1), ConfigError, ["unique", "'a'"]),
    (lambda: SGD([("a/b", FakeParam(np.ones(1)))], lr=0.1), ConfigError, ["'/'"]),
    (lambda: SGD([FakeParam(np.ones(2, dtype=np.int64))], lr=0.1), DTypeError, ["float32 or float64", "int64"]),
])
def test_argument_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), str(info.value)


def test_same_parameter_twice_is_refused():
    p = FakeParam(np.ones(2))
    with pytest.raises(ConfigError, match="more than once"):
        SGD([p, p], lr=0.1)


def test_read_only_parameter_is_refused():
    data = np.ones(2)
    data.flags.writeable = False
    with pytest.raises(ConfigError, match="read-only"):
        SGD([FakeParam(data)], lr=0.1)


@pytest.mark.parametrize("grad, error, words", [
    (np.ones(3), ShapeError, ["'0'", "(2,)", "(3,)"]),
    (np.ones(2, dtype=np.float32), DTypeError, ["float64", "float32"]),
    ([1.0, 1.0], ArgumentTypeError, [".grad", "list"]),
])
def test_step_rejects_bad_gradients(grad, error, words):
    p = FakeParam(np.ones(2))
    opt = Adam([p])
    p.grad = grad
    with pytest.raises(error) as info:
        opt.step()
    for word in words:
        assert word in str(info.value)


def test_hyperparameter_assignment_is_validated():
    opt = SGD(_one(), lr=0.1)
    opt.lr = 0.01
    assert opt.lr == 0.01 and type(opt.lr) is float
    opt.lr = np.float64(0.02)  # NumPy scalars become Python floats (no float64 upcast later)
    assert type(opt.lr) is float
    with pytest.raises(ConfigError, match="lr"):
        opt.lr = -1.0
    assert opt.lr == 0.02


def test_repr_names_the_hyperparameters():
    text = repr(Adam(_one(), lr=0.01))
    assert "Adam(1 parameters" in text and "lr=0.01" in text and "betas=(0.9, 0.999)" in text
