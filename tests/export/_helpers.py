"""Shared pieces of the export tests: random models covering every module and option.

``models()`` draws a small random network (hypothesis); ``CASES`` lists hand-made models
that pin one option each, so every mapping is exercised even if the random draws miss it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from convscope import nn
from convscope.errors import ConvscopeError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
BLUR_POOL = {1: nn.BlurPool1d, 2: nn.BlurPool2d, 3: nn.BlurPool3d}
SIZES = {1: (6, 14), 2: (5, 10), 3: (4, 6)}
KINDS = ("conv", "conv", "max_pool", "avg_pool", "blur_pool", "relu", "leaky_relu", "sigmoid",
         "tanh", "batch_norm", "dropout", "residual", "softmax")


def note(record: dict[str, float], name: str, value: float) -> None:
    """Keep the largest ``value`` seen under ``name`` (printed in the test summary)."""
    record[name] = max(record.get(name, 0.0), float(value))


def randomize_batch_norm(bn, rng: np.random.Generator) -> None:
    """Non-trivial affine parameters and running statistics (fresh ones are 1, 0, 0, 1)."""
    c = bn.num_features
    dtype = bn.dtype
    if bn.affine:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, c).astype(dtype)
        bn.bias.data[...] = rng.normal(0, 0.5, c).astype(dtype)
    if bn.track_running_stats:
        bn.running_mean[...] = rng.normal(0, 0.5, c).astype(dtype)
        bn.running_var[...] = rng.uniform(0.5, 2.0, c).astype(dtype)
        bn.num_batches_tracked[...] = 7


class _Draw:
    """Choices from a seeded NumPy generator (even coverage for a fixed number of examples)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def int(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def bool(self) -> bool:
        return bool(self.rng.integers(2))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]


def _padding(d: _Draw, ndim: int, limit: Callable[[int], int], allow_same: bool = True):
    form = d.choice(["int", "tuple", "pairs", "pairs", "same", "valid"] if allow_same
                    else ["int", "tuple", "pairs", "pairs"])
    if form == "int":
        return d.int(0, limit(0))
    if form == "tuple":
        return tuple(d.int(0, limit(i)) for i in range(ndim))
    if form == "pairs":
        return tuple((d.int(0, limit(i)), d.int(0, limit(i))) for i in range(ndim))
    return form


def _conv(d: _Draw, ndim: int, c_in: int, *, keep_shape: bool = False):
    g = d.choice([g for g in range(1, c_in + 1) if c_in % g == 0])
    c_out = c_in if keep_shape else g * d.int(1, 3)
    k = tuple(d.int(1, 3) for _ in range(ndim))
    stride = 1 if keep_shape else tuple(d.int(1, 2) for _ in range(ndim))
    dilation = tuple(d.int(1, 2) for _ in range(ndim))
    padding = "same" if keep_shape else _padding(d, ndim, lambda i: 2)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=g, bias=d.bool(),
                  padding_mode=d.choice(PADDING_MODES), flip=d.bool(), rng=d.rng)
    if d.int(0, 4) == 0:
        return nn.ConvNd(ndim, c_in, c_out, k, **kwargs)
    return CONV[ndim](c_in, c_out, k, **kwargs)


def _layer(d: _Draw, kind: str, ndim: int, shape: tuple[int, ...], allow_dropout: bool):
    c = shape[1]
    if kind == "conv":
        return _conv(d, ndim, c)
    if kind == "max_pool":
        k = tuple(d.int(1, 3) for _ in range(ndim))
        stride = d.choice([None, 1, 2])
        return MAX_POOL[ndim](k, stride, _padding(d, ndim, lambda i: k[i] // 2, False),
                              tuple(d.int(1, 3) for _ in range(ndim)), d.bool())
    if kind == "avg_pool":
        k = tuple(d.int(1, 3) for _ in range(ndim))
        stride = d.choice([None, 1, 2, 3])
        return AVG_POOL[ndim](k, stride, _padding(d, ndim, lambda i: k[i] // 2, False),
                              d.bool(), d.bool())
    if kind == "blur_pool":
        return BLUR_POOL[ndim](c, d.int(1, 5), d.int(1, 2), d.choice(PADDING_MODES))
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(d.choice([0.01, 0.2]))
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "tanh":
        return nn.Tanh()
    if kind == "softmax":
        return nn.Softmax(1)
    if kind == "dropout":
        return nn.Dropout(0.5, rng=0) if allow_dropout else None
    if kind == "batch_norm":
        if ndim == 3:
            return None
        cls = nn.BatchNorm1d if ndim == 1 else nn.BatchNorm2d
        bn = cls(c, eps=d.choice([1e-5, 1e-3]), momentum=d.choice([0.1, None]),
                 affine=d.bool(), track_running_stats=d.bool())
        randomize_batch_norm(bn, d.rng)
        return bn
    if kind == "residual":
        conv = _conv(d, ndim, c, keep_shape=True)
        return nn.Residual(nn.Sequential(conv, nn.Tanh()) if d.bool() else conv)
    raise AssertionError(kind)


def build_model(seed: int, ndims=(1, 2, 2, 3), max_layers: int = 5, allow_dropout: bool = True):
    """``(model, input_shape)``: a random Sequential that accepts samples of ``input_shape``.

    Spatial layers are drawn until ``max_layers`` of them fit (a layer that does not fit
    the current shape is drawn again, at most a few times), then a head: nothing,
    Flatten + Linear (+ BatchNorm1d, + Softmax), or a Linear over the flattened spatial axes.
    """
    d = _Draw(seed)
    ndim = d.choice(ndims)
    c = d.int(1, 4)
    n = tuple(d.int(*SIZES[ndim]) for _ in range(ndim))
    shape = (1, c, *n)
    layers = []
    wanted = d.int(1, max_layers)
    for _ in range(4 * wanted):
        if len(layers) == wanted:
            break
        layer = _layer(d, d.choice(KINDS), ndim, shape, allow_dropout)
        if layer is None:
            continue
        try:  # a forward, not just output_shape: it also applies rules on the values' positions
            new_shape = layer.eval()(np.zeros(shape, dtype=np.float32)).shape
        except ConvscopeError:  # does not fit this input: draw another
            continue
        layers.append(layer)
        shape = new_shape
    head = d.choice(["none", "linear", "linear_bn", "spatial_linear"])
    if head in ("linear", "linear_bn"):
        layers += [nn.Flatten(), nn.Linear(int(np.prod(shape[1:])), 5, bias=d.bool(), rng=d.rng)]
        if head == "linear_bn":
            bn = nn.BatchNorm1d(5)
            randomize_batch_norm(bn, d.rng)
            layers.append(bn)
        if d.bool():
            layers.append(nn.Softmax(-1))
    elif head == "spatial_linear":  # Linear on (N, C, L): MatMul + Add in ONNX
        layers += [nn.Flatten(2), nn.Linear(int(np.prod(shape[2:])), 3, rng=d.rng)]
    return nn.Sequential(*layers), (c, *n)


def models(**kwargs):
    """Hypothesis strategy of :func:`build_model` results (the seed is what is drawn)."""
    return st.integers(0, 2**32 - 1).map(lambda seed: build_model(seed, **kwargs))


# ------------------------------------------------------------------ hand-made cases
def _bn(cls, c, rng, **kwargs):
    bn = cls(c, **kwargs)
    randomize_batch_norm(bn, rng)
    return bn


def _cases() -> dict[str, Callable[[np.random.Generator], tuple[nn.Module, tuple[int, ...]]]]:
    cases = {}
    for mode in PADDING_MODES:
        cases[f"conv2d_{mode}_same_stride2_flip"] = lambda r, mode=mode: (nn.Sequential(
            nn.Conv2d(3, 4, (3, 2), stride=2, padding="same", padding_mode=mode, flip=True, rng=r)), (3, 7, 8))
        cases[f"conv1d_{mode}_pairs_dilation"] = lambda r, mode=mode: (nn.Sequential(
            nn.Conv1d(2, 4, 3, padding=((2, 1),), dilation=2, padding_mode=mode, groups=2, rng=r)), (2, 9))
        cases[f"conv3d_{mode}_int"] = lambda r, mode=mode: (nn.Sequential(
            nn.Conv3d(2, 3, 2, padding=1, padding_mode=mode, bias=False, rng=r)), (2, 3, 4, 5))
        cases[f"blur2d_{mode}"] = lambda r, mode=mode: (nn.Sequential(nn.BlurPool2d(2, 4, 2, mode)), (2, 7, 6))
    cases.update({
        "conv2d_same_stride1_even_kernel": lambda r: (nn.Conv2d(2, 2, 4, padding="same", rng=r), (2, 6, 6)),
        "conv2d_groups_depthwise": lambda r: (nn.Sequential(nn.Conv2d(4, 8, 3, groups=4, stride=(1, 2), rng=r)),
                                          (4, 6, 7)),
        "convnd_4d_zeros": lambda r: (nn.Sequential(nn.ConvNd(4, 2, 2, 2, padding=((1, 0), 0, (0, 1), 1), rng=r)),
                                      (2, 3, 3, 3, 3)),
        "maxpool2d_ceil_pairs": lambda r: (nn.MaxPool2d(3, 2, padding=((1, 0), (0, 1)), ceil_mode=True), (2, 8, 7)),
        "maxpool1d_ceil_dilated_overhang": lambda r: (nn.MaxPool1d(2, 3, padding=1, dilation=3, ceil_mode=True),
                                                  (2, 9)),
        "maxpool3d_dilation": lambda r: (nn.MaxPool3d(2, 1, dilation=2), (1, 5, 5, 5)),
        "avgpool2d_ceil_count_pad": lambda r: (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (2, 6, 6)),
        "avgpool2d_ceil_no_count_pad": lambda r: (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True,
                                                               count_include_pad=False), (2, 6, 6)),
        "avgpool1d_pairs": lambda r: (nn.AvgPool1d(4, 3, padding=((2, 1),), ceil_mode=True), (1, 10)),
        "avgpool3d_stride1": lambda r: (nn.AvgPool3d(2, 1, padding=1, count_include_pad=False), (1, 3, 4, 3)),
        "blurpool1d_filter1": lambda r: (nn.BlurPool1d(2, 1, 2), (2, 7)),
        "blurpool3d_circular": lambda r: (nn.BlurPool3d(1, 3, 2, "circular"), (1, 4, 5, 3)),
        "activations": lambda r: (nn.Sequential(nn.Conv1d(1, 3, 2, rng=r), nn.LeakyReLU(0.2), nn.Sigmoid(),
                                                nn.Tanh(), nn.ReLU(), nn.Softmax(1)), (1, 8)),
        "batchnorm2d_running": lambda r: (nn.Sequential(nn.Conv2d(2, 3, 3, rng=r), _bn(nn.BatchNorm2d, 3, r)),
                                      (2, 5, 5)),
        "batchnorm2d_batch_stats": lambda r: (nn.Sequential(nn.Conv2d(2, 3, 3, rng=r),
                                                            _bn(nn.BatchNorm2d, 3, r,
                                                                track_running_stats=False)), (2, 5, 5)),
        "batchnorm1d_features_no_affine": lambda r: (nn.Sequential(nn.Linear(6, 4, rng=r),
                                                                   _bn(nn.BatchNorm1d, 4, r, affine=False)), (6,)),
        "batchnorm1d_sequence": lambda r: (nn.Sequential(_bn(nn.BatchNorm1d, 3, r, eps=1e-3)), (3, 6)),
        "flatten_start2_linear_3d": lambda r: (nn.Sequential(nn.Conv2d(1, 2, 2, rng=r), nn.Flatten(2),
                                                             nn.Linear(9, 4, bias=False, rng=r)), (1, 4, 4)),
        "flatten_negative_start": lambda r: (nn.Sequential(nn.Flatten(-2), nn.Softmax(-1)), (2, 3, 4)),
        "linear_softmax_dropout": lambda r: (nn.Sequential(nn.Flatten(), nn.Dropout(0.3, rng=0),
                                                           nn.Linear(12, 5, rng=r), nn.Softmax()), (3, 4)),
        "residual_nested": lambda r: (nn.Sequential(nn.Residual(nn.Sequential(
            nn.Conv2d(2, 2, 3, padding="same", padding_mode="reflect", rng=r), nn.ReLU(),
            nn.Residual(nn.Conv2d(2, 2, 1, rng=r))))), (2, 5, 4)),
        "empty_sequential": lambda r: (nn.Sequential(), (2, 3)),
    })
    return cases


CASES = _cases()
