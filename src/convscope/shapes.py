"""Argument normalising, the output-size formula, and the shape checks behind every message.

This module is the one place where convscope turns what a user wrote into what the math
needs, and the one place that explains what went wrong when the two do not fit.

Shared conventions (written once here and referenced from the ops and layers):

* **Channels first.** Activations are ``(N, C, *spatial)``; a convolution weight (the notes'
  filter bank, drawn there as ``k x k x m``) is ``(C_out, C_in // groups, *kernel)``; a bias is
  ``(C_out,)``. The number of spatial axes is read from the weight (or the kernel size).
* **int shorthand.** ``kernel_size``, ``stride`` and ``dilation`` take one int (used on every
  spatial axis) or a tuple with one positive int per spatial axis.
* **Padding forms.** ``padding`` takes an int ``p`` (``p`` zeros before and after on every axis),
  a tuple of one int per axis, a tuple of ``(before, after)`` pairs per axis, ``"valid"`` (no
  padding) or ``"same"``. ``"same"`` works for ANY stride with the TensorFlow/Keras rule: on each
  axis the total padding is ``max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0)``, split as
  ``total // 2`` before and the rest (the extra one) after, so the output has ``ceil(n/s)``
  entries. For stride 1 this is PyTorch's ``"same"``; PyTorch refuses stride > 1.
* **Dilation.** Dilation ``d`` spreads the kernel taps ``d`` apart (``d = 1``: no gaps), so a
  size-``k`` kernel covers ``d*(k-1) + 1`` input entries.
* **Groups.** ``groups = g`` splits the input channels into ``g`` groups of ``C_in / g`` and the
  filters into ``g`` groups of ``C_out / g``; each filter sees only its own group.
  ``groups == C_in`` is a depthwise convolution.
* **Output size** per spatial axis (``p_before + p_after = 2p`` for symmetric padding)::

      out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1

  For ``d = 1`` and symmetric padding this is the notes' Key Equation 48, in both of its
  forms: ``ceil((n - (k-1) + 2p) / s)`` and ``floor((n - k + 2p) / s + 1)``.

Example:
    >>> conv_output_size(10, 3)          # the notes' 1-D example: n - (k - 1)
    8
    >>> conv_output_size(64, 2, s=2)     # Key Equation 48 example: ceil(63 / 2)
    32
    >>> key_equation_48_ceil(64, 2, 0, 2), key_equation_48_floor(64, 2, 0, 2)
    (32, 32)
    >>> same_padding(7, 3, 2, 1)         # total 2: one before, one after -> ceil(7/2) = 4 outputs
    (1, 1)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError

__all__ = [
    "FLOAT_DTYPES",
    "AxisArithmetic",
    "ConvGeometry",
    "PoolGeometry",
    "WindowGeometry",
    "as_array",
    "as_float_array",
    "avg_pool_geometry",
    "axis_arithmetic",
    "blur_geometry",
    "check_blur_filter_size",
    "check_padding_mode",
    "blur_padding",
    "check_matches",
    "check_same_dtype",
    "float_inputs",
    "conv_geometry",
    "conv_output_size",
    "key_equation_48_ceil",
    "key_equation_48_floor",
    "normalize_int",
    "normalize_padding",
    "normalize_tuple",
    "pool_geometry",
    "pool_output_size",
    "pool_padding_limit",
    "same_padding",
    "format_shape",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

_AXIS_LETTERS = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def format_shape(shape: Sequence[int]) -> str:
    """``(8, 3, 32, 32)`` as text, with the trailing comma of 1-tuples dropped."""
    return "(" + ", ".join(str(int(v)) for v in shape) + ")"


def _spatial_names(ndim: int) -> str:
    letters = _AXIS_LETTERS.get(ndim, tuple(f"S{i}" for i in range(ndim)))
    return ", ".join(letters)


# ----------------------------------------------------------------------------------------
# Scalars and tuples
# ----------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def normalize_int(value: Any, name: str, op: str, minimum: int | None = None) -> int:
    """One int argument, checked for type and lower bound.

    >>> normalize_int(3, "groups", "conv", minimum=1)
    3
    """
    if not _is_int(value):
        raise ArgumentTypeError(
            f"{op}: {name} must be an int; got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{op}: {name} must be an int >= {minimum}; got {value}.")
    return value


def normalize_tuple(
    value: Any, ndim: int, name: str, op: str, minimum: int = 1
) -> tuple[int, ...]:
    """An int or a tuple of ``ndim`` ints, expanded to a tuple of ``ndim`` ints >= ``minimum``.

    >>> normalize_tuple(2, 3, "stride", "conv")
    (2, 2, 2)
    >>> normalize_tuple((1, 2), 2, "dilation", "conv")
    (1, 2)
    """
    what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    rule = f"{what} or a tuple of {ndim} such ints"
    if _is_int(value):
        values: tuple[Any, ...] = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        values = tuple(value)
        if len(values) != ndim or not all(_is_int(v) for v in values):
            raise ArgumentTypeError(
                f"{op}: {name} must be {rule}; got {value!r}"
                + (f" ({len(values)} entries for {ndim} spatial axes)." if len(values) != ndim else ".")
            )
        values = tuple(int(v) for v in values)
    else:
        raise ArgumentTypeError(
            f"{op}: {name} must be {rule}; got {value!r} of type {type(value).__name__}."
        )
    if any(v < minimum for v in values):
        raise ConfigError(f"{op}: {name} must be {rule}; got {value!r}.")
    return values


def normalize_padding(padding: Any, ndim: int, op: str) -> tuple[tuple[int, int], ...] | str:
    """Any padding form, as ``"same"`` or a tuple of ``(before, after)`` pairs per axis.

    ``"valid"`` becomes zero pairs; ``"same"`` stays a string because its pairs depend on the
    input size (see :func:`same_padding`).

    >>> normalize_padding(1, 2, "conv")
    ((1, 1), (1, 1))
    >>> normalize_padding((0, (1, 2)), 2, "conv")
    ((0, 0), (1, 2))
    >>> normalize_padding("valid", 1, "conv")
    ((0, 0),)
    """
    rule = (
        f"a non-negative int, a tuple of {ndim} non-negative ints, a tuple of {ndim} "
        f"(before, after) pairs, 'valid' or 'same'"
    )
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * ndim
        if mode == "same":
            return "same"
        raise ConfigError(f"{op}: padding must be {rule}; got the string {padding!r}.")
    if _is_int(padding):
        entries: list[Any] = [int(padding)] * ndim
    elif isinstance(padding, (tuple, list)):
        entries = list(padding)
        if len(entries) != ndim:
            raise ConfigError(
                f"{op}: padding must be {rule}; got {padding!r} with {len(entries)} entries "
                f"for {ndim} spatial axes."
            )
    else:
        raise ArgumentTypeError(
            f"{op}: padding must be {rule}; got {padding!r} of type {type(padding).__name__}."
        )
    pairs = []
    for entry in entries:
        if _is_int(entry):
            pair = (int(entry), int(entry))
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and all(_is_int(v) for v in entry):
            pair = (int(entry[0]), int(entry[1]))
        else:
            raise ArgumentTypeError(f"{op}: padding must be {rule}; got {padding!r}.")
        if pair[0] < 0 or pair[1] < 0:
            raise ConfigError(
                f"{op}: padding must be {rule}; got {padding!r}. Negative padding would crop "
                f"the input; crop it explicitly instead."
            )
        pairs.append(pair)
    return tuple(pairs)


# ----------------------------------------------------------------------------------------
# Output-size arithmetic (Key Equation 48)
# ----------------------------------------------------------------------------------------
def _pair(p: Any, op: str = "conv_output_size") -> tuple[int, int]:
    if _is_int(p) and p >= 0:
        return int(p), int(p)
    if isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) and v >= 0 for v in p):
        return int(p[0]), int(p[1])
    raise (ConfigError if _is_int(p) else ArgumentTypeError)(
        f"{op}: p must be a non-negative int or a (before, after) pair of them; got {p!r}."
    )


def _sizes(op: str, n: Any, k: Any, s: Any, d: Any = 1) -> tuple[int, int, int, int]:
    """The ints of the output-size arithmetic, checked: n >= 0 and k, s, d >= 1."""
    return (
        normalize_int(n, "n", op, minimum=0),
        normalize_int(k, "k", op, minimum=1),
        normalize_int(s, "s", op, minimum=1),
        normalize_int(d, "d", op, minimum=1),
    )


@dataclass(frozen=True)
class AxisArithmetic:
    """The output-size arithmetic of one axis, every intermediate number kept.

    What :func:`conv_output_size`, :func:`pool_output_size` and both forms of Key Equation 48
    compute, and what :mod:`convscope.explain` prints; unlike them it does not refuse a
    window that does not fit (``out`` is then 0 or less), because explaining why is its use.

    Attributes:
        n, k, s, d: input size, window size, stride, dilation.  p: ``(before, after)`` padding.
        span: entries the window covers, ``d*(k-1) + 1``.
        ceil_form: ``ceil((n - (span - 1) + p_before + p_after) / s)`` (Key Equation 48).
        floor_form: ``floor((n - span + p_before + p_after) / s) + 1`` (Key Equation 48).
        rounded_up: ceil_mode's count before its drop rule,
            ``ceil((n + p_before + p_after - span) / s) + 1``.
        dropped: ceil_mode drops the last window because it would start at or after
            ``n + p_before`` (in the right padding only), as PyTorch.
        ceil_mode: whether pooling's rounding-up rule gives ``out``.
        out: the output size: ``floor_form``, or with ``ceil_mode`` ``rounded_up - dropped``.
    """

    n: int
    k: int
    p: tuple[int, int]
    s: int
    d: int
    span: int
    ceil_form: int
    floor_form: int
    rounded_up: int
    dropped: bool
    ceil_mode: bool
    out: int

    @property
    def fits(self) -> bool:
        """True when there is at least one output."""
        return self.out >= 1

    def check(self, op: str, axis: int | None = None, what: str = "kernel") -> int:
        """``out``, or the ShapeError of the ops (with the arithmetic) when it is below 1."""
        if self.out < 1:
            raise _fit_error(op, axis, self, what)
        return self.out


def axis_arithmetic(n: int, k: int, p: Any = 0, s: int = 1, d: int = 1,
                    ceil_mode: bool = False, op: str = "axis_arithmetic") -> AxisArithmetic:
    """The output-size arithmetic along one axis (Key Equation 48), without refusing.

    ``p`` is an int (symmetric) or a ``(before, after)`` pair.

    >>> a = axis_arithmetic(5, 2, 1, 2, ceil_mode=True)
    >>> a.ceil_form, a.floor_form, a.rounded_up, a.dropped, a.out
    (3, 3, 4, True, 3)
    >>> axis_arithmetic(4, 5).out        # does not fit: no output
    0
    """
    n, k, s, d = _sizes(op, n, k, s, d)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: ceil_mode must be True or False; got {ceil_mode!r}.")
    before, after = _pair(p, op)
    span = d * (k - 1) + 1
    total = n + before + after - span          # = (n - span + 2p): Key Equation 48's numerator
    ceil_form = -(-(total + 1) // s)
    floor_form = total // s + 1
    rounded_up = -(-total // s) + 1
    dropped = (rounded_up - 1) * s >= n + before
    out = rounded_up - int(dropped) if ceil_mode else floor_form
    return AxisArithmetic(n, k, (before, after), s, d, span, ceil_form, floor_form, rounded_up,
                          bool(dropped), bool(ceil_mode), out)


def conv_output_size(n: int, k: int, p: Any = 0, s: int = 1, d: int = 1) -> int:
    """Output size of a convolution along one axis.

    ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``; ``p`` is an int
    (symmetric) or a ``(before, after)`` pair.

    >>> conv_output_size(10, 3), conv_output_size(4, 3, p=2), conv_output_size(7, 3, s=2)
    (8, 6, 3)

    Raises:
        ShapeError: the kernel does not fit the padded input (no output), with the
            arithmetic, as the convolution itself raises.
    """
    op = "conv_output_size"
    return axis_arithmetic(n, k, p, s, d, False, op).check(op)


def pool_output_size(
    n: int, k: int, p: Any = 0, s: int | None = None, d: int = 1, ceil_mode: bool = False
) -> int:
    """Output size of a pooling window along one axis (stride defaults to the kernel size).

    With ``ceil_mode`` the division rounds up, as in PyTorch, but a last window that would
    start beyond the input and its left padding (start index >= n + p_before) is dropped.
    Example: n=5, k=2, s=2 gives 2 windows (floor) or 3 (ceil: the third starts at index 4,
    inside the input, and sees one real entry).

    >>> pool_output_size(5, 2), pool_output_size(5, 2, ceil_mode=True)
    (2, 3)
    >>> pool_output_size(4, 2, ceil_mode=True)   # no partial window: same as floor
    2

    Raises:
        ShapeError: the window does not fit the padded input (no output), as the pooling
            ops raise.
    """
    op = "pool_output_size"
    return axis_arithmetic(n, k, p, k if s is None else s, d, ceil_mode, op).check(op, None, "window")


def _key_equation_48(op: str, n: Any, k: Any, p: Any, s: Any) -> AxisArithmetic:
    """Key Equation 48's arithmetic, refusing an empty output as the ops do."""
    n, k, s, _ = _sizes(op, n, k, s)
    if _is_int(p):
        p = normalize_int(p, "p", op, minimum=0)
    a = axis_arithmetic(n, k, p, s, 1, False, op)
    a.check(op)
    return a


def key_equation_48_ceil(n: int, k: int, p: Any = 0, s: int = 1) -> int:
    """The notes' Key Equation 48, ceiling form: ``ceil((n - (k - 1) + 2p) / s)``.

    ``p`` is an int or a ``(before, after)`` pair (``2p`` is then their sum).

    >>> key_equation_48_ceil(64, 2, 0, 2)
    32

    Raises:
        ShapeError: ``n - k + 2p < 0``: the filter does not fit, there is no output.
    """
    return _key_equation_48("key_equation_48_ceil", n, k, p, s).ceil_form


def key_equation_48_floor(n: int, k: int, p: Any = 0, s: int = 1) -> int:
    """The notes' Key Equation 48, floor form: ``floor((n - k + 2p) / s + 1)``.

    It equals the ceiling form for every ``n - k + 2p >= 0`` (write ``n - k + 2p = q*s + r``
    with ``0 <= r < s``: both give ``q + 1``).

    >>> key_equation_48_floor(64, 2, 0, 2)
    32

    Raises:
        ShapeError: ``n - k + 2p < 0``: the filter does not fit, there is no output.
    """
    return _key_equation_48("key_equation_48_floor", n, k, p, s).floor_form


def pool_padding_limit(k: int, d: int = 1) -> int:
    """The most padding a max or average pooling window allows on each side: ``k // 2``.

    PyTorch 2.13's rule for both (dilation does not raise it: ``max_pool2d`` with kernel 3,
    dilation 2 and padding 2 is refused). Larger padding would create windows that see only
    padding.

    >>> pool_padding_limit(3, d=2), pool_padding_limit(4)
    (1, 2)
    """
    return int(k) // 2


def same_padding(n: int, k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """``(before, after)`` padding that gives ``ceil(n / s)`` outputs (TensorFlow/Keras rule).

    Total ``max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0)``; the odd one goes after.

    >>> same_padding(5, 3), same_padding(4, 4), same_padding(8, 3, s=2)
    ((1, 1), (1, 2), (0, 1))
    """
    n, k, s, d = _sizes("same_padding", n, k, s, d)
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


# ----------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------
def to_ndarray(x: Any, op: str, expected: str, *, hint: str = "", expected_list: str = "") -> np.ndarray:
    """``x`` as a NumPy array (an array passes unchanged), or the :class:`ArgumentTypeError`
    ``"{op}: {expected}; got <type>."`` for None, strings, bytes, dicts and sets and for data
    NumPy cannot turn into an array. The one place that accepts array-likes from users.

    Args:
        x: the value given.
        op: the operation named first in the message.
        expected: what ``x`` must be, e.g. ``"x must be a float32 or float64 NumPy array"``.
        hint: appended to the message for a value of the wrong type (what to use instead).
        expected_list: ``expected`` for data NumPy cannot read (default: ``expected``).
    """
    if isinstance(x, np.ndarray):
        return x
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise ArgumentTypeError(f"{op}: {expected}; got {type(x).__name__}.{hint}")
    try:
        return np.asarray(x)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ArgumentTypeError(
            f"{op}: {expected_list or expected}; got a {type(x).__name__} that NumPy cannot turn "
            f"into one ({exc})."
        ) from None


def as_array(x: Any, name: str, op: str) -> np.ndarray:
    """``x`` as an ndarray (any dtype), refusing what NumPy would convert wrongly.

    Refused with :class:`ArgumentTypeError`: None, text, dicts and sets; ragged lists;
    masked arrays (their mask would be ignored: pass ``x.filled(value)``); and PyTorch
    tensors that require grad (gradients cannot flow back into torch's autograd through
    NumPy: pass ``x.detach().numpy()``, as ``tensor.numpy()`` itself demands). Other
    tensors and array-likes convert as ``np.asarray`` does.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise ArgumentTypeError(
            f"{op}: {name} is a numpy.ma.MaskedArray; convscope ignores masks, so the masked "
            f"entries would count with whatever values they hide. Pass {name}.filled(value) "
            f"(or np.asarray({name}) to use the hidden values deliberately)."
        )
    if type(x).__module__.split(".")[0] == "torch" and getattr(x, "requires_grad", False):
        raise ArgumentTypeError(
            f"{op}: {name} is a torch.Tensor that requires grad; convscope computes with NumPy "
            f"and cannot pass gradients back to torch's autograd. Pass {name}.detach().numpy() "
            f"(or {name}.detach().cpu().numpy()) to use its values."
        )
    return to_ndarray(x, op, f"{name} must be a float32 or float64 NumPy array")


def as_float_array(x: Any, name: str, op: str) -> np.ndarray:
    """``x`` as a float32/float64 ndarray, or a :class:`DTypeError` saying why not.

    Lists of floats are accepted (they become float64); integer, boolean, complex and
    object data are refused rather than silently cast; see :func:`as_array` for the
    inputs refused before any conversion (masked arrays, tensors that require grad).
    """
    x = as_array(x, name, op)
    if x.dtype not in FLOAT_DTYPES:
        kind = {
            "i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex",
            "O": "object", "U": "string", "S": "bytes", "f": "float",
        }.get(x.dtype.kind, x.dtype.kind)
        hint = ""
        if x.dtype.kind in "iub" or x.dtype == np.float16:
            hint = f" Convert it first, e.g. {name}.astype(np.float32)."
        raise DTypeError(
            f"{op}: {name} must have dtype float32 or float64; got {kind} dtype "
            f"{x.dtype}.{hint}"
        )
    return x


def check_same_dtype(op: str, **arrays: np.ndarray | None) -> None:
    """Raise :class:`DTypeError` unless all given arrays share one dtype (no silent casts)."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in present.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k} is {v.dtype}" for k, v in present.items())
        raise DTypeError(
            f"{op}: all arrays must have the same dtype; got {listing}. convscope never casts "
            f"silently: convert one of them, e.g. with .astype(np.float32)."
        )


def float_inputs(op: str, x: Any, w: Any, b: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``x``, ``w`` and ``b`` (None allowed) of a weighted op as float arrays of one dtype
    (:func:`as_float_array`, :func:`check_same_dtype`)."""
    x = as_float_array(x, "x", op)
    w = as_float_array(w, "w", op)
    if b is not None:
        b = as_float_array(b, "b", op)
    check_same_dtype(op, x=x, w=w, b=b)
    return x, w, b


def check_matches(op: str, value: np.ndarray, reference: np.ndarray, what: str, shape_of: str,
                  dtype_of: str, shape_hint: str = "", dtype_hint: str = "",
                  show: Callable[[tuple[int, ...]], str] = format_shape) -> None:
    """Refuse ``value`` unless it has ``reference``'s shape and dtype (no broadcasting, no
    casts): ``"{op}: {what} must have {shape_of}; got <shape>.{shape_hint}"``, likewise
    for the dtype, where ``shape_of``/``dtype_of`` say what was expected in words and
    ``show`` writes the shape that was got."""
    if value.shape != reference.shape:
        raise ShapeError(f"{op}: {what} must have {shape_of}; got {show(value.shape)}.{shape_hint}")
    if value.dtype != reference.dtype:
        raise DTypeError(f"{op}: {what} must have {dtype_of}; got {value.dtype}.{dtype_hint}")


# ----------------------------------------------------------------------------------------
# Geometry objects
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _SlidingAxes:
    """Per spatial axis, in the notes' letters: input size n, kernel k, stride s, dilation d,
    ``(before, after)`` padding p and output size out; shared by convolution and pooling."""

    n: tuple[int, ...]
    k: tuple[int, ...]
    s: tuple[int, ...]
    d: tuple[int, ...]
    p: tuple[tuple[int, int], ...]
    out: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.k)

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(n + b + a for n, (b, a) in zip(self.n, self.p))


@dataclass(frozen=True)
class ConvGeometry(_SlidingAxes):
    """Everything a convolution needs to know about its shapes, in the notes' letters.

    Attributes:
        batch: N.  c_in, c_out: channels.  g: groups.
        n: input size per spatial axis.  k: kernel size.  s: stride.  d: dilation.
        p: ``(before, after)`` padding per axis.  out: output size per axis.
        padding_mode: "zeros", "reflect", "replicate" or "circular".
    """

    batch: int
    c_in: int
    c_out: int
    g: int
    padding_mode: str = "zeros"

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_in, *self.n)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c_out, *self.out)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.c_out, self.c_in // self.g, *self.k)


@dataclass(frozen=True)
class PoolGeometry(_SlidingAxes):
    """Shapes of a pooling op: batch N, channels c, and per axis n, k, s, d, p, out."""

    batch: int
    c: int
    ceil_mode: bool = False

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.c, *self.out)


@dataclass(frozen=True)
class WindowGeometry:
    """The sliding window of a layer, as the layer was configured (before any input is seen).

    What :attr:`convscope.nn.Module.window` returns for convolution and pooling layers, so
    code outside :mod:`convscope.nn` reads a layer's geometry without knowing its class.

    Attributes:
        op: ``"conv"``, ``"max"``, ``"avg"`` or ``"blur"`` (blur pooling is a depthwise
            convolution with a fixed binomial filter, notes 9.2.6).
        kernel_size, stride, dilation: one int per spatial axis.
        padding: ``(before, after)`` per spatial axis, or ``"same"`` (a convolution whose
            pairs depend on the input size: :meth:`padding_pairs` resolves them).
        padding_mode: what the padded cells hold: ``"zeros"``, ``"reflect"``,
            ``"replicate"`` or ``"circular"`` (convolution, blur and average pooling), or
            ``"-inf"`` (max pooling: padding never wins the max).
        ceil_mode: pooling's rounding rule for the output size (False for conv and blur).
        groups: convolution groups; the channel count for blur pooling (one filter per
            channel); 1 for max and average pooling.

    >>> w = WindowGeometry("conv", (3, 3), (2, 2), (1, 1), "same")
    >>> w.ndim, w.padding_pairs((8, 7)), w.output_size((8, 7))
    (2, ((0, 1), (1, 1)), (4, 4))
    """

    op: str
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...] | str
    padding_mode: str = "zeros"
    ceil_mode: bool = False
    groups: int = 1

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel_size)

    def padding_pairs(self, spatial: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """``(before, after)`` per axis for an input of spatial size ``spatial``."""
        return tuple(_resolve_padding(self.padding, tuple(spatial), self.kernel_size, self.stride,
                                      self.dilation, "WindowGeometry"))

    def output_size(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Output size per axis for an input of spatial size ``spatial`` (Key Equation 48).

        Raises:
            ShapeError: the window does not fit the padded input on some axis.
        """
        pairs = self.padding_pairs(spatial)
        if self.op in ("max", "avg"):
            return tuple(pool_output_size(n, k, p, s, d, self.ceil_mode) for n, k, p, s, d in
                         zip(spatial, self.kernel_size, pairs, self.stride, self.dilation))
        return tuple(conv_output_size(n, k, p, s, d) for n, k, p, s, d in
                     zip(spatial, self.kernel_size, pairs, self.stride, self.dilation))


def _as_shape(value: Any, name: str, op: str) -> tuple[int, ...]:
    """A shape argument as a tuple of non-negative ints, or an error naming it."""
    try:
        items = tuple(value) if not isinstance(value, (str, bytes)) else None
    except TypeError:
        items = None
    if items is None or not all(_is_int(v) and v >= 0 for v in items):
        raise ArgumentTypeError(
            f"{op}: {name} must be a shape, a tuple of non-negative ints; got {value!r}."
        )
    return tuple(int(v) for v in items)


def _check_batched_input(x_shape: tuple[int, ...], ndim: int, op: str, name: str, source: str) -> None:
    want = ndim + 2
    if len(x_shape) == want:
        return
    layout = f"(N, C, {_spatial_names(ndim)})"
    msg = (
        f"{op}: {name} must have {want} axes {layout} for {source}; got shape "
        f"{format_shape(x_shape)} with {len(x_shape)} axes."
    )
    if len(x_shape) == want - 1:
        msg += f" If this is one unbatched sample, add the batch axis with {name}[None]."
    raise ShapeError(msg)


def _check_positive_sizes(x_shape: tuple[int, ...], op: str, name: str) -> None:
    for axis, size in enumerate(x_shape[1:], start=1):
        if size < 1:
            raise ShapeError(
                f"{op}: {name} must have at least one entry on every axis after the batch "
                f"axis; got shape {format_shape(x_shape)} (axis {axis} is empty)."
            )


def _fit_error(op: str, axis: int | None, a: AxisArithmetic, what: str) -> ShapeError:
    """The ShapeError of a window that does not fit, with the output-size arithmetic."""
    before, after = a.p
    padded = a.n + before + after
    pad_text = f"{before}+{after}" if before != after else f"2*{before}"
    dil = f" (dilation {a.d}: it spans d*(k-1)+1 = {a.span} entries)" if a.d != 1 else ""
    where = f" along spatial axis {axis + 1}" if axis is not None else ""
    name = "window" if a.ceil_mode else what
    rounding, even = ("ceil", ", even with ceil_mode") if a.ceil_mode else ("floor", "")
    return ShapeError(
        f"{op}: {name} size {a.k}{dil} does not fit the padded input of size {padded}{where} "
        f"(n={a.n}, padding {pad_text}){even}. The output size "
        f"{rounding}((n + p_before + p_after - d*(k-1) - 1)/s) + 1 = {rounding}(({a.n} + {pad_text} - "
        f"{a.span - 1} - 1)/{a.s}) + 1 would be {a.out}. Use a smaller {name}, more padding, or "
        f"a larger input."
    )


def _resolve_padding(padding, n, k, s, d, op):
    pairs = normalize_padding(padding, len(k), op)
    if pairs == "same":
        pairs = tuple(same_padding(ni, ki, si, di) for ni, ki, si, di in zip(n, k, s, d))
    return pairs


def conv_geometry(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
    op: str = "conv",
) -> ConvGeometry:
    """Validate a convolution's shapes and arguments and compute its geometry.

    Raises:
        ShapeError: wrong number of axes, channel mismatch (with a channels-last hint),
            kernel larger than the padded input (with the arithmetic).
        ConfigError: stride/dilation < 1, negative padding, groups not dividing the
            channels, unknown padding mode, padding too large for reflect/circular.
        ArgumentTypeError: an argument of the wrong Python type.

    >>> g = conv_geometry((2, 3, 8, 8), (4, 3, 3, 3), padding="same", stride=2)
    >>> g.out, g.p
    ((4, 4), ((0, 1), (0, 1)))
    """
    x_shape = _as_shape(x_shape, "x_shape", op)
    w_shape = _as_shape(w_shape, "w_shape", op)
    if len(w_shape) < 3:
        raise ShapeError(
            f"{op}: weight must have at least 3 axes (C_out, C_in/groups, *kernel); got shape "
            f"{format_shape(w_shape)}. For a 1-D filter of size k use shape (1, 1, k)."
        )
    ndim = len(w_shape) - 2
    _check_batched_input(x_shape, ndim, op, "x", f"the {ndim}-D weight of shape {format_shape(w_shape)}")
    _check_positive_sizes(x_shape, op, "x")
    if any(v < 1 for v in w_shape):
        raise ShapeError(
            f"{op}: weight must have at least one entry on every axis; got shape "
            f"{format_shape(w_shape)}."
        )
    g = normalize_int(groups, "groups", op, minimum=1)
    s = normalize_tuple(stride, ndim, "stride", op)
    d = normalize_tuple(dilation, ndim, "dilation", op)
    check_padding_mode(padding_mode, op)
    c_out, c_per_group = w_shape[0], w_shape[1]
    c_in = x_shape[1]
    k = w_shape[2:]
    n = x_shape[2:]
    if c_out % g:
        raise ConfigError(
            f"{op}: groups={g} must divide the number of filters C_out={c_out} (weight shape "
            f"{format_shape(w_shape)}); {c_out} % {g} = {c_out % g}."
        )
    if c_in != c_per_group * g:
        if c_in % g:
            raise ConfigError(
                f"{op}: groups={g} must divide the input channels C_in={c_in} (x shape "
                f"{format_shape(x_shape)}); {c_in} % {g} = {c_in % g}."
            )
        msg = (
            f"{op} expected {c_per_group * g} input channels on axis 1 (weight shape "
            f"{format_shape(w_shape)}, groups={g}: C_in = {c_per_group}*{g}) but x has shape "
            f"{format_shape(x_shape)}."
        )
        if x_shape[-1] == c_per_group * g and ndim >= 1:
            order = (0, len(x_shape) - 1, *range(1, len(x_shape) - 1))
            msg += (
                f" The last axis has {x_shape[-1]} entries: if the data is channels-last, move "
                f"it with x.transpose{order}."
            )
        raise ShapeError(msg)
    p = _resolve_padding(padding, n, k, s, d, op)
    for axis in range(ndim):
        before, after = p[axis]
        if padding_mode == "reflect" and (before >= n[axis] or after >= n[axis]):
            raise ConfigError(
                f"{op}: reflect padding needs padding < input size on every axis; got padding "
                f"({before}, {after}) for size {n[axis]} along spatial axis {axis + 1}. Use "
                f"padding_mode='replicate' or 'zeros', or a smaller padding."
            )
        if padding_mode == "circular" and (before > n[axis] or after > n[axis]):
            raise ConfigError(
                f"{op}: circular padding needs padding <= input size on every axis; got padding "
                f"({before}, {after}) for size {n[axis]} along spatial axis {axis + 1}."
            )
    out = tuple(axis_arithmetic(n[i], k[i], p[i], s[i], d[i], False, op).check(op, i, "kernel")
                for i in range(ndim))
    return ConvGeometry(n, k, s, d, p, out, batch=x_shape[0], c_in=c_in, c_out=c_out, g=g,
                        padding_mode=padding_mode)


def pool_geometry(
    x_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    op: str = "max_pool",
) -> PoolGeometry:
    """Validate a pooling op's arguments and compute its geometry.

    The number of spatial axes is ``len(kernel_size)`` when it is a tuple, else
    ``x.ndim - 2``. Padding may be an int, one int per axis, pairs, or "valid"/"same" ("same"
    follows the TensorFlow rule for any stride). As in PyTorch 2.13, padding on each side may
    be at most half the kernel (:func:`pool_padding_limit`), for max and average pooling
    alike.

    >>> pool_geometry((1, 1, 4, 4), 2).out
    (2, 2)
    """
    x_shape = _as_shape(x_shape, "x_shape", op)
    if _is_int(kernel_size):
        ndim = len(x_shape) - 2
        if ndim < 1:
            raise ShapeError(
                f"{op}: x must have at least 3 axes (N, C, *spatial); got shape "
                f"{format_shape(x_shape)} with {len(x_shape)} axes."
            )
    elif isinstance(kernel_size, (tuple, list)):
        ndim = len(kernel_size)
        if ndim < 1:
            raise ConfigError(f"{op}: kernel_size must not be empty; got {kernel_size!r}.")
    else:
        raise ArgumentTypeError(
            f"{op}: kernel_size must be a positive int or a tuple of positive ints; got "
            f"{kernel_size!r} of type {type(kernel_size).__name__}."
        )
    _check_batched_input(x_shape, ndim, op, "x", f"a {ndim}-D window")
    _check_positive_sizes(x_shape, op, "x")
    k = normalize_tuple(kernel_size, ndim, "kernel_size", op)
    s = k if stride is None else normalize_tuple(stride, ndim, "stride", op)
    d = normalize_tuple(dilation, ndim, "dilation", op)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: ceil_mode must be True or False; got {ceil_mode!r}.")
    n = x_shape[2:]
    p = _resolve_padding(padding, n, k, s, d, op)
    out = []
    for axis in range(ndim):
        limit = pool_padding_limit(k[axis], d[axis])
        if max(p[axis]) > limit:
            raise ConfigError(
                f"{op}: padding must be at most half the window on each side, here {limit} "
                f"along spatial axis {axis + 1} (kernel {k[axis]}, dilation {d[axis]}); got "
                f"{p[axis]}. Larger padding would create windows that see only padding."
            )
        a = axis_arithmetic(n[axis], k[axis], p[axis], s[axis], d[axis], bool(ceil_mode), op)
        out.append(a.check(op, axis, "window"))
    return PoolGeometry(n, k, s, d, p, tuple(out), batch=x_shape[0], c=x_shape[1],
                        ceil_mode=bool(ceil_mode))


def avg_pool_geometry(x_shape: Sequence[int], kernel_size: Any, stride: Any = None,
                      padding: Any = 0, ceil_mode: bool = False,
                      op: str = "avg_pool") -> PoolGeometry:
    """:func:`pool_geometry` of average pooling (no dilation), with PyTorch's 3-D rule.

    PyTorch's ``avg_pool3d`` (unlike 1-D and 2-D) refuses inputs smaller than the kernel,
    padding or not; convscope refuses the same so a 3-D model stays portable.

    Raises:
        ShapeError: as :func:`pool_geometry`, and a 3-D input smaller than the kernel.
    """
    g = pool_geometry(x_shape, kernel_size, stride, padding, 1, ceil_mode, op)
    if g.ndim == 3 and any(n < k for n, k in zip(g.n, g.k)):
        raise ShapeError(
            f"{op}: a 3-D average pool needs an input at least as large as the kernel on "
            f"every spatial axis (PyTorch's avg_pool3d rule, padding not counted); got spatial "
            f"size {format_shape(g.n)} for kernel {format_shape(g.k)}."
        )
    return g


def check_padding_mode(padding_mode: Any, op: str) -> str:
    """``padding_mode`` if it is one of :data:`PADDING_MODES`, else a :class:`ConfigError`."""
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ConfigError(
            f"{op}: padding_mode must be one of {', '.join(PADDING_MODES)}; got {padding_mode!r}."
        )
    return padding_mode


def check_blur_filter_size(filter_size: Any, op: str) -> int:
    """The binomial filter size of blur pooling as an int from 1 to 7, else a ConfigError."""
    f = normalize_int(filter_size, "filter_size", op, minimum=1)
    if f > 7:
        raise ConfigError(
            f"{op}: filter_size must be between 1 and 7 (binomial filters [1], [1 1], "
            f"[1 2 1], ... up to 7 taps); got {f}."
        )
    return f


def blur_padding(filter_size: int) -> tuple[int, int]:
    """``(before, after)`` padding of blur pooling on each axis: ``filter_size - 1`` in all,
    ``floor((f-1)/2)`` before and the odd one after, so the blur keeps the size.

    >>> blur_padding(4), blur_padding(3), blur_padding(1)
    ((1, 2), (1, 1), (0, 0))
    """
    total = int(filter_size) - 1
    return total // 2, total - total // 2


def blur_geometry(x_shape: Sequence[int], filter_size: Any, stride: Any = 2,
                  padding_mode: str = "reflect", op: str = "blur_pool") -> PoolGeometry:
    """Validate a blur pooling's arguments (notes 9.2.6) and compute its geometry.

    The binomial filter has ``filter_size`` taps per axis (1 to 7), padding
    :func:`blur_padding`, and the output keeps every ``stride``-th entry of the blurred
    input: ``ceil(n / s)`` per axis.

    Raises:
        ShapeError: fewer than 3 axes, an empty axis, an input too small for reflect
            (size <= padding) or circular (size < padding) padding.
        ConfigError: filter_size outside 1..7, stride < 1, unknown padding_mode.

    >>> blur_geometry((1, 2, 9, 8), 4).out
    (5, 4)
    """
    x_shape = _as_shape(x_shape, "x_shape", op)
    if len(x_shape) < 3:
        raise ShapeError(
            f"{op}: x must have at least 3 axes (N, C, *spatial); got shape "
            f"{format_shape(x_shape)} with {len(x_shape)} axes."
        )
    _check_positive_sizes(x_shape, op, "x")
    ndim = len(x_shape) - 2
    f = check_blur_filter_size(filter_size, op)
    s = normalize_tuple(stride, ndim, "stride", op)
    check_padding_mode(padding_mode, op)
    before, after = blur_padding(f)
    n = x_shape[2:]
    for axis, size in enumerate(n):
        if padding_mode == "reflect" and after >= size:
            raise ShapeError(
                f"{op}: reflect padding of ({before}, {after}) for filter_size {f} needs a "
                f"spatial size of at least {after + 1}; got x of shape {format_shape(x_shape)} "
                f"(size {size} along spatial axis {axis + 1}). Reflection cannot mirror more "
                f"entries than the input has: use padding_mode='replicate' or 'zeros', a "
                f"smaller filter_size, or a larger input."
            )
        if padding_mode == "circular" and after > size:
            raise ShapeError(
                f"{op}: circular padding of ({before}, {after}) for filter_size {f} needs a "
                f"spatial size of at least {after}; got x of shape {format_shape(x_shape)} "
                f"(size {size} along spatial axis {axis + 1}). Use padding_mode='replicate' or "
                f"'zeros', or a smaller filter_size."
            )
    out = tuple((size - 1) // si + 1 for size, si in zip(n, s))
    return PoolGeometry(n, (f,) * ndim, s, (1,) * ndim, ((before, after),) * ndim, out,
                        batch=x_shape[0], c=x_shape[1])
