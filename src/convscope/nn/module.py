"""Module: a layer with a forward map, its derivative, and the parameters it owns.

The notes' central idea (section 9.3-9.4): a network is a row of self-contained modules,
each with a forward map and a derivative, trained by the chain rule. A :class:`Module`

* computes ``y = forward(x)`` (also ``module(x)``) and keeps only what its backward needs;
* computes ``dx = backward(dy)`` from that saved state, where ``dy = dLoss/dy``, and ADDS
  ``dLoss/d(parameter)`` to each parameter's ``grad`` (never overwrites: a weight used in
  many places gets the sum of its derivatives);
* remembers ONE forward at a time: a second forward before backward replaces the saved
  tensors, and backward releases them, so memory never grows with use.

Parameters and sub-modules are found by walking the attributes in definition order, which
gives dotted names (``features.0.weight``) reused by :meth:`Module.state_dict`, the
optimizers and export. Buffers (non-trained state such as batch-norm running statistics) are
declared with :meth:`Module.register_buffer`.

Example:
    >>> import numpy as np
    >>> from convscope.nn import Sequential, Conv2d, ReLU
    >>> model = Sequential(Conv2d(1, 2, 3, rng=0), ReLU())
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias']
    >>> model
    Sequential(
      (0): Conv2d(1, 2, kernel_size=(3, 3))
      (1): ReLU()
    )
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DTypeError, ShapeError, StateError
from ..settings import check_allocation
from ..shapes import WindowGeometry, as_float_array, format_shape
from .init import check_dtype
from .parameter import Parameter

__all__ = ["Module", "LoadResult", "add_batch_axis", "channel_mismatch"]

_AXES = {0: "", 1: "L", 2: "H, W", 3: "D, H, W"}
_RELEASED = object()  # marks "backward already consumed the saved forward"


def _layout(spatial_ndim: int) -> str:
    names = _AXES.get(spatial_ndim, ", ".join(f"S{i}" for i in range(spatial_ndim)))
    return "C" + (", " + names if names else "")


def add_batch_axis(x: np.ndarray, spatial_ndim: int, op: str) -> tuple[np.ndarray, bool]:
    """``x`` with a batch axis, and whether one was added (one unbatched sample, as PyTorch).

    The single place where modules accept ``(C, *spatial)`` besides ``(N, C, *spatial)``;
    functional ops always require the batch axis.

    >>> x, added = add_batch_axis(np.zeros((3, 8, 8)), 2, "Conv2d")
    >>> x.shape, added
    ((1, 3, 8, 8), True)

    Raises:
        ShapeError: ``x`` has neither ``spatial_ndim + 2`` nor ``spatial_ndim + 1`` axes.
    """
    if x.ndim == spatial_ndim + 2:
        return x, False
    if x.ndim == spatial_ndim + 1:
        return x[None], True
    raise ShapeError(
        f"{op} expects x of shape (N, {_layout(spatial_ndim)}) or one unbatched sample "
        f"({_layout(spatial_ndim)}), i.e. {spatial_ndim + 2} or {spatial_ndim + 1} axes; got "
        f"shape {format_shape(x.shape)} with {x.ndim} axes."
    )


def channel_mismatch(op: str, expected: int, x_shape: tuple[int, ...], axis: int) -> ShapeError:
    """The error for a wrong channel count, with the channels-last hint when it applies."""
    msg = (
        f"{op} expected {expected} input channels on axis {axis} but x has shape "
        f"{format_shape(x_shape)}."
    )
    if len(x_shape) > axis + 1 and x_shape[-1] == expected:
        order = tuple(range(axis)) + (len(x_shape) - 1,) + tuple(range(axis, len(x_shape) - 1))
        msg += (
            f" The last axis has {expected} entries: if the data is channels-last, move it with "
            f"x.transpose{order}."
        )
    elif axis == 0 and expected == 1 and len(x_shape) >= 2:
        batched = format_shape((x_shape[0], 1, *x_shape[1:]))
        msg += (
            f" Without a batch axis x is read as one sample whose first axis holds the channels; if "
            f"it is a batch of {x_shape[0]} images without a channel axis, add one: x[:, None] has "
            f"shape {batched}."
        )
    return ShapeError(msg)


class LoadResult(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (both empty after a strict load)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and container.

    Subclasses implement ``forward(x) -> y`` and ``backward(dy) -> dx``, and for
    :func:`convscope.nn.to_spec` / :func:`convscope.summary` also ``config()`` and
    ``output_shape(input_shape)``.

    **Layer protocol.** What summary, explain, viz and export need to know about a layer,
    without testing its class: :attr:`layer_kind` (what it computes), :attr:`window` (the
    sliding window of convolution and pooling layers) and :attr:`input_rank` (how many
    spatial axes it takes). A subclass of a convscope layer inherits all three, so it is
    explained and exported like the original; a new kind of layer keeps the defaults
    (``"module"``, no window, any rank) and is shown as an opaque step.

    Attributes:
        training: True in training mode (the default), False after :meth:`eval`. Only
            modules that behave differently (Dropout, BatchNorm) look at it.
        layer_kind: what the layer computes: ``"conv"``, ``"max_pool"``, ``"avg_pool"``,
            ``"blur_pool"``, ``"batch_norm"``, an activation's name (``"relu"``,
            ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``, ``"softmax"``), ``"linear"``,
            ``"flatten"``, ``"dropout"``, ``"normalize"`` (input standardisation),
            ``"sequential"``, ``"residual"``, or ``"module"`` for anything else. A class
            attribute, inherited by subclasses.
    """

    layer_kind: str = "module"
    num_inputs: int | None = 1  # inputs forward takes (None: any number, e.g. Add)
    num_outputs: int = 1  # outputs forward returns (a tuple when more than one)
    training: bool = True
    dtype: np.dtype | None = None  # parameter dtype of modules that own parameters
    _saved: Any = None
    _buffer_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.training = True
        self._saved = None

    # ------------------------------------------------------------------ layer protocol
    @property
    def window(self) -> WindowGeometry | None:
        """The sliding window of a convolution or pooling layer (kernel, stride, dilation,
        padding, mode); None for layers without one."""
        return None

    @property
    def input_rank(self) -> int | None:
        """Number of spatial axes the layer's input has (``Conv2d``: 2, ``Linear``: 0), or None
        when it takes any. Containers answer for their first layer that fixes it
        (:func:`convscope.nn.input_rank`)."""
        return None

    # ------------------------------------------------------------------ forward / backward
    def forward(self, *args: Any) -> Any:
        """Compute the output; subclasses override."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward().")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Turn dLoss/d(output) into dLoss/d(input); subclasses override."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward().")

    def backward_params(self, dy: np.ndarray) -> None:
        """:meth:`backward` for a module whose INPUT needs no gradient (the first layer of a
        model fed with images): adds the parameter gradients and returns None.

        A layer that can skips dLoss/dx (a convolution then saves the matrix product and the
        adding back of every window, notes 9.4.5); :class:`Sequential` skips it for its
        first module. Training (:func:`convscope.train.fit`) calls this on the model.
        """
        self.backward(dy)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _save(self, **tensors: Any) -> None:
        """Keep what backward needs; replaces anything saved by an earlier forward."""
        self._saved = tensors

    def _pop_saved(self) -> dict[str, Any]:
        """Return and release the saved forward state, or explain why there is none."""
        saved = self._saved
        if saved is None or saved is _RELEASED:
            extra = ""
            if saved is _RELEASED:
                extra = (
                    " The previous backward already used (and released) the saved forward; "
                    "each forward allows one backward."
                )
            raise StateError(
                f"backward called before forward on {type(self).__name__}; run forward on this "
                f"module first.{extra}"
            )
        self._saved = _RELEASED
        return saved

    def _check_input(self, x: Any, op: str | None = None) -> np.ndarray:
        """``x`` as a float array with this module's dtype (no silent casts)."""
        op = op or type(self).__name__
        x = as_float_array(x, "x", op)
        # Layers allocate arrays of the input's size (outputs, masks, statistics); a
        # zero-stride view (np.broadcast_to) of trillions of entries is refused here.
        check_allocation(x.shape, x.dtype, "input x (forward makes arrays of its size)", op)
        if self.dtype is not None and x.dtype != self.dtype:
            raise DTypeError(
                f"{op}: x must have the module's dtype {self.dtype}; got {x.dtype}. convscope "
                f"never casts silently: convert the input with x.astype(np.{self.dtype}) or "
                f"the model with model.to(np.{x.dtype})."
            )
        return x

    def _check_dy(self, dy: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """``dy`` must have the shape and dtype of the output of the saved forward."""
        op = f"{type(self).__name__}.backward"
        dy = as_float_array(dy, "dy", op)
        if dy.shape != tuple(shape):
            raise ShapeError(
                f"{op}: dy must have the shape of the forward output {format_shape(shape)}; got "
                f"{format_shape(dy.shape)}. dy is dLoss/d(output), one entry per output entry."
            )
        if dy.dtype != dtype:
            raise DTypeError(
                f"{op}: dy must have the dtype of the forward output ({dtype}); got {dy.dtype}."
            )
        return dy

    # ------------------------------------------------------------------ one sample or a batch
    def _batched_input(self, x: Any, spatial_ndim: int, channels: int | None = None
                       ) -> tuple[np.ndarray, bool]:
        """``x`` checked (:meth:`_check_input`) with a batch axis, and whether one was added
        (:func:`add_batch_axis`); with ``channels``, axis 1 must have that many entries."""
        op = type(self).__name__
        x = self._check_input(x)
        original = x.shape
        x, unbatched = add_batch_axis(x, spatial_ndim, op)
        if channels is not None and x.shape[1] != channels:
            raise channel_mismatch(op, channels, original, 0 if unbatched else 1)
        return x, unbatched

    def _batched_shape(self, input_shape: tuple[int, ...], spatial_ndim: int,
                       channels: int | None = None) -> tuple[tuple[int, ...], bool]:
        """:meth:`_batched_input` for a shape (``output_shape``): the shape with a batch
        axis, and whether one was added; the channel count is checked when there is one."""
        shape = tuple(int(v) for v in input_shape)
        unbatched = len(shape) == spatial_ndim + 1
        batched = (1, *shape) if unbatched else shape
        if channels is not None and len(batched) == spatial_ndim + 2 and batched[1] != channels:
            raise channel_mismatch(type(self).__name__, channels, shape, 0 if unbatched else 1)
        return batched, unbatched

    def _save_batched(self, x: np.ndarray, y: np.ndarray, unbatched: bool, **more: Any
                      ) -> np.ndarray:
        """Save ``x``, ``unbatched``, ``y``'s shape and ``more`` for backward (see
        :meth:`_pop_saved_dy`); returns ``y`` without the batch axis the forward added."""
        self._save(x=x, unbatched=unbatched, y_shape=y.shape, **more)
        return y[0] if unbatched else y

    def _pop_saved_dy(self, dy: Any) -> tuple[dict[str, Any], np.ndarray]:
        """The saved forward of a layer that saved ``x``, ``unbatched`` and ``y_shape``, and
        ``dy`` checked against that output, with the batch axis the forward added."""
        saved = self._pop_saved()
        y_shape = saved["y_shape"][1:] if saved["unbatched"] else saved["y_shape"]
        dy = self._check_dy(dy, y_shape, saved["x"].dtype)
        return saved, (dy[None] if saved["unbatched"] else dy)

    # ------------------------------------------------------------------ structure
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules with their attribute names, in definition order."""
        for name, value in vars(self).items():
            if isinstance(value, Module) and not name.startswith("_"):
                yield name, value

    def children(self) -> Iterator[Module]:
        """Direct sub-modules in definition order."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (name ``prefix``) and every descendant, depth first, dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, depth first."""
        for _, module in self.named_modules():
            yield module

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter) and not name.startswith("_"):
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (own ones first, then each child's)."""
        for mod_name, module in self.named_modules(prefix):
            for name, param in module._own_parameters():
                yield (f"{mod_name}.{name}" if mod_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, in the order of :meth:`named_parameters`."""
        for _, param in self.named_parameters():
            yield param

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(p.size for p in self.parameters())

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Declare ``name`` as a buffer: saved in ``state_dict`` but not trained."""
        if name not in self._buffer_names:
            self._buffer_names = tuple(self._buffer_names) + (name,)
        setattr(self, name, value)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Every buffer (e.g. ``bn.running_mean``) with its dotted name."""
        for mod_name, module in self.named_modules(prefix):
            for name in module._buffer_names:
                value = getattr(module, name, None)
                if value is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def buffers(self) -> Iterator[np.ndarray]:
        """Every buffer, in the order of :meth:`named_buffers`."""
        for _, value in self.named_buffers():
            yield value

    # ------------------------------------------------------------------ modes and grads
    def zero_grad(self) -> None:
        """Set the gradient of every parameter to zero."""
        for param in self.parameters():
            param.zero_grad()

    def train(self, mode: bool = True) -> Module:
        """Switch this module and all descendants to training mode (or eval if ``mode`` is False)."""
        if not isinstance(mode, (bool, np.bool_)):
            raise ArgumentTypeError(f"train: mode must be True or False; got {mode!r}.")
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode: Dropout becomes the identity, BatchNorm uses running stats."""
        return self.train(False)

    def to(self, dtype: Any) -> Module:
        """Convert every parameter (data and grad) and float buffer to ``dtype``, in place.

        >>> from convscope.nn import Linear
        >>> Linear(2, 3, rng=0).to(np.float64).weight.dtype
        dtype('float64')
        """
        dt = check_dtype(dtype, f"{type(self).__name__}.to")
        for module in self.modules():
            for _, param in module._own_parameters():
                param.data = param.data.astype(dt)
                param.grad = param.grad.astype(dt)
            for name in module._buffer_names:
                value = getattr(module, name, None)
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    setattr(module, name, value.astype(dt))
            if module.dtype is not None:
                module.dtype = dt
            module._saved = None
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by dotted name (parameters first)."""
        state = {name: param.data.copy() for name, param in self.named_parameters()}
        state.update({name: np.array(value, copy=True) for name, value in self.named_buffers()})
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays from ``state_dict`` into the parameters and buffers, in place.

        Every entry is checked (shape and dtype) before anything is written, so a failed
        load leaves the model unchanged.

        Args:
            state_dict: name -> array, as returned by :meth:`state_dict`.
            strict: if True (default), missing or unexpected names are an error; if False
                they are skipped and reported in the result.

        Returns:
            ``LoadResult(missing_keys, unexpected_keys)``.

        Raises:
            ConfigError: strict load with missing or unexpected names.
            ShapeError: an array's shape differs from the model's.
            DTypeError: an array's dtype differs from the model's (no silent casts).
        """
        op = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise ArgumentTypeError(
                f"{op}: state_dict must be a mapping of name -> array; got "
                f"{type(state_dict).__name__}."
            )
        targets: dict[str, tuple[str, Any, str]] = {}
        for name, param in self.named_parameters():
            targets[name] = ("param", param, "")
        for mod_name, module in self.named_modules():
            for buf in module._buffer_names:
                if getattr(module, buf, None) is not None:
                    targets[f"{mod_name}.{buf}" if mod_name else buf] = ("buffer", module, buf)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing from the state dict: {_listing(missing)}")
            if unexpected:
                parts.append(f"not in the model: {_listing(unexpected)}")
            raise ConfigError(
                f"{op}: the state dict must have exactly the model's parameter and buffer names; "
                + "; ".join(parts)
                + ". The checkpoint was probably made for a different architecture (compare "
                "the names with model.state_dict().keys()), or pass strict=False."
            )
        staged = []
        for name, (kind, owner, attr) in targets.items():
            if name not in state_dict:
                continue
            current = owner.data if kind == "param" else getattr(owner, attr)
            value = state_dict[name]
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value)
                except (TypeError, ValueError):
                    raise ArgumentTypeError(
                        f"{op}: {name} must be an array; got {type(value).__name__}."
                    ) from None
            if value.shape != current.shape:
                raise ShapeError(
                    f"{op}: {name} has shape {format_shape(current.shape)} in the model but "
                    f"{format_shape(value.shape)} in the state dict. The layer sizes differ; the "
                    f"checkpoint does not belong to this architecture."
                )
            if value.dtype != current.dtype:
                raise DTypeError(
                    f"{op}: {name} has dtype {current.dtype} in the model but {value.dtype} in "
                    f"the state dict. convscope never casts silently: convert the model with "
                    f"model.to(np.{value.dtype}) or the arrays with .astype(np.{current.dtype})."
                )
            staged.append((current, value))
        for current, value in staged:
            np.copyto(current, value)
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------------ description
    def extra_repr(self) -> str:
        """The arguments shown inside ``Name(...)``: only the non-default ones."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [extra] if extra else []
        for name, child in children:
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    # ``_repr_html_`` (the layer table in Jupyter) is attached by :mod:`convscope.nn.summary`,
    # which builds that table from the walker and sits above this file.

    def config(self) -> dict[str, Any]:
        """JSON-safe constructor arguments (children excluded); used by ``to_spec``."""
        raise ConfigError(
            f"{type(self).__name__} does not describe its constructor arguments: give it a "
            f"config() method returning them as a JSON-safe dict to use to_spec/save."
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of ``forward(x)`` for ``x`` of ``input_shape``, by arithmetic alone."""
        raise ConfigError(
            f"{type(self).__name__} does not say how it changes shapes: give it an "
            f"output_shape(input_shape) method to use convscope.summary."
        )


class _ParamGradLayer(Module):
    """A layer whose backward can skip dLoss/dx (convolution, linear): subclasses implement
    ``_backward(dy, input_grad)``, which adds the parameter gradients and returns dLoss/dx,
    or None when ``input_grad`` is False (:meth:`Module.backward_params`)."""

    def _backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        raise NotImplementedError(f"{type(self).__name__} does not define _backward().")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dLoss/dx from dLoss/dy; adds dLoss/dweight and dLoss/dbias to the grads."""
        dx = self._backward(dy, True)
        assert dx is not None  # input_grad=True always computes dx
        return dx

    def backward_params(self, dy: np.ndarray) -> None:
        """Adds dLoss/dweight and dLoss/dbias without computing dLoss/dx."""
        self._backward(dy, False)


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
