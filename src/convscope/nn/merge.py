"""Merges and plumbing for graph models: where branches meet, split or change layout.

A graph model (:class:`convscope.nn.Graph`) sends one tensor to several layers (fan-out)
and brings branches back together. Each merge here is a module with an explicit backward,
like every other layer:

========================  ==============================  =====================================
module                    forward                         backward
========================  ==============================  =====================================
``Add()``                 ``y = x_1 + ... + x_n``         ``dx_i = dy`` (every input)
``Concat(dim=1)``         the inputs side by side         ``dy`` cut back into the pieces
``Mul()``                 ``y = a * b`` (broadcasting)    ``da = dy * b``, ``db = dy * a``,
                                                          summed over the broadcast axes
``ChannelShuffle(g)``     channels ``(g, c/g) -> (c/g, g)``  the inverse shuffle
``Split(sizes, dim=1)``   pieces along ``dim``            the pieces' gradients side by side
``Reshape(shape)``        each sample reshaped            ``dy`` reshaped back
``Permute(dims)``         each sample's axes permuted     the inverse permutation
========================  ==============================  =====================================

``Add`` is the residual connection (ResNet), ``Concat`` the fire module (SqueezeNet) and the
dense block (DenseNet), ``Mul`` the squeeze-and-excitation gate (MobileNetV3), and
``Split`` + ``Concat`` + ``ChannelShuffle`` the ShuffleNet unit. Shapes and dims are those
of the batched tensors ``(N, C, *spatial)``; ``Reshape`` and ``Permute`` act on one sample
(the batch axis stays first).

Example:
    >>> import numpy as np
    >>> a, b = np.ones((1, 2, 2, 2)), np.full((1, 3, 2, 2), 2.0)
    >>> cat = Concat()
    >>> cat(a, b).shape
    (1, 5, 2, 2)
    >>> [d.shape for d in cat.backward(np.ones((1, 5, 2, 2)))]
    [(1, 2, 2, 2), (1, 3, 2, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..settings import check_allocation
from ..shapes import as_float_array, format_shape
from .module import Module
from .spec import register

__all__ = ["Add", "Concat", "Mul", "ChannelShuffle", "Split", "Reshape", "Permute"]


def _int(value: Any, name: str, op: str, low: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{op}: {name} must be an int; got {value!r}.")
    if low is not None and value < low:
        raise ConfigError(f"{op}: {name} must be at least {low}; got {value}.")
    return int(value)


def _ints(values: Any, name: str, op: str) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, (bool, np.bool_)):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ArgumentTypeError(f"{op}: {name} must be a sequence of ints; got {values!r}.")
    return tuple(_int(v, f"each entry of {name}", op) for v in values)


def _axis(dim: int, ndim: int, op: str) -> int:
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor with {ndim} axes.")
    return dim % ndim


def _arrays(xs: Sequence[Any], op: str, count: int | None) -> list[np.ndarray]:
    if count is not None and len(xs) != count:
        raise ArgumentTypeError(f"{op}: takes {count} inputs; got {len(xs)}.")
    if len(xs) < 1:
        raise ArgumentTypeError(f"{op}: needs at least one input; got none.")
    arrays = [as_float_array(x, f"input {i + 1}", op) for i, x in enumerate(xs)]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise ArgumentTypeError(
            f"{op}: every input must have the same dtype; got {', '.join(str(a.dtype) for a in arrays)}. "
            f"Convert the model with .to(dtype).")
    return arrays


class _Merge(Module):
    num_inputs: int | None = None

    def config(self) -> dict[str, Any]:
        return {}


@register
class Add(_Merge):
    """Elementwise sum of two or more inputs of the same shape (the residual connection).

    Backward: ``dL/dx_i = dL/dy`` for every input, since ``dy/dx_i`` is the identity.
    """

    layer_kind = "add"

    def forward(self, *xs: Any) -> np.ndarray:
        arrays = _arrays(xs, "Add", None)
        self.output_shape(*(a.shape for a in arrays))
        y = arrays[0].copy()
        for a in arrays[1:]:
            y += a
        self._save(n=len(arrays))
        return y

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        n = self._pop_saved()["n"]
        return tuple(dy for _ in range(n))

    def output_shape(self, *shapes: tuple[int, ...]) -> tuple[int, ...]:
        first = tuple(shapes[0])
        for i, s in enumerate(shapes[1:], start=2):
            if tuple(s) != first:
                raise ShapeError(
                    f"Add: every input must have the same shape; input 1 has shape "
                    f"{format_shape(first)} but input {i} has {format_shape(tuple(s))}.")
        return first


@register
class Concat(_Merge):
    """The inputs side by side along ``dim`` (channels by default): SqueezeNet, DenseNet.

    Backward: ``dy`` cut along ``dim`` into the inputs' sizes.
    """

    layer_kind = "concat"

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = _int(dim, "dim", "Concat")

    def forward(self, *xs: Any) -> np.ndarray:
        arrays = _arrays(xs, "Concat", None)
        self.output_shape(*(a.shape for a in arrays))
        axis = self.dim % arrays[0].ndim
        self._save(sizes=[a.shape[axis] for a in arrays], axis=axis)
        return np.concatenate(arrays, axis=axis)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        saved = self._pop_saved()
        cuts = np.cumsum(saved["sizes"])[:-1]
        return tuple(np.ascontiguousarray(p) for p in np.split(dy, cuts, axis=saved["axis"]))

    def output_shape(self, *shapes: tuple[int, ...]) -> tuple[int, ...]:
        first = tuple(shapes[0])
        axis = _axis(self.dim, len(first), "Concat")
        total = 0
        for i, s in enumerate(shapes, start=1):
            s = tuple(s)
            if len(s) != len(first) or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
                raise ShapeError(
                    f"Concat: the inputs must agree on every axis but dim {self.dim}; input 1 has "
                    f"shape {format_shape(first)} but input {i} has {format_shape(s)}.")
            total += s[axis]
        return first[:axis] + (total,) + first[axis + 1:]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting stretched, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


@register
class Mul(_Merge):
    """Elementwise product of two inputs with NumPy broadcasting (the squeeze-and-excitation
    gate: ``x * s`` with ``s`` of shape ``(N, C, 1, 1)``).

    Backward: ``da = dy * b`` and ``db = dy * a``, each summed over the axes broadcasting
    stretched for it.
    """

    layer_kind = "mul"
    num_inputs = 2

    def forward(self, *xs: Any) -> np.ndarray:
        a, b = _arrays(xs, "Mul", 2)
        self.output_shape(a.shape, b.shape)
        self._save(a=a, b=b)
        return a * b

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        saved = self._pop_saved()
        a, b = saved["a"], saved["b"]
        return _unbroadcast(dy * b, a.shape), _unbroadcast(dy * a, b.shape)

    def output_shape(self, *shapes: tuple[int, ...]) -> tuple[int, ...]:
        if len(shapes) != 2:
            raise ArgumentTypeError(f"Mul: takes 2 inputs; got {len(shapes)}.")
        try:
            return tuple(int(v) for v in np.broadcast_shapes(tuple(shapes[0]), tuple(shapes[1])))
        except ValueError:
            raise ShapeError(
                f"Mul: the inputs' shapes {format_shape(tuple(shapes[0]))} and "
                f"{format_shape(tuple(shapes[1]))} do not broadcast (each axis must be equal or 1)."
            ) from None


@register
class ChannelShuffle(Module):
    """ShuffleNet's channel shuffle: channels viewed as ``(groups, C/groups)``, transposed to
    ``(C/groups, groups)`` and flattened back, so the next grouped convolution mixes groups.

    Backward: the inverse shuffle (the same with ``C/groups`` groups).
    """

    layer_kind = "channel_shuffle"

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = _int(groups, "groups", "ChannelShuffle", low=1)

    @staticmethod
    def _shuffle(x: np.ndarray, groups: int) -> np.ndarray:
        n, c = x.shape[:2]
        rest = x.shape[2:]
        y = x.reshape(n, groups, c // groups, *rest).swapaxes(1, 2)
        return np.ascontiguousarray(y).reshape(x.shape)

    def forward(self, x: Any) -> np.ndarray:
        x = as_float_array(x, "x", "ChannelShuffle")
        self.output_shape(x.shape)
        check_allocation(x.shape, x.dtype, "the shuffled copy", "ChannelShuffle")
        self._save(shape=x.shape, dtype=x.dtype)
        return self._shuffle(x, self.groups)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        saved = self._pop_saved()
        dy = self._check_dy(dy, saved["shape"], saved["dtype"])
        return self._shuffle(dy, saved["shape"][1] // self.groups)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) < 2 or shape[1] % self.groups or shape[1] < self.groups:
            raise ShapeError(
                f"ChannelShuffle: the channels must split into {self.groups} equal groups; "
                f"input shape {format_shape(shape)}.")
        return shape

    def extra_repr(self) -> str:
        return f"groups={self.groups}"

    def config(self) -> dict[str, Any]:
        return {"groups": self.groups}


@register
class Split(Module):
    """Pieces of the input along ``dim`` (``torch.split``; ``torch.chunk`` is equal sizes).

    ``sizes`` is a tuple of piece sizes that add up to the axis, or one int: pieces of that
    size (the last one smaller if it does not divide). Several outputs: a graph refers to
    piece ``k`` of node ``name`` as ``"name:k"``. Backward: the pieces' gradients side by side
    (zeros for a piece nobody used).
    """

    layer_kind = "split"

    def __init__(self, sizes: Any, dim: int = 1) -> None:
        super().__init__()
        if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, (bool, np.bool_)):
            self.sizes: tuple[int, ...] | int = _int(sizes, "sizes", "Split", low=1)
        else:
            self.sizes = _ints(sizes, "sizes", "Split")
            if not self.sizes or min(self.sizes) < 0:
                raise ConfigError(f"Split: sizes must be non-negative ints; got {sizes!r}.")
        self.dim = _int(dim, "dim", "Split")

    def _pieces(self, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        axis = _axis(self.dim, len(shape), "Split")
        n = shape[axis]
        if isinstance(self.sizes, int):
            return axis, tuple(min(self.sizes, n - i) for i in range(0, n, self.sizes))
        if sum(self.sizes) != n:
            raise ShapeError(
                f"Split: the sizes {list(self.sizes)} add up to {sum(self.sizes)}, but dim "
                f"{self.dim} of input shape {format_shape(shape)} has {n}.")
        return axis, self.sizes

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        """The number of pieces (known for a tuple of sizes; -1 when sizes is one int)."""
        return len(self.sizes) if isinstance(self.sizes, tuple) else -1

    def forward(self, x: Any) -> tuple[np.ndarray, ...]:
        x = as_float_array(x, "x", "Split")
        axis, sizes = self._pieces(x.shape)
        self._save(shape=x.shape, axis=axis, sizes=sizes, dtype=x.dtype)
        cuts = np.cumsum(sizes)[:-1]
        return tuple(np.split(x, cuts, axis=axis))

    def backward(self, dys: Any) -> np.ndarray:
        saved = self._pop_saved()
        if isinstance(dys, np.ndarray):
            dys = (dys,)
        if len(dys) != len(saved["sizes"]):
            raise ShapeError(f"Split: backward needs one gradient per piece ({len(saved['sizes'])}); "
                             f"got {len(dys)}.")
        return np.concatenate(list(dys), axis=saved["axis"]).astype(saved["dtype"], copy=False)

    def output_shape(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:  # type: ignore[override]
        shape = tuple(int(v) for v in input_shape)
        axis, sizes = self._pieces(shape)
        return [shape[:axis] + (s,) + shape[axis + 1:] for s in sizes]

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, dim={self.dim}"

    def config(self) -> dict[str, Any]:
        return {"sizes": self.sizes if isinstance(self.sizes, int) else list(self.sizes), "dim": self.dim}


@register
class Reshape(Module):
    """Each sample reshaped to ``shape`` (one ``-1`` allowed); the batch axis stays first.

    ``Reshape((2, 8))`` is ``x.reshape(len(x), 2, 8)``. Backward: ``dy`` reshaped back.
    """

    layer_kind = "reshape"

    def __init__(self, shape: Any) -> None:
        super().__init__()
        self.shape = _ints(shape, "shape", "Reshape")
        if sum(1 for v in self.shape if v == -1) > 1 or any(v < -1 or v == 0 for v in self.shape):
            raise ConfigError(f"Reshape: shape must be positive ints with at most one -1; got {shape!r}.")

    def forward(self, x: Any) -> np.ndarray:
        x = as_float_array(x, "x", "Reshape")
        out = self.output_shape(x.shape)
        self._save(shape=x.shape)
        return x.reshape(out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._pop_saved()["shape"])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        size = int(np.prod(shape[1:], dtype=np.int64))
        known = int(np.prod([v for v in self.shape if v != -1], dtype=np.int64))
        target = self.shape
        if -1 in target:
            if known == 0 or size % known:
                raise ShapeError(f"Reshape: a sample of shape {format_shape(shape[1:])} ({size} entries) "
                                 f"cannot be reshaped to {target}.")
            target = tuple(size // known if v == -1 else v for v in target)
        elif known != size:
            raise ShapeError(f"Reshape: a sample of shape {format_shape(shape[1:])} has {size} entries; "
                             f"shape {target} holds {known}.")
        return (shape[0], *target)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}


@register
class Permute(Module):
    """Each sample's axes permuted (``dims`` numbers the sample's axes from 0); the batch
    axis stays first. Backward: the inverse permutation."""

    layer_kind = "permute"

    def __init__(self, dims: Any) -> None:
        super().__init__()
        self.dims = _ints(dims, "dims", "Permute")
        if sorted(self.dims) != list(range(len(self.dims))):
            raise ConfigError(f"Permute: dims must be a permutation of 0..{len(self.dims) - 1}; got {dims!r}.")

    def forward(self, x: Any) -> np.ndarray:
        x = as_float_array(x, "x", "Permute")
        self.output_shape(x.shape)
        self._save(ok=True)
        return np.ascontiguousarray(x.transpose(0, *(d + 1 for d in self.dims)))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._pop_saved()
        inverse = np.argsort(self.dims)
        return np.ascontiguousarray(dy.transpose(0, *(int(d) + 1 for d in inverse)))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != len(self.dims) + 1:
            raise ShapeError(f"Permute: dims {self.dims} permute {len(self.dims)} axes per sample; the "
                             f"input shape {format_shape(shape)} has {len(shape) - 1}.")
        return (shape[0], *(shape[d + 1] for d in self.dims))

    def extra_repr(self) -> str:
        return f"dims={self.dims}"

    def config(self) -> dict[str, Any]:
        return {"dims": list(self.dims)}
