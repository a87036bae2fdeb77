"""Fuzz every module constructor, forward, backward, summary, the Module methods and the
optimizers of convscope.nn / convscope.optim.

* Constructors: every argument of every registered layer replaced by every malformed value
  of its kind (ints, tuples, floats, bools, mode strings, dtypes, generators, modules),
  plus sizes whose parameters would not fit in memory.
* forward: every malformation of a valid input (wrong ndim, empty axes, channels-last,
  channel mismatch, dtypes, layouts, NaN); layouts must not change the result.
* backward: before forward, twice after one forward, and with every malformed ``dy``.
* summary: malformed input shapes and models; Module.train/to/load_state_dict; Parameter.
* optimizers and schedules: malformed hyperparameters and parameter lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convscope import nn, optim, summary
from convscope.errors import StateError

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

CATEGORY = "modules"


def dtype_malformations() -> list[tuple[str, Any]]:
    return [("int32", np.int32), ("float16", np.float16), ("complex", np.complex64),
            ("bool", bool), ("object", object), ("string", "bogus"), ("int", 3),
            ("structured", "f4,f4"), ("subarray", ("f4", 2)), ("list", [np.float32]),
            ("str dtype", "U3")]


def rng_malformations() -> list[tuple[str, Any]]:
    return [("negative seed", -1), ("float seed", 2.5), ("string", "seed"), ("bool", True),
            ("legacy RandomState", np.random.RandomState(0)), ("list", [1, 2]),
            ("huge seed", 2**70), ("dict", {}), ("generator class", np.random.Generator)]


def module_malformations() -> list[tuple[str, Any]]:
    return [("None", None), ("function", np.tanh), ("class not instance", nn.ReLU),
            ("int", 3), ("string", "relu"), ("list of modules", [nn.ReLU()])]


# ----------------------------------------------------------------------------------------
# Constructors
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Ctor:
    """A module class, a valid keyword call, and the kind of each argument."""

    name: str
    make: Callable[..., Any]
    kwargs: dict[str, Any]
    kinds: dict[str, str]
    #: a valid input for forward (channels on axis 1 unless ``flat``)
    x_shape: tuple[int, ...] = (2, 3, 6, 6)
    flat: bool = False


CONV_KINDS = {"in_channels": "int", "out_channels": "int", "kernel_size": "tuple",
              "stride": "tuple", "padding": "tuple", "dilation": "tuple", "groups": "int",
              "bias": "bool", "padding_mode": "mode", "flip": "bool", "rng": "rng",
              "dtype": "dtype"}
CONV_KW = dict(in_channels=3, out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1,
               groups=1, bias=True, padding_mode="zeros", flip=False, rng=0)
MAXPOOL_KINDS = {"kernel_size": "tuple", "stride": "tuple", "padding": "tuple",
                 "dilation": "tuple", "ceil_mode": "bool"}
AVGPOOL_KINDS = {"kernel_size": "tuple", "stride": "tuple", "padding": "tuple",
                 "ceil_mode": "bool", "count_include_pad": "bool"}
BLUR_KINDS = {"channels": "int", "filter_size": "int", "stride": "tuple", "padding_mode": "mode"}
BN_KINDS = {"num_features": "int", "eps": "float", "momentum": "float", "affine": "bool",
            "track_running_stats": "bool", "dtype": "dtype"}

CTORS = [
    Ctor("Conv1d", nn.Conv1d, CONV_KW, CONV_KINDS, (2, 3, 7)),
    Ctor("Conv2d", nn.Conv2d, CONV_KW, CONV_KINDS, (2, 3, 6, 5)),
    Ctor("Conv3d", nn.Conv3d, CONV_KW, CONV_KINDS, (1, 3, 4, 5, 4)),
    Ctor("ConvNd", nn.ConvNd, dict(ndim=2, **CONV_KW), {"ndim": "int", **CONV_KINDS}, (2, 3, 6, 5)),
    Ctor("MaxPool1d", nn.MaxPool1d, dict(kernel_size=2, stride=None, padding=1, dilation=1,
                                         ceil_mode=False), MAXPOOL_KINDS, (2, 3, 7)),
    Ctor("MaxPool2d", nn.MaxPool2d, dict(kernel_size=2, stride=1, padding=0, dilation=2,
                                         ceil_mode=True), MAXPOOL_KINDS, (2, 3, 6, 5)),
    Ctor("MaxPool3d", nn.MaxPool3d, dict(kernel_size=2), MAXPOOL_KINDS, (1, 2, 4, 5, 4)),
    Ctor("AvgPool1d", nn.AvgPool1d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                         count_include_pad=False), AVGPOOL_KINDS, (2, 3, 7)),
    Ctor("AvgPool2d", nn.AvgPool2d, dict(kernel_size=2), AVGPOOL_KINDS, (2, 3, 6, 5)),
    Ctor("AvgPool3d", nn.AvgPool3d, dict(kernel_size=2), AVGPOOL_KINDS, (1, 2, 4, 5, 4)),
    Ctor("BlurPool1d", nn.BlurPool1d, dict(channels=3, filter_size=3, stride=2,
                                           padding_mode="reflect"), BLUR_KINDS, (2, 3, 7)),
    Ctor("BlurPool2d", nn.BlurPool2d, dict(channels=3), BLUR_KINDS, (2, 3, 6, 5)),
    Ctor("BlurPool3d", nn.BlurPool3d, dict(channels=2, padding_mode="zeros"), BLUR_KINDS,
         (1, 2, 4, 5, 4)),
    Ctor("ReLU", nn.ReLU, {}, {}, (2, 3, 4), flat=True),
    Ctor("LeakyReLU", nn.LeakyReLU, dict(negative_slope=0.1), {"negative_slope": "float"},
         (2, 3, 4), flat=True),
    Ctor("Sigmoid", nn.Sigmoid, {}, {}, (2, 5), flat=True),
    Ctor("Tanh", nn.Tanh, {}, {}, (2, 3, 2, 2), flat=True),
    Ctor("Softmax", nn.Softmax, dict(dim=1), {"dim": "int"}, (2, 5), flat=True),
    Ctor("Flatten", nn.Flatten, dict(start_dim=1), {"start_dim": "int"}, (2, 3, 2, 2), flat=True),
    Ctor("Linear", nn.Linear, dict(in_features=5, out_features=3, bias=True, rng=0),
         {"in_features": "int", "out_features": "int", "bias": "bool", "rng": "rng",
          "dtype": "dtype"}, (4, 5), flat=True),
    Ctor("Dropout", nn.Dropout, dict(p=0.5, rng=0), {"p": "float", "rng": "rng"}, (2, 3, 4),
         flat=True),
    Ctor("BatchNorm1d", nn.BatchNorm1d, dict(num_features=3, eps=1e-5, momentum=0.1),
         BN_KINDS, (4, 3, 5)),
    Ctor("BatchNorm2d", nn.BatchNorm2d, dict(num_features=3, momentum=None), BN_KINDS,
         (4, 3, 2, 2)),
    Ctor("Normalize", nn.Normalize, dict(mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 1.0]),
         {"mean": "float", "std": "float", "dtype": "dtype"}, (2, 3, 4, 4)),
    Ctor("ReLU6", nn.ReLU6, {}, {}, (2, 3, 4), flat=True),
    Ctor("Hardsigmoid", nn.Hardsigmoid, {}, {}, (2, 3, 4), flat=True),
    Ctor("Hardswish", nn.Hardswish, {}, {}, (2, 3, 4), flat=True),
    Ctor("SiLU", nn.SiLU, {}, {}, (2, 5), flat=True),
    Ctor("GELU", nn.GELU, dict(approximate="tanh"), {"approximate": "mode"}, (2, 5), flat=True),
    Ctor("Identity", nn.Identity, {}, {}, (2, 5), flat=True),
    Ctor("AdaptiveAvgPool1d", nn.AdaptiveAvgPool1d, dict(output_size=3), {"output_size": "tuple"}, (2, 3, 7)),
    Ctor("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d, dict(output_size=(2, 4)), {"output_size": "tuple"},
         (2, 3, 6, 5)),
    Ctor("AdaptiveAvgPool3d", nn.AdaptiveAvgPool3d, dict(output_size=1), {"output_size": "tuple"},
         (1, 2, 4, 5, 4)),
    Ctor("AdaptiveMaxPool1d", nn.AdaptiveMaxPool1d, dict(output_size=4), {"output_size": "tuple"}, (2, 3, 7)),
    Ctor("AdaptiveMaxPool2d", nn.AdaptiveMaxPool2d, dict(output_size=3), {"output_size": "tuple"},
         (2, 3, 6, 5)),
    Ctor("AdaptiveMaxPool3d", nn.AdaptiveMaxPool3d, dict(output_size=(1, 2, 2)), {"output_size": "tuple"},
         (1, 2, 4, 5, 4)),
    Ctor("ChannelShuffle", nn.ChannelShuffle, dict(groups=3), {"groups": "int"}, (2, 3, 4, 4)),
    Ctor("Residual", lambda block: nn.Residual(block), dict(block=nn.Conv2d(3, 3, 3, padding=1, rng=0)),
         {"block": "module"}, (2, 3, 5, 5)),
    Ctor("Sequential", lambda first, second: nn.Sequential(first, second),
         dict(first=nn.Conv2d(3, 2, 3, rng=0), second=nn.ReLU()),
         {"first": "module", "second": "module"}, (2, 3, 5, 5)),
]
CTORS_BY_NAME = {c.name: c for c in CTORS}
ALIASES = {"padding": ("padding",), "first": ("Sequential",), "second": ("Sequential",),
           "block": ("block", "Residual"), "ndim": ("ndim",)}


def test_every_module_class_is_fuzzed():
    """A new public Module class in convscope.nn must get an entry in CTORS."""
    public = {name for name in nn.__all__
              if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module)
              and name not in ("Module",)}
    # Graph and the merges take several inputs or return several outputs: their construction
    # and input errors are tested in tests/nn/test_graph.py.
    covered = set(CTORS_BY_NAME) | {"CrossEntropyLoss", "MSELoss", "Graph", "Add", "Concat", "Mul",
                                    "Split", "Reshape", "Permute"}
    assert public <= covered, f"not fuzzed: {sorted(public - covered)}"


def ctor_malformations(kind: str, ndim: int) -> list[tuple[str, Any]]:
    return {
        "int": scalar_malformations,
        "tuple": lambda: int_malformations(ndim),
        "float": float_malformations,
        "bool": bool_malformations,
        "mode": string_malformations,
        "dtype": dtype_malformations,
        "rng": rng_malformations,
        "module": module_malformations,
    }[kind]()


@pytest.mark.parametrize("name", list(CTORS_BY_NAME))
def test_constructor_malformations(name):
    ctor = CTORS_BY_NAME[name]
    ctor.make(**ctor.kwargs)
    ndim = len(ctor.x_shape) - 2
    for arg, kind in ctor.kinds.items():
        for label, value in ctor_malformations(kind, ndim):
            kw = dict(ctor.kwargs, **{arg: value})
            outcome = judge(lambda: ctor.make(**kw), ALIASES.get(arg, (arg,)), category=CATEGORY,
                            context=f"{name}({arg} = {label})")
            if outcome.ok:
                # Whatever was accepted must give a working module, or forward must refuse
                # the geometry cleanly (a huge kernel does not fit any input).
                _forward_backward(outcome.value, ctor, f"{name}({arg} = {label})",
                                  (arg,) + GEOMETRY_WORDS)


HUGE_CTORS = [
    ("Linear 2**20 x 2**20", lambda: nn.Linear(2**20, 2**20)),
    ("Linear 2**40 inputs", lambda: nn.Linear(2**40, 1)),
    ("Conv2d 2**16 -> 2**16 channels", lambda: nn.Conv2d(2**16, 2**16, 3)),
    ("Conv1d kernel 2**40", lambda: nn.Conv1d(1, 1, 2**40)),
    ("Conv3d huge kernel", lambda: nn.Conv3d(1, 1, (2**14, 2**14, 2**14))),
    ("ConvNd 40 axes", lambda: nn.ConvNd(40, 1, 1, 2)),
    ("ConvNd 2**40 axes", lambda: nn.ConvNd(2**40, 1, 1, 1)),
    ("BatchNorm2d 2**40 features", lambda: nn.BatchNorm2d(2**40)),
    ("BlurPool2d 2**40 channels", lambda: nn.BlurPool2d(2**40)),
]


@pytest.mark.parametrize("label", [h[0] for h in HUGE_CTORS])
def test_huge_constructors_are_refused(label):
    """Parameters that would not fit in memory: a clean error (ResourceError) at once."""
    make = dict(HUGE_CTORS)[label]
    judge(make, ("in_features", "out_features", "in_channels", "out_channels", "kernel_size",
                 "ndim", "num_features", "channels", "weight", "bias", "parameter"),
          category=CATEGORY, context=label)


# ----------------------------------------------------------------------------------------
# forward / backward
# ----------------------------------------------------------------------------------------
def _input(ctor: Ctor, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(ctor.x_shape).astype(dtype)


GEOMETRY_WORDS = ("x", "kernel", "window", "padding", "padded", "filter_size", "input")


def _forward_backward(module: Any, ctor: Ctor, context: str, names: tuple[str, ...]) -> None:
    """One forward and backward on a valid input; must work or fail cleanly."""
    dtype = getattr(module, "dtype", None) or np.float32
    x = _input(ctor, dtype)
    out = judge(lambda: module(x), names, category=CATEGORY, context=f"{context}: forward")
    if out.ok:
        dy = np.ones_like(out.value)
        judge(lambda: module.backward(dy), ("dy",), category=CATEGORY,
              context=f"{context}: backward")


def _fresh(ctor: Ctor):
    module = ctor.make(**ctor.kwargs)
    if ctor.name == "Dropout":
        module.eval()  # deterministic, so layouts can be compared
    return module


@pytest.mark.parametrize("name", list(CTORS_BY_NAME))
def test_forward_malformations(name):
    ctor = CTORS_BY_NAME[name]
    x = _input(ctor)
    for label, value, kind in array_malformations(x, None if ctor.flat else 1):
        module = _fresh(ctor)
        context = f"{name}.forward(x = {label})"
        outcome = judge(lambda: module(value), ("x", "input", "in_channels", "channels",
                                                "num_features", "in_features", "kernel", "window",
                                                "padded", "filter_size", "dim", "start_dim"),
                        category=CATEGORY, expect="ok" if kind in ("layout", "values") else "either",
                        context=context)
        if kind == "layout":
            same_result(outcome.value, _fresh(ctor)(np.array(value, copy=True)), context)
        if outcome.ok and isinstance(outcome.value, np.ndarray):
            # Whatever forward accepted, backward with a matching dy must accept too.
            y = outcome.value
            dy = np.ones(y.shape, dtype=y.dtype)
            back = judge(lambda: module.backward(dy), ("dy",), category=CATEGORY,
                         expect="ok" if kind in ("layout", "values") else "either",
                         context=f"{context}: backward")
            if back.ok:
                assert back.value.shape == np.shape(value), f"{context}: dx shape"


@pytest.mark.parametrize("name", list(CTORS_BY_NAME))
def test_backward_misuse(name):
    ctor = CTORS_BY_NAME[name]
    module = _fresh(ctor)
    x = _input(ctor)
    # Backward before forward.
    out = judge(lambda: module.backward(np.ones((2, 2), np.float32)), ("forward",),
                category=CATEGORY, expect="error", context=f"{name}: backward before forward")
    assert isinstance(out.error, StateError), out
    y = module(x)
    # Every malformed dy: a clean error, and the saved forward survives a refused dy.
    for label, value, kind in array_malformations(np.ones_like(y), None if ctor.flat else 1):
        module(x)
        got = judge(lambda: module.backward(value), ("dy",), category=CATEGORY,
                    expect="ok" if kind in ("layout", "values") else "either",
                    context=f"{name}.backward(dy = {label})")
        if got.ok:
            assert got.value.shape == x.shape, f"{name}.backward(dy = {label}): dx shape"
    # Backward twice after one forward.
    module(x)
    module.backward(np.ones_like(y))
    out = judge(lambda: module.backward(np.ones_like(y)), ("forward",), category=CATEGORY,
                expect="error", context=f"{name}: second backward")
    assert isinstance(out.error, StateError), out
    # A failed forward must not leave the module unusable.
    judge(lambda: module(x.astype(np.int64)), ("x",), category=CATEGORY, expect="error",
          context=f"{name}: forward with integer x")
    y2 = module(x)
    judge(lambda: module.backward(np.ones_like(y2)), category=CATEGORY, expect="ok",
          context=f"{name}: backward after a refused forward")


@settings(max_examples=60)
@given(name=st.sampled_from(list(CTORS_BY_NAME)), seed=st.integers(0, 2**31),
       shape=st.lists(st.integers(0, 7), min_size=0, max_size=6),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64]))
def test_random_inputs(name, seed, shape, dtype):
    """Inputs of random shape (often wrong) and dtype: a result or a clean error."""
    ctor = CTORS_BY_NAME[name]
    module = _fresh(ctor)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    out = judge(lambda: module(x), category=CATEGORY, context=f"{name}.forward(shape {shape}, {dtype})")
    if out.ok:
        dy = np.ones_like(out.value)
        judge(lambda: module.backward(dy), category=CATEGORY, expect="ok",
              context=f"{name}.backward after forward(shape {shape})")


# ----------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------
def test_loss_misuse():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    for loss_cls, target in ((nn.CrossEntropyLoss, labels),
                             (nn.MSELoss, rng.standard_normal((4, 3)).astype(np.float32))):
        name = loss_cls.__name__
        loss = loss_cls()
        out = judge(lambda: loss.backward(), ("forward",), category=CATEGORY, expect="error",
                    context=f"{name}: backward before forward")
        assert isinstance(out.error, StateError)
        for label, value, kind in array_malformations(logits, None):
            judge(lambda: loss_cls()(value, target), ("output", "logits", "target", "targets"),
                  category=CATEGORY, expect="ok" if kind in ("layout", "values") else "either",
                  context=f"{name}(output = {label})")
        for label, value, kind in array_malformations(target, None):
            judge(lambda: loss_cls()(logits, value), ("target", "targets"), category=CATEGORY,
                  expect="ok" if kind in ("layout", "values") else "either",
                  context=f"{name}(target = {label})")
        for label, value in float_malformations() + [("array dy", np.ones(3))]:
            loss(logits, target)
            judge(lambda: loss.backward(value), ("dy",), category=CATEGORY,
                  context=f"{name}.backward(dy = {label})")
        loss(logits, target)
        loss.backward()
        out = judge(lambda: loss.backward(), ("forward",), category=CATEGORY, expect="error",
                    context=f"{name}: second backward")
    ce = nn.CrossEntropyLoss()
    for label, value in [("label -1", np.array([0, -1, 1, 2])), ("label 3 of 3 classes", np.array([0, 3, 1, 2])),
                         ("huge label", np.array([0, 2**62, 1, 2])), ("float labels", labels.astype(np.float32)),
                         ("bool labels", labels.astype(bool)), ("labels (N, 1)", labels[:, None]),
                         ("labels (N + 1,)", np.append(labels, 0)), ("string labels", labels.astype(str)),
                         ("None", None), ("one-hot ints", np.eye(3, dtype=np.int64)[labels])]:
        judge(lambda: ce(logits, value), ("target", "targets", "class"), category=CATEGORY,
              context=f"CrossEntropyLoss(target = {label})")
    nan = logits.copy()
    nan[1, 1] = np.nan
    value = judge(lambda: ce(nan, labels), category=CATEGORY, expect="ok", context="NaN logits").value
    assert np.isnan(value), "a NaN logit must make the loss NaN, not raise or vanish"


# ----------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------
def _lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5, rng=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * 5 * 5, 10, rng=2))


def test_summary_malformations():
    model = _lenet()
    summary(model, (1, 28, 28))
    shapes = [(label, v) for label, v in int_malformations(3)] + [
        ("channels-last", (28, 28, 1)), ("batched channels-last", (2, 28, 28, 1)),
        ("three channels", (3, 28, 28)), ("too small", (1, 4, 4)), ("zero", (1, 0, 28)),
        ("negative", (1, -28, 28)), ("huge", (1, 2**40, 2**40)), ("huge batch", (2**62, 1, 28, 28)),
        ("string", "1x28x28"), ("float entries", (1.0, 28.0, 28.5)), ("None entry", (1, None, 28)),
        ("numpy array", np.array([1, 28, 28])), ("five axes", (1, 1, 1, 28, 28)),
        ("one axis", (784,)), ("bool entries", (True, 28, 28)),
    ]
    for label, value in shapes:
        judge(lambda: summary(model, value), ("input_shape", "layer", "x", "input"),
              category=CATEGORY, context=f"summary(input_shape = {label})")
    for label, value in [("None", None), ("function", np.tanh), ("class", nn.Conv2d),
                         ("list of modules", [nn.ReLU()]), ("string", "lenet")]:
        judge(lambda: summary(value, (1, 28, 28)), ("model",), category=CATEGORY, expect="error",
              context=f"summary(model = {label})")
    for ctor in CTORS:
        module = _fresh(ctor)
        judge(lambda: str(summary(module, ctor.x_shape)), category=CATEGORY, expect="ok",
              context=f"summary({ctor.name}, {ctor.x_shape})")
        for label, value in [("wrong channels", (ctor.x_shape[0], 7) + ctor.x_shape[2:]),
                             ("tiny", ctor.x_shape[:2] + (1,) * (len(ctor.x_shape) - 2)),
                             ("huge", ctor.x_shape[:2] + (2**40,) * (len(ctor.x_shape) - 2))]:
            judge(lambda: str(summary(module, value)), category=CATEGORY,
                  context=f"summary({ctor.name}, {label} {value})")


# ----------------------------------------------------------------------------------------
# Module methods and Parameter
# ----------------------------------------------------------------------------------------
def test_module_methods():
    model = _lenet()
    for label, value in bool_malformations():
        judge(lambda: model.train(value), ("mode",), category=CATEGORY, expect="error",
              context=f"train(mode = {label})")
    for label, value in dtype_malformations():
        judge(lambda: nn.Linear(2, 2, rng=0).to(value), ("dtype",), category=CATEGORY,
              context=f"to(dtype = {label})")
    state = model.state_dict()
    name = "0.weight"
    bad_states = [
        ("not a mapping", [1, 2]), ("None", None), ("string", "weights"),
        ("missing entry", {k: v for k, v in state.items() if k != name}),
        ("extra entry", {**state, "extra": np.zeros(1, np.float32)}),
        ("wrong shape", {**state, name: np.zeros((6, 1, 3, 3), np.float32)}),
        ("wrong dtype", {**state, name: state[name].astype(np.float64)}),
        ("int dtype", {**state, name: state[name].astype(np.int32)}),
        ("object array", {**state, name: state[name].astype(object)}),
        ("string value", {**state, name: "weights"}),
        ("None value", {**state, name: None}),
        ("ragged list", {**state, name: [[1.0], [1.0, 2.0]]}),
        ("scalar", {**state, name: 1.0}),
        ("non-string key", {**state, 3: np.zeros(1)}),
        ("NaN weights", {**state, name: np.full_like(state[name], np.nan)}),
        ("broadcast view", {**state, name: np.broadcast_to(np.float32(1), state[name].shape)}),
    ]
    for label, value in bad_states:
        before = {k: v.copy() for k, v in model.state_dict().items()}
        out = judge(lambda: model.load_state_dict(value), (name, "state_dict", "extra", "3"),
                    category=CATEGORY, context=f"load_state_dict({label})")
        if not out.ok:  # a refused load leaves the model unchanged
            after = model.state_dict()
            for k in before:
                np.testing.assert_array_equal(before[k], after[k], err_msg=f"{label}: {k} changed")
    for label, value in [("strict string", "yes"), ("strict None", None)]:
        judge(lambda: model.load_state_dict(state, strict=value), ("strict",), category=CATEGORY,
              context=f"load_state_dict(strict = {label})")
    for label, value, _kind in array_malformations(np.ones((2, 3), np.float32), None):
        judge(lambda: nn.Parameter(value), ("data", "Parameter"), category=CATEGORY,
              context=f"Parameter({label})")


# ----------------------------------------------------------------------------------------
# Optimizers and schedules
# ----------------------------------------------------------------------------------------
def _opt_model():
    return nn.Sequential(nn.Linear(3, 2, rng=0))


OPTIMIZERS = [
    ("SGD", optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01),
     {"lr": "float", "momentum": "float", "dampening": "float", "nesterov": "bool",
      "weight_decay": "float"}),
    ("Adam", optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
     {"lr": "float", "betas": "betas", "eps": "float", "weight_decay": "float"}),
    ("AdamW", optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
     {"lr": "float", "betas": "betas", "eps": "float", "weight_decay": "float"}),
]


def betas_malformations():
    return [("one", (0.9,)), ("three", (0.9, 0.9, 0.9)), ("beta 1", (1.0, 0.999)),
            ("negative", (-0.1, 0.9)), ("strings", ("a", "b")), ("None", None), ("float", 0.9),
            ("nan", (float("nan"), 0.9))]


@pytest.mark.parametrize("name", [o[0] for o in OPTIMIZERS])
def test_optimizer_malformations(name):
    _, cls, kw, kinds = next(o for o in OPTIMIZERS if o[0] == name)
    model = _opt_model()
    cls(model.named_parameters(), **kw)
    for arg, kind in kinds.items():
        cases = betas_malformations() if kind == "betas" else ctor_malformations(kind, 1)
        for label, value in cases:
            call = dict(kw, **{arg: value})
            out = judge(lambda: cls(_opt_model().named_parameters(), **call), (arg,),
                        category=CATEGORY, context=f"{name}({arg} = {label})")
            if out.ok:
                judge(out.value.step, category=CATEGORY, context=f"{name}({arg} = {label}).step()")
    params = [("None", None), ("int", 3), ("string", "params"), ("empty", []),
              ("arrays", [np.zeros(3)]), ("module itself", model), ("generator of ints", iter([1, 2])),
              ("duplicate", [model[0].weight, model[0].weight]),
              ("bad names", [(3, model[0].weight)])]
    for label, value in params:
        judge(lambda: cls(value, **kw), ("params", "parameter", "parameters"), category=CATEGORY,
              context=f"{name}(params = {label})")
    opt = cls(model.named_parameters(), **kw)
    for label, value in [("None", None), ("list", [1]), ("empty dict", {}),
                         ("wrong keys", {"bogus": 1}), ("string", "state")]:
        judge(lambda: opt.load_state_dict(value), ("load_state_dict", "state_dict", "keys"),
              category=CATEGORY,
              context=f"{name}.load_state_dict({label})")
    # NaN gradients are data, not errors: the step runs and the NaN lands in the weights.
    model[0].weight.grad[...] = np.nan
    judge(opt.step, category=CATEGORY, expect="ok", context=f"{name}.step() with NaN grads")
    assert np.isnan(model[0].weight.data).any()


SCHEDULES = [
    ("StepLR", optim.StepLR, dict(step_size=2, gamma=0.5), {"step_size": "int", "gamma": "float"}),
    ("CosineAnnealingLR", optim.CosineAnnealingLR, dict(T_max=4, eta_min=0.0),
     {"T_max": "int", "eta_min": "float"}),
    ("OneCycleLR", optim.OneCycleLR, dict(max_lr=1.0, total_steps=10, pct_start=0.3,
                                          anneal_strategy="cos", div_factor=25.0),
     {"max_lr": "float", "total_steps": "int", "pct_start": "float", "anneal_strategy": "mode",
      "div_factor": "float"}),
]


@pytest.mark.parametrize("name", [s[0] for s in SCHEDULES])
def test_schedule_malformations(name):
    _, cls, kw, kinds = next(s for s in SCHEDULES if s[0] == name)
    for arg, kind in kinds.items():
        for label, value in ctor_malformations(kind, 1):
            call = dict(kw, **{arg: value})
            opt = optim.SGD(_opt_model().named_parameters(), lr=0.1, momentum=0.9)
            out = judge(lambda: cls(opt, **call), (arg,), category=CATEGORY,
                        context=f"{name}({arg} = {label})")
            if out.ok:
                for _ in range(3):
                    judge(out.value.step, category=CATEGORY, context=f"{name}({arg} = {label}).step()")
    for label, value in module_malformations():
        judge(lambda: cls(value, **kw), ("optimizer",), category=CATEGORY, expect="error",
              context=f"{name}(optimizer = {label})")


def test_clip_grad_norm_malformations():
    model = _opt_model()
    for arg, cases in (("max_norm", float_malformations()), ("norm_type", float_malformations()),
                       ("error_if_nonfinite", bool_malformations())):
        for label, value in cases:
            kw = {"max_norm": 1.0, "norm_type": 2.0, "error_if_nonfinite": False, arg: value}
            judge(lambda: optim.clip_grad_norm_(model.parameters(), **kw), (arg,), category=CATEGORY,
                  context=f"clip_grad_norm_({arg} = {label})")
    for label, value in [("None", None), ("int", 3), ("arrays", [np.zeros(3)])]:
        judge(lambda: optim.clip_grad_norm_(value, 1.0), ("params", "parameter", "parameters"),
              category=CATEGORY, context=f"clip_grad_norm_(params = {label})")
