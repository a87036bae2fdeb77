"""The numbers the HTML explainer's script computes with, for every kind of layer, forward and backward.

For each walked layer (:func:`convscope.viz.forward_layers`) :func:`layer_numbers` gathers what
the page needs to redo that layer's arithmetic for a clicked value, chosen by the layer
protocol (``layer_kind`` and ``window``, never the layer's class):

* pooling: the window geometry (max: the window on the previous layer, its maximum and ties;
  average: the mean and its count; blur: the binomial weights and the padded input);
* ReLU and the other activations: their formula's parameters (a LeakyReLU's slope, a GELU's
  ``approximate``; the input comes from the previous layer's embedded output);
* Normalize: the mean and std per channel;
* adaptive pooling: the input and output sizes (the page derives each window, PyTorch's
  ``floor(i*n/out) .. ceil((i+1)*n/out)``; the input values are the region the tile reads);
* BatchNorm: the running mean and variance, ``eps``, scale and shift per channel;
* Linear: the weight rows of the largest outputs that fit the layer's cap, and the bias (the
  page lists the largest products ``w_ji x_i`` and sums the rest);
* Softmax: the axis; Flatten: nothing (the page maps an index back to channel and position);
* Concat: the axis and each input's offset and size along it (the page finds the input and
  channel a value comes from); ChannelShuffle: the groups; Mul: nothing (each input's shape,
  in its ``inputs`` entry, says which axes broadcast).

:func:`backward_passes` runs the backward pass of every layer for a chosen class: the loss is
the cross-entropy of that class, ``L = -log p_c`` (so ``dL/dz = p - onehot(c)`` on the
scores, notes 9.4 chain rule applied layer by layer), and records ``dL/dy`` of every layer's
output, ``dL/dW`` of every convolution and what each merge (a layer with several inputs) sends
back to each of its inputs, through each layer's own ``backward`` - the library's numbers, which
the page then re-derives for a clicked filter in the notes' 9.31 form and for a clicked merge
value from its rule (Add: ``dL/dy`` to every input; Concat: each input its slice; Mul: ``dL/dy``
times the other factor, summed over the broadcast axes).

Arrays travel as little-endian float bytes in base64 (:func:`b64`; raw-DEFLATE compressed when
that pays, as the zeros after a ReLU do), so every value is bit-exact; :func:`unb64` reads one back.
What each layer embeds, and its per-layer cap, is :mod:`convscope.viz._explainer_slices`.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..errors import ConfigError
from ..functional.pool import binomial_filter
from ..nn import Module
from ._explainer_slices import axis_word, concat_parts, linear_rows, padded_patch
from .activations import LayerActivation

__all__ = ["b64", "unb64", "Budget", "layer_numbers", "input_refs", "ClassGrad", "backward_passes", "probabilities_of"]


def b64(a: np.ndarray, dtype: np.dtype) -> dict[str, Any]:
    """A JSON-safe, bit-exact array: little-endian bytes in base64, raw-DEFLATE compressed first
    (``"deflate": true``; the page's script inflates them) when that saves an eighth or more."""
    code = "f8" if np.dtype(dtype) == np.float64 else "f4"
    raw = np.ascontiguousarray(a, dtype="<" + code).tobytes()
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)            # raw DEFLATE (RFC 1951): no zlib header
    packed = packer.compress(raw) + packer.flush()
    out: dict[str, Any] = {"dtype": code, "shape": list(np.shape(a))}
    if len(packed) <= len(raw) - len(raw) // 8:
        out.update(b64=base64.b64encode(packed).decode("ascii"), deflate=True)
    else:
        out["b64"] = base64.b64encode(raw).decode("ascii")
    return out


def unb64(entry: dict[str, Any]) -> np.ndarray:
    """The array of a :func:`b64` entry (float64 or float32, its shape), bit for bit.

    Raises:
        ConfigError: ``entry`` is not such an entry, or its bytes do not fill its shape.
    """
    if not isinstance(entry, dict) or entry.get("dtype") not in ("f4", "f8") or "b64" not in entry \
            or "shape" not in entry:
        raise ConfigError(f"unb64: expected an embedded array {{'dtype': 'f4' or 'f8', 'shape': [...], "
                          f"'b64': ...}}; got {str(entry)[:80]!r}.")
    raw = base64.b64decode(entry["b64"])
    raw = zlib.decompress(raw, -15) if entry.get("deflate") else raw
    size = (8 if entry["dtype"] == "f8" else 4) * int(np.prod(entry["shape"]))
    if len(raw) != size:
        raise ConfigError(f"unb64: the shape {entry['shape']} needs {size} bytes; the entry holds {len(raw)}.")
    return np.frombuffer(raw, dtype="<" + entry["dtype"]).reshape(entry["shape"])


class Budget:
    """How many numbers may still be embedded."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self, count: int) -> bool:
        if count > self.left:
            return False
        self.left -= count
        return True


def input_refs(xb: np.ndarray, acts: Sequence[LayerActivation]) -> dict[int, int | None]:
    """For each layer, the index of the layer whose output it received (0: the model's input).

    The walk hands each layer the very array the previous step produced, so identity tells
    where an input came from (a Residual's input is the layer before its block).
    """
    producer = {id(xb): 0}
    refs: dict[int, int | None] = {}
    for act in acts:
        refs[act.index] = producer.get(id(act.x))
        producer[id(act.y)] = act.index
    return refs


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def layer_numbers(act: LayerActivation, shown: list[int], tile: tuple[list[int], list[int]] | None, room: int,
                  dtype: np.dtype) -> dict[str, Any]:
    """Kind-specific numbers of one layer for the page's arithmetic (see the module docstring).

    ``tile``: the (start, size) of the layer's values tile (None: the whole output); ``room``:
    the numbers the layer may still embed under its cap (:mod:`convscope.viz._explainer_slices`).
    Returns a dict with ``kind`` and, depending on it, ``pool``, ``blur``, ``act``, ``bn``,
    ``linear``, ``softmax``, ``concat``, ``shuffle``, ``norm``, ``adaptive`` entries; an entry
    whose numbers exceed the room carries a ``note``.
    """
    m: Any = act.module                 # read through the layer protocol: kind first, then its fields
    kind = m.layer_kind
    out: dict[str, Any] = {"kind": kind}
    window = m.window
    spatial = act.x.shape[2:]
    if kind in ("max_pool", "avg_pool") and window is not None:
        pairs = window.padding_pairs(spatial)
        out["pool"] = {"op": window.op, "k": list(window.kernel_size), "s": list(window.stride),
                       "d": list(window.dilation), "p_before": [b for b, _ in pairs],
                       "p_after": [a for _, a in pairs], "n": list(spatial),
                       "ceil_mode": bool(window.ceil_mode),
                       "count_include_pad": bool(getattr(m, "count_include_pad", True))}
    elif kind == "blur_pool" and window is not None:
        start, size = tile if tile is not None else ([0] * len(spatial), list(act.y.shape[2:]))
        xp, first, pairs, _ = padded_patch(act.x, window, start, size, shown)
        weights = binomial_filter(window.kernel_size[0], window.ndim)
        entry: dict[str, Any] = {"k": list(window.kernel_size), "s": list(window.stride),
                                 "p_before": [b for b, _ in pairs], "n": list(spatial),
                                 "padding_mode": window.padding_mode, "channels": shown,
                                 "weights": _floats(weights), "padded": None, "padded_start": first}
        if xp.size <= room:
            entry["padded"] = b64(xp, dtype)
            entry["padded_shape"] = list(xp.shape)
        out["blur"] = entry
    elif kind == "leaky_relu":
        out["act"] = {"negative_slope": float(getattr(m, "negative_slope", 0.01))}
    elif kind == "gelu":
        out["act"] = {"approximate": str(getattr(m, "approximate", "none"))}
    elif kind == "normalize":
        c = act.x.shape[1]
        out["norm"] = {"mean": _floats(np.resize(np.asarray(m.mean).reshape(-1), c)),
                       "std": _floats(np.resize(np.asarray(m.std).reshape(-1), c))}
    elif kind in ("adaptive_avg_pool", "adaptive_max_pool") and act.x.ndim > 2:
        out["adaptive"] = {"op": "max" if kind == "adaptive_max_pool" else "avg", "n": list(spatial),
                           "out": list(act.y.shape[2:])}
    elif kind == "batch_norm":
        c = act.x.shape[1]
        mean = getattr(m, "running_mean", None)
        var = getattr(m, "running_var", None)
        weight = getattr(m, "weight", None)
        bias = getattr(m, "bias", None)
        out["bn"] = {
            "mean": None if mean is None else _floats(mean), "var": None if var is None else _floats(var),
            "eps": float(getattr(m, "eps", 1e-5)),
            "weight": _floats(weight.data) if weight is not None else [1.0] * c,
            "bias": _floats(bias.data) if bias is not None else [0.0] * c,
        }
    elif kind == "linear":
        w = np.asarray(m.weight.data)
        rows = linear_rows(act, room)
        entry = {"in": int(w.shape[1]), "out": int(w.shape[0]), "weights": None, "rows": rows,
                 "bias": None if m.bias is None else _floats(m.bias.data)}
        if rows:
            entry["weights"] = b64(w[rows], dtype)
        if len(rows) < w.shape[0]:
            entry["note"] = (f"The weight rows of {len(rows):,} of the {w.shape[0]:,} outputs (the largest) are "
                             f"embedded: the cap on numbers per layer (max_layer_numbers) holds "
                             f"{max(room, 0):,} more numbers here.")
        out["linear"] = entry
    elif kind == "softmax":
        out["softmax"] = {"dim": int(getattr(m, "dim", -1)) % act.x.ndim}
    elif kind == "concat" and act.inputs:
        axis, offsets, sizes = concat_parts(act)
        out["concat"] = {"axis": axis - 1, "offsets": offsets, "sizes": sizes}      # axis of one sample
    elif kind == "channel_shuffle":
        out["shuffle"] = {"groups": int(getattr(m, "groups", 1))}
    elif kind == "split":
        axis = int(getattr(m, "dim", 1)) % act.x.ndim
        out["split"] = {"sizes": [int(y.shape[axis]) for y in act.outputs],
                        "along": ("the " if 1 <= axis <= 3 else "") + axis_word(axis)}
    return out


def probabilities_of(acts: Sequence[LayerActivation]) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(scores z, probabilities p, whether the model's own Softmax made p) of the final layer, or
    None when the output is not ``(1, classes)``."""
    y = np.asarray(acts[-1].y)
    if y.ndim != 2:
        return None
    if acts[-1].module.layer_kind == "softmax":
        return (np.asarray(acts[-1].x[0], dtype=np.float64), np.asarray(y[0], dtype=np.float64), True)
    z = np.asarray(y[0], dtype=np.float64)
    return z, np.asarray(F.softmax(z[None], axis=1)[0]), False


@dataclass(frozen=True, eq=False)
class ClassGrad:
    """One backward pass: ``L = -log p_c`` for class ``c``.

    Attributes:
        target: the class.  loss: ``-log p_c``.
        grads: ``{layer index: dL/dy of that layer's output}`` (batch of one).
        input_grad: ``dL/dx`` of the model's input.
        weight_grads: ``{conv layer index: dL/dW}``.
        sent: ``{merge layer index: (dL/dx_1, dL/dx_2, ...)}``: what the merge's backward sends to
            each input (an input that feeds several layers sums what they all send: fan-out).
    """

    target: int
    loss: float
    grads: dict[int, np.ndarray]
    input_grad: np.ndarray
    weight_grads: dict[int, np.ndarray]
    sent: dict[int, tuple[np.ndarray, ...]]


def _final_grad(acts: Sequence[LayerActivation], target: int) -> tuple[np.ndarray, float]:
    last = acts[-1]
    y = np.asarray(last.y, dtype=np.float64)
    if last.module.layer_kind == "softmax":
        p = y[0, target]
        g = np.zeros_like(y)
        g[0, target] = -1.0 / max(p, 1e-300)             # d(-log p_c)/dp
        return g.astype(last.y.dtype), float(-np.log(max(p, 1e-300)))
    p = F.softmax(y, axis=1)
    g = p.copy()
    g[0, target] -= 1.0                                   # dL/dz = p - onehot(c)
    return g.astype(last.y.dtype), float(-np.log(max(p[0, target], 1e-300)))


def backward_passes(model: Module, xb: np.ndarray, acts: Sequence[LayerActivation],
                    targets: Sequence[int]) -> list[ClassGrad]:
    """Run every layer's backward for each target class (see the module docstring).

    Each layer is run forward again on its recorded input just before its backward (a
    module keeps one forward for one backward), in evaluation mode; parameter gradients and
    the model's mode are restored afterwards, so the model is left as it was given.
    """
    params = list(model.parameters())
    saved_grads = [None if p.grad is None else p.grad.copy() for p in params]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    by_index = {a.index: a for a in acts}
    passes = []
    try:
        for target in targets:
            grads: dict[int, np.ndarray] = {}
            weight_grads: dict[int, np.ndarray] = {}
            sent: dict[int, tuple[np.ndarray, ...]] = {}
            pending: dict[int, np.ndarray] = {}             # id(array) -> dL/d(array)
            g_final, loss = _final_grad(acts, int(target))
            pending[id(acts[-1].y)] = g_final

            for act in reversed(acts):
                g = pending.get(id(act.y))
                if g is None:
                    g = np.zeros_like(act.y)
                grads[act.index] = g
                if act.module.layer_kind == "residual":
                    block_last = _block_output(act, by_index)
                    _add(pending, act.x, g)                           # y = x + block(x): both paths get dy
                    if block_last is not None:
                        _add(pending, block_last.y, g)
                    continue
                for p in act.module.parameters():
                    p.zero_grad()
                if getattr(act.module, "num_outputs", 1) != 1:
                    continue              # a multi-output node: its outputs' gradients are not tracked
                act.module(*act.inputs)
                dx = act.module.backward(g)
                if act.module.layer_kind == "conv":
                    conv: Any = act.module
                    weight_grads[act.index] = np.array(conv.weight.grad)
                dxs = dx if isinstance(dx, tuple) else (dx,)
                if len(act.inputs) > 1:
                    sent[act.index] = tuple(np.array(d) for d in dxs)
                for x_i, dx_i in zip(act.inputs, dxs):
                    _add(pending, x_i, dx_i)        # a merge hands each branch its own gradient
            passes.append(ClassGrad(int(target), loss, grads, pending.get(id(xb), np.zeros_like(xb)),
                                    weight_grads, sent))
    finally:
        for p, g in zip(params, saved_grads):
            if g is None:
                p.zero_grad()
            else:
                p.grad[...] = g
        for m, mode in modes:
            m.training = mode
    return passes


def _add(pending: dict[int, np.ndarray], array: np.ndarray, g: np.ndarray) -> None:
    """Accumulate ``g`` into dL/d(array): an array used twice (fan-out) gets the sum."""
    key = id(array)
    pending[key] = pending[key] + g if key in pending else g


def _block_output(res: LayerActivation, by_index: dict[int, LayerActivation]) -> LayerActivation | None:
    """The last layer of a Residual's block: the walk lists it just before the Residual."""
    act = by_index.get(res.index - 1)
    if act is None or not act.nested or act.y.shape != res.y.shape or not np.array_equal(act.y + res.x, res.y):
        return None
    return act
