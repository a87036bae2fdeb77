"""How ``explain`` writes numbers, arrays, indices and arithmetic (one place for the look).

Numbers that are whole print without a decimal point (``-1``, ``321``), others with six
significant digits; arrays print as nested lists (``[[44, -1], [11, 321]]``), the form the
notes and the ``convscope explain`` command use. Output indices follow the notes: they
start at 1 (``y_6``, ``y_{2,3}``); slices of the input follow Python, as Key Equation 15
does (``x[5:8]``).

Example:
    >>> fmt_num(3.0), fmt_num(-0.0), fmt_num(0.123456), fmt_num(float("-inf"))
    ('3', '0', '0.123456', '-inf')
    >>> fmt_array(np.array([[44., -1.], [11., 321.]]))
    '[[44, -1], [11, 321]]'
    >>> label("y", (5,)), label("v", (1, 2))
    ('y_6', 'v_{2,3}')
    >>> products(np.array([1., -1., 1.]), np.array([1., 1., -1.]))
    '1*1 + (-1)*1 + 1*(-1)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "fmt_num",
    "fmt_array",
    "fmt_grid",
    "fmt_shape",
    "label",
    "products",
    "slice_text",
    "plural",
]


def fmt_num(value: Any, digits: int = 6) -> str:
    """One number: whole numbers without a decimal point, others with ``digits`` significant digits.

    >>> fmt_num(2.5), fmt_num(1 / 3), fmt_num(1e-7), fmt_num(12345678.0)
    ('2.5', '0.333333', '1e-07', '12345678')
    """
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == round(v) and abs(v) < 1e15:
        return str(int(round(v)))
    return f"{v:.{digits}g}"


def _signed(value: Any, digits: int = 6) -> str:
    text = fmt_num(value, digits)
    return f"({text})" if text.startswith("-") else text


def fmt_array(a: Any, digits: int = 6) -> str:
    """An array of any rank as one line of nested lists.

    >>> fmt_array(np.array([1., 0.5, -2.]))
    '[1, 0.5, -2]'
    """
    a = np.asarray(a)
    if a.ndim == 0:
        return fmt_num(a, digits)
    return "[" + ", ".join(fmt_array(row, digits) for row in a) + "]"


def fmt_grid(a: Any, indent: str = "  ", digits: int = 6) -> str:
    """A 1-D or 2-D array as aligned rows (3-D and more: one block per leading index).

    >>> print(fmt_grid(np.array([[1., 3.], [44., -10.]])))
      [[ 1,   3],
       [44, -10]]
    """
    a = np.asarray(a)
    if a.ndim <= 1:
        return indent + fmt_array(a, digits)
    if a.ndim > 2:
        blocks = []
        for i, sub in enumerate(a):
            blocks.append(f"{indent}[{i}]:\n" + fmt_grid(sub, indent + "  ", digits))
        return "\n".join(blocks)
    cells = [[fmt_num(v, digits) for v in row] for row in a]
    widths = [max(len(row[j]) for row in cells) for j in range(a.shape[1])] if a.shape[1] else []
    lines = []
    for r, row in enumerate(cells):
        body = ", ".join(c.rjust(widths[j]) for j, c in enumerate(row))
        opener = "[[" if r == 0 else " ["
        closer = "]]" if r == len(cells) - 1 else "],"
        lines.append(indent + opener + body + closer)
    return "\n".join(lines)


def fmt_shape(shape: Sequence[int], sep: str = "x") -> str:
    """``(5, 5)`` as ``5x5``.

    >>> fmt_shape((3, 5, 5))
    '3x5x5'
    """
    return sep.join(str(int(v)) for v in shape)


def label(name: str, index: Sequence[int]) -> str:
    """The notes' 1-based name of a 0-based position: ``y_6`` or ``y_{2,3}``.

    >>> label("r", (0, 1, 2))
    'r_{1,2,3}'
    """
    idx = [int(i) + 1 for i in index]
    if len(idx) == 1:
        return f"{name}_{idx[0]}"
    return f"{name}_{{{','.join(str(i) for i in idx)}}}"


def products(f: np.ndarray, v: np.ndarray, digits: int = 6, limit: int | None = None) -> str:
    """The generalised dot product written out term by term: ``f1*v1 + f2*v2 + ...``.

    With ``limit``, at most that many terms are written and the rest summarised.

    >>> products(np.arange(1., 7.), np.ones(6), limit=2)
    '1*1 + 2*1 + ... (4 more products)'
    """
    f = np.asarray(f).reshape(-1)
    v = np.asarray(v).reshape(-1)
    terms = [f"{_signed(a, digits)}*{_signed(b, digits)}" for a, b in zip(f, v)]
    if limit is not None and len(terms) > limit:
        rest = len(terms) - limit
        return " + ".join(terms[:limit]) + f" + ... ({rest} more product{'s' if rest != 1 else ''})"
    return " + ".join(terms)


def slice_text(starts: Sequence[int], spans: Sequence[int], steps: Sequence[int], lead: str = "") -> str:
    """Python slices of a window: ``[5:8]``, ``[0:3, 2:5]``, ``[0:5:2]`` (step only if not 1).

    ``lead`` is put in front of the spatial slices, e.g. ``":, "`` for all channels.

    >>> slice_text((0, 2), (3, 3), (1, 1), lead=":, ")
    '[:, 0:3, 2:5]'
    """
    parts = []
    for start, span, step in zip(starts, spans, steps):
        stop = start + span
        parts.append(f"{start}:{stop}" + (f":{step}" if step != 1 else ""))
    return "[" + lead + ", ".join(parts) + "]"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 window``, ``8 windows``.

    >>> plural(1, "window"), plural(8, "window")
    ('1 window', '8 windows')
    """
    return f"{count} {word if count == 1 else (many or word + 's')}"
