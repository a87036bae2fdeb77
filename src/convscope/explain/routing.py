"""The max-pool derivative as routing: each ``dy_i`` goes to the one entry its window chose (9.35).

Key Equation 69: ``d maxpool / d a_i`` is 1 for the window's maximum and 0 elsewhere, a one-hot
vector (example 9.35). So backpropagation through a max-pool does no arithmetic: the upstream
gradient ``dy_i`` of output ``i`` is copied to the position of the maximum of window ``i`` (the
first maximum of a tie, as :func:`convscope.functional.max_pool`), and an entry chosen by
several overlapping windows adds up their gradients. :func:`route_max_pool` records that,
window by window, on a :class:`~convscope.explain.PoolTrace`.

Example:
    >>> from convscope.explain import trace_pool
    >>> t = trace_pool([[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]], 2)
    >>> r = route_max_pool(t, [[0.5, -1], [2, 3]])
    >>> r.dx
    array([[ 0. ,  0. ,  0. ,  0. ],
           [ 0.5,  0. ,  0. , -1. ],
           [ 0. ,  0. ,  0. ,  0. ],
           [ 2. ,  0. ,  3. ,  0. ]])
    >>> print(r.text().splitlines()[1])
    dy_{1,1} = 0.5 -> x[1, 0] (the maximum 44 of r_{1,1} = x[0:2, 0:2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ..shapes import format_shape
from ._result import Result
from ._text import fmt_grid, fmt_num, label
from .parse import as_explain_array
from .pool_trace import PoolStep, PoolTrace

__all__ = ["PoolRouting", "route_max_pool"]


@dataclass(frozen=True, eq=False)
class PoolRouting(Result):
    """Where every upstream gradient ``dy_i`` of a max-pool goes.

    Attributes:
        trace: the :class:`PoolTrace` of the forward pass.
        dy: the upstream gradient, shaped like ``trace.y``.
        dx: the gradient of the input, shaped like ``trace.x`` (equals the library's
            max-pool backward of ``dy``).
        routes: per receptive field, ``(step, dy value, input position or None)``; None when
            the maximum was a padding entry (nothing flows back).
    """

    trace: PoolTrace
    dy: np.ndarray
    dx: np.ndarray
    routes: tuple[tuple[PoolStep, float, tuple[int, ...] | None], ...]

    def text(self) -> str:
        """Each ``dy_i`` and where it goes, then ``dx``."""
        t = self.trace
        lines = ["Max-pool backward (Key Equation 69, 9.35): each dy_i is copied to the maximum of its "
                 "receptive field; every other entry gets 0"]
        for step, g, pos in self.routes:
            name = label("dy", step.index)
            field = f"{label('r', step.index)} = {t.field_text(step)}"
            if t.channels:
                name = f"channel {step.channel + 1}: {name}"
            if pos is None:
                lines.append(f"{name} = {fmt_num(g)} -> nowhere (the maximum of {field} is padding)")
            else:
                where = ", ".join(str(i) for i in ((step.channel,) + pos if t.channels else pos))
                lines.append(f"{name} = {fmt_num(g)} -> x[{where}] (the maximum {fmt_num(step.y)} of {field})")
        shared = int(np.sum(t.derivative > 1))
        if shared:
            lines.append(f"{shared} entr{'y is' if shared == 1 else 'ies are'} the maximum of several "
                         f"overlapping fields: their dy values add up")
        lines.append("dx =")
        lines.append(fmt_grid(self.dx))
        return "\n".join(lines)

    _html = "routing_html"

    def __repr__(self) -> str:
        return f"PoolRouting(dy {format_shape(self.dy.shape)} -> dx {format_shape(self.dx.shape)})"


def route_max_pool(trace: PoolTrace, dy: Any = None) -> PoolRouting:
    """Route an upstream gradient through a traced max-pool (Key Equation 69).

    Args:
        trace: a max-pool :class:`PoolTrace` (``trace_pool(..., kind="max")``).
        dy: the gradient of the loss with respect to the pool's output, shaped like
            ``trace.y``; None means ones (then ``dx`` is ``trace.derivative``).

    Returns:
        A :class:`PoolRouting`.

    Raises:
        ConfigError: the trace is not of a max-pool.  ShapeError: ``dy`` of another shape.
    """
    op = "route_max_pool"
    if not isinstance(trace, PoolTrace) or trace.kind != "max":
        raise ConfigError(f"{op}: give the PoolTrace of a max-pool (trace_pool(..., kind='max')); got "
                          f"{getattr(trace, 'kind', type(trace).__name__)!r}.")
    g = np.ones(trace.y.shape) if dy is None else as_explain_array(dy, "dy", op)
    if g.shape != trace.y.shape:
        raise ShapeError(f"{op}: dy must be shaped like the pool's output {format_shape(trace.y.shape)}; "
                         f"got {format_shape(g.shape)}.")
    g.setflags(write=False)
    dx = np.zeros(trace.x.shape)
    routes = []
    for step in trace.steps:
        key = ((step.channel,) + step.index) if trace.channels else step.index
        value = float(g[key])
        pos = step.argmax
        if pos is not None:
            dx[((step.channel,) + pos) if trace.channels else pos] += value
        routes.append((step, value, pos))
    dx.setflags(write=False)
    return PoolRouting(trace, g, dx, tuple(routes))
