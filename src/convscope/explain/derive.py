"""Derivations of sizes and counts: output size by Key Equation 48, parameters by weight sharing.

Each function returns a small result object whose ``text()`` is the printable derivation
(``convscope explain shape`` and ``convscope explain params`` print it as is) and whose fields
hold the numbers for programs.

Example:
    >>> print(explain_shape(64, 2, 0, 2).text())
    Output size of a convolution (Key Equation 48)
    axis 1: n = 64, k = 2, p = 0, s = 2
      ceiling form: ceil((n - (k - 1) + 2p) / s) = ceil((64 - 1 + 0) / 2) = ceil(31.5) = 32
      floor form:   floor((n - k + 2p) / s + 1) = floor((64 - 2 + 0) / 2 + 1) = floor(32) = 32
      output size 32
    output spatial shape: (32,)
    >>> explain_params((5, 5), 1, 3, padding=1).counts
    (10, 650)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..nn.walk import batched_input_shape, one_line, walk
from ..shapes import (
    axis_arithmetic,
    normalize_int,
    normalize_padding,
    normalize_tuple,
    pool_padding_limit,
    same_padding,
)
from ._result import Result
from ._text import fmt_num, fmt_shape, plural
from .coverage import coverage_note

__all__ = [
    "AxisSize",
    "ShapeExplanation",
    "ParamsExplanation",
    "explain_shape",
    "explain_params",
    "explain_model_shapes",
    "ModelShapes",
    "axis_size",
]

_OPS = {"conv": "convolution", "pool": "pooling"}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclass(frozen=True)
class AxisSize:
    """The output size along one axis with its derivation.

    Attributes:
        n, k, s, d: input size, window (kernel) size, stride, dilation.
        p: ``(before, after)`` padding.
        out: the output size (0 or less when the window does not fit).
        ceil_form, floor_form: the two forms of Key Equation 48 (with ``d*(k-1)+1`` for
            ``k`` when dilated, ``p_before + p_after`` for ``2p``); they agree whenever the
            window fits.
        ceil_mode: pooling's rounding-up rule was used for ``out``.
        lines: the derivation, one line per step.
    """

    n: int
    k: int
    p: tuple[int, int]
    s: int
    d: int
    out: int
    ceil_form: int
    floor_form: int
    ceil_mode: bool
    lines: tuple[str, ...]

    @property
    def fits(self) -> bool:
        """True when the window fits the padded input (at least one output)."""
        return self.out >= 1

    def __repr__(self) -> str:
        return f"AxisSize(n={self.n}, k={self.k}, p={self.p}, s={self.s}, d={self.d} -> {self.out})"

    def _repr_html_(self) -> str:
        from .._display import panel, pre

        return panel("Output size along one axis (Key Equation 48)", pre("\n".join(self.lines)))


def axis_size(n: int, k: int, p: tuple[int, int] | int = 0, s: int = 1, d: int = 1,
              ceil_mode: bool = False, axis: int = 1) -> AxisSize:
    """Output size along one axis, with the arithmetic of both forms of Key Equation 48.

    Args:
        n, k, s, d: input size, window size, stride, dilation (positive ints, validated by
            the caller).
        p: int or ``(before, after)`` padding.
        ceil_mode: pooling's rule that rounds up (PyTorch), dropping a last window that would
            start in the right padding.
        axis: 1-based axis number for the first line.

    Returns:
        An :class:`AxisSize`; the numbers are :func:`convscope.shapes.axis_arithmetic`'s.

    Example:
        >>> a = axis_size(10, 3)
        >>> a.out, a.lines[1]
        (8, '  ceiling form: ceil((n - (k - 1) + 2p) / s) = ceil((10 - 2 + 0) / 1) = ceil(8) = 8')
    """
    a = axis_arithmetic(n, k, p, s, d, ceil_mode, "axis_size")
    before, after = a.p
    two_p = before + after
    span = a.span
    head = f"axis {axis}: n = {n}, k = {k}, "
    head += f"p = {before}" if before == after else f"p = ({before}, {after})"
    head += f", s = {s}" + (f", d = {d}" if d != 1 else "")
    lines = [head]
    k_sym, k_val = "k", k
    if d != 1:
        lines.append(f"  dilation: the window spans d*(k - 1) + 1 = {d}*{k - 1} + 1 = {span} "
                     f"entries, used as k below")
        k_val = span
    p_sym = "2p" if before == after else "(p_before + p_after)"
    ceil_num = n - (k_val - 1) + two_p
    ceil_form = a.ceil_form
    floor_num = n - k_val + two_p
    floor_form = a.floor_form
    lines.append(
        f"  ceiling form: ceil((n - ({k_sym} - 1) + {p_sym}) / s) = ceil(({n} - {k_val - 1} + "
        f"{two_p}) / {s}) = ceil({fmt_num(ceil_num / s)}) = {ceil_form}"
    )
    lines.append(
        f"  floor form:   floor((n - {k_sym} + {p_sym}) / s + 1) = floor(({n} - {k_val} + "
        f"{two_p}) / {s} + 1) = floor({fmt_num(floor_num / s + 1)}) = {floor_form}"
    )
    out = a.out
    if ceil_mode:
        up = a.rounded_up
        lines.append(f"  ceil_mode rounds up instead: ceil(({n} - {k_val} + {two_p}) / {s}) + 1 "
                     f"= {up}")
        if a.dropped:
            lines.append(f"  the last window would start at {(up - 1) * s} >= n + p_before = "
                         f"{n + before}, inside the right padding only, so it is dropped")
    if out < 1:
        lines.append(
            f"  does not fit: the window ({span} entries) is larger than the padded input "
            f"(n + {p_sym} = {n + two_p}); Key Equation 48 needs n - k + 2p >= 0"
        )
    else:
        lines.append(f"  output size {out}")
    return AxisSize(n, k, (before, after), s, d, out, ceil_form, floor_form, bool(ceil_mode),
                    tuple(lines))


@dataclass(frozen=True)
class ShapeExplanation(Result):
    """Output size of a convolution or pooling, axis by axis.

    Attributes:
        op: "conv" or "pool".
        axes: one :class:`AxisSize` per spatial axis.
        out: the output spatial shape.
        fits: every axis has at least one output.
        reason: why it does not fit (None when it does).
    """

    op: str
    axes: tuple[AxisSize, ...]
    out: tuple[int, ...]
    fits: bool
    reason: str | None

    def text(self) -> str:
        """The derivation as printed by ``convscope explain shape``."""
        lines = [f"Output size of a {_OPS[self.op]} (Key Equation 48)"]
        for a in self.axes:
            lines.extend(a.lines)
            note = coverage_note(a.n, a.k, a.p, a.s, a.d) if a.fits else None
            if note is not None:
                lines.append(f"  {note}")
        if self.fits:
            lines.append(f"output spatial shape: ({', '.join(str(o) for o in self.out)}"
                         f"{',' if len(self.out) == 1 else ''})")
        else:
            lines.append(f"no output: {self.reason}")
        return "\n".join(lines)

    _html = "shape_html"

    def __repr__(self) -> str:
        out = ", ".join(str(v) for v in self.out)
        return f"ShapeExplanation({self.op}, output ({out}){'' if self.fits else ', does not fit'})"


def _per_axis(value: Any, ndim: int, name: str, op: str, minimum: int) -> tuple[int, ...]:
    return normalize_tuple(value, ndim, name, op, minimum=minimum)


def explain_shape(n: Any, k: Any, p: Any = 0, s: Any = None, d: Any = 1, op: str = "conv",
                  ceil_mode: bool = False) -> ShapeExplanation:
    """Output size of a convolution or pooling with both forms of Key Equation 48, per axis.

    Args:
        n: input size, an int or one int per spatial axis (their number sets the axes).
        k: window (filter) size, int or per axis.
        p: padding: int, per-axis ints, ``(before, after)`` pairs, "valid" or "same".
        s: stride, int or per axis; None means 1 for "conv" and ``k`` for "pool".
        d: dilation, int or per axis.
        op: "conv" or "pool".
        ceil_mode: pooling only: round the output size up (PyTorch's rule).

    Returns:
        A :class:`ShapeExplanation`; a window that does not fit gives ``fits=False`` and the
        reason (not an error: explaining why is the point).

    Raises:
        ConfigError: unknown ``op``, non-positive sizes, negative padding, ``ceil_mode`` with
            convolution.
        ArgumentTypeError: arguments of the wrong type.

    Example:
        >>> e = explain_shape((5, 7), 3, p=1, s=2)
        >>> e.out, e.axes[1].lines[1]
        ((3, 4), '  ceiling form: ceil((n - (k - 1) + 2p) / s) = ceil((7 - 2 + 2) / 2) = ceil(3.5) = 4')
        >>> explain_shape(5, 2, op="pool", ceil_mode=True).out
        (3,)
        >>> explain_shape(4, 5).fits
        False
    """
    name = "explain_shape"
    if op not in _OPS:
        raise ConfigError(f"{name}: op must be 'conv' or 'pool'; got {op!r}.")
    if not isinstance(ceil_mode, bool):
        raise ArgumentTypeError(f"{name}: ceil_mode must be True or False; got {ceil_mode!r}.")
    if ceil_mode and op == "conv":
        raise ConfigError(f"{name}: ceil_mode applies to pooling only (op='pool'); got op='conv'.")
    if _is_int(n):
        ndim = 1
    elif isinstance(n, (tuple, list)) and n:
        ndim = len(n)
    else:
        raise ArgumentTypeError(
            f"{name}: n must be a positive int or a tuple of positive ints (one per spatial "
            f"axis); got {n!r}."
        )
    n_t = _per_axis(n, ndim, "n", name, 1)
    k_t = _per_axis(k, ndim, "k", name, 1)
    d_t = _per_axis(d, ndim, "d", name, 1)
    s_t = (k_t if op == "pool" else (1,) * ndim) if s is None else _per_axis(s, ndim, "s", name, 1)
    given = normalize_padding(p, ndim, name)
    pairs: tuple[tuple[int, int], ...] = (
        tuple(same_padding(a, b, c, e) for a, b, c, e in zip(n_t, k_t, s_t, d_t)) if given == "same"
        else cast(tuple[tuple[int, int], ...], given))
    axes = tuple(
        axis_size(n_t[i], k_t[i], pairs[i], s_t[i], d_t[i], ceil_mode, axis=i + 1)
        for i in range(ndim)
    )
    reason = None
    bad = [a for a in axes if not a.fits]
    if bad:
        i = axes.index(bad[0])
        reason = (f"along axis {i + 1} the window of size {bad[0].k} does not fit the padded "
                  f"input of size {bad[0].n + sum(bad[0].p)}")
    elif op == "pool":
        for i, a in enumerate(axes):
            limit = pool_padding_limit(a.k, a.d)
            if max(a.p) > limit:
                reason = (f"along axis {i + 1} the padding {max(a.p)} is more than half the window "
                          f"({limit}): some windows would see only padding, which pooling refuses")
                break
    out = tuple(a.out for a in axes)
    return ShapeExplanation(op, axes, out, reason is None, reason)


@dataclass(frozen=True)
class ParamsExplanation(Result):
    """Parameters of a convolutional layer versus a fully-connected layer of the same sizes.

    Attributes:
        in_shape: ``(C_in, *spatial)`` of the input.  out_shape: ``(C_out, *out)``.
        kernel: the filter size per axis.  conv_weights, conv_biases, fc_weights, fc_biases:
        the counts.  formula_lines: the derivation.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    groups: int
    conv_weights: int
    conv_biases: int
    fc_weights: int
    fc_biases: int
    shape_text: str

    @property
    def conv_params(self) -> int:
        """Free parameters of the convolutional layer (weights + biases)."""
        return self.conv_weights + self.conv_biases

    @property
    def fc_params(self) -> int:
        """Parameters of a fully-connected layer with the same input and output sizes."""
        return self.fc_weights + self.fc_biases

    @property
    def counts(self) -> tuple[int, int]:
        """``(conv_params, fc_params)``."""
        return self.conv_params, self.fc_params

    def text(self) -> str:
        """The comparison as printed by ``convscope explain params``."""
        c_in, c_out = self.in_shape[0], self.out_shape[0]
        n_in, n_out = math.prod(self.in_shape), math.prod(self.out_shape)
        filt = fmt_shape(self.kernel + (c_in // self.groups,), " x ")
        lines = [
            f"Input {fmt_shape(self.in_shape)} ({plural(n_in, 'value')}) -> "
            f"{plural(c_out, 'filter')} of {filt} ({self.shape_text}) -> output "
            f"{fmt_shape(self.out_shape)} ({plural(n_out, 'value')})",
        ]
        per_filter = " * ".join(str(v) for v in self.kernel + (c_in // self.groups,))
        lines.append(
            f"Convolutional layer: {c_out} filter{'s' if c_out != 1 else ''} * ({per_filter}) "
            f"weights + {self.conv_biases} bias{'es' if self.conv_biases != 1 else ''} = "
            f"{self.conv_weights} + {self.conv_biases} = {self.conv_params} parameters"
        )
        positions = math.prod(self.out_shape[1:])
        lines.append(
            f"  each filter's {plural(self.conv_weights // c_out, 'weight')} are reused at all "
            f"{positions} output positions (weight sharing, Definition 42)"
        )
        lines.append(
            f"Fully-connected layer, same input and output: {n_in} * {n_out} weights + "
            f"{self.fc_biases} biases = {self.fc_weights} + {self.fc_biases} = "
            f"{self.fc_params} parameters"
        )
        if self.conv_params:
            ratio = self.fc_params / self.conv_params
            shown = f"{ratio:,.0f}" if ratio >= 100 else fmt_num(ratio, 3)
            lines.append(
                f"The fully-connected layer needs {shown} times as many parameters "
                f"({self.fc_params - self.conv_params} more)."
            )
        return "\n".join(lines)

    _html = "params_html"

    def __repr__(self) -> str:
        return (f"ParamsExplanation(conv {self.conv_params:,} vs fully-connected "
                f"{self.fc_params:,} parameters)")


def explain_params(in_shape: Sequence[int], out_channels: int, kernel: Any, padding: Any = 0,
                   stride: Any = 1, dilation: Any = 1, bias: bool = True,
                   groups: int = 1) -> ParamsExplanation:
    """Parameter count of a conv layer, with its formula, beside a fully-connected layer's.

    Args:
        in_shape: the input without batch axis: ``(C_in, *spatial)``, or just ``spatial``
            for one channel. When ``kernel`` is a tuple its length is the number of spatial
            axes; with an int kernel, a 1- or 2-entry ``in_shape`` is all spatial (one
            channel) and a longer one starts with the channels.
        out_channels: number of filters (output channels).
        kernel: filter size, int or per axis.
        padding, stride, dilation: as in :func:`convscope.functional.conv`.
        bias: count one bias per filter (and one per output of the dense layer).
        groups: grouped convolution: each filter sees ``C_in / groups`` channels.

    Returns:
        A :class:`ParamsExplanation`.

    Raises:
        ShapeError: the filter does not fit the input, or a bad ``in_shape``.
        ConfigError: invalid sizes, groups not dividing the channels.

    Example:
        The notes' example (9.1.18): 5x5 image, one 3x3 filter, padding 1, 5x5 output.

        >>> e = explain_params((5, 5), 1, 3, padding=1)
        >>> e.conv_params, e.fc_params
        (10, 650)
        >>> print(e.text().splitlines()[1])
        Convolutional layer: 1 filter * (3 * 3 * 1) weights + 1 bias = 9 + 1 = 10 parameters
    """
    name = "explain_params"
    if not isinstance(in_shape, (tuple, list)) or not in_shape or not all(_is_int(v) for v in in_shape):
        raise ShapeError(
            f"{name}: in_shape must be a tuple of positive ints, (C_in, *spatial) or spatial "
            f"only; got {in_shape!r}."
        )
    shape = tuple(int(v) for v in in_shape)
    if isinstance(kernel, (tuple, list)):
        ndim = len(kernel)
        if len(shape) not in (ndim, ndim + 1):
            raise ShapeError(
                f"{name}: in_shape {shape} does not match a {ndim}-D kernel {tuple(kernel)}: "
                f"expected {ndim} spatial sizes, optionally after the channel count."
            )
    else:
        ndim = len(shape) if len(shape) <= 2 else len(shape) - 1
    if len(shape) == ndim:
        shape = (1,) + shape
    if any(v < 1 for v in shape):
        raise ShapeError(f"{name}: in_shape must hold positive sizes; got {tuple(in_shape)}.")
    c_out = normalize_int(out_channels, "out_channels", name, minimum=1)
    g = normalize_int(groups, "groups", name, minimum=1)
    if shape[0] % g or c_out % g:
        raise ConfigError(
            f"{name}: groups={g} must divide both the input channels ({shape[0]}) and "
            f"out_channels ({c_out})."
        )
    if not isinstance(bias, bool):
        raise ArgumentTypeError(f"{name}: bias must be True or False; got {bias!r}.")
    k = normalize_tuple(kernel, ndim, "kernel", name)
    shape_expl = explain_shape(shape[1:], k, padding, stride, dilation, op="conv")
    if not shape_expl.fits:
        raise ShapeError(f"{name}: {shape_expl.reason}.")
    out_shape = (c_out,) + shape_expl.out
    weights = c_out * (shape[0] // g) * math.prod(k)
    n_in, n_out = math.prod(shape), math.prod(out_shape)
    a0 = shape_expl.axes[0]
    pad_text = (f"padding {a0.p[0]}" if all(a.p == (a0.p[0], a0.p[0]) for a in shape_expl.axes)
                else f"padding {[a.p for a in shape_expl.axes]}")
    strides = {a.s for a in shape_expl.axes}
    extra = f"{pad_text}, stride {a0.s if len(strides) == 1 else tuple(a.s for a in shape_expl.axes)}"
    if any(a.d != 1 for a in shape_expl.axes):
        extra += f", dilation {tuple(a.d for a in shape_expl.axes)}"
    if g != 1:
        extra += f", groups {g}"
    return ParamsExplanation(shape, out_shape, k, g, weights, c_out if bias else 0,
                             n_in * n_out, n_out if bias else 0, extra)


@dataclass(frozen=True)
class ModelShapes(Result):
    """The shape walk of an input through a model, layer by layer.

    Attributes:
        input_shape: the batched input shape.  batch_added: a batch axis of 1 was added.
        rows: ``(index, name, layer, in_shape, out_shape or None, derivation lines)`` per
            layer walked.
        fits: every layer fits.  failure: ``(index, layer, reason)`` of the first that does
            not, else None.
    """

    input_shape: tuple[int, ...]
    batch_added: bool
    rows: tuple[tuple[int, str, str, tuple[int, ...], tuple[int, ...] | None, tuple[str, ...]], ...]
    fits: bool
    failure: tuple[int, str, str] | None

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """The model's output shape (None when a layer does not fit)."""
        return self.rows[-1][4] if self.fits and self.rows else (self.input_shape if self.fits else None)

    def text(self) -> str:
        """The walk as printed by ``convscope explain shape --model``."""
        note = " (one sample: batch axis of 1 added)" if self.batch_added else ""
        lines = [f"Shape walk for input {_shape(self.input_shape)}{note}"]
        for index, name, layer, in_shape, out_shape, derivation in self.rows:
            arrow = _shape(out_shape) if out_shape is not None else "does not fit"
            lines.append(f"{index}  {name}: {layer}  {_shape(in_shape)} -> {arrow}")
            lines += ["     " + ln for ln in derivation]
        if self.failure is not None:
            index, layer, reason = self.failure
            lines.append(f"stopped at layer {index} ({layer}): {reason}")
        else:
            lines.append(f"output {_shape(self.output_shape)}")
        return "\n".join(lines)

    _html = "model_shapes_html"

    def __repr__(self) -> str:
        return (f"ModelShapes(input {_shape(self.input_shape)} -> "
                + (f"{_shape(self.output_shape)}" if self.failure is None else f"stops at layer {self.failure[0]}")
                + f", {len(self.rows)} layers)")


def _shape(shape) -> str:
    return "(" + ", ".join(str(v) for v in shape) + ")"


def _branch_lines(layer: Any, previous: str) -> tuple[str, ...]:
    """Every input of a merge and every output of a Split (the row's shapes are the first's),
    and the input of a layer that does not read the row above (a graph's branch)."""
    lines = []
    if len(layer.inputs) == 1 and layer.inputs[0] != previous and not layer.nested:
        lines.append(f"input: {layer.inputs[0]} {_shape(layer.in_shape)}")
    if len(layer.in_shapes) > 1:
        line = "inputs: " + ", ".join(f"{ref} {_shape(s)}" for ref, s in zip(layer.inputs, layer.in_shapes))
        if layer.kind == "concat" and layer.out_shape is not None:
            axis = layer.module.dim % len(layer.out_shape)
            line += (f"; side by side along axis {axis}: "
                     + " + ".join(str(s[axis]) for s in layer.in_shapes) + f" = {layer.out_shape[axis]}")
        lines.append(line)
    if len(layer.out_shapes) > 1:
        lines.append("outputs: " + ", ".join(f"{layer.name}:{k} {_shape(s)}" for k, s in enumerate(layer.out_shapes)))
    return tuple(lines)


def explain_model_shapes(model: Any, input_shape: Sequence[int]) -> ModelShapes:
    """Walk an input shape through every layer, with Key Equation 48 for each window layer.

    Args:
        model: a :class:`convscope.nn.Module` (Sequential and Residual are unfolded).
        input_shape: with or without the batch axis (as :func:`convscope.summary`).

    Returns:
        A :class:`ModelShapes`. The walk stops at the first layer that does not fit, with
        the reason (the layer's own error message), instead of raising.

    Raises:
        ArgumentTypeError: ``model`` is not a Module or ``input_shape`` not a shape.

    Example:
        >>> from convscope import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.MaxPool2d(2), nn.Conv2d(2, 2, 5, rng=1))
        >>> walk = explain_model_shapes(model, (1, 10, 10))
        >>> [row[4] for row in walk.rows]
        [(1, 2, 8, 8), (1, 2, 4, 4), None]
        >>> walk.failure[:2]
        (3, 'Conv2d(2, 2, kernel_size=(5, 5))')
    """
    shape, added = batched_input_shape(model, input_shape, "explain_model_shapes")
    rows: list[tuple[int, str, str, tuple[int, ...], tuple[int, ...] | None, tuple[str, ...]]] = []
    failure = None
    previous = "input"
    for layer in walk(model, shape):
        assert layer.in_shape is not None  # walk was given the input shape
        derivation: tuple[str, ...] = ()
        w = layer.window
        if w is not None and layer.error is None:
            if w.op != "blur":
                axes = [axis_size(n, k, p, s, d, w.ceil_mode, axis=i + 1)
                        for i, (n, k, p, s, d) in enumerate(zip(layer.in_shape[2:], w.kernel_size,
                                                                layer.padding, w.stride, w.dilation))]
                derivation = tuple(
                    f"axis {i + 1}: " + ("; ".join(ln.strip() for ln in a.lines if "ceil_mode" in ln or "dropped" in ln)
                                         if w.ceil_mode else a.lines[2 if a.d != 1 else 1].strip())
                    for i, a in enumerate(axes))
            else:
                derivation = tuple(f"axis {i + 1}: blur keeps the size, then keeps every s-th entry: "
                                   f"ceil({n} / {s}) = {-(-n // s)}"
                                   for i, (n, s) in enumerate(zip(layer.in_shape[2:], w.stride)))
        derivation = _branch_lines(layer, previous) + derivation
        previous = layer.name
        rows.append((layer.index, layer.name, one_line(layer.module), layer.in_shape,
                     layer.out_shape, derivation))
        if layer.error is not None:
            failure = (layer.index, one_line(layer.module), str(layer.error))
    return ModelShapes(shape, added, tuple(rows), failure is None, failure)
