"""The derivatives of notes section 9.4 as explicit matrices, and the chain of (9.32) assembled.

The notes lay out a derivative of an output with respect to an input with one row per input
entry and one column per output entry (so ``dL/dW^1`` is ``(k x 1)`` and the chain (9.32)
multiplies left to right). These functions build each factor that way:

* :func:`conv_weight_jacobian` - ``dZ/dW``, the ``(k x n)`` matrix of inputs ``X_{i+j-1}``
  (Key Equation 68, example 9.31);
* :func:`relu_jacobian` - ``dA/dZ``, diagonal with 1 where ``Z_i > 0`` (Key Equation 66, 9.26);
* :func:`maxpool_jacobian` - ``d maxpool / da``, one-hot per window (Key Equation 69, 9.35);
* :func:`chain_9_32` - the notes' 1-D network (conv, ReLU, fully-connected without bias,
  squared loss) with every factor of ``dL/dW^1`` and their product, checked against
  :func:`convscope.functional.conv_backward`.

Building these matrices costs memory the library's backward never spends (it multiplies
by them without forming them); they are for seeing, on small inputs.

Example (the notes' example 9.31: 4 weights, 6 inputs, 3 outputs):
    >>> j = conv_weight_jacobian(6, 4)
    >>> print(j.text().splitlines()[-4:])
    ['  [[X_1, X_2, X_3],', '   [X_2, X_3, X_4],', '   [X_3, X_4, X_5],', '   [X_4, X_5, X_6]]']
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ResourceError, ShapeError
from ..settings import check_allocation
from ..shapes import conv_geometry, format_shape, normalize_int, normalize_tuple
from ._result import Result
from ._text import fmt_array, fmt_grid, fmt_num
from .parse import as_explain_array
from .trace import positions, window_slices

__all__ = [
    "Jacobian",
    "Chain932",
    "conv_weight_jacobian",
    "relu_jacobian",
    "maxpool_jacobian",
    "chain_9_32",
]


def _string_grid(cells: np.ndarray, indent: str = "  ") -> str:
    cells = np.asarray(cells, dtype=object)
    if cells.ndim == 1:
        cells = cells[:, None]
    widths = [max(len(str(c)) for c in cells[:, j]) for j in range(cells.shape[1])]
    lines = []
    for r, row in enumerate(cells):
        body = ", ".join(str(c).ljust(widths[j]) if j < len(row) - 1 else str(c).ljust(widths[j])
                         for j, c in enumerate(row))
        lines.append(indent + ("[[" if r == 0 else " [") + body.rstrip()
                     + ("]]" if r == len(cells) - 1 else "],"))
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class Jacobian(Result):
    """One derivative matrix of section 9.4, with its meaning.

    Attributes:
        name: e.g. ``"dZ/dW"``.
        matrix: the numbers, ``(inputs x outputs)`` in the notes' layout; None when only the
            symbolic form was asked for.
        symbols: the same matrix written in the notes' symbols (``X_3``), or None.
        rows, cols: what a row and a column stand for (e.g. ``"W_j"``, ``"Z_i"``).
        reference: where the notes derive it.
        note: one line on how to read it.
    """

    name: str
    matrix: np.ndarray | None
    symbols: np.ndarray | None
    rows: str
    cols: str
    reference: str
    note: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        m = self.matrix if self.matrix is not None else self.symbols
        assert m is not None  # every Jacobian holds its numbers, its symbols or both
        rows, cols = (int(v) for v in m.shape)
        return rows, cols

    def text(self) -> str:
        """The matrix with its shape and meaning, symbolic and numeric when both are known."""
        r, c = self.shape
        lines = [f"{self.name} ({r} x {c}): row = {self.rows}, column = {self.cols} ({self.reference})",
                 f"  {self.note}"]
        if self.matrix is not None:
            lines.append(fmt_grid(self.matrix))
        if self.symbols is not None:
            if self.matrix is not None:
                lines.append("  in the notes' symbols:")
            lines.append(_string_grid(self.symbols))
        return "\n".join(lines)

    _html = "jacobian_html"

    def __repr__(self) -> str:
        r, c = self.shape
        return f"Jacobian({self.name}, {r} x {c}, {self.reference})"


_MAX_ENTRIES = 10**6  # entries of a symbolic Jacobian (built in a Python loop, for printing)


def _axes_text(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(tuple(values))


def _index_formula(s: tuple[int, ...], d: tuple[int, ...]) -> str:
    """The input index under tap ``j`` of window ``i`` (1-based): Key Equation 68 with stride/dilation.

    >>> _index_formula((1,), (1,)), _index_formula((2,), (1,)), _index_formula((2,), (3,))
    ('i+j-1', 's(i-1)+j', 's(i-1)+d(j-1)+1')
    """
    strided, dilated = any(v != 1 for v in s), any(v != 1 for v in d)
    if not strided and not dilated:
        return "i+j-1"
    if strided and not dilated:
        return "s(i-1)+j"
    if dilated and not strided:
        return "i+d(j-1)"
    return "s(i-1)+d(j-1)+1"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def conv_weight_jacobian(x: Any, k: Any, stride: Any = 1, padding: Any = 0,
                         dilation: Any = 1) -> Jacobian:
    """``dZ/dW`` of a one-channel convolution: the notes' ``(k x n)`` matrix of inputs (9.31).

    Entry ``(j, i)`` is ``dZ_i/dW_j = X_{i+j-1}`` (Key Equation 68), where ``X = A^0`` is the
    padded input (9.14); with stride ``s`` window ``i`` starts ``s(i-1)`` entries in, so the
    entry is ``X_{s(i-1)+j}`` (``X_{s(i-1)+d(j-1)+1}`` with dilation ``d``): always the input
    under tap ``j`` of window ``i``. Rows run over the filter's taps, columns over the outputs (both row-major when the
    input has several spatial axes).

    Args:
        x: the input signal or image (one channel, any number of spatial axes), or an int
            ``n`` for the symbolic matrix of a length-``n`` 1-D input.
        k: filter size, int or per axis.
        stride, padding, dilation: as in :func:`convscope.functional.conv`.

    Returns:
        A :class:`Jacobian`; ``matrix @ dZ.ravel()`` is ``dL/dW`` (the filter derivative that
        :func:`convscope.functional.conv_backward` returns as ``dw``).

    Raises:
        ShapeError: the filter does not fit the padded input.

    Example:
        >>> j = conv_weight_jacobian([1., 2., 3., 4., 5., 6.], 4)
        >>> j.matrix
        array([[1., 2., 3.],
               [2., 3., 4.],
               [3., 4., 5.],
               [4., 5., 6.]])
        >>> conv_weight_jacobian(3, 2, padding=1).symbols.tolist()
        [['0', 'X_2', 'X_3', 'X_4'], ['X_2', 'X_3', 'X_4', '0']]
    """
    op = "conv_weight_jacobian"
    if _is_int(x):
        n = (normalize_int(x, "x", op, minimum=1),)
        values = None
    else:
        values = as_explain_array(x, "x", op)
        if values.ndim < 1:
            raise ShapeError(f"{op}: x must have at least one axis; got a scalar.")
        n = values.shape
    ndim = len(n)
    kk = normalize_tuple(k, ndim, "k", op)
    geo = conv_geometry((1, 1, *n), (1, 1, *kk), stride, padding, dilation, 1, "zeros", op)
    padded = tuple(v + b + a for v, (b, a) in zip(n, geo.p))
    # Built entry by entry (a symbol per entry) for reading: a teaching-sized matrix only.
    entries = math.prod(kk) * math.prod(geo.out)
    if entries > _MAX_ENTRIES:
        raise ResourceError(
            f"{op}: the Jacobian would have {math.prod(kk)} taps x {math.prod(geo.out)} outputs "
            f"= {entries} entries (output size {format_shape(geo.out)} for input "
            f"{format_shape(n)}, padding {geo.p}, stride {geo.s}); explain builds at most "
            f"{_MAX_ENTRIES}. Use a smaller input, padding or kernel."
        )
    # 1-based index of every padded entry in X = A^0 (0 marks the zero padding, 9.14):
    inside = np.zeros(padded, dtype=bool)
    inside[tuple(slice(b, b + v) for v, (b, _) in zip(n, geo.p))] = True
    taps = list(positions(kk))
    outs = list(positions(geo.out))
    symbols = np.empty((len(taps), len(outs)), dtype=object)
    matrix = np.zeros((len(taps), len(outs))) if values is not None else None
    xp = F.windows.pad(values[None, None], geo.p)[0, 0] if values is not None else None
    for col, o in enumerate(outs):
        window = window_slices(o, geo.s, geo.d, kk)
        for row, t in enumerate(taps):
            pos = tuple(sl.start + ti * sl.step for sl, ti in zip(window, t))
            if inside[pos]:
                idx = [p_ + 1 for p_ in pos]
                symbols[row, col] = f"X_{idx[0]}" if ndim == 1 else "X_{" + ",".join(map(str, idx)) + "}"
            else:
                symbols[row, col] = "0"
            if matrix is not None and xp is not None:
                matrix[row, col] = xp[pos]
    note = f"dZ_i/dW_j = X_{{{_index_formula(geo.s, geo.d)}}}: the input under tap j of window i"
    if any(v != 1 for v in geo.s):
        note += f" (window i starts s(i-1) entries in; stride s = {_axes_text(geo.s)})"
    if any(v != 1 for v in geo.d):
        note += f" (taps d apart; dilation d = {_axes_text(geo.d)})"
    if any(b or a for b, a in geo.p):
        note += "; X = A^0 is the padded input (9.14)"
    return Jacobian("dZ/dW", matrix, symbols, "filter tap W_j", "output Z_i",
                    "Key Equation 68, example 9.31", note)


def relu_jacobian(z: Any) -> Jacobian:
    """``dA/dZ`` of ReLU: the ``(m x m)`` diagonal matrix of Key Equation 66 (example 9.26).

    Args:
        z: the pre-activation ``Z`` (any shape; flattened row-major to a length-``m`` vector).

    Returns:
        A :class:`Jacobian` whose matrix equals :func:`convscope.functional.relu_jacobian`.

    Example:
        The notes' 9.26, where only ``Z_3`` is negative:

        >>> relu_jacobian([0.5, 2.0, -1.0, 3.0]).matrix
        array([[1., 0., 0., 0.],
               [0., 1., 0., 0.],
               [0., 0., 0., 0.],
               [0., 0., 0., 1.]])
    """
    z = as_explain_array(z, "z", "relu_jacobian").reshape(-1)
    matrix = F.relu_jacobian(z)
    return Jacobian("dA/dZ", matrix, None, "Z_i", "A_j", "Key Equation 66, example 9.26",
                    "diagonal: dA_i/dZ_i = 1 where Z_i > 0, else 0; off the diagonal 0 "
                    "(each activation depends only on its own pre-activation)")


def maxpool_jacobian(a: Any, kernel_size: Any = None, stride: Any = None) -> Jacobian:
    """``d maxpool / da``: one one-hot column per window (Key Equation 69, example 9.35).

    Args:
        a: the pooled input, 1-D or N-D (one channel; flattened row-major for the rows).
        kernel_size: window size; None pools the whole input in one window, which gives the
            notes' ``(n x 1)`` one-hot column (9.35).
        stride: step between windows; defaults to ``kernel_size``.

    Returns:
        A :class:`Jacobian` of shape ``(inputs x outputs)``: column ``i`` is 1 at the entry
        chosen by window ``i`` (the first maximum of a tie, as the library's max pooling).
        ``matrix @ dy.ravel()`` equals :func:`convscope.functional.max_pool_backward`.

    Example:
        The notes' 9.35: ``a_4`` is the largest of 6 inputs.

        >>> maxpool_jacobian([1., 0., 2., 5., -1., 3.]).matrix.ravel()
        array([0., 0., 0., 1., 0., 0.])
        >>> maxpool_jacobian([1., 4., 2., 0.], 2).matrix
        array([[0., 0.],
               [1., 0.],
               [0., 1.],
               [0., 0.]])
    """
    op = "maxpool_jacobian"
    a = as_explain_array(a, "a", op)
    if a.ndim < 1:
        raise ShapeError(f"{op}: a must have at least one axis; got a scalar.")
    k = a.shape if kernel_size is None else normalize_tuple(kernel_size, a.ndim, "kernel_size", op)
    y, idx = F.max_pool(a[None, None], k, stride, return_indices=True)
    flat = idx.reshape(-1)
    check_allocation((a.size, flat.size), np.float64, "Jacobian (a.size x windows)", op)
    matrix = np.zeros((a.size, flat.size))
    matrix[flat, np.arange(flat.size)] = 1.0
    return Jacobian("d maxpool/da", matrix, None, "input a_j", "window output",
                    "Key Equation 69, example 9.35",
                    "one-hot per column: 1 at the window's maximum, 0 elsewhere (ties: the first)")


@dataclass(frozen=True, eq=False)
class Chain932(Result):
    """The notes' 1-D network and the chain rule (9.32) for ``dL/dW^1``, factor by factor.

    Attributes:
        a0: the padded input ``A^0 = X``.  z1, a1: ``Z^1 = W^1 * A^0`` and ``A^1 = ReLU(Z^1)``.
        a2: ``A^2 = (W^2)^T A^1``.  loss: ``(A^2 - y)^2``.
        dz_dw (k x n), da1_dz1 (n x n), da2_da1 (n x 1), dl_da2 (1 x 1): the four factors.
        product: their product, ``dL/dW^1`` (k x 1).
        library_dw: the same derivative from the library's backward functions.
    """

    x: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    y: float
    padding: int
    a0: np.ndarray
    z1: np.ndarray
    a1: np.ndarray
    a2: float
    loss: float
    dz_dw: Jacobian
    da1_dz1: Jacobian
    da2_da1: np.ndarray
    dl_da2: np.ndarray
    product: np.ndarray
    library_dw: np.ndarray
    stride: int = 1

    @property
    def max_abs_diff(self) -> float:
        """Largest difference between the assembled chain and the library's ``dw``."""
        return float(np.max(np.abs(self.product.ravel() - self.library_dw.ravel())))

    def text(self) -> str:
        """Forward values, the four factors with their shapes, the product and the check."""
        k, n = self.dz_dw.shape
        lines = [
            "The notes' 1-D network (9.4.1): Z^1 = W^1 * A^0, A^1 = ReLU(Z^1), "
            "A^2 = (W^2)^T A^1, L = (A^2 - y)^2",
            f"A^0 = X (x padded with p = {self.padding}): {fmt_array(self.a0)}",
            f"W^1: {fmt_array(self.w1)}    W^2: {fmt_array(self.w2)}    y = {fmt_num(self.y)}",
            f"Z^1 = {fmt_array(self.z1)}",
            f"A^1 = {fmt_array(self.a1)}",
            f"A^2 = {fmt_num(self.a2)}    L = ({fmt_num(self.a2)} - {fmt_num(self.y)})^2 = {fmt_num(self.loss)}",
            f"dL/dW^1 (k x 1) = dZ^1/dW^1 (k x n) . dA^1/dZ^1 (n x n) . dA^2/dA^1 (n x 1) . "
            f"dL/dA^2 (1 x 1)    (9.32, k = {k}, n = {n}"
            + (f"; stride s = {self.stride}: the notes' network has s = 1, Z^1_i reads X from "
               f"s(i-1)+1 on" if self.stride != 1 else "") + ")",
            self.dz_dw.text(),
            self.da1_dz1.text(),
            f"dA^2/dA^1 = W^2 ({n} x 1) (9.22):",
            fmt_grid(self.da2_da1),
            f"dL/dA^2 = 2(A^2 - y) = 2({fmt_num(self.a2)} - {fmt_num(self.y)}) = "
            f"{fmt_num(self.dl_da2[0, 0])} (9.21)",
            f"product dL/dW^1 ({k} x 1):",
            fmt_grid(self.product),
            f"library (conv_backward ... squared_loss_backward): dw = {fmt_array(self.library_dw)}; "
            f"largest difference {self.max_abs_diff:.3g}",
        ]
        return "\n".join(lines)

    _html = "chain_html"

    def __repr__(self) -> str:
        return (f"Chain932(dL/dW^1 = {fmt_array(self.product.ravel())}, library difference "
                f"{self.max_abs_diff:.3g})")


def chain_9_32(x: Any, w1: Any, w2: Any, y: float, padding: int = 0, stride: int = 1) -> Chain932:
    """Assemble ``dL/dW^1`` for the notes' 1-D network as the product of its four factors (9.32).

    The network (9.4.1): zero-pad ``x`` by ``p`` to get ``A^0``, ``Z^1 = W^1 * A^0`` (one
    size-``k`` filter, stride 1, no bias), ``A^1 = ReLU(Z^1)``, ``A^2 = (W^2)^T A^1`` (one
    output, no bias), ``L = (A^2 - y)^2``.

    Args:
        x: the input, length ``m``.
        w1: the filter ``W^1``, length ``k``.
        w2: the fully-connected weights ``W^2``, length ``n = floor((m + 2p - k) / s) + 1``
            (``m + 2p - k + 1`` at the notes' stride 1).
        y: the target.
        padding: ``p``.
        stride: ``s`` of the convolution (the notes use 1; any stride is honoured, and
            ``dZ^1/dW^1`` is then the matrix of ``X_{s(i-1)+j}``).

    Returns:
        A :class:`Chain932` with the forward values, each factor, the product and the
        library's ``dw`` (from ``squared_loss_backward``, ``linear_backward``,
        ``relu_backward`` and ``conv_backward``) for comparison.

    Raises:
        ShapeError: ``x``/``w1``/``w2`` not 1-D, or ``w2`` not of length ``n``.

    Example:
        >>> c = chain_9_32([1., -2., 3., 1., 0., 2.], [1., 0., 1., -1.], [1., -1., 2.], 1.0)
        >>> c.z1, c.a1, c.a2, c.loss
        (array([ 3., -1.,  1.]), array([3., 0., 1.]), 5.0, 16.0)
        >>> c.product.ravel(), c.library_dw
        (array([56.,  0., 24., 40.]), array([56.,  0., 24., 40.]))
    """
    op = "chain_9_32"
    x = as_explain_array(x, "x", op)
    w1 = as_explain_array(w1, "w1", op)
    w2 = as_explain_array(w2, "w2", op)
    for name, v in (("x", x), ("w1", w1), ("w2", w2)):
        if v.ndim != 1:
            raise ShapeError(f"{op}: {name} must be a 1-D vector (the notes' network is 1-D); got "
                             f"shape {format_shape(v.shape)}.")
    try:
        y = float(y)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{op}: y (the target) must be a number; got {y!r}.") from None
    p = normalize_int(padding, "padding", op, minimum=0)
    s = normalize_int(stride, "stride", op, minimum=1)
    z1 = F.conv(x[None, None], w1[None, None], stride=s, padding=p)[0, 0]
    n = z1.shape[0]
    if w2.shape != (n,):
        count = (f"m + 2p - k + 1 = {x.shape[0]} + {2 * p} - {w1.shape[0]} + 1" if s == 1 else
                 f"floor((m + 2p - k) / s) + 1 = floor(({x.shape[0]} + {2 * p} - {w1.shape[0]}) / {s}) + 1")
        raise ShapeError(
            f"{op}: w2 must have one weight per output of the convolution, n = {count} = {n}; got w2 "
            f"of shape {format_shape(w2.shape)}."
        )
    a0 = F.windows.pad(x[None, None], [(p, p)])[0, 0]
    a1 = F.relu(z1)
    a2 = float(w2 @ a1)
    loss = (a2 - y) ** 2
    dz_dw = conv_weight_jacobian(x, w1.shape[0], stride=s, padding=p)
    da1_dz1 = relu_jacobian(z1)
    da2_da1 = w2[:, None]
    dl_da2 = np.array([[2.0 * (a2 - y)]])
    assert dz_dw.matrix is not None and da1_dz1.matrix is not None  # numeric inputs give numeric Jacobians
    product = dz_dw.matrix @ da1_dz1.matrix @ da2_da1 @ dl_da2
    # The same derivative through the library's backward functions, one layer at a time.
    pred = F.linear(a1[None], w2[None])
    d_pred = F.squared_loss_backward(pred, np.array([[y]]))
    d_a1, _, _ = F.linear_backward(d_pred, a1[None], w2[None])
    d_z1 = F.relu_backward(d_a1[0], z1)
    _, dw, _ = F.conv_backward(d_z1[None, None], x[None, None], w1[None, None], stride=s, padding=p)
    return Chain932(x, w1, w2, y, p, a0, z1, a1, a2, loss, dz_dw, da1_dz1, da2_da1, dl_da2,
                    product, dw[0, 0], s)
