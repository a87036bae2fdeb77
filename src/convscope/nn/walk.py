"""The one model walker: every layer of a model in forward order, with what tools need to know.

Summary, explain, the pictures and the exporters all read a model through :func:`walk`.
It unfolds :class:`~convscope.nn.Sequential` (its layers in a row) and
:class:`~convscope.nn.Residual` (its block's layers, then the Residual itself, whose output
is ``x + block(x)``), and describes every layer by the layer protocol of
:class:`~convscope.nn.Module` (``layer_kind``, ``window``, ``input_rank``), never by its
class, so a user's subclass of a convscope layer is walked like the original.

Given a (batched) input shape, each record also carries the layer's input and output shapes,
computed by arithmetic alone (each layer's ``output_shape``, Key Equation 48 for windows); a
layer that does not fit carries the error and ends the walk.

Numbering: records are numbered 1, 2, ... in the order they are yielded, the numbering of
``convscope summary`` and of every message that names "layer 3".

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(),
    ...                       nn.Residual(nn.Conv2d(2, 2, 3, padding=1, rng=1)))
    >>> [(r.index, r.name, r.kind, r.depth) for r in walk(model)]
    [(1, '0', 'conv', 0), (2, '1', 'relu', 0), (3, '2.block', 'conv', 1), (4, '2', 'residual', 0)]
    >>> [r.out_shape for r in walk(model, (1, 1, 8, 8))]
    [(1, 2, 6, 6), (1, 2, 6, 6), (1, 2, 6, 6), (1, 2, 6, 6)]
    >>> input_rank(model), input_rank(nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0)))
    (2, None)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError, ConvscopeError
from ..shapes import WindowGeometry
from .layer_types import BatchNormLayer, ConvLayer, ResidualLayer
from .module import Module

__all__ = ["LayerRecord", "walk", "input_rank", "input_channels", "batched_input_shape", "one_line"]

# Kinds of layers the walker unfolds rather than describes.
_CONTAINERS = ("sequential", "residual", "graph")
# Kinds that take inputs of several ranks: the first of them leaves a model's input rank open.
_OPEN_RANK = ("flatten", "batch_norm")
# Kinds that act on every entry on its own (no window, no mixing of positions).
_POINTWISE = ("relu", "leaky_relu", "sigmoid", "tanh", "dropout", "batch_norm", "normalize",
              "split", "channel_shuffle", "relu6", "hardsigmoid", "hardswish", "silu", "gelu", "identity")
# Kinds where branches meet: the receptive field is the union over the inputs.
_MERGES = ("add", "concat", "mul")
# Kinds after which every output can depend on every input position.
_GLOBAL = ("flatten", "linear")


def one_line(module: Module) -> str:
    """The module's repr on one line (containers shortened to ``Name(...)``).

    >>> from convscope import nn
    >>> one_line(nn.Sequential(nn.ReLU())), one_line(nn.ReLU())
    ('Sequential(...)', 'ReLU()')
    """
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


@dataclass(eq=False)
class LayerRecord:
    """One layer of a walked model.

    Attributes:
        index: 1-based position in the walk (the numbering of ``convscope.summary``).
        name: dotted path (``"features.0"``); ``"(model)"`` when the model itself is the layer.
        module: the layer.
        depth: how many Residual blocks enclose it (0 at the top level).
        in_shape: the batched input shape (None when the walk had no input shape).
        out_shape: the output shape (None without an input shape or when it does not fit).
        error: why the layer does not fit its input (the layer's own ShapeError or
            ConfigError), else None.
        block: for a Residual, the records of every layer inside its block, in order.
        inputs: the names of the records (or model inputs, ``"input"``) whose outputs this
            layer reads: the previous layer in a Sequential, a node's references in a Graph.
        in_shapes: every input's shape (several for a merge such as Add or Concat).
        out_shapes: every output's shape; a layer with several outputs (Split) has
            ``out_shape`` = its first piece.
    """

    index: int
    name: str
    module: Module
    depth: int
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None
    error: ConvscopeError | None = None
    block: list[LayerRecord] = field(default_factory=list)
    inputs: tuple[str, ...] = ()
    in_shapes: tuple[tuple[int, ...], ...] = ()
    out_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def kind(self) -> str:
        """The layer's ``layer_kind`` (``"conv"``, ``"max_pool"``, ``"residual"``, ...)."""
        return self.module.layer_kind

    @property
    def window(self) -> WindowGeometry | None:
        """The layer's sliding window (convolution and pooling), else None."""
        return self.module.window

    @property
    def nested(self) -> bool:
        """True inside a Residual block (the output is not the next top-level layer's input)."""
        return self.depth > 0

    @property
    def effect(self) -> str:
        """What the layer does to positions: ``"window"`` (a sliding window), ``"pointwise"``
        (each entry on its own: activations, dropout, batch norm, input normalisation,
        softmax over channels),
        ``"global"`` (every output sees the whole input: Flatten, Linear, softmax over a
        spatial axis), ``"residual"``, ``"merge"`` (Add, Concat, Mul: branches meet), or
        ``"unknown"`` (a layer convscope does not know)."""
        kind = self.kind
        if self.window is not None:
            return "window"
        if kind == "residual":
            return "residual"
        if kind in _MERGES:
            return "merge"
        if kind in ("adaptive_avg_pool", "adaptive_max_pool"):  # global pooling: all of the input
            out = self.out_shape
            return "global" if out is not None and all(v == 1 for v in out[2:]) else "unknown"
        if kind == "softmax":
            shape = self.in_shape
            dim = getattr(self.module, "dim", -1)
            return "global" if shape is not None and len(shape) > 2 and dim % len(shape) >= 2 else "pointwise"
        if kind in _POINTWISE:
            return "pointwise"
        if kind in _GLOBAL:
            return "global"
        return "unknown"

    @property
    def padding(self) -> tuple[tuple[int, int], ...]:
        """The window's ``(before, after)`` padding per axis for this input (``"same"``
        resolved); ``()`` for layers without a window or without an input shape."""
        window = self.window
        if window is None or self.in_shape is None:
            return ()
        return window.padding_pairs(self.in_shape[2:])

    @property
    def label(self) -> str:
        """``3 (MaxPool2d(kernel_size=(2, 2)))``: how messages name the layer."""
        return f"{self.index} ({one_line(self.module)})"


def walk(model: Module, input_shape: Sequence[int] | None = None) -> Iterator[LayerRecord]:
    """The layers of ``model`` in forward order (Sequential and Residual unfolded).

    Args:
        model: a :class:`~convscope.nn.Module`.
        input_shape: the BATCHED input shape ``(N, C, *spatial)`` (see
            :func:`batched_input_shape`), or None for the layers alone.

    Yields:
        A :class:`LayerRecord` per layer; a Residual comes after the layers of its block.
        With an input shape, the first layer that does not fit is yielded with ``error`` set
        and ends the walk.

    Raises:
        ArgumentTypeError: ``model`` is not a Module.

    >>> from convscope import nn
    >>> records = list(walk(nn.Sequential(nn.Conv1d(1, 2, 3, rng=0), nn.ReLU()), (1, 1, 2)))
    >>> [(r.index, r.out_shape, type(r.error).__name__) for r in records]
    [(1, None, 'ShapeError')]
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"walk: model must be a convscope Module; got {type(model).__name__}.")
    shape = None if input_shape is None else tuple(int(v) for v in input_shape)
    counter = [0]
    stopped = [False]

    def fit(record: LayerRecord) -> tuple[int, ...] | None:
        if record.in_shape is None or any(s is None for s in record.in_shapes):
            return None
        try:
            out = record.module.output_shape(*(record.in_shapes or (record.in_shape,)))
        except ConvscopeError as exc:
            record.error = exc
            stopped[0] = True
            return None
        outs = list(out) if out and not isinstance(out[0], (int, np.integer)) else [out]
        record.out_shapes = tuple(tuple(int(v) for v in o) for o in outs)
        record.out_shape = record.out_shapes[0]
        return record.out_shape

    def visit(module: Module, name: str, shape: Any, depth: int, into: list[LayerRecord] | None,
              feeds: tuple[str, ...] = ("input",), shapes: tuple[Any, ...] | None = None) -> Iterator[LayerRecord]:
        kind = module.layer_kind
        if kind == "sequential":
            for child_name, child in module.named_children():
                records: list[LayerRecord] = []
                yield from visit(child, f"{name}.{child_name}" if name else child_name, shape,
                                 depth, records, feeds)
                if into is not None:
                    into.extend(records)
                if stopped[0]:
                    return
                if records:
                    shape, feeds = records[-1].out_shape, (records[-1].name,)
            return
        if kind == "graph":
            yield from visit_graph(module, name, shape, depth, into, feeds, shapes)
            return
        if kind == "residual":
            inner: list[LayerRecord] = []
            yield from visit(cast(ResidualLayer, module).block, f"{name}.block" if name else "block", shape, depth + 1,
                             inner, feeds)
            if into is not None:
                into.extend(inner)
            if stopped[0]:
                return
        counter[0] += 1
        record = LayerRecord(counter[0], name or "(model)", module, depth, shape)
        record.inputs = feeds
        if shapes is not None and len(shapes) > 1:
            record.in_shapes = tuple(shapes)
        elif shape is not None:
            record.in_shapes = (shape,)
        if kind == "residual":
            record.block = inner
            if inner:
                record.inputs = (inner[-1].name, *feeds)
        fit(record)
        if into is not None:
            into.append(record)
        yield record

    def visit_graph(graph: Any, name: str, shape: Any, depth: int, into: list[LayerRecord] | None,
                    feeds: tuple[str, ...], shapes: tuple[Any, ...] | None) -> Iterator[LayerRecord]:
        in_shapes = shapes if shapes is not None else (shape,)
        where: dict[str, tuple[str, Any]] = {}
        for i, inp in enumerate(graph.inputs):
            feed = feeds[i] if i < len(feeds) and name else inp
            where[inp] = (feed, in_shapes[i] if i < len(in_shapes) else None)
        for node in graph.nodes:
            refs = [where[r] for r in node.inputs]
            node_feeds = tuple(f for f, _ in refs)
            node_shapes = tuple(s for _, s in refs)
            records: list[LayerRecord] = []
            yield from visit(node.module, f"{name}.{node.name}" if name else node.name,
                             node_shapes[0] if node_shapes else None, depth, records, node_feeds, node_shapes)
            if into is not None:
                into.extend(records)
            if stopped[0] or not records:
                return
            last = records[-1]
            where[node.name] = (last.name, last.out_shape)
            # without shapes (a walk with no input shape) a multi-output node still has its outputs
            n_out = int(getattr(node.module, "num_outputs", 1) or 1)
            for k, s in enumerate(last.out_shapes or (None,) * (n_out if n_out > 1 else 0)):
                where[f"{node.name}:{k}"] = (f"{last.name}:{k}", s)

    yield from visit(model, "", shape, 0, None)


def _rank_layer(model: Module) -> Module | None:
    """The first layer (forward order) that fixes the input rank, or None when none does."""
    for module in model.modules():
        if module.layer_kind in _CONTAINERS:
            continue
        if module.input_rank is not None:
            return module
        if module.layer_kind in _OPEN_RANK:
            return None
    return None


def input_rank(model: Module) -> int | None:
    """Number of spatial axes ``model`` takes, read from its first layer that fixes it.

    Layers that take any shape (activations, dropout) are passed over; the first layer that
    declares an ``input_rank`` answers (a convolution or pooling layer its spatial axes,
    ``Linear`` 0, ``BatchNorm2d`` 2). A layer that takes several ranks (``Flatten``,
    ``BatchNorm1d``) before any of them leaves the rank open: None.

    >>> from convscope import nn
    >>> input_rank(nn.Sequential(nn.ReLU(), nn.Conv3d(1, 1, 1, rng=0))), input_rank(nn.ReLU())
    (3, None)
    """
    layer = _rank_layer(model)
    return None if layer is None else layer.input_rank


def input_channels(model: Module) -> int | None:
    """The channel count the model's first rank-fixing layer takes, when it fixes one.

    A convolution takes ``in_channels``, ``BatchNorm2d`` ``num_features``; pooling and
    ``Linear`` do not fix the channels (None).

    >>> from convscope import nn
    >>> input_channels(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 8, 3, rng=0)))
    3
    """
    layer = _rank_layer(model)
    if layer is None:
        return None
    if layer.layer_kind == "conv":
        return cast(ConvLayer, layer).in_channels
    if layer.layer_kind == "batch_norm":
        return cast(BatchNormLayer, layer).num_features
    return None


def batched_input_shape(model: Any, input_shape: Any, op: str) -> tuple[tuple[int, ...], bool]:
    """``input_shape`` with a batch axis, and whether one was added.

    One is added when the shape has exactly one axis fewer than the model's first rank-fixing
    layer takes (:func:`input_rank` + 2: ``(C, *spatial)`` for a convolution,
    ``(in_features,)`` for a leading Linear); otherwise the shape is taken as batched.

    Raises:
        ArgumentTypeError: ``model`` is not a Module, or ``input_shape`` is not a tuple of
            positive ints.

    >>> from convscope import nn
    >>> batched_input_shape(nn.Conv2d(1, 2, 3, rng=0), (1, 28, 28), "demo")
    ((1, 1, 28, 28), True)
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope Module; got {type(model).__name__}.")
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = len(shape) >= 1 and all(int(v) == v and v >= 1 for v in input_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentTypeError(
            f"{op}: input_shape must be a tuple of positive ints such as (1, 28, 28); got "
            f"{input_shape!r}."
        )
    rank = input_rank(model)
    if rank is not None and len(shape) == rank + 1:
        return (1, *shape), True
    return shape, False
