"""Centred indexing of a filter (Clarification 16): taps numbered -k//2 .. k//2, output over its centre.

Key Equation 15 numbers a window by its leftmost entry: ``v_{i+1} = x[i : i + k]``. Some texts
(the official notes among them) number the filter's taps from its middle instead, so tap 0 is
the centre and the taps go equally negative and positive; then output ``i`` sits right over
input ``i``::

    y_i = sum over j = -floor(k/2) .. floor(k/2) of f_j * x_{i+j}

and its window is ``x[(i - floor(k/2)) : (i + floor(k/2) + 1)]`` as a Python slice (0-based
``i``; the ``+ 1`` because a slice's end is not included - the notes write the end inclusive).
Only an odd ``k`` has a middle tap. The numbers are the same as with left indexing, shifted by
``floor(k/2)``: centred ``y_i`` is left-indexed ``y_{i - floor(k/2)}``.

Example (the notes' 1-D example, 9.1.4):
    >>> c = centred_indexing([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1])
    >>> print(c.text().splitlines()[2])
    taps: f_-1 = 1, f_0 = -1, f_+1 = 1
    >>> print(c.text().splitlines()[4])
    y_2 = f . x[0:3] = f_-1*x_1 + f_0*x_2 + f_+1*x_3 = 1*1 + (-1)*1 + 1*(-1) = -1    (left-indexed y_1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ._result import Result
from ._text import fmt_array, fmt_num, products
from .parse import as_explain_array
from .trace import ConvTrace, trace_conv

__all__ = ["CentredIndexing", "centred_indexing"]


def _tap(j: int) -> str:
    return f"f_{'+' if j > 0 else ''}{j}"


@dataclass(frozen=True, eq=False)
class CentredIndexing(Result):
    """A 1-D convolution written with centred indices (Clarification 16).

    Attributes:
        trace: the left-indexed :class:`ConvTrace` the numbers come from.
        half: ``floor(k/2)``, the taps on each side of the centre.
        centres: 0-based input position each output sits over (output ``i`` of the trace
            is centred at ``centres[i]``).
    """

    trace: ConvTrace
    half: int
    centres: tuple[int, ...]

    @property
    def y(self) -> np.ndarray:
        """The outputs (the same numbers as ``trace.y``)."""
        return self.trace.y

    def text(self) -> str:
        """Each output named by the input position it is centred on."""
        t, h = self.trace, self.half
        k = t.f.shape[0]
        padded = t.padded
        src = "x_p" if padded else "x"
        lines = [
            f"Centred indexing (Clarification 16): k = {k}, floor(k/2) = {h} taps each side of the "
            f"centre tap 0",
            f"y_i = sum_(j = -{h}..{h}) f_j * {src}_(i+j): output i sits over input i; window "
            f"{src}[(i - {h}) : (i + {h} + 1)] in Python slices (0-based i, the end is exclusive)",
            "taps: " + ", ".join(f"{_tap(j)} = {fmt_num(v)}" for j, v in zip(range(-h, h + 1), t.f)),
            f"{src} = {fmt_array(t.x_padded)}" + ("  (padded: every input has a centred output)"
                                                  if padded else ""),
        ]
        for step, centre in zip(t.steps, self.centres):
            i = centre + 1                                  # the notes count from 1
            lo, hi = step.start[0], step.start[0] + k
            terms = " + ".join(f"{_tap(j)}*{src}_{i + j}" for j in range(-h, h + 1))
            lines.append(f"y_{i} = f . {src}[{lo}:{hi}] = {terms} = {products(t.f, step.v)} = "
                         f"{fmt_num(step.y)}    (left-indexed {step.label})")
        first, last = self.centres[0] + 1, self.centres[-1] + 1
        lines.append(f"centred outputs y_{first} .. y_{last} are the left-indexed y_1 .. y_{len(self.centres)}: "
                     f"the same numbers, named {h} place{'s' if h != 1 else ''} further right")
        return "\n".join(lines)

    _html = "centred_html"

    def __repr__(self) -> str:
        return (f"CentredIndexing(k = {self.trace.f.shape[0]}, "
                f"outputs centred at {self.centres[0] + 1}..{self.centres[-1] + 1})")


def centred_indexing(x: Any, f: Any, same: bool = False) -> CentredIndexing:
    """Write a 1-D convolution with the filter's taps numbered from its centre (Clarification 16).

    Args:
        x: a 1-D signal.
        f: a 1-D filter of odd length ``k``.
        same: pad ``floor(k/2)`` zeros on each side (9.1.7, ``2p = k - 1``) so that every input
            position has an output centred on it.

    Returns:
        A :class:`CentredIndexing` whose numbers come from :func:`trace_conv`.

    Raises:
        ShapeError: ``x`` or ``f`` not 1-D.  ConfigError: ``k`` is even (no centre tap).
    """
    op = "centred_indexing"
    x = as_explain_array(x, "x", op)
    f = as_explain_array(f, "f", op)
    if x.ndim != 1 or f.ndim != 1:
        raise ShapeError(f"{op}: x and f must be 1-D; got shapes {x.shape} and {f.shape}.")
    k = f.shape[0]
    if k % 2 == 0:
        raise ConfigError(f"{op}: centred indexing needs an odd filter size (a middle tap to call 0); "
                          f"got k = {k}.")
    half = k // 2
    trace = trace_conv(x, f, padding=half if same else 0)
    centres = tuple(step.start[0] + half - (half if same else 0) for step in trace.steps)
    return CentredIndexing(trace, half, centres)
