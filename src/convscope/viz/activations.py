"""One input walked through a model layer by layer: what every layer received and produced.

:func:`forward_layers` runs the model on ONE sample, layer by layer (Sequential and Residual
unfolded, numbered as :func:`convscope.summary` and :func:`convscope.explain.receptive_field`
number them), in evaluation mode, and keeps each layer's input and output. The pictures and
the HTML explainer draw from it.

:func:`prepare_input` turns an image into the batch of one the model takes: ``(H, W)`` for a
one-channel 2-D model, ``(C, *spatial)`` or ``(1, C, *spatial)``, cast to the model's dtype
(the cast is done here on purpose, because pictures explain a model on a picture a user
gives, often float64 from a file).

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3, rng=1))
    >>> x, acts = forward_layers(model, np.ones((6, 6)))
    >>> x.shape
    (1, 1, 6, 6)
    >>> [(a.index, type(a.module).__name__, a.y.shape) for a in acts]   # doctest: +NORMALIZE_WHITESPACE
    [(1, 'Conv2d', (1, 2, 4, 4)), (2, 'ReLU', (1, 2, 4, 4)), (3, 'Flatten', (1, 32)),
     (4, 'Linear', (1, 3))]
    >>> bool(np.array_equal(acts[-1].y, model(x)))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError, DTypeError, ShapeError
from ..nn import LayerRecord, Module, input_channels, input_rank, walk
from ..shapes import format_shape

__all__ = ["LayerActivation", "forward_layers", "prepare_input", "model_dtype", "numbered_layers",
           "find_layer", "name_suffix"]


@dataclass(frozen=True, eq=False)
class LayerActivation:
    """One layer's input and output for the walked sample.

    Attributes:
        index: 1-based layer number (as ``convscope.summary``).
        name: dotted path (``"features.0"``).
        module: the layer.
        layer: its walk record (:class:`convscope.nn.LayerRecord`: shapes, window, effect).
        x: what it received, batch of 1.
        y: what it produced, batch of 1.
        nested: True for layers inside a Residual block (their output is not the next
            top-level layer's input).
        xs: every input of a merge (Add, Concat, Mul), else ``()``; see :attr:`inputs`.
        ys: every output of a node with several (a Split's pieces; ``y`` is the first),
            else ``()``; see :attr:`outputs`.
    """

    index: int
    name: str
    module: Module
    layer: LayerRecord
    x: np.ndarray
    y: np.ndarray
    nested: bool
    xs: tuple[np.ndarray, ...] = ()
    ys: tuple[np.ndarray, ...] = ()

    @property
    def inputs(self) -> tuple[np.ndarray, ...]:
        """Every input it received (several for a merge such as Add or Concat)."""
        return self.xs or (self.x,)

    @property
    def outputs(self) -> tuple[np.ndarray, ...]:
        """Every output it produced (several for a Split, one per piece)."""
        return self.ys or (self.y,)

    @property
    def spatial(self) -> bool:
        """True when the output still has channels and spatial axes, ``(1, C, *spatial)``."""
        return self.y.ndim >= 3

    def __repr__(self) -> str:
        layer = repr(self.module).split("\n")[0]
        return (f"LayerActivation({self.index}{name_suffix(self.name)}: {layer[:80]}, "
                f"{format_shape(self.x.shape)} -> {format_shape(self.y.shape)})")

    def _repr_html_(self) -> str:
        from .._display import esc, panel, table

        return panel(f"Layer {self.index}{name_suffix(self.name)}", table(
            ["layer", "input", "output"], [[esc(repr(self.module).split("\n")[0]), format_shape(self.x.shape),
                                            format_shape(self.y.shape)]], raw=True))


def name_suffix(name: str) -> str:
    """`` (features.3)`` after a layer number for a dotted name; nothing for a plain position
    such as ``"3"`` (beside "layer 4" it would read as a second layer number).

    >>> name_suffix("features.3"), name_suffix("3")
    (' (features.3)', '')
    """
    return "" if not name or name.isdigit() else f" ({name})"


def numbered_layers(model: Module) -> list[tuple[int, str, Module]]:
    """``(index, name, module)`` of every layer, numbered as :func:`convscope.summary` does.

    Sequential is unfolded; a Residual's block layers come first, then the Residual itself.

    >>> from convscope import nn
    >>> [(i, n) for i, n, _ in numbered_layers(nn.Sequential(nn.Conv1d(1, 1, 1, rng=0), nn.ReLU()))]
    [(1, '0'), (2, '1')]
    """
    return [(r.index, r.name, r.module) for r in walk(model)]


def _is_kind(module: Module, kinds: tuple[Any, ...]) -> bool:
    """``module`` is one of ``kinds``: layer kinds (``"conv"``) or classes."""
    return any(module.layer_kind == k if isinstance(k, str) else isinstance(module, k) for k in kinds)


def find_layer(model: Module, layer: Any, kinds: tuple[Any, ...], what: str,
               op: str) -> tuple[int, str, Module]:
    """The layer ``layer`` (1-based number or dotted name; None: the first of ``kinds``).

    ``kinds`` holds layer kinds (:attr:`convscope.nn.Module.layer_kind`, e.g. ``"conv"``) or
    classes.

    A string is looked up as a dotted name first (``"3"`` is the child named 3 of a
    Sequential), then, if no layer has that name, as a layer number.

    Raises:
        ArgumentTypeError: ``model`` is not a Module.
        ConfigError: no such layer, or it is not one of ``kinds`` (the message lists those there are).

    >>> from convscope import nn
    >>> m = nn.Sequential(nn.ReLU(), nn.Conv1d(1, 1, 1, rng=0))
    >>> find_layer(m, None, (nn.Conv1d,), "convolution", "demo")[:2]
    (2, '1')
    >>> find_layer(m, None, ("conv",), "convolution", "demo")[:2]
    (2, '1')
    """
    from ..errors import ConfigError

    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope Module; got {type(model).__name__}.")
    layers = numbered_layers(model)
    matching = [row for row in layers if _is_kind(row[2], kinds)]
    listing = ", ".join(f"{i}{name_suffix(n)}" for i, n, _ in matching) or "none"
    if layer is None:
        if not matching:
            raise ConfigError(f"{op}: the model has no {what} layer; its layers are "
                              f"{', '.join(type(m).__name__ for _, _, m in layers)}.")
        return matching[0]
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        found = [row for row in layers if row[0] == int(layer)]
    elif isinstance(layer, str):
        # a dotted name first; a string of digits that names no layer is a layer number
        found = [row for row in layers if row[1] == layer]
        if not found and layer.isdigit():
            found = [row for row in layers if row[0] == int(layer)]
    else:
        raise ArgumentTypeError(f"{op}: layer must be a 1-based layer number or a dotted name; "
                                f"got {layer!r}.")
    if not found or not _is_kind(found[0][2], kinds):
        got = f"layer {layer!r} is {type(found[0][2]).__name__}" if found else f"there is no layer {layer!r}"
        raise ConfigError(f"{op}: layer must name a {what} layer (number as in convscope summary, or "
                          f"dotted name); {got}. The {what} layers are: {listing}.")
    return found[0]


def model_dtype(model: Module) -> np.dtype:
    """The dtype of the model's first parameter (float32 when it has none).

    >>> from convscope import nn
    >>> model_dtype(nn.Conv1d(1, 1, 2, rng=0, dtype=np.float64)), model_dtype(nn.ReLU())
    (dtype('float64'), dtype('float32'))
    """
    for param in model.parameters():
        return param.data.dtype
    return np.dtype(np.float32)


def prepare_input(model: Module, x: Any, op: str = "prepare_input") -> np.ndarray:
    """One sample as the batch ``(1, C, *spatial)`` the model takes, in the model's dtype.

    Args:
        model: a :class:`convscope.nn.Module`.
        x: ``(1, C, *spatial)``, ``(C, *spatial)``, or ``(*spatial)`` when the model's first
            layer takes one channel (a grayscale image ``(H, W)``).
        op: the caller's name for error messages.

    Raises:
        ArgumentTypeError: ``model`` is not a Module.
        DTypeError: non-real data.
        ShapeError: more than one sample, or a shape the model's first layer cannot take.

    >>> from convscope import nn
    >>> prepare_input(nn.Conv2d(1, 2, 3, rng=0), np.zeros((5, 5))).shape
    (1, 1, 5, 5)
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"{op}: model must be a convscope Module; got {type(model).__name__}.")
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise DTypeError(f"{op}: x must hold real numbers (an image); got dtype {a.dtype}.")
    spatial = input_rank(model)
    rank = None if spatial is None else spatial + 2
    channels = input_channels(model)
    if rank is not None:
        if a.ndim == rank - 2 and channels == 1 and rank >= 3:
            a = a[None, None]
        elif a.ndim == rank - 1:
            a = a[None]
        if a.ndim != rank:
            want = f"(C, {', '.join('HW'[-(rank - 2):]) if rank <= 4 else '*spatial'})"
            raise ShapeError(
                f"{op}: the model's first layer takes inputs with {rank} axes (1, C, *spatial); x has "
                f"shape {format_shape(np.shape(x))}. Pass one sample {want}"
                + (" or a grayscale (H, W) image." if channels == 1 and rank >= 3 else ".")
            )
        if channels is not None and a.shape[1] != channels:
            hint = (" For an RGB picture and a one-channel model, average the colours first "
                    "(x.mean(axis=0))." if channels == 1 and a.shape[1] == 3 else "")
            raise ShapeError(
                f"{op}: the model's first layer takes {channels} input channel(s) on axis 1; x as a "
                f"batch has shape {format_shape(a.shape)}.{hint}"
            )
    elif a.ndim == 0:
        raise ShapeError(f"{op}: x must be one sample with a batch axis of 1; got a scalar.")
    if a.shape[0] != 1:
        raise ShapeError(f"{op}: pictures explain ONE sample; x has a batch of {a.shape[0]} "
                         f"(shape {format_shape(a.shape)}). Pass x[:1].")
    return np.ascontiguousarray(a, dtype=model_dtype(model))


def forward_layers(model: Module, x: Any,
                   op: str = "forward_layers") -> tuple[np.ndarray, list[LayerActivation]]:
    """Run ``model`` on one sample layer by layer, keeping every layer's input and output.

    The model runs in evaluation mode (Dropout off, BatchNorm on running statistics); its
    own mode is restored afterwards. Like any forward, this replaces what the layers saved
    for a backward.

    Args:
        model: a Module; Sequential and Residual are unfolded.
        x: one sample (see :func:`prepare_input`).
        op: the caller's name for error messages.

    Returns:
        ``(x as the batch of one, [LayerActivation per layer])``.

    Raises:
        ShapeError: a layer does not fit (the message names it, as :func:`convscope.summary`).
    """
    xb = prepare_input(model, x, op)
    layers = list(walk(model, xb.shape))
    bad = [lay for lay in layers if lay.error is not None]
    if bad:
        raise ShapeError(f"{op}: layer {bad[0].label} does not fit its input of shape "
                         f"{format_shape(cast(tuple[int, ...], bad[0].in_shape))}: {bad[0].error}")
    records: list[LayerActivation] = []
    outs: dict[str, np.ndarray] = {}          # record name (or graph input name) -> its output
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        for lay in layers:
            # each record names what feeds it (the walker's ``inputs``): the previous layer in a
            # Sequential, any earlier node in a Graph, the model's input first
            xs = tuple(outs.get(ref, xb) for ref in (lay.inputs or ("input",)))
            if lay.kind == "residual":        # x + block(x): inputs are (block's last layer, x)
                block_out, x_in = (xs[0], xs[-1]) if lay.block else (xs[-1], xs[-1])
                out: Any = x_in + block_out if lay.block else x_in
                xs = (x_in,)
            else:
                out = lay.module(*xs)
            if any(out is x_i for x_i in xs):  # Identity hands back its input: the walk tracks arrays by
                out = out.copy()                # identity, so each layer's output is an array of its own
            pieces: tuple[np.ndarray, ...] = ()
            if isinstance(out, tuple):        # a multi-output node (Split): "name:k" for each
                for k, part in enumerate(out):
                    outs[f"{lay.name}:{k}"] = part
                pieces, out = tuple(out), out[0]
            outs[lay.name] = out
            records.append(LayerActivation(lay.index, lay.name, lay.module, lay, xs[0], out, lay.nested,
                                           xs if len(xs) > 1 else (), pieces))
    finally:
        for m, mode in modes:
            m.training = mode
    return xb, records
