"""Pooling traced receptive field by receptive field: max (with its one-hot derivative), mean, blur.

:func:`trace_pool` walks every receptive field (Definition 50) with explicit loops and
records its values, the result (maximum and argmax, mean, or blurred value) and the
derivative of that output with respect to the field: a one-hot vector for max pooling (notes
9.4.6, Key Equation 69, example 9.35), ``1/count`` per counted entry for average pooling, the
binomial filter's weights for blur pooling. The sum of those per-field derivatives, placed
back on the input, is ``d(sum of y)/dx`` and equals the library's pooling backward with an
upstream gradient of ones.

Ties in max pooling go to the first entry of the field in row-major order, as in
:func:`convscope.functional.max_pool` and PyTorch.

Example (the notes' 2x2, stride-2 example, 9.12):
    >>> t = trace_pool([[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]], 2)
    >>> t.y
    array([[ 44.,  -1.],
           [ 11., 321.]])
    >>> print(t.text().splitlines()[9])
    r_{1,1} = x[0:2, 0:2] = [[1, 3], [44, -10]]       max 44 at x[1, 0]     d max / d r_{1,1} = [0, 0, 1, 0]
    >>> print("\\n".join(t.text().splitlines()[-5:]))
    derivative d(sum of y)/dx: 1 where an entry is the maximum of its receptive field, 0 elsewhere (one-hot per field, Key Equation 69)
      [[0, 0, 0, 0],
       [1, 0, 0, 1],
       [0, 0, 0, 0],
       [1, 0, 1, 0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError
from ..functional.pool import binomial_filter
from ..functional.windows import pad
from ..shapes import avg_pool_geometry, blur_geometry, normalize_int, normalize_tuple, pool_geometry
from ._result import Result
from ._text import fmt_array, fmt_grid, fmt_num, fmt_shape, label, plural, products, slice_text
from .coverage import coverage_note
from .derive import axis_size
from .parse import as_explain_array
from .trace import positions, split_channels, window_slices

__all__ = ["PoolStep", "PoolTrace", "trace_pool"]

_KINDS = ("max", "avg", "blur")
_TITLES = {
    "max": "Max-pooling (Definition 51: each output is the maximum of its receptive field)",
    "avg": "Average pooling (each output is the mean of its receptive field)",
    "blur": "Blur pooling (Zhang 2019, notes 9.2.6: a binomial low-pass filter, then keep every s-th entry)",
}


@dataclass(frozen=True, eq=False)
class PoolStep:
    """One receptive field of a traced pooling.

    Attributes:
        channel: 0-based channel (0 when the input has none).
        index: 0-based output position per spatial axis.
        start: first entry of the field in the padded input.
        values: the field's entries; for max pooling the padding is ``-inf``; entries beyond
            the padded input (``ceil_mode``) are NaN and never count.
        counted: which entries take part (inside the padded input).
        y: the output.
        derivative: ``d y / d values`` (one-hot for max, ``1/count`` for avg, the filter for blur).
        argmax: for max pooling, the chosen entry as an input position (None otherwise).
    """

    channel: int
    index: tuple[int, ...]
    start: tuple[int, ...]
    values: np.ndarray
    counted: np.ndarray
    y: float
    derivative: np.ndarray
    argmax: tuple[int, ...] | None

    def __repr__(self) -> str:
        where = f", channel {self.channel + 1}" if self.channel else ""
        return f"PoolStep({label('r', self.index)}{where} -> {fmt_num(self.y)}, argmax {self.argmax})"

    def _repr_html_(self) -> str:
        from ._html import step_html

        return step_html(f"{label('r', self.index)} -> {fmt_num(self.y)}", self.values,
                         f"starts at {self.start}; derivative {fmt_array(self.derivative.reshape(-1))}")


@dataclass(frozen=True, eq=False)
class PoolTrace(Result):
    """A pooling recorded field by field.

    Attributes:
        kind: "max", "avg" or "blur".
        x: the input as given (float64), ``(*spatial)`` or ``(C, *spatial)``.
        channels: whether ``x`` has a channel axis.
        k, s, d: window size, stride, dilation per axis.  p: ``(before, after)`` padding.
        out: output size per axis.
        x_padded: the padded input the fields are cut from (``(C, *padded)``).
        y: the output, ``(*out)`` or ``(C, *out)``.
        derivative: ``d(sum of y)/dx``, shaped like ``x``; for max pooling 1 where an entry
            is its field's maximum (more if several fields choose it).
        steps: one :class:`PoolStep` per channel and output position.
        weights: the blur filter (blur pooling only).
    """

    kind: str
    x: np.ndarray
    channels: bool
    k: tuple[int, ...]
    s: tuple[int, ...]
    d: tuple[int, ...]
    p: tuple[tuple[int, int], ...]
    out: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool
    padding_mode: str
    x_padded: np.ndarray
    y: np.ndarray
    derivative: np.ndarray
    steps: tuple[PoolStep, ...]
    weights: np.ndarray | None = None

    @property
    def padded(self) -> bool:
        """True when the fields are cut from a padded input ``x_p``."""
        return any(b or a for b, a in self.p)

    def field_text(self, step: PoolStep) -> str:
        """Where the field comes from: ``x[0:2, 0:2]`` (``x_p[...]`` when padded)."""
        spans = tuple(d * (k - 1) + 1 for d, k in zip(self.d, self.k))
        lead = f"{step.channel}, " if self.channels else ""
        return ("x_p" if self.padded else "x") + slice_text(step.start, spans, self.d, lead=lead)

    def step_text(self, step: PoolStep) -> str:
        """One line: the field, its result, and its derivative."""
        name = label("r", step.index)
        if self.channels:
            name = f"channel {step.channel + 1}: {name}"
        head = f"{name} = {self.field_text(step)} = {fmt_array(step.values)}"
        if self.kind == "max":
            pos = ", ".join(str(i) for i in step.argmax) if step.argmax is not None else "padding"
            where = f"x[{(str(step.channel) + ', ') if self.channels else ''}{pos}]"
            return (f"{head}    max {fmt_num(step.y)} at {where}    d max / d {label('r', step.index)}"
                    f" = {fmt_array(step.derivative.reshape(-1))}")
        vals = step.values[step.counted]
        if self.kind == "avg":
            count = int(round(1 / step.derivative[step.counted][0])) if vals.size else 0
            terms = " + ".join(f"({fmt_num(v)})" if v < 0 else fmt_num(v) for v in vals)
            return f"{head}    mean = ({terms}) / {count} = {fmt_num(step.y)}"
        assert self.weights is not None  # blur pooling keeps its filter
        return f"{head}    filter . field = {products(self.weights, step.values)} = {fmt_num(step.y)}"

    def text(self, max_steps: int | None = None) -> str:
        """The trace as printed by ``convscope explain pool``."""
        shape = "x".join(str(k) for k in self.k)
        title = _TITLES[self.kind]
        lines = [title, f"receptive field {shape}, stride {_axes(self.s)}"
                 + (f", dilation {_axes(self.d)}" if any(v != 1 for v in self.d) else "")
                 + (f", padding {_axes([b for b, _ in self.p]) if all(b == a for b, a in self.p) else self.p}"
                    if self.padded else "")
                 + (", ceil_mode" if self.ceil_mode else "")]
        lines += _block("x", self.x, self.channels)
        if self.weights is not None:
            lines += [f"blur filter (binomial, sums to 1): {fmt_array(self.weights)}"]
        for i, (n, k, p, s, d) in enumerate(zip(self._n, self.k, self.p, self.s, self.d)):
            if self.kind == "blur":
                lines.append(f"  axis {i + 1}: output ceil(n / s) = ceil({n} / {s}) = {self.out[i]}")
            else:
                a = axis_size(n, k, p, s, d, self.ceil_mode, axis=i + 1)
                if self.ceil_mode:
                    chosen = [ln for ln in a.lines if "ceil_mode" in ln or "dropped" in ln]
                else:
                    chosen = [a.lines[2 if d != 1 else 1]]
                lines += [f"  axis {i + 1}: {ln.strip()}" for ln in chosen]
                note = coverage_note(n, k, p, s, d)
                if note is not None:
                    unseen = note.replace("never read", "never seen by any receptive field", 1)
                    lines.append(f"  axis {i + 1}: {unseen}")
        if self.padded:
            fill = {"max": "-inf (never the maximum)", "avg": "zeros"}.get(self.kind, f"{self.padding_mode} padding")
            lines.append(f"x_p: x padded with {fill}")
            lines += _block("x_p", self.x_padded if self.channels else self.x_padded[0], self.channels)
        shown = self.steps if max_steps is None else self.steps[:max_steps]
        lines += _aligned([self.step_text(st) for st in shown])
        if len(shown) < len(self.steps):
            lines.append(f"... ({plural(len(self.steps) - len(shown), 'more receptive field')})")
        lines.append(f"y = {fmt_array(self.y)}")
        what = {
            "max": "1 where an entry is the maximum of its receptive field, 0 elsewhere "
                   "(one-hot per field, Key Equation 69)",
            "avg": "each counted entry of a field gets 1/count",
            "blur": "each entry gets the filter weights of every field it falls in",
        }[self.kind]
        lines.append(f"derivative d(sum of y)/dx: {what}")
        lines += _block("", self.derivative, self.channels, bare=True)
        return "\n".join(lines)

    @property
    def _n(self) -> tuple[int, ...]:
        return self.x.shape[1:] if self.channels else self.x.shape

    _html = "pool_trace_html"

    def __repr__(self) -> str:
        return f"PoolTrace({self.kind}, input {fmt_shape(self.x.shape)}, output {fmt_shape(self.y.shape)})"


def _aligned(rows: list[str]) -> list[str]:
    """Line up the columns that step lines separate with four spaces."""
    cells = [r.split("    ") for r in rows]
    if not cells:
        return []
    ncol = max(len(c) for c in cells)
    widths = [max((len(c[j]) for c in cells if len(c) > j + 1), default=0) for j in range(ncol)]
    return ["    ".join(part.ljust(widths[j]) if j < len(c) - 1 else part
                       for j, part in enumerate(c)) for c in cells]


def _axes(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(tuple(values))


def _block(name: str, a: np.ndarray, channels: bool, bare: bool = False) -> list[str]:
    lines = []
    if channels:
        for c in range(a.shape[0]):
            lines.append(f"  channel {c + 1}:")
            lines.append(fmt_grid(a[c], "    "))
        return ([] if bare else [f"{name}: {plural(a.shape[0], 'channel')} of {fmt_shape(a.shape[1:])}"]) + lines
    if a.ndim == 1:
        return [("  " if bare else f"{name} = ") + fmt_array(a)]
    return ([] if bare else [f"{name} ="]) + [fmt_grid(a)]


def _padded_source(n: Sequence[int], pairs, mode: str) -> np.ndarray:
    """For every entry of the padded input, the flat index of the input entry it copies (-1: a
    constant pad), so derivatives through reflect/replicate/circular padding land correctly."""
    idx = np.arange(math.prod(n), dtype=np.float64).reshape((1, 1, *n))
    return pad(idx, pairs, mode, value=-1.0)[0, 0].astype(np.int64)


def trace_pool(x: Any, size: Any, stride: Any = None, kind: str = "max", padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, count_include_pad: bool = True,
               padding_mode: str = "reflect", channels: bool | None = None) -> PoolTrace:
    """Trace a pooling field by field: each receptive field, its max and argmax (or mean), and derivative.

    Args:
        x: ``(*spatial)`` or ``(C, *spatial)``; lists and ints accepted (float64 inside).
        size: receptive field size (``kernel_size``; for blur pooling the ``filter_size``),
            int or per axis. A tuple fixes the number of spatial axes.
        stride: step between fields; None means ``size`` for max/avg (PyTorch) and 2 for blur.
        kind: "max", "avg" or "blur".
        padding, dilation, ceil_mode: max/avg pooling, as :func:`convscope.functional.max_pool`
            (avg pooling has no dilation).
        count_include_pad: avg pooling, as :func:`convscope.functional.avg_pool`.
        padding_mode: blur pooling's padding ("reflect", "replicate", "zeros", "circular").
        channels: whether ``x``'s first axis is channels; None: yes for 3 or more axes (or
            one more axis than a tuple ``size`` has).

    Returns:
        A :class:`PoolTrace`; its ``y`` equals the library's pooling and its ``derivative``
        the pooling backward of a gradient of ones.

    Raises:
        ConfigError: unknown kind, options that do not apply to it, invalid geometry.
        ShapeError: a window larger than the (padded) input.

    Example:
        >>> t = trace_pool([1, 5, 2, 2, 0, 3], 2)
        >>> t.y, t.derivative
        (array([5., 2., 3.]), array([0., 1., 1., 0., 0., 1.]))
        >>> trace_pool([1, 5, 2, 2], 2, kind="avg").y
        array([3., 2.])
        >>> trace_pool([0, 0, 0, 4, 0, 0, 0, 0], 3, kind="blur").y
        array([0., 1., 1., 0.])
    """
    op = "trace_pool"
    if kind not in _KINDS:
        raise ConfigError(f"{op}: kind must be one of {', '.join(_KINDS)}; got {kind!r}.")
    x = as_explain_array(x, "x", op)
    spatial = len(size) if isinstance(size, (tuple, list)) else None
    xc, channels = split_channels(x, spatial, channels, "x", op)
    ndim = xc.ndim - 1
    n = xc.shape[1:]
    if kind == "blur":
        for name, value, default in (("padding", padding, 0), ("dilation", dilation, 1),
                                     ("ceil_mode", ceil_mode, False)):
            if value != default:
                raise ConfigError(f"{op}: {name} does not apply to blur pooling (its padding is "
                                  f"fixed by the filter size); got {name}={value!r}.")
        f = normalize_int(size if not isinstance(size, (tuple, list)) else size[0], "size", op, 1)
        if isinstance(size, (tuple, list)) and len(set(size)) != 1:
            raise ConfigError(f"{op}: blur pooling uses one filter size on every axis; got {size!r}.")
        geo = blur_geometry((1, *xc.shape), f, 2 if stride is None else stride, padding_mode, op)
        k, s, d, pairs, out = geo.k, geo.s, geo.d, geo.p, geo.out
        fill_mode = padding_mode
        weights = binomial_filter(f, ndim)
    else:
        if kind == "avg" and dilation != 1:
            raise ConfigError(f"{op}: average pooling has no dilation; got dilation={dilation!r}.")
        for name, value in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
            if not isinstance(value, bool):
                raise ArgumentTypeError(f"{op}: {name} must be True or False; got {value!r}.")
        window = size if spatial else normalize_tuple(size, ndim, "size", op)
        if kind == "max":
            geo = pool_geometry((1, *xc.shape), window, stride, padding, dilation, ceil_mode, op)
        else:
            geo = avg_pool_geometry((1, *xc.shape), window, stride, padding, ceil_mode, op)
        k, s, d, pairs, out = geo.k, geo.s, geo.d, geo.p, geo.out
        fill_mode = "zeros"
        weights = None
    fill = -np.inf if kind == "max" else 0.0
    xp = pad(xc[None], pairs, fill_mode, value=fill)[0]
    source = _padded_source(n, pairs, fill_mode)
    # ceil_mode may let the last field hang past the padded input: mark those entries NaN.
    need = tuple((o - 1) * si + di * (ki - 1) + 1 for o, si, di, ki in zip(out, s, d, k))
    extra = tuple(max(0, nd - v) for nd, v in zip(need, xp.shape[1:]))
    if any(extra):
        xp = np.pad(xp, [(0, 0)] + [(0, e) for e in extra], constant_values=np.nan)
        source = np.pad(source, [(0, e) for e in extra], constant_values=-1)
    inside_padded = np.zeros(xp.shape[1:], dtype=bool)
    inside_padded[tuple(slice(0, v + b + a) for v, (b, a) in zip(n, pairs))] = True
    y = np.empty((xc.shape[0], *out))
    deriv = np.zeros(xc.shape[0] * math.prod(n))
    plane = math.prod(n)
    steps = []
    for c in range(xc.shape[0]):
        for index in positions(out):
            window = window_slices(index, s, d, k)
            values = xp[(c,) + window]
            counted = inside_padded[window]
            src = source[window]
            dv = np.zeros(values.shape)
            argmax = None
            if kind == "max":
                flat = np.where(counted, values, -np.inf).reshape(-1)
                j = int(np.argmax(flat))                 # first maximum in row-major order
                value = float(flat[j])
                dv.reshape(-1)[j] = 1.0                  # one-hot (Key Equation 69)
                if src.reshape(-1)[j] >= 0:
                    argmax = tuple(int(i) for i in np.unravel_index(int(src.reshape(-1)[j]), n))
            elif kind == "avg":
                if count_include_pad:
                    count = int(counted.sum())
                else:
                    count = int((counted & (src >= 0)).sum())
                value = float(np.sum(values[counted])) / count
                dv[counted] = 1.0 / count
            else:
                assert weights is not None  # kind == "blur"
                value = float(np.sum(weights * values))
                dv = weights.copy()
            y[(c,) + index] = value
            live = counted & (src >= 0)
            np.add.at(deriv, c * plane + src[live], dv[live])
            start = tuple(sl.start for sl in window)
            steps.append(PoolStep(c, index, start, values, counted, value, dv, argmax))
    y_out = y if channels else y[0]
    deriv = deriv.reshape(xc.shape)
    return PoolTrace(kind, x, channels, tuple(k), tuple(s), tuple(d), tuple(pairs), tuple(out),
                     bool(ceil_mode), bool(count_include_pad), padding_mode, xp, y_out,
                     deriv if channels else deriv[0], tuple(steps), weights)
