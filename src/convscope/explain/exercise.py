"""Exercises with random small integers, whose worked solutions are the explainer's own traces.

:func:`make_exercise` draws a question of one kind from a seed and keeps the trace that
answers it, so the solution a student reads is exactly what ``convscope explain`` prints and
cannot disagree with the library:

* ``"conv"``: compute ``y = x * f`` (+ ``f_0``) with a stride and zero padding - solved by
  :func:`convscope.explain.trace_conv` (Key Equation 15).
* ``"pool"``: max (or average) pooling of a small grid - :func:`convscope.explain.trace_pool`
  (Definition 51).
* ``"shape"``: the output size of a convolution or pooling - :func:`explain_shape`
  (Key Equation 48).
* ``"params"``: parameters of a conv layer beside a fully-connected one - :func:`explain_params`
  (weight sharing, Definition 42).
* ``"backprop"``: ``dL/dW`` of a 2-D convolution from the upstream ``dL/dZ`` in the notes'
  9.31 form (:func:`conv_weight_jacobian`, Key Equation 68), or the max-pool derivative as
  one-hot routing of ``dy`` (:func:`trace_pool`, Key Equation 69).

Randomness comes from ``numpy.random.Generator(PCG64(seed))`` and its ``integers`` and
``permutation`` only, so the same seed gives the same exercise on any machine.
:func:`convscope.explain.check_answer` marks a student's answer; :func:`exercise_sheet`
writes a sheet of questions and a separate solution sheet.

Example:
    >>> ex = make_exercise("conv", seed=3)
    >>> print(ex.question().splitlines()[0][:72])
    Exercise (conv, seed 3): compute y = x * f + f_0 with the offset f_0 = 2
    >>> ex.given["stride"], ex.given["padding"], ex.trace.f.shape
    (1, 0, (3, 3))
    >>> ex.answer.shape
    (3, 3)
    >>> check_answer(ex, ex.answer).correct
    True
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ArgumentTypeError, ConfigError
from ._doc import Block, Matrix, Para, Pre, render
from ._text import fmt_array, fmt_num, fmt_shape, label
from .derive import explain_params, explain_shape
from .jacobian import conv_weight_jacobian
from .pool_trace import trace_pool
from .trace import positions, trace_conv

__all__ = ["Exercise", "make_exercise", "KINDS", "VARIANTS", "check_answer"]

KINDS = ("conv", "pool", "shape", "params", "backprop")
#: The variants a kind accepts (None: the kind has one form).
VARIANTS: dict[str, tuple[str, ...] | None] = {
    "conv": None, "pool": ("max", "avg"), "shape": ("conv", "pool"), "params": None,
    "backprop": ("dw", "maxpool"),
}
_OP = "exercise"


@dataclass(frozen=True, eq=False)
class Exercise:
    """One question, its answer and the worked solution that produced the answer.

    Attributes:
        kind: one of :data:`KINDS`.  seed: the seed it was drawn from.
        size: the input size asked for (None: drawn from the seed).  variant: e.g. "max"
            for a pool exercise (None when the kind has one form).
        channels: input channels of a conv exercise (1 otherwise).
        answer: the right answer as a float64 array (the shape the student must give).
        answer_name: what the answer is called (``"y"``, ``"dL/dW"``, ...).
        trace: the explain object (trace, derivation or Jacobian) the solution prints.
        given: the question's data by name (arrays and geometry: ``x``, ``f``, ``stride`` ...).
    """

    kind: str
    seed: int
    size: tuple[int, ...] | None
    variant: str | None
    channels: int
    answer: np.ndarray
    answer_name: str
    trace: Any
    question_blocks: tuple[Block, ...]
    solution_blocks: tuple[Block, ...]
    given: dict[str, Any] = field(repr=False)
    entry_label: Callable[[tuple[int, ...]], str] = field(repr=False)
    why_lines: Callable[[tuple[int, ...]], list[str]] = field(repr=False)

    @property
    def command(self) -> str:
        """The ``convscope exercise`` arguments that draw this exercise again."""
        parts = [self.kind, "--seed", str(self.seed)]
        if self.size is not None:
            parts += ["--size", "x".join(map(str, self.size))]
        if self.variant is not None and VARIANTS[self.kind]:
            parts += ["--variant", self.variant]
        if self.channels != 1:
            parts += ["--channels", str(self.channels)]
        return " ".join(parts)

    def question(self, fmt: str = "text") -> str:
        """The question in ``fmt`` ("text", "html" or "latex")."""
        return render(self.question_blocks, fmt)

    def solution(self, fmt: str = "text") -> str:
        """The worked solution (the explainer's trace, then the answer) in ``fmt``."""
        return render(self.solution_blocks, fmt)

    def why(self, index: Sequence[int]) -> str:
        """How the answer's entry ``index`` (0-based) is computed, in the notes' terms."""
        return "\n".join(self.why_lines(tuple(int(i) for i in index)))

    def check(self, answer: Any):
        """Mark ``answer``; see :func:`convscope.explain.check_answer`."""
        return check_answer(self, answer)

    def text(self) -> str:
        """Question and solution as plain text."""
        return self.question() + "\n\nSolution\n" + self.solution()

    __str__ = text

    def _repr_html_(self) -> str:
        return (self.question("html") + "<details><summary>worked solution</summary>"
                + self.solution("html") + "</details>")

    def __repr__(self) -> str:
        return f"Exercise({self.command!r}, answer {self.answer_name} of shape {self.answer.shape})"


def check_answer(exercise: Exercise, answer: Any):
    """Mark a student's answer (see :mod:`convscope.explain.exercise_check`)."""
    from .exercise_check import check_answer as check

    return check(exercise, answer)


# ------------------------------------------------------------------ drawing numbers

def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise ArgumentTypeError(f"{_OP}: seed must be an int from 0 to 2**63 - 1; got {seed!r}.")
    return np.random.Generator(np.random.PCG64(int(seed)))


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _ints(rng: np.random.Generator, low: int, high: int, shape: Sequence[int]) -> np.ndarray:
    """Integers from ``low`` to ``high`` inclusive, as float64."""
    return rng.integers(low, high + 1, size=tuple(shape)).astype(np.float64)


def _size(size: Any, ndims: Sequence[int], low: int, high: int, what: str) -> tuple[int, ...] | None:
    if size is None:
        return None
    values = (size,) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
    if (not isinstance(values, (tuple, list)) or len(values) not in ndims
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values)):
        raise ArgumentTypeError(
            f"{_OP}: size must be an int or a tuple of {' or '.join(map(str, ndims))} ints (the {what}); "
            f"got {size!r}.")
    if any(not low <= v <= high for v in values):
        raise ConfigError(f"{_OP}: every size of the {what} must be from {low} to {high} (a size worked "
                          f"by hand); got {tuple(values)}.")
    return tuple(int(v) for v in values)


def _variant(kind: str, variant: Any, rng: np.random.Generator) -> str | None:
    options = VARIANTS[kind]
    if options is None:
        if variant is not None:
            raise ConfigError(f"{_OP}: {kind} exercises have no variants; got variant={variant!r}.")
        return None
    drawn = _pick(rng, options)       # drawn always, so naming the variant keeps the numbers
    if variant is None:
        return drawn if kind != "pool" else "max"
    if variant not in options:
        raise ConfigError(f"{_OP}: a {kind} exercise's variant must be one of {', '.join(options)}; "
                          f"got {variant!r}.")
    return variant


def _out(n: Sequence[int], k: int, p: int, s: int) -> tuple[int, ...]:
    return tuple((v + 2 * p - k) // s + 1 for v in n)


def _fit(n: Sequence[int], k: int, p: int, s: int, least: int = 2) -> tuple[int, int, int]:
    """Shrink stride, then grow padding, then shrink the kernel until every axis has ``least`` outputs."""
    while min(_out(n, k, p, s)) < least:
        if s > 1:
            s -= 1
        elif p < k // 2 and p < 1:
            p += 1
        elif k > 1:
            k -= 1
        else:
            break
    return k, p, s


def _geometry_text(s: int, p: int) -> str:
    return f"stride s = {s}, padding p = {p}" + (" (zeros)" if p else "")


# ------------------------------------------------------------------ the kinds

def _conv(rng, seed, size, variant, channels) -> Exercise:
    n = size or (5, 5)
    k = int(_pick(rng, [2, 3]))
    s = int(_pick(rng, [1, 2]))
    p = int(_pick(rng, [0, 1]))
    k = min(k, min(n) + 2 * p)
    k, p, s = _fit(n, k, p, s)
    x = _ints(rng, -2, 3, (channels, *n))
    f = _ints(rng, -1, 2, (channels,) + (k,) * len(n))
    if not f.any():
        f.reshape(-1)[0] = 1.0
    b = float(rng.integers(-2, 3)) if int(rng.integers(2)) else 0.0
    many = channels > 1
    t = trace_conv(x if many else x[0], f if many else f[0], b, stride=s, padding=p, channels=many)
    kshape = fmt_shape(f.shape[1:] + ((channels,) if many else ()))
    offset = f" + f_0 with the offset f_0 = {fmt_num(b)}" if b else ""
    q: list[Block] = [Para(f"Exercise (conv, seed {seed}): compute y = x * f{offset}, the convolution "
              f"(cross-correlation, Clarification 17) of the {fmt_shape(n)} input x"
              + (f" with {channels} channels" if many else "")
              + f" with the {kshape} {'tensor ' if many else ''}filter f, {_geometry_text(s, p)}."),
         Matrix("x", "x", t.x), Matrix("f", "f", t.f),
         Para(f"Give y as a {fmt_shape(t.y.shape)} {'vector' if t.y.ndim == 1 else 'matrix'} "
              f"(Key Equation 15: y_i = f . v_i{' + f_0' if b else ''}).")]
    sol: list[Block] = [Pre(t.text()), Matrix("y", "y", t.y)]

    def why(idx):
        st = t.step(idx)
        return [f"{label('v', idx)} = {t.window_text(st)} = {fmt_array(st.v)}", t.arithmetic(st)]

    given = {"x": t.x, "f": t.f, "b": b, "stride": s, "padding": p}
    return Exercise("conv", seed, size, None, channels, np.array(t.y), "y", t, tuple(q), tuple(sol), given,
                    lambda idx: label("y", idx), why)


def _pool(rng, seed, size, variant, channels) -> Exercise:
    n = size or _pick(rng, [(4, 4), (5, 5), (6, 6)])
    k = int(_pick(rng, [2, 3]))
    s = int(_pick(rng, [1, 2])) if k == 3 else 2
    k = min(k, min(n))
    k, _, s = _fit(n, k, 0, s)
    x = _ints(rng, -5, 9, n)
    t = trace_pool(x, k, s, kind=variant)
    what = "max-pooling (Definition 51)" if variant == "max" else "average pooling"
    field = "x".join([str(k)] * len(n))
    q: list[Block] = [Para(f"Exercise (pool, seed {seed}): compute y, the {what} of x with a {field} "
                           f"receptive field and stride {s}, no padding."),
         Matrix("x", "x", t.x),
         Para(f"Give y as a {fmt_shape(t.y.shape)} {'vector' if t.y.ndim == 1 else 'matrix'}"
              + (" (fractions such as 7/4 or decimals to 2 places are fine)." if variant == "avg" else "."))]
    sol: list[Block] = [Pre(t.text()), Matrix("y", "y", t.y)]
    flat = {st.index: st for st in t.steps}

    def why(idx):
        return [t.step_text(flat[idx])]

    given = {"x": t.x, "kernel_size": k, "stride": s}
    return Exercise("pool", seed, size, variant, 1, np.array(t.y), "y", t, tuple(q), tuple(sol), given,
                    lambda idx: label("y", idx), why)


def _shape(rng, seed, size, variant, channels) -> Exercise:
    op = variant
    for _ in range(100):
        n = size or tuple(int(v) for v in rng.integers(5, 33, size=2))
        if op == "conv":
            k = int(_pick(rng, [1, 2, 3, 5, 7]))
            p = int(rng.integers(0, k // 2 + 2))
            s = int(_pick(rng, [1, 1, 2, 3]))
            d = 2 if k > 1 and int(rng.integers(4)) == 0 else 1
        else:
            k = int(_pick(rng, [2, 3]))
            s = int(_pick(rng, [k, 2, 1, 3]))
            p = int(rng.integers(0, k // 2 + 1))
            d = 1
        e = explain_shape(n, k, p, s, d, op=op)
        if e.fits:
            break
    q: list[Block] = [Para(f"Exercise (shape, seed {seed}): an input of spatial size {fmt_shape(n)} goes through a "
              f"{'convolution' if op == 'conv' else 'pooling'} with window k = {k}, padding p = {p}, "
              f"stride s = {s}" + (f", dilation d = {d}" if d != 1 else "") + "."),
         Para(f"Give the output size along each of the {len(n)} axes (Key Equation 48).")]
    sol: list[Block] = [Pre(e.text()), Matrix("output size", r"\text{output size}", np.array(e.out, dtype=np.float64))]

    def why(idx):
        return [ln.strip() for ln in e.axes[idx[0]].lines]

    return Exercise("shape", seed, size, op, 1, np.array(e.out, dtype=np.float64), "output size", e,
                    tuple(q), tuple(sol), {"n": n, "k": k, "p": p, "s": s, "d": d, "op": op},
                    lambda idx: f"the output size along axis {idx[0] + 1}", why)


def _params(rng, seed, size, variant, channels) -> Exercise:
    c_in = int(_pick(rng, [1, 3, 4, 8, 16]))
    n = size or (int(rng.integers(6, 17)),) * 2
    c_out = int(_pick(rng, [2, 4, 6, 8, 16, 32]))
    k = min(int(_pick(rng, [1, 3, 5])), min(n))
    p = int(_pick(rng, [0, k // 2]))
    s = int(_pick(rng, [1, 2]))
    e = explain_params((c_in, *n), c_out, k, padding=p, stride=s)
    q: list[Block] = [Para(f"Exercise (params, seed {seed}): a convolutional layer takes an input of shape "
              f"{fmt_shape((c_in, *n))} (channels x spatial) and has {c_out} filters of size "
              f"{'x'.join([str(k)] * len(n))}, {_geometry_text(s, p)}, one bias per filter."),
         Para("Give two numbers: the layer's parameter count, and that of a fully-connected layer with "
              "the same input and output sizes (one bias per output).")]
    answer = np.array(e.counts, dtype=np.float64)
    sol: list[Block] = [Pre(e.text()), Matrix("parameters (conv, fully-connected)", r"\text{parameters}", answer)]
    lines = e.text().splitlines()

    def why(idx):
        key = "Convolutional layer" if idx[0] == 0 else "Fully-connected layer"
        return [lines[0]] + [ln for ln in lines if ln.startswith(key)]

    names = ("the conv layer's parameters", "the fully-connected layer's parameters")
    given = {"in_shape": (c_in, *n), "out_channels": c_out, "kernel_size": k, "padding": p, "stride": s}
    return Exercise("params", seed, size, None, 1, answer, "parameters", e, tuple(q), tuple(sol), given,
                    lambda idx: names[idx[0]], why)


def _backprop_dw(rng, seed, size) -> Exercise:
    n = size or _pick(rng, [(4, 4), (5, 5)])
    k = min(int(_pick(rng, [2, 3])), min(n))
    s = int(_pick(rng, [1, 1, 2]))
    k, _, s = _fit(n, k, 0, s)
    x = _ints(rng, -2, 3, n)
    out = _out(n, k, 0, s)
    dy = _ints(rng, -2, 2, out)
    if not dy.any():
        dy.reshape(-1)[0] = 1.0
    jac = conv_weight_jacobian(x, k, stride=s)
    symbols, matrix = np.asarray(jac.symbols), np.asarray(jac.matrix)
    dw = (matrix @ dy.reshape(-1)).reshape((k,) * len(n))
    w = np.zeros((1, 1) + (k,) * len(n))
    _, lib_dw, _ = F.conv_backward(dy[None, None], x[None, None], w, stride=s)
    taps, outs = list(positions((k,) * len(n))), list(positions(out))

    def tap_line(j: int) -> str:
        terms = [f"{symbols[j, i]}*{label('dZ', outs[i])}" for i in range(len(outs))]
        nums = [f"{_paren(matrix[j, i])}*{_paren(dy.reshape(-1)[i])}" for i in range(len(outs))]
        return (f"{label('dL/dW', taps[j])} = " + " + ".join(terms) + " = " + " + ".join(nums)
                + f" = {fmt_num(dw.reshape(-1)[j])}")

    q: list[Block] = [Para(f"Exercise (backprop, seed {seed}): a convolution layer computes Z = W * X with one "
              f"{'x'.join([str(k)] * len(n))} filter W, stride {s}, no padding, on the input X below. "
              f"Backpropagation has brought the upstream gradient dL/dZ (one entry per output Z_i)."),
         Matrix("X", "X", x), Matrix("dL/dZ", r"\frac{\partial L}{\partial Z}", dy),
         Para(f"Compute dL/dW, a {'x'.join([str(k)] * len(n))} matrix (Key Equation 68: dZ_i/dW_j is the "
              f"input under tap j of window i; dL/dW_j = sum over i of dZ_i/dW_j * dL/dZ_i).")]
    sol: list[Block] = [Para("The notes' 9.31 form: dZ/dW has one row per filter tap W_j and one column per output "
                "Z_i; its entries are inputs X. Then dL/dW = (dZ/dW) . dL/dZ, each tap's row of inputs "
                "against the upstream gradient."),
           Pre(jac.text()),
           Pre("dL/dZ flattened row-major: " + fmt_array(dy.reshape(-1)) + "\n"
               + "\n".join(tap_line(j) for j in range(len(taps)))),
           Matrix("dL/dW", r"\frac{\partial L}{\partial W}", dw),
           Para(f"Check: convscope.functional.conv_backward gives dw = {fmt_array(lib_dw[0, 0])}.")]
    index_of = {t: j for j, t in enumerate(taps)}
    given = {"x": x, "dy": dy, "kernel_size": k, "stride": s}
    return Exercise("backprop", seed, size, "dw", 1, dw, "dL/dW", jac, tuple(q), tuple(sol), given,
                    lambda idx: label("dL/dW", idx), lambda idx: [tap_line(index_of[idx])])


def _paren(v: float) -> str:
    t = fmt_num(v)
    return f"({t})" if t.startswith("-") else t


def _backprop_maxpool(rng, seed, size) -> Exercise:
    n = size or _pick(rng, [(4, 4), (4, 6), (6, 6)])
    k, s = 2, 2
    k = min(k, min(n))
    total = int(np.prod(n))
    a = (rng.permutation(total) - int(rng.integers(0, total // 2 + 1))).astype(np.float64).reshape(n)
    t = trace_pool(a, k, s, kind="max")
    dy = (_ints(rng, 1, 3, t.y.shape) * np.where(rng.integers(0, 2, size=t.y.shape) == 1, 1.0, -1.0))
    da = np.zeros(n)
    routes = []
    for st in t.steps:
        if st.argmax is None:                            # no padding here: never taken
            continue
        da[st.argmax] += dy[st.index]
        routes.append(f"{label('dy', st.index)} = {fmt_num(dy[st.index])} -> a[{', '.join(map(str, st.argmax))}]"
                      f" (the maximum {fmt_num(st.y)} of {label('r', st.index)} = {t.field_text(st)})")
    lib = F.max_pool_backward(dy[None, None], a[None, None], k, s)[0, 0]
    kk = "x".join([str(k)] * len(n))
    q: list[Block] = [Para(f"Exercise (backprop, seed {seed}): max-pooling with a {kk} receptive field and stride {s} "
              f"maps a to y = maxpool(a). Backpropagation has brought dL/dy (one entry per output)."),
         Matrix("a", "a", a), Matrix("dL/dy", r"\frac{\partial L}{\partial y}", dy),
         Para(f"Compute dL/da, shaped like a ({fmt_shape(n)}); Key Equation 69: d maxpool / d a_i is 1 "
              f"for the maximum of a window and 0 for the rest.")]
    sol: list[Block] = [Pre(t.text()),
           Para("Each window's derivative is one-hot (9.35), so each upstream dL/dy_i goes, whole, to "
                "the entry that was its window's maximum; every other entry gets 0:"),
           Pre("\n".join(routes)), Matrix("dL/da", r"\frac{\partial L}{\partial a}", da),
           Para(f"Check: convscope.functional.max_pool_backward gives the same "
                f"({'equal' if np.array_equal(lib, da) else 'DIFFERENT'}).")]

    def why(idx):
        lines = []
        for st, route in zip(t.steps, routes):
            rows = [range(b, b + k) for b in st.start]
            if all(i in r for i, r in zip(idx, rows)):
                if st.argmax == idx:
                    lines.append(f"a[{', '.join(map(str, idx))}] = {fmt_num(a[idx])} is the maximum of "
                                 f"{label('r', st.index)} = {t.field_text(st)}: it receives {route.split(' ->')[0]}")
                else:
                    lines.append(f"a[{', '.join(map(str, idx))}] = {fmt_num(a[idx])} is in "
                                 f"{label('r', st.index)} = {t.field_text(st)} but its maximum is "
                                 f"{fmt_num(st.y)}: derivative 0 there")
        if not lines:
            lines.append(f"a[{', '.join(map(str, idx))}] is in no receptive field (stride skips it): 0")
        return lines + [f"so dL/da[{', '.join(map(str, idx))}] = {fmt_num(da[idx])}"]

    given = {"a": a, "dy": dy, "kernel_size": k, "stride": s}
    return Exercise("backprop", seed, size, "maxpool", 1, da, "dL/da", t, tuple(q), tuple(sol), given,
                    lambda idx: f"dL/da[{', '.join(map(str, idx))}]", why)


def _backprop(rng, seed, size, variant, channels) -> Exercise:
    return (_backprop_dw if variant == "dw" else _backprop_maxpool)(rng, seed, size)


_MAKERS = {"conv": _conv, "pool": _pool, "shape": _shape, "params": _params, "backprop": _backprop}
_SIZES = {"conv": ((1, 2), 2, 12, "input"), "pool": ((1, 2), 2, 12, "input"),
          "shape": ((1, 2, 3), 1, 4096, "input"), "params": ((1, 2, 3), 1, 1024, "input's spatial axes"),
          "backprop": ((1, 2), 2, 10, "input")}


def make_exercise(kind: str, seed: int = 0, size: Any = None, variant: str | None = None,
                  channels: int = 1) -> Exercise:
    """Draw an exercise of ``kind`` from ``seed`` (same seed, same exercise, on any machine).

    Args:
        kind: "conv", "pool", "shape", "params" or "backprop".
        seed: a non-negative int.
        size: the input's spatial size, an int (1-D) or a tuple (``(5, 5)``); None draws a
            teaching-sized default from the seed.
        variant: "max" or "avg" for pool (default "max"); "conv" or "pool" for shape, "dw" or
            "maxpool" for backprop (default: drawn from the seed).
        channels: input channels of a conv exercise (a tensor filter, Concept 31).

    Returns:
        An :class:`Exercise`.

    Raises:
        ConfigError: an unknown kind or variant, sizes too big to work by hand.
        ArgumentTypeError: a seed or size of the wrong type.

    Example:
        >>> ex = make_exercise("backprop", seed=1, variant="maxpool", size=(4, 4))
        >>> ex.answer_name, ex.answer.shape
        ('dL/da', (4, 4))
        >>> make_exercise("backprop", seed=1, variant="maxpool", size=(4, 4)).answer.tolist() == ex.answer.tolist()
        True
    """
    if kind not in KINDS:
        raise ConfigError(f"{_OP}: kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    rng = _rng(seed)
    ndims, low, high, what = _SIZES[kind]
    size_t = _size(size, ndims, low, high, what)
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or not 1 <= channels <= 4:
        raise ConfigError(f"{_OP}: channels must be an int from 1 to 4; got {channels!r}.")
    if channels != 1 and kind != "conv":
        raise ConfigError(f"{_OP}: channels applies to conv exercises only; got channels={channels} "
                          f"for {kind}.")
    chosen = _variant(kind, variant, rng)
    return _MAKERS[kind](rng, int(seed), size_t, chosen, int(channels))
