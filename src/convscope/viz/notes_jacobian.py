"""The derivatives of notes section 9.4 as labelled matrices, and the chain rule (9.32) as a product.

* :func:`plot_jacobian` - one :class:`~convscope.explain.Jacobian` (``dZ/dW`` of 9.31, ``dA/dZ``
  of ReLU 9.26, ``d maxpool/da`` of 9.35): rows and columns labelled in the notes' symbols, each
  cell with its symbol (``X_3``) and its number.
* :func:`plot_chain` - the four factors of ``dL/dW^1`` (9.32) side by side with their shapes,
  and their product, from :func:`~convscope.explain.chain_9_32`.

Example:
    >>> from convscope.explain import conv_weight_jacobian
    >>> plot_jacobian(conv_weight_jacobian([1., 2., 3., 4., 5., 6.], 4)).title
    'dZ/dW (4 x 3): row = filter tap W_j, column = output Z_i (Key Equation 68, example 9.31)'
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError
from ..explain import Chain932, Jacobian
from ._canvas import ACCENTS, Canvas, num
from .figure import Figure

__all__ = ["plot_jacobian", "plot_chain"]

_MAX_CELLS = 48     # rows or columns drawn with their text


def _names(spec: str, count: int) -> list[str]:
    base = spec.split()[-1].split("_")[0] if spec else "i"
    return [f"{base}_{i + 1}" for i in range(count)]


def _matrix(c: Canvas, m: np.ndarray | None, sym: np.ndarray | None, x0: float, y0: float,
            rows: list[str] | None, cols: list[str] | None, vmax: float | None = None,
            cell: float = 1.0) -> tuple[float, float]:
    if m is not None:
        a = m
    else:
        assert sym is not None  # the callers pass the numbers, the symbols or both
        a = np.zeros(sym.shape)
    r, k = a.shape
    texts = np.empty((r, k), dtype=object)
    for i in range(r):
        for j in range(k):
            parts = []
            if sym is not None:
                parts.append(str(sym[i, j]))
            if m is not None and (sym is None or str(sym[i, j]) != num(m[i, j])):
                parts.append(num(m[i, j]))
            texts[i, j] = "\n".join(parts) if r <= _MAX_CELLS and k <= _MAX_CELLS else ""
    scale = 0.8 if sym is not None and m is not None else 1.0
    c.matrix(a, x0, y0, cmap="diverging" if m is not None else None, vmax=vmax, texts=texts, scale=scale, cell=cell)
    if rows is not None and r <= _MAX_CELLS:
        for i, name in enumerate(rows):
            c.text(x0 - 0.2, y0 + (i + 0.5) * cell, name, ha="right", scale=0.75, color="#444444")
    if cols is not None and k <= _MAX_CELLS:
        for j, name in enumerate(cols):
            c.text(x0 + (j + 0.5) * cell, y0 - 0.3, name, ha="center", scale=0.75, color="#444444")
    return k * cell, r * cell


def plot_jacobian(j: Any) -> Figure:
    """Draw a :class:`~convscope.explain.Jacobian` as a labelled matrix (symbols and numbers).

    Returns:
        A :class:`~convscope.viz.Figure`; rows are what the notes put in rows (the inputs of the
        derivative), columns the outputs, so ``matrix @ dZ`` is the chain's next step.
    """
    if not isinstance(j, Jacobian):
        raise ArgumentTypeError(f"plot_jacobian: give a convscope.explain Jacobian (conv_weight_jacobian, "
                                f"relu_jacobian, maxpool_jacobian); got {type(j).__name__}.")
    r, k = j.shape
    cell = 1.4 if j.symbols is not None and j.matrix is not None else 1.0
    c = Canvas(cell_in=min(0.5, max(0.18, 16.0 / (k * cell + 4))))
    rows = _names(j.rows, r)
    cols = _names(j.cols, k)
    _matrix(c, j.matrix, j.symbols, 2.5, 1.0, rows, cols, vmax=None, cell=cell)
    c.text(2.5 + k * cell / 2, -0.3 - 0.2, f"columns: {j.cols}", ha="center", scale=0.8, color="#444444",
           va="bottom")
    c.text(0.2, 1.0 + r * cell / 2, f"rows: {j.rows}", rotation=90, ha="center", scale=0.8, color="#444444")
    y = 1.0 + r * cell + 0.8
    if j.symbols is not None and j.matrix is not None:
        c.text(2.5, y, "each cell: the notes' symbol, then its number (X = A^0, the padded input, 9.14)",
               scale=0.8, color="#444444")
    return c.finish(f"{j.name} ({r} x {k}): row = {j.rows}, column = {j.cols} ({j.reference})", j.note)


def plot_chain(chain: Any) -> Figure:
    """Draw the chain rule of the notes' 1-D network (9.32): four factors, their product, the check.

    Args:
        chain: a :class:`~convscope.explain.Chain932` (from ``chain_9_32``).

    Returns:
        A :class:`~convscope.viz.Figure`.
    """
    if not isinstance(chain, Chain932):
        raise ArgumentTypeError(f"plot_chain: give a Chain932 (convscope.explain.chain_9_32); got "
                                f"{type(chain).__name__}.")
    k, n = chain.dz_dw.shape
    # chain_9_32 works on numbers, so both Jacobians hold their matrices
    factors: list[tuple[str, np.ndarray, np.ndarray | None, str, str]] = [
               ("dZ\u00b9/dW\u00b9", cast(np.ndarray, chain.dz_dw.matrix), chain.dz_dw.symbols, f"({k} x {n})",
                "Key Eq. 68"),
               ("dA\u00b9/dZ\u00b9", cast(np.ndarray, chain.da1_dz1.matrix), None, f"({n} x {n})", "ReLU, Key Eq. 66"),
               ("dA\u00b2/dA\u00b9 = W\u00b2", chain.da2_da1, None, f"({n} x 1)", "9.22"),
               ("dL/dA\u00b2", chain.dl_da2, None, "(1 x 1)", "2(A\u00b2 - y), 9.21")]
    widest = sum(m.shape[1] for _, m, *_ in factors) + 1 + 4 * 2.2
    c = Canvas(cell_in=min(0.55, 17.0 / (widest * 1.3)))
    x = 0.0
    top = 2.0
    cellw = 1.3
    for i, (name, m, sym, shape, ref) in enumerate(factors):
        c.text(x, top - 1.35, name, scale=1.0, weight="bold")
        c.text(x, top - 0.7, f"{shape}  {ref}", scale=0.7, color="#555555")
        w, h = _matrix(c, m, sym if i == 0 else None, x, top, None, None, cell=cellw)
        label_w = max(len(name) * 0.21, len(f"{shape}  {ref}") * 0.15)
        x += max(w, label_w) + 0.6
        c.text(x + 0.2, top + max(k, n) * cellw / 2, "\u00b7" if i < 3 else "=", ha="center", scale=2.6,
               weight="bold")
        x += 1.2
    c.text(x, top - 1.35, "dL/dW\u00b9", scale=1.0, weight="bold", color=ACCENTS["match"])
    c.text(x, top - 0.7, f"({k} x 1)", scale=0.7, color="#555555")
    _matrix(c, chain.product, None, x, top, None, None, cell=cellw)
    y = top + max(k, n) * cellw + 1.0
    forward = (f"forward (9.4.1): A\u2070 = {_arr(chain.a0)},  W\u00b9 = {_arr(chain.w1)},  "
               f"Z\u00b9 = {_arr(chain.z1)},  "
               f"A\u00b9 = ReLU(Z\u00b9) = {_arr(chain.a1)},  A\u00b2 = {num(chain.a2)},  y = {num(chain.y)},  "
               f"L = {num(chain.loss)}")
    c.text(0.0, y, forward, scale=0.85)
    c.text(0.0, y + 0.9, f"library backward (conv_backward, relu_backward, ...): dw = {_arr(chain.library_dw)}; "
           f"largest difference {chain.max_abs_diff:.3g}", scale=0.85, color=ACCENTS["gradient"])
    title = ("The chain rule for the filter (notes 9.32): "
             "dL/dW\u00b9 = dZ\u00b9/dW\u00b9 \u00b7 dA\u00b9/dZ\u00b9 \u00b7 dA\u00b2/dA\u00b9 \u00b7 dL/dA\u00b2")
    sub = f"k = {k} taps, n = {n} outputs" + (f", stride s = {chain.stride}" if chain.stride != 1 else "") \
        + ": the shapes chain (k x n)(n x n)(n x 1)(1 x 1) = (k x 1)"
    return c.finish(title, sub)


def _arr(a: Any) -> str:
    return "[" + ", ".join(num(v) for v in np.asarray(a).reshape(-1)) + "]"
