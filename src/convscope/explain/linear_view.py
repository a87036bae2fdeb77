"""Convolution is linear (notes 9.1.14): as a matrix, as a composition, and the filter-bank demo.

* :func:`conv_as_matrix` writes a convolution as the explicit matrix ``M`` with
  ``conv(x).ravel() == M @ x.ravel()``, and counts its free weights against a dense layer
  of the same size (Clarification 34: a very restricted kind of linear map).
* :func:`compose` merges convolutions with nothing nonlinear between them into one
  ("two consecutive convolutions are compressible to one").
* :func:`filter_bank_demo` replays the notes' filter-bank story (9.1.11-9.1.12) on a
  generated image and shows the single "donut" filter that does the same job.

Example:
    >>> m = conv_as_matrix(np.array([1., -1., 1.]), (5,))
    >>> m.matrix
    array([[ 1., -1.,  1.,  0.,  0.],
           [ 0.,  1., -1.,  1.,  0.],
           [ 0.,  0.,  1., -1.,  1.]])
    >>> m.free_weights, m.dense_weights
    (3, 15)
    >>> compose(np.array([1., 1.]), np.array([1., -1.])).weight
    array([ 1.,  0., -1.])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ShapeError
from ..functional.windows import check_allocation, pad, sliding_windows
from ..shapes import conv_geometry, format_shape
from ._result import Result
from ._text import fmt_grid, fmt_num, fmt_shape, plural
from .parse import as_explain_array

__all__ = [
    "ConvMatrix",
    "Composition",
    "FilterBankDemo",
    "conv_as_matrix",
    "compose",
    "filter_bank_demo",
]

_PRINT_LIMIT = 40  # rows/columns up to which text() prints a matrix in full


@dataclass(frozen=True, eq=False)
class ConvMatrix(Result):
    """A convolution written as a sparse matrix ``M``: ``y.ravel() = M @ x.ravel()``.

    Attributes:
        rows, cols, values: the non-zero entries (triplets, sorted by row then column;
            entries that several taps reach are summed).
        shape: ``(outputs, inputs)`` = ``(prod(output_shape), prod(input_shape))``.
        input_shape: ``(C_in, *spatial)`` (no batch axis) or spatial only, as given.
        output_shape: ``(C_out, *out)`` or spatial only, matching ``input_shape``.
        free_weights: entries of the filter bank (the numbers M is built from).
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    free_weights: int

    @property
    def dense_weights(self) -> int:
        """Free weights of a fully-connected layer with the same input and output sizes."""
        return self.shape[0] * self.shape[1]

    @property
    def nonzeros(self) -> int:
        """Number of non-zero entries of ``M``."""
        return int(self.values.size)

    @property
    def matrix(self) -> np.ndarray:
        """``M`` as a dense array (ResourceError if it would exceed the array limit)."""
        check_allocation(self.shape, np.float64, "dense matrix M", "conv_as_matrix")
        m = np.zeros(self.shape)
        m[self.rows, self.cols] = self.values
        return m

    def apply(self, x: Any) -> np.ndarray:
        """``M @ x.ravel()`` from the triplets, reshaped to ``output_shape``.

        >>> conv_as_matrix(np.array([1., 1.]), (3,)).apply([1., 2., 3.])
        array([3., 5.])
        """
        x = as_explain_array(x, "x", "ConvMatrix.apply")
        if x.size != self.shape[1]:
            raise ShapeError(
                f"ConvMatrix.apply: x must have {self.shape[1]} entries (input shape "
                f"{format_shape(self.input_shape)}); got shape {format_shape(x.shape)}."
            )
        y = np.zeros(self.shape[0])
        np.add.at(y, self.rows, self.values * x.reshape(-1)[self.cols])
        return y.reshape(self.output_shape)

    def text(self) -> str:
        """What ``M`` is, its counts, and ``M`` itself when small enough to read."""
        r, c = self.shape
        lines = [
            "Convolution is linear (9.1.14): y.ravel() = M @ x.ravel()",
            f"input of shape {self.input_shape} ({c} values) -> output of shape "
            f"{self.output_shape} ({r} values); M is {r} x {c}",
            f"M has {self.nonzeros} non-zero entries, all copies of the "
            f"{plural(self.free_weights, 'free weight')} of the filter bank (weight sharing); "
            f"the other {r * c - self.nonzeros} entries are 0 (each output sees only its window)",
            f"a dense (fully-connected) layer of the same size has {r} * {c} = "
            f"{self.dense_weights} free weights (Clarification 34)",
        ]
        if r <= _PRINT_LIMIT and c <= _PRINT_LIMIT:
            lines += ["M =", fmt_grid(self.matrix)]
        else:
            lines.append("(M is too large to print; use .matrix or the triplets)")
        return "\n".join(lines)

    _html = "text_html"
    _html_title = "Convolution as a matrix (9.1.14)"

    def __repr__(self) -> str:
        r, c = self.shape
        return (f"ConvMatrix({r} x {c}: {self.nonzeros} non-zeros from "
                f"{plural(self.free_weights, 'free weight')})")


def _promote(w: np.ndarray, spatial_ndim: int | None, name: str, op: str) -> tuple[np.ndarray, bool]:
    """A filter as a bank ``(C_out, C_in, *k)``; a filter of <= 2 axes is one 1-channel filter."""
    if spatial_ndim is not None:
        if w.ndim == spatial_ndim:
            return w[None, None], True
        if w.ndim == spatial_ndim + 2:
            return w, False
        raise ShapeError(
            f"{op}: {name} must be one filter with {spatial_ndim} spatial axes or a filter bank "
            f"(C_out, C_in, *kernel) with {spatial_ndim + 2} axes; got shape {format_shape(w.shape)}."
        )
    if w.ndim <= 2:
        return w[None, None], True
    return w, False


def conv_as_matrix(w: Any, input_shape: Sequence[int], stride: Any = 1, padding: Any = 0,
                   dilation: Any = 1, groups: int = 1, padding_mode: str = "zeros") -> ConvMatrix:
    """The explicit matrix ``M`` of a convolution: ``conv(x).ravel() == M @ x.ravel()``.

    Args:
        w: a filter bank ``(C_out, C_in // groups, *kernel)`` with ``input_shape`` =
            ``(C_in, *spatial)``; or one filter ``(*kernel)`` with ``input_shape`` = ``spatial``
            (same number of axes: one channel in and out).
        input_shape: the shape of one input, without batch axis.
        stride, padding, dilation, groups, padding_mode: as in
            :func:`convscope.functional.conv` (every padding mode is linear: reflect,
            replicate and circular pads copy entries, so ``M`` adds their weights).

    Returns:
        A :class:`ConvMatrix` (triplets always; ``.matrix`` builds the dense array). The bias
        is not part of ``M``: with it the layer is affine, ``y = M x + b``.

    Raises:
        ShapeError: shapes that do not fit, as :func:`convscope.functional.conv`.

    Example:
        A 2x2 filter on a 3x3 image: 4 outputs, 9 inputs, 16 non-zeros from 4 weights.

        >>> m = conv_as_matrix(np.array([[1., 2.], [3., 4.]]), (3, 3))
        >>> m.shape, m.nonzeros, m.free_weights
        ((4, 9), 16, 4)
        >>> m.matrix[0]
        array([1., 2., 0., 3., 4., 0., 0., 0., 0.])
    """
    op = "conv_as_matrix"
    w = as_explain_array(w, "w", op)
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise ArgumentTypeError(f"{op}: input_shape must be a tuple of ints; got {input_shape!r}.")
    in_shape = tuple(int(v) for v in input_shape)
    if w.ndim == len(in_shape):
        w4, full_in, single = w[None, None], (1, *in_shape), True
    elif w.ndim == len(in_shape) + 1:
        w4, full_in, single = w, in_shape, False
    else:
        raise ShapeError(
            f"{op}: w must be one filter with as many axes as input_shape, or a filter bank "
            f"(C_out, C_in, *kernel) with one more axis than input_shape = (C_in, *spatial); got "
            f"w of shape {format_shape(w.shape)} and input_shape {format_shape(in_shape)}."
        )
    geo = conv_geometry((1, *full_in), w4.shape, stride, padding, dilation, groups, padding_mode, op)
    n_in = math.prod(full_in)
    # Every padded entry as the index of the input entry it copies (-1: a zero of the padding).
    index = np.arange(n_in, dtype=np.float64).reshape((1, *full_in))
    index_p = pad(index, geo.p, geo.padding_mode, value=-1.0)
    win = sliding_windows(index_p, geo.k, geo.s, geo.d, geo.out)[0].astype(np.int64)  # (C, *out, *k)
    n_pos = math.prod(geo.out)
    c_in_g, c_out_g = geo.c_in // geo.g, geo.c_out // geo.g
    rows_l, cols_l, vals_l = [], [], []
    for co in range(geo.c_out):
        g = co // c_out_g
        cols = win[g * c_in_g:(g + 1) * c_in_g]                       # (C_in/g, *out, *k)
        cols = np.moveaxis(cols.reshape(c_in_g, n_pos, -1), 1, 0)     # (pos, C_in/g, taps)
        vals = np.broadcast_to(w4[co].reshape(c_in_g, -1), cols.shape)
        rows = np.broadcast_to((co * n_pos + np.arange(n_pos))[:, None, None], cols.shape)
        keep = cols >= 0
        rows_l.append(rows[keep])
        cols_l.append(cols[keep])
        vals_l.append(vals[keep])
    rows = np.concatenate(rows_l)
    cols = np.concatenate(cols_l)
    vals = np.concatenate(vals_l)
    n_out = geo.c_out * n_pos
    # Sum the entries that several taps reach (reflect/replicate/circular padding).
    key = rows * n_in + cols
    uniq, inverse = np.unique(key, return_inverse=True)
    summed = np.zeros(uniq.size)
    np.add.at(summed, inverse, vals)
    out_shape = geo.out if single else (geo.c_out, *geo.out)
    return ConvMatrix(uniq // n_in, uniq % n_in, summed, (n_out, n_in), in_shape, tuple(out_shape),
                      int(w.size))


@dataclass(frozen=True, eq=False)
class Composition(Result):
    """Several bias-and-convolution layers merged into one equivalent convolution.

    Attributes:
        weights: the given filter banks (as ``(C_out, C_in, *k)``).
        biases: the given biases (None where absent).
        weight: the combined filter (bank), in the form the inputs were given.
        bias: the combined bias (None if no layer had one).
        check_error: ``max |conv(...conv(x, a)..., b) - conv(x, combined)|`` on a random input.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray | None, ...]
    weight: np.ndarray
    bias: np.ndarray | None
    check_error: float

    def verify(self, x: Any) -> float:
        """Largest difference between the stacked convolutions and the combined one on ``x``.

        ``x`` is ``(C_in, *spatial)`` or, for single filters, ``spatial``.

        >>> c = compose(np.array([1., 2.]), np.array([3., -1., 1.]))
        >>> c.verify(np.arange(8.))
        0.0
        """
        x = as_explain_array(x, "x", "Composition.verify")
        bank = self.weights[0]
        xb = x[None, None] if x.ndim == bank.ndim - 2 else x[None]
        return _check(self.weights, self.biases, self._bank(), self.bias, xb)

    def _bank(self) -> np.ndarray:
        return self.weight if self.weight.ndim == self.weights[0].ndim else self.weight[None, None]

    def text(self) -> str:
        """The layers, the combined filter and the numerical check."""
        lines = ["Convolutions with nothing nonlinear between them are one convolution (9.1.14)"]
        for i, (w, b) in enumerate(zip(self.weights, self.biases), start=1):
            lines.append(f"conv {i}: filter bank {w.shape[0]} x {w.shape[1]} x {fmt_shape(w.shape[2:])} "
                         f"(C_out x C_in x kernel){', with bias' if b is not None else ''}")
        bank = self._bank()
        per_axis = []
        for axis in range(bank.ndim - 2):
            ks = [w.shape[2 + axis] for w in self.weights]
            per_axis.append(" + ".join(map(str, ks)) + f" - {len(ks) - 1} = {bank.shape[2 + axis]}")
        lines.append(f"combined: filter bank {bank.shape[0]} x {bank.shape[1]} x "
                     f"{fmt_shape(bank.shape[2:])} (full composition; kernel size per axis: "
                     f"{'; '.join(per_axis)})")
        for o in range(bank.shape[0]):
            for i in range(bank.shape[1]):
                lines.append(f"combined filter (output channel {o + 1}, input channel {i + 1}):")
                lines.append(fmt_grid(bank[o, i], "  "))
        if self.bias is not None:
            lines.append(f"combined bias: {', '.join(fmt_num(v) for v in self.bias)}")
        lines.append(f"check on a random input: largest |stacked - combined| = {self.check_error:.3g}")
        return "\n".join(lines)

    _html = "text_html"
    _html_title = "Convolutions composed into one (9.1.14)"

    def __repr__(self) -> str:
        return (f"Composition({len(self.weights)} convolutions -> one filter of shape "
                f"{fmt_shape(self.weight.shape)}, check {self.check_error:.3g})")


def _pair(layer: Any, i: int, op: str) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(layer, tuple):
        if len(layer) != 2:
            raise ArgumentTypeError(f"{op}: layer {i + 1} must be a filter or a (filter, bias) pair; "
                                    f"got a tuple of {len(layer)} items.")
        w = as_explain_array(layer[0], f"filter {i + 1}", op)
        b = None if layer[1] is None else np.atleast_1d(as_explain_array(layer[1], f"bias {i + 1}", op))
        return w, b
    return as_explain_array(layer, f"filter {i + 1}", op), None


def _check(weights, biases, combined, bias, xb) -> float:
    y = xb
    for w, b in zip(weights, biases):
        y = F.conv(y, w, b)
    z = F.conv(xb, combined, bias)
    return float(np.max(np.abs(y - z))) if y.size else 0.0


def compose(*layers: Any) -> Composition:
    """Merge convolutions applied one after another (stride 1, no padding) into one.

    For cross-correlation, ``(x * a) * b = x * c`` with ``c`` the full composition of the
    kernels: ``c[o, i, t] = sum over m and l + j = t of b[o, m, l] a[m, i, j]``, of size
    ``k_a + k_b - 1`` per axis. Biases carry through: ``c_0[o] = sum over m, l of
    b[o, m, l] a_0[m] + b_0[o]``. (With padding the merge is exact only away from the
    borders, so only 'valid' convolutions are merged.)

    Args:
        *layers: two or more filters, in the order they are applied. Each is an array — a
            filter bank ``(C_out, C_in, *kernel)`` or, with at most 2 axes, one 1-channel
            filter — or a ``(filter, bias)`` pair.

    Returns:
        A :class:`Composition` with the combined filter (1-channel form when every layer was
        given that way), the combined bias and a numerical check.

    Raises:
        ShapeError: channel counts that do not chain, different numbers of spatial axes.

    Example:
        >>> c = compose(np.array([[1., 1.]]), np.array([[1.], [-1.]]))  # 1x2 sum, then 2x1 difference
        >>> c.weight
        array([[ 1.,  1.],
               [-1., -1.]])
        >>> c = compose((np.array([1., 1.]), 2.0), (np.array([1., 0., 1.]), -1.0))
        >>> c.weight, c.bias
        (array([1., 1., 1., 1.]), array([3.]))
    """
    op = "compose"
    if len(layers) < 2:
        raise ArgumentTypeError(f"{op}: give at least two filters to compose; got {len(layers)}.")
    pairs = [_pair(layer, i, op) for i, layer in enumerate(layers)]
    single = all(w.ndim <= 2 for w, _ in pairs)
    banks, biases = [], []
    for i, (w, b) in enumerate(pairs):
        bank, _ = _promote(w, None, f"filter {i + 1}", op)
        if b is not None and b.shape != (bank.shape[0],):
            raise ShapeError(f"{op}: bias {i + 1} must have one entry per filter ({bank.shape[0]}); "
                             f"got shape {format_shape(b.shape)}.")
        banks.append(bank)
        biases.append(b)
    for i in range(1, len(banks)):
        prev, cur = banks[i - 1], banks[i]
        if cur.ndim != prev.ndim:
            raise ShapeError(f"{op}: filters {i} and {i + 1} have different numbers of spatial axes "
                             f"({prev.ndim - 2} and {cur.ndim - 2}).")
        if cur.shape[1] != prev.shape[0]:
            raise ShapeError(
                f"{op}: filter {i + 1} expects {cur.shape[1]} input channels but filter {i} makes "
                f"{prev.shape[0]} (shapes {format_shape(prev.shape)} and {format_shape(cur.shape)})."
            )
    weight, bias = banks[0], biases[0]
    for w, b in zip(banks[1:], biases[1:]):
        ka, kb = weight.shape[2:], w.shape[2:]
        merged = np.zeros((w.shape[0], weight.shape[1], *(a + c - 1 for a, c in zip(ka, kb))))
        for tap in np.ndindex(*kb):                      # c[:, :, l + j] += b[:, :, l] a[:, :, j]
            target = (slice(None), slice(None)) + tuple(slice(t, t + a) for t, a in zip(tap, ka))
            merged[target] += np.einsum("om,mi...->oi...", w[(slice(None), slice(None)) + tap], weight)
        new_bias = None
        if bias is not None or b is not None:
            carried = w.sum(axis=tuple(range(2, w.ndim))) @ bias if bias is not None else 0.0
            new_bias = carried + (b if b is not None else 0.0)
        weight, bias = merged, (None if new_bias is None else np.asarray(new_bias, dtype=np.float64))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, banks[0].shape[1], *(k + 3 for k in weight.shape[2:])))
    error = _check(banks, biases, weight, bias, x)
    return Composition(tuple(banks), tuple(biases), weight[0, 0] if single else weight, bias, error)


@dataclass(frozen=True, eq=False)
class FilterBankDemo(Result):
    """The notes' filter-bank story (9.1.11-9.1.12) on a generated image.

    Attributes:
        image: ``(H, W)``, +1 for dark ink and -1 for background (the notes' convention):
            vertical lines, horizontal lines, one hollow square and one filled square.
        vertical_filter, horizontal_filter: the 3x3 line detectors (a filter bank of two).
        channels: ``(2, H-2, W-2)``: "vertical detection" and "horizontal detection".
        tensor_filter: ``(2, 5, 5)``: one filter across both channels that wants two
            vertical lines left and right and two horizontal lines above and below.
        offset: its ``f_0``, a threshold (Clarification 55): the output is positive only
            where the pattern is strong enough.
        response: ``(H-6, W-6)``: tensor filter on the channels, plus the offset.
        fires: ``response > 0``.
        donut: the single ``7x7`` filter from :func:`compose` that gives ``response`` directly.
        donut_response: ``conv(image, donut) + offset``; equal to ``response``.
        hollow_square, filled_square: centres of the two squares in the image.
    """

    image: np.ndarray
    vertical_filter: np.ndarray
    horizontal_filter: np.ndarray
    channels: np.ndarray
    tensor_filter: np.ndarray
    offset: float
    response: np.ndarray
    fires: np.ndarray
    donut: np.ndarray
    donut_response: np.ndarray
    hollow_square: tuple[int, int]
    filled_square: tuple[int, int]

    @property
    def fire_positions(self) -> list[tuple[int, int]]:
        """Image coordinates (centre of the 7x7 window) where the tensor filter fires."""
        return [(int(r) + 3, int(c) + 3) for r, c in zip(*np.nonzero(self.fires))]

    def text(self) -> str:
        """The story in numbers; pictures of the same arrays are drawn by convscope.viz."""
        strongest = np.sort(self.response.ravel())
        filled = self.response[self.filled_square[0] - 3, self.filled_square[1] - 3]
        hollow = self.response[self.hollow_square[0] - 3, self.hollow_square[1] - 3]
        return "\n".join([
            "Filter banks and tensor filters (notes 9.1.11-9.1.12)",
            f"image {fmt_shape(self.image.shape)}: +1 ink, -1 background; vertical and horizontal "
            f"lines, a hollow square at {self.hollow_square}, a filled square at {self.filled_square}",
            "filter bank of two 3x3 filters:",
            "  vertical detection:", fmt_grid(self.vertical_filter, "    "),
            "  horizontal detection:", fmt_grid(self.horizontal_filter, "    "),
            f"-> 2 channels of {fmt_shape(self.channels.shape[1:])}",
            "tensor filter (2 x 5 x 5) over both channels, offset f_0 = "
            f"{fmt_num(self.offset)}:",
            "  on the vertical channel:", fmt_grid(self.tensor_filter[0], "    "),
            "  on the horizontal channel:", fmt_grid(self.tensor_filter[1], "    "),
            f"response at the hollow square {fmt_num(hollow)}, at the filled square "
            f"{fmt_num(filled)}; everywhere else at most {fmt_num(strongest[-2])}",
            f"fires (response > 0) at {self.fire_positions}: only the hollow square",
            "compose(filter bank, tensor filter) = one 7x7 'donut' filter that does the same:",
            fmt_grid(self.donut, "  "),
            f"largest |donut response - two-layer response| = "
            f"{float(np.max(np.abs(self.donut_response - self.response))):.3g}",
        ])

    _html = "text_html"
    _html_title = "Filter banks and tensor filters (9.11-9.12)"

    def __repr__(self) -> str:
        return (f"FilterBankDemo(image {fmt_shape(self.image.shape)}, donut {fmt_shape(self.donut.shape)}, "
                f"fires at {self.fire_positions})")


def filter_bank_demo() -> FilterBankDemo:
    """Replay the notes' filter-bank example (9.1.11-9.1.12) on a generated 24x24 image.

    A bank of two 3x3 filters (vertical and horizontal line detectors) turns the image into
    two channels; one tensor filter across both channels, with an offset as threshold, fires
    only at the centre of the hollow square (not at the lines, not at a filled square); and
    :func:`compose` turns the two layers into the single "donut" filter that does the same.

    Returns:
        A :class:`FilterBankDemo` holding every array (pictures are drawn by ``convscope.viz``).

    Example:
        >>> demo = filter_bank_demo()
        >>> demo.fire_positions == [demo.hollow_square]
        True
        >>> float(np.abs(demo.donut_response - demo.response).max())
        0.0
        >>> demo.donut.shape
        (7, 7)
    """
    image = -np.ones((24, 24))
    image[2:10, 3] = 1          # vertical lines
    image[14:22, 20] = 1
    image[20, 2:10] = 1         # horizontal lines
    image[3, 13:21] = 1
    hollow, filled = (11, 12), (17, 14)
    r, c = hollow
    image[r - 2:r + 3, c - 2:c + 3] = 1          # a 5x5 square ...
    image[r - 1:r + 2, c - 1:c + 2] = -1         # ... hollowed out
    r, c = filled
    image[r - 2:r + 3, c - 2:c + 3] = 1
    vertical = np.array([[-1., 2., -1.]] * 3)   # fires on a 1-pixel vertical line
    horizontal = vertical.T.copy()
    bank = np.stack([vertical, horizontal])[:, None]           # (2, 1, 3, 3)
    channels = F.conv(image[None, None], bank)[0]
    tensor = np.zeros((2, 5, 5))
    tensor[0, 1:4, 0] = tensor[0, 1:4, 4] = 1.0  # vertical lines left and right of the centre
    tensor[1, 0, 1:4] = tensor[1, 4, 1:4] = 1.0  # horizontal lines above and below
    offset = -100.0
    response = F.conv(channels[None], tensor[None], np.array([offset]))[0, 0]
    merged = compose(bank, (tensor[None], np.array([offset])))
    donut = merged.weight[0, 0]
    donut_response = F.conv(image[None, None], merged.weight, merged.bias)[0, 0]
    return FilterBankDemo(image, vertical, horizontal, channels, tensor, offset, response,
                          response > 0, donut, donut_response, hollow, filled)
