"""A filter bank traced filter by filter: m filters in parallel make m output channels (9.11).

The notes stack ``m`` filters of ``k x k`` into a filter bank of shape ``(k x k x m)``
(Definition 27); each is applied to the same input and makes one channel of the output
(Concept 29-30). With a multi-channel input every filter is a tensor filter that covers all
input channels (Concept 31), and the bank is a 4-tensor (Concept 32). convscope stores a bank
channels first, ``(m, C_in, *kernel)`` (``(m, *kernel)`` for a one-channel input).

:func:`trace_filter_bank` runs :func:`convscope.explain.trace_conv` once per filter, so every
window, dot product and output of every channel is there to read.

Example:
    >>> bank = [[1, -1, 1], [-1, 1, -1]]          # the notes' bright-spot filter and its opposite
    >>> t = trace_filter_bank([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], bank)
    >>> t.y
    array([[-1.,  1., -1.,  1., -3.,  3., -1.,  1.],
           [ 1., -1.,  1., -1.,  3., -3.,  1., -1.]])
    >>> print(t.text().splitlines()[0])
    Filter bank of 2 filters of 3 (9.11: (k x m) = (3 x 2)) -> 2 output channels of 8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..shapes import format_shape
from ._result import Result
from ._text import fmt_array, fmt_grid, fmt_num, fmt_shape, label, plural
from .parse import as_explain_array
from .trace import ConvTrace, trace_conv

__all__ = ["FilterBankTrace", "trace_filter_bank"]


@dataclass(frozen=True, eq=False)
class FilterBankTrace(Result):
    """Several filters applied to one input, each traced window by window.

    Attributes:
        x: the input as given.
        bank: the filters, ``(m, *filter)``: one filter per leading index.
        b: the offsets ``f_0``, one per filter.
        traces: one :class:`~convscope.explain.ConvTrace` per filter.
        y: the output, ``(m, *out)``: channel ``c`` is filter ``c``'s output (Concept 29).
    """

    x: np.ndarray
    bank: np.ndarray
    b: np.ndarray
    traces: tuple[ConvTrace, ...]
    y: np.ndarray

    @property
    def m(self) -> int:
        """The number of filters (= output channels)."""
        return int(self.bank.shape[0])

    def text(self, max_steps: int | None = None, max_terms: int | None = None) -> str:
        """Every filter's trace, one after another, then the stacked output."""
        first = self.traces[0]
        k = fmt_shape(first.geometry.k)
        notes = " x ".join(str(v) for v in first.geometry.k) + f" x {self.m}"
        lines = [f"Filter bank of {plural(self.m, 'filter')} of {k} (9.11: (k x m) = ({notes})) -> "
                 f"{plural(self.m, 'output channel')} of {fmt_shape(first.y.shape)}"]
        if first.channels:
            lines[0] += (f"; each filter covers all {first.x.shape[0]} input channels (a tensor filter, "
                         f"Concept 31), so the bank is a 4-tensor (Concept 32)")
        for c, t in enumerate(self.traces):
            lines.append("")
            lines.append(f"filter {c + 1} of {self.m} -> output channel {c + 1}:")
            lines += ["  " + ln for ln in t.text(max_steps=max_steps, max_terms=max_terms).splitlines()]
        lines.append("")
        lines.append(f"y: {plural(self.m, 'channel')} of {fmt_shape(first.y.shape)} (one per filter):")
        for c in range(self.m):
            row = fmt_array(self.y[c]) if self.y.ndim == 2 else "\n" + fmt_grid(self.y[c], "    ")
            best = self.traces[c].bright_spot
            lines.append(f"  channel {c + 1}: {row}    largest {label('y', best)} = "
                         f"{fmt_num(self.y[c][best])}")
        return "\n".join(lines)

    _html = "filter_bank_html"

    def __repr__(self) -> str:
        return (f"FilterBankTrace({self.m} filters of {fmt_shape(self.traces[0].geometry.k)}, "
                f"output {fmt_shape(self.y.shape)})")


def trace_filter_bank(x: Any, bank: Any, b: Any = None, stride: Any = 1, padding: Any = 0,
                      dilation: Any = 1, padding_mode: str = "zeros",
                      channels: bool | None = None) -> FilterBankTrace:
    """Trace every filter of a bank on the same input: one output channel per filter (9.11).

    Args:
        x: the input, ``(*spatial)`` or ``(C, *spatial)`` as :func:`trace_conv` takes it.
        bank: ``m`` filters stacked on a new first axis: ``(m, *kernel)`` for a one-channel
            input, ``(m, C, *kernel)`` for a ``C``-channel input (convscope's weight layout
            ``(C_out, C_in, *kernel)``; the notes write ``(k x k x m)``).
        b: the offsets, one per filter (a number gives every filter the same); default 0.
        stride, padding, dilation, padding_mode, channels: as :func:`trace_conv`.

    Returns:
        A :class:`FilterBankTrace`; ``y[c]`` equals ``trace_conv(x, bank[c], b[c], ...).y``.

    Raises:
        ShapeError: ``bank`` does not have one more axis than a filter of ``x``, or ``b`` does
            not have one entry per filter.

    Example:
        >>> t = trace_filter_bank(np.eye(3), [[[1, 0], [0, 1]], [[0, 1], [1, 0]]], b=[0, 1])
        >>> t.y.shape, t.y[1]
        ((2, 2, 2), array([[1., 2.],
               [2., 1.]]))
    """
    op = "trace_filter_bank"
    x = as_explain_array(x, "x", op)
    bank = as_explain_array(bank, "bank", op)
    if bank.ndim != x.ndim + 1:
        raise ShapeError(
            f"{op}: bank must stack filters shaped like windows of x on a new first axis "
            f"(m, *filter): {x.ndim + 1} axes for x of shape {format_shape(x.shape)}; got bank of "
            f"shape {format_shape(bank.shape)}. For one filter use trace_conv."
        )
    m = bank.shape[0]
    if b is None:
        offsets = np.zeros(m)
    else:
        offsets = np.broadcast_to(as_explain_array(b, "b", op), (m,)) if np.ndim(b) == 0 else \
            as_explain_array(b, "b", op).reshape(-1)
    if offsets.shape != (m,):
        raise ShapeError(f"{op}: b must have one offset per filter ({m}); got {offsets.size} values.")
    traces = tuple(trace_conv(x, bank[c], float(offsets[c]), stride, padding, dilation, padding_mode,
                              channels) for c in range(m))
    y = np.stack([t.y for t in traces])
    y.setflags(write=False)
    return FilterBankTrace(x, bank, np.array(offsets, dtype=np.float64), traces, y)
