"""Convolution traced window by window, in the notes' notation (Key Equation 15).

:func:`trace_conv` cuts every window ``v_i`` out of the (padded) input with explicit loops,
as :func:`convscope.functional.reference.reference_conv` does, and records the generalised
dot product ``f . v_i`` (Definition 26), the offset ``f_0`` and the output ``y_i``. Output
indices start at 1 as in the notes (``y_1`` is the window shifted 0 times, Concept 13);
window slices are Python slices of the input, as Key Equation 15 writes them
(``v_{i+1} = x[i:i+k]``; with stride and dilation ``x[i*s : i*s + d*(k-1) + 1 : d]``).

The result's ``y`` equals :func:`convscope.functional.conv` on the same input, and its
``text()`` is what ``convscope explain conv`` prints. Pooling traces live in
:mod:`convscope.explain.pool_trace`.

Example (the notes' 1-D example, 9.1.4):
    >>> t = trace_conv([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1])
    >>> print(t.text().splitlines()[6])
    v_1 = x[0:3] = [1, 1, -1]      y_1 = f . v_1 = 1*1 + (-1)*1 + 1*(-1) = -1
    >>> print("\\n".join(t.text().splitlines()[-3:]))
    y = x * f = [-1, 1, -1, 1, -3, 3, -1, 1]
                                   ^ y_6
    bright spot (strongest match): y_6 = 3 from v_6 = x[5:8] = [1, -1, 1]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError, ShapeError
from ..functional.windows import pad
from ..shapes import ConvGeometry, conv_geometry, format_shape
from ._result import Result
from ._text import fmt_array, fmt_grid, fmt_num, fmt_shape, label, plural, products, slice_text
from .coverage import coverage_note
from .derive import axis_size
from .parse import as_explain_array

__all__ = ["ConvStep", "ConvTrace", "trace_conv", "split_channels"]


def split_channels(x: np.ndarray, spatial_ndim: int | None, channels: bool | None, name: str,
                   op: str) -> tuple[np.ndarray, bool]:
    """``x`` as ``(C, *spatial)`` and whether it had a channel axis.

    ``channels=None`` decides from the shapes: with ``spatial_ndim`` known, an extra leading
    axis is the channel axis; without it, 3 or more axes mean ``(C, *spatial)``.

    >>> split_channels(np.zeros((5, 5)), None, None, "x", "demo")[0].shape
    (1, 5, 5)
    >>> split_channels(np.zeros((2, 5, 5)), None, None, "x", "demo")[1]
    True
    """
    if channels is not None and not isinstance(channels, bool):
        raise ArgumentTypeError(f"{op}: channels must be True, False or None; got {channels!r}.")
    if channels is None:
        if spatial_ndim is not None:
            channels = x.ndim == spatial_ndim + 1
        else:
            channels = x.ndim >= 3
    if x.ndim < 1 + channels:
        raise ShapeError(
            f"{op}: {name} must have {'a channel axis and ' if channels else ''}at least one "
            f"spatial axis; got shape {format_shape(x.shape)}."
        )
    if spatial_ndim is not None and x.ndim - channels != spatial_ndim:
        raise ShapeError(
            f"{op}: {name} of shape {format_shape(x.shape)} does not have {spatial_ndim} spatial "
            f"axes{' after its channel axis' if channels else ''}."
        )
    if any(v < 1 for v in x.shape):
        raise ShapeError(f"{op}: {name} must not be empty; got shape {format_shape(x.shape)}.")
    return (x if channels else x[None]), channels


def window_slices(index: Sequence[int], s: Sequence[int], d: Sequence[int],
                  k: Sequence[int]) -> tuple[slice, ...]:
    """The slices of the padded input read by window ``index`` (0-based), Key Equation 15.

    >>> window_slices((5,), (1,), (1,), (3,))
    (slice(5, 8, 1),)
    """
    return tuple(slice(i * si, i * si + di * (ki - 1) + 1, di) for i, si, di, ki in zip(index, s, d, k))


def positions(out: Sequence[int]):
    """Every output position, row-major (the order the notes shift the window).

    >>> list(positions((2, 2)))
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    return itertools.product(*(range(o) for o in out))


@dataclass(frozen=True, eq=False)
class ConvStep:
    """One window of a traced convolution.

    Attributes:
        index: 0-based output position (the notes' ``y_{index + 1}``).
        start: first entry of the window in the (padded) input, per spatial axis.
        v: the window, shaped like the filter (a read-only view).
        dot: ``f . v`` (Definition 26).
        y: ``f . v + f_0``.
    """

    index: tuple[int, ...]
    start: tuple[int, ...]
    v: np.ndarray
    dot: float
    y: float

    @property
    def label(self) -> str:
        """``y_6`` / ``y_{2,3}``: the notes' 1-based name of this output."""
        return label("y", self.index)

    def __repr__(self) -> str:
        return f"ConvStep({self.label} = {fmt_num(self.y)}, window starts at {self.start})"

    def _repr_html_(self) -> str:
        from ._html import step_html

        return step_html(f"{self.label} = {fmt_num(self.y)}", self.v,
                         f"the window {label('v', self.index)}, starting at {self.start}; "
                         f"f . v = {fmt_num(self.dot)}")


@dataclass(frozen=True, eq=False)
class ConvTrace(Result):
    """A convolution ``y = x * f`` recorded window by window.

    Attributes:
        x: the input as given (float64), ``(*spatial)`` or ``(C, *spatial)``.
        f: the filter, shaped like one window.
        b: the offset ``f_0``.
        channels: whether ``x`` and ``f`` have a leading channel axis.
        geometry: the :class:`convscope.shapes.ConvGeometry` (n, k, s, d, p, out).
        x_padded: the padded input the windows are cut from (channel axis kept if given).
        y: the output, shape ``geometry.out`` (equals ``functional.conv``).
        steps: one :class:`ConvStep` per output, row-major.
        skipped_best: with a stride above 1, the strongest window of the same convolution at
            stride 1 when the stride steps over it (its output beats every output taken), as a
            step of that stride-1 trace; None otherwise.
    """

    x: np.ndarray
    f: np.ndarray
    b: float
    channels: bool
    geometry: ConvGeometry
    x_padded: np.ndarray
    y: np.ndarray
    steps: tuple[ConvStep, ...]
    skipped_best: ConvStep | None = None

    @property
    def bright_spot(self) -> tuple[int, ...]:
        """0-based position of the largest output (the strongest match; first if tied)."""
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(self.y)), self.y.shape))

    def step(self, index: Sequence[int]) -> ConvStep:
        """The step of output ``index`` (0-based tuple, or an int for 1-D).

        >>> trace_conv([1, 2, 3, 4], [1, 1]).step(2).y
        7.0
        """
        idx = (int(cast(int, index)),) if np.ndim(index) == 0 else tuple(int(i) for i in index)
        if len(idx) != self.y.ndim or any(not 0 <= i < o for i, o in zip(idx, self.y.shape)):
            raise ShapeError(
                f"ConvTrace.step: index must be a 0-based position inside the output of shape "
                f"{format_shape(self.y.shape)}; got {index!r}."
            )
        return self.steps[int(np.ravel_multi_index(idx, self.y.shape))]

    @property
    def padded(self) -> bool:
        """True when the input was padded (windows are cut from ``x_p``)."""
        return any(b or a for b, a in self.geometry.p)

    def products(self, step: ConvStep) -> np.ndarray:
        """``f * v`` entry by entry (Definition 21: multiply element-wise, then sum).

        >>> t = trace_conv([1, 2, 3], [1, -1])
        >>> t.products(t.steps[1])
        array([ 2., -3.])
        """
        return self.f * step.v

    def window_text(self, step: ConvStep) -> str:
        """``x[5:8]`` (or ``x_p[...]``, ``x[:, 0:3, 0:3]``): where the window comes from."""
        g = self.geometry
        spans = tuple(d * (k - 1) + 1 for d, k in zip(g.d, g.k))
        name = "x_p" if self.padded else "x"
        return name + slice_text(step.start, spans, g.d, lead=":, " if self.channels else "")

    def arithmetic(self, step: ConvStep, max_terms: int | None = None) -> str:
        """``y_i = f . v_i (+ f_0) = products (+ f_0) = y_i`` for one step.

        >>> t = trace_conv([1, 2, 3], [1, -1], b=0.5)
        >>> t.arithmetic(t.steps[0])
        'y_1 = f . v_1 + f_0 = 1*1 + (-1)*2 + 0.5 = -0.5'
        """
        v_name = label("v", step.index)
        terms = products(self.f, step.v, limit=max_terms)
        if self.b:
            return f"{step.label} = f . {v_name} + f_0 = {terms} + {fmt_num(self.b)} = {fmt_num(step.y)}"
        return f"{step.label} = f . {v_name} = {terms} = {fmt_num(step.y)}"

    def _array_block(self, name: str, a: np.ndarray) -> list[str]:
        if self.channels:
            lines = [f"{name}: {plural(a.shape[0], 'channel')} of {fmt_shape(a.shape[1:])}"]
            for c in range(a.shape[0]):
                lines.append(f"  channel {c + 1}:")
                lines.append(fmt_grid(a[c], "    "))
            return lines
        if a.ndim == 1:
            return [f"{name} ({plural(a.shape[0], 'entry', 'entries')}): {fmt_array(a)}"]
        return [f"{name} ({fmt_shape(a.shape)}):", fmt_grid(a)]

    def text(self, max_steps: int | None = None, max_terms: int | None = None) -> str:
        """The trace as printed by ``convscope explain conv``.

        Args:
            max_steps: show at most this many windows (the bright spot is always named).
            max_terms: write at most this many products per dot product.
        """
        g = self.geometry
        lines = ["Convolution y = x * f, window by window (Key Equation 15: y_i = f . v_i"
                 + (" + f_0)" if self.b else ")"),
                 "the filter is not flipped: ML convolution is cross-correlation (Clarification 17)"]
        lines += self._array_block("x", self.x)
        lines += self._array_block("f", self.f)
        if self.b:
            lines.append(f"f_0 (offset): {fmt_num(self.b)}")
        sizes = []
        for i in range(g.ndim):
            a = axis_size(g.n[i], g.k[i], g.p[i], g.s[i], g.d[i], axis=i + 1)
            sizes.append(f"axis {i + 1}: {a.lines[2 if g.d[i] != 1 else 1].strip()}")
        lines.append(f"stride s = {_per_axis(g.s)}, padding p = {_pad_text(g.p)}, dilation d = "
                     f"{_per_axis(g.d)} -> output {fmt_shape(g.out)}")
        lines += ["  " + s for s in sizes]
        for i in range(g.ndim):
            note = coverage_note(g.n[i], g.k[i], g.p[i], g.s[i], g.d[i])
            if note is not None:
                lines.append(f"  axis {i + 1}: {note}")
        if self.padded:
            lines.append(f"x_p: x padded with {'zeros' if g.padding_mode == 'zeros' else g.padding_mode + ' padding'}"
                         f" (notes 9.1.7); the windows are cut from it")
            lines += self._array_block("x_p", self.x_padded)
        shown = self.steps if max_steps is None else self.steps[:max_steps]
        heads = [f"{label('v', st.index)} = {self.window_text(st)} = {fmt_array(st.v)}"
                 for st in shown]
        width = max((len(h) for h in heads), default=0)
        for head, st in zip(heads, shown):
            arith = self.arithmetic(st, max_terms)
            if self.y.ndim == 1 and not self.channels:
                lines.append(f"{head.ljust(width)}    {arith}")
            else:
                lines += [head, "    " + arith]
        if len(shown) < len(self.steps):
            lines.append(f"... ({plural(len(self.steps) - len(shown), 'more window')})")
        lines += self._output_lines()
        return "\n".join(lines)

    def _output_lines(self) -> list[str]:
        best = self.step(self.bright_spot)
        if self.y.ndim == 1:
            prefix = "y = x * f = ["
            cells = [fmt_num(v) for v in self.y]
            offset = len(prefix) + sum(len(c) + 2 for c in cells[: best.index[0]])
            out = [prefix + ", ".join(cells) + "]", " " * offset + f"^ {best.label}"]
        else:
            out = ["y = x * f =", fmt_grid(self.y)]
        ties = [s.label for s in self.steps if s.y == best.y and s is not best]
        source = f"{label('v', best.index)} = {self.window_text(best)} = {fmt_array(best.v)}"
        also = f" (also reached at {', '.join(ties[:5])}{', ...' if len(ties) > 5 else ''})" if ties else ""
        if best.y > 0:
            line = f"bright spot (strongest match): {best.label} = {fmt_num(best.y)} from {source}{also}"
        else:
            line = (f"largest output: {best.label} = {fmt_num(best.y)} from {source}{also}; not a match: "
                    f"no output is positive, so no window is similar to f (Concept 11, Clarification 55)")
        out.append(line)
        if self.skipped_best is not None:
            sb = self.skipped_best
            out.append(
                f"the stride s = {_per_axis(self.geometry.s)} skips the true bright spot: the window "
                f"{self.window_text(sb)} = {fmt_array(sb.v)} would give {fmt_num(sb.y)}, more than any "
                f"output taken, but no window starts there (9.1.20; the same problem as max-pool's, 9.2.6)"
            )
        return out

    _html = "conv_trace_html"

    def __repr__(self) -> str:
        return (f"ConvTrace({self.geometry.ndim}-D, output {fmt_shape(self.y.shape)}, largest "
                f"{label('y', self.bright_spot)} = {fmt_num(self.y.max())})")


def _per_axis(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(tuple(values))


def _pad_text(pairs: Sequence[tuple[int, int]]) -> str:
    if all(b == a == pairs[0][0] for b, a in pairs):
        return str(pairs[0][0])
    return str(tuple(pairs))


def trace_conv(x: Any, f: Any, b: float = 0.0, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, padding_mode: str = "zeros",
               channels: bool | None = None) -> ConvTrace:
    """Trace a convolution window by window: every ``v_i``, ``f . v_i (+ f_0)`` and ``y_i``.

    Args:
        x: the signal or image: ``(*spatial)`` (one channel) or ``(C, *spatial)``. Lists and
            integer arrays are accepted; the trace computes in float64.
        f: one filter, shaped like a window: ``(*kernel)`` or ``(C, *kernel)`` (a tensor filter
            that covers all channels, Concept 31).
        b: the offset ``f_0`` added to every dot product (Definition 37).
        stride, padding, dilation, padding_mode: as in :func:`convscope.functional.conv`.
        channels: whether the first axis of ``x`` and ``f`` is a channel axis. None decides:
            yes when both have 3 or more axes and the same first size, no otherwise (a 2-D
            array is one image; pass ``channels=True`` for a multi-channel 1-D signal).

    Returns:
        A :class:`ConvTrace` whose ``y`` equals ``functional.conv`` and whose ``text()``
        prints every window and marks the bright spot (the largest output).

    Raises:
        ShapeError: ``x`` and ``f`` of different ranks or channel counts, a filter larger
            than the padded input.
        ConfigError, ArgumentTypeError: invalid stride, padding, dilation or mode.
        DTypeError, DataError: non-numeric data or NaN.

    Example:
        The notes' 2-D filter (9.1.8) on a window that matches it, padded by 1:

        >>> f = [[-1, 1, -1], [1, 1, 1], [-1, 1, -1]]
        >>> t = trace_conv(f, f, padding=1)
        >>> t.y.shape, t.bright_spot, float(t.y[1, 1])
        ((3, 3), (1, 1), 9.0)
        >>> t.window_text(t.step((0, 0)))
        'x_p[0:3, 0:3]'

        Two channels and one tensor filter make one output channel:

        >>> x = np.stack([np.eye(3), -np.eye(3)])
        >>> trace_conv(x, x).y
        array([[6.]])
    """
    op = "trace_conv"
    x = as_explain_array(x, "x", op)
    f = as_explain_array(f, "f", op)
    try:
        b = float(b)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{op}: b (the offset f_0) must be a number; got {b!r}.") from None
    if x.ndim != f.ndim:
        raise ShapeError(
            f"{op}: x and f must have the same number of axes (f is one window of x); got x of "
            f"shape {format_shape(x.shape)} and f of shape {format_shape(f.shape)}."
        )
    if channels is None:
        channels = x.ndim >= 3 and x.shape[0] == f.shape[0]
    xc, channels = split_channels(x, None, channels, "x", op)
    fc, _ = split_channels(f, x.ndim - channels, channels, "f", op)
    if xc.shape[0] != fc.shape[0]:
        raise ShapeError(
            f"{op}: the tensor filter f must cover all {xc.shape[0]} channels of x (Concept 31); "
            f"got x of shape {format_shape(x.shape)} and f of shape {format_shape(f.shape)}."
        )
    geo = conv_geometry((1, *xc.shape), (1, *fc.shape), stride, padding, dilation, 1,
                        padding_mode, op)
    xp = pad(xc[None], geo.p, geo.padding_mode)[0]
    xp.setflags(write=False)
    y = np.empty(geo.out, dtype=np.float64)
    steps = []
    for index in positions(geo.out):
        window = window_slices(index, geo.s, geo.d, geo.k)
        v = xp[(slice(None),) + window]                    # the window v_i (all channels)
        dot = float(np.sum(fc * v))                        # f . v_i, Definition 26
        y[index] = dot + b                                 # y_i = f . v_i + f_0
        start = tuple(sl.start for sl in window)
        steps.append(ConvStep(index, start, v if channels else v[0], dot, dot + b))
    y.setflags(write=False)
    skipped = None
    if any(v > 1 for v in geo.s):
        dense = trace_conv(x, f, b, 1, padding, dilation, padding_mode, channels)
        top = dense.step(dense.bright_spot)
        if top.y > float(y.max()):
            skipped = top
    return ConvTrace(x, f, b, channels, geo, xp if channels else xp[0], y, tuple(steps), skipped)
