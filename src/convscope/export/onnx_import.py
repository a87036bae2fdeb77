"""ONNX import: an ONNX file's graph, node by node, as a convscope ``nn.Graph``.

:func:`from_onnx` reads the file with the ``onnx`` package and translates each node:

=====================================  ==============================================
ONNX                                   convscope
=====================================  ==============================================
Conv                                   Conv1d/2d/3d (weights and bias copied)
Pad (reflect, edge, wrap, constant 0)  that Conv's padding_mode and padding
-> Conv
Conv (or Pad -> Conv) with the         BlurPool* (what BlurPool exports as: a fixed
depthwise binomial filter, no bias     filter, so no parameters to train)
Sub -> Div by per-channel constants    Normalize (preprocessing kept in the model)
Relu, Sigmoid, Tanh, LeakyRelu,        ReLU, Sigmoid, Tanh, LeakyReLU, Softmax,
Softmax, HardSwish, HardSigmoid        Hardswish, Hardsigmoid (PyTorch's alpha 1/6)
(alpha 1/6, beta 1/2), Gelu
Clip(0, 6)                             ReLU6
Add, Mul (of two computed tensors)     Add, Mul (broadcasting)
Concat                                 Concat
MaxPool, AveragePool                   MaxPool*, AvgPool* (pads, dilations, ceil mode)
GlobalAveragePool, ReduceMean over     AdaptiveAvgPool*(1) (+ Flatten without keepdims)
all spatial axes; GlobalMaxPool        AdaptiveMaxPool*(1)
Div -> Erf -> Add -> Mul -> Mul        GELU (PyTorch's export of exact GELU)
Flatten(axis=1)                        Flatten
Gemm, MatMul (+ Add of a bias)         Linear
BatchNormalization                     BatchNorm1d/2d (running statistics)
Reshape / Transpose (batch kept);      Reshape / Permute;
Reshape -> Transpose(0,2,1,...) ->     ChannelShuffle
Reshape back
Split; Slices that tile one axis       Split
Identity, Dropout                      nothing (the tensor passes through)
Constant, initializers, Shape and      constants, evaluated at import (at two batch
arithmetic on shapes                   sizes: a value that changes is the batch axis)
=====================================  ==============================================

Node names come from the ONNX node names PyTorch writes (``/layer1/layer1.0/conv1/Conv``
becomes ``layer1.0.conv1``), or convscope's own ``to_onnx`` writes (``layer1.0.add/Add``
becomes ``layer1.0.add``: a file convscope wrote comes back with its node names). Any other operator is refused with a
:class:`~convscope.errors.ConfigError` naming it, the node and the supported list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import nn
from ..errors import ArgumentTypeError, ConfigError
from ..functional import binomial_filter
from ..shapes import blur_padding
from .common import unique_name
from .fx import nn_layer
from .onnx import _PAD_MODES as _EXPORTED_PAD_MODES
from .onnx import import_onnx

__all__ = ["from_onnx"]

_BATCHES = (2, 3)  # every shape is followed at two batch sizes


def _qualified(node_name: str, op: str, index: int) -> str:
    """``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``; ``/layer1/layer1.0/Add`` ->
    ``layer1.0.Add``."""
    parts = [p for p in node_name.split("/") if p]
    if not parts:
        return f"{op}_{index}"
    *scopes, last = parts
    path, local = "", ""
    for scope in scopes:
        if local and scope.startswith(local + "."):
            path = f"{path}.{scope[len(local) + 1:]}"
        else:
            path = f"{path}.{scope}" if path else scope
        local = scope
    leaf = last.split("_")[0] if last.startswith(op) else last
    if leaf == op and op in _LAYER_OPS and path:
        return path
    return f"{path}.{last}" if path else last


_LAYER_OPS = {"Conv", "Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "LeakyRelu",
              "Softmax", "MaxPool", "AveragePool", "Gemm", "BatchNormalization", "Gelu",
              "GlobalAveragePool", "Flatten", "MatMul", "Normalize"}


class _Importer:
    def __init__(self, onnx: Any, proto: Any) -> None:
        self.onnx = onnx
        self.proto = proto
        g = proto.graph
        self.ours = proto.producer_name == "convscope"  # node names are module paths
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        self.const: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for init in g.initializer:
            a = onnx.numpy_helper.to_array(init)
            self.const[init.name] = (a, a)
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
        self.ref: dict[str, str] = {}
        self.nodes: list[Any] = []
        self.names: set[str] = set()
        self.skip: set[int] = set()
        self.pending: dict[str, list[Any]] = {}
        self.consumers: dict[str, list[Any]] = {}
        for node in g.node:
            for i in node.input:
                self.consumers.setdefault(i, []).append(node)
        self.inputs: list[str] = []
        real_inputs = [v for v in g.input if v.name not in self.const]
        for v in real_inputs:
            name = "input" if len(real_inputs) == 1 else v.name
            dims = v.type.tensor_type.shape.dim
            shape = []
            for k, d in enumerate(dims):
                if k == 0:
                    continue
                if not d.HasField("dim_value"):
                    raise ConfigError(
                        f"from_onnx: input {v.name!r} has a symbolic size {d.dim_param!r} on axis "
                        f"{k}; convscope imports graphs whose axes other than the batch are fixed.")
                shape.append(int(d.dim_value))
            self.shapes[v.name] = tuple((b, *shape) for b in _BATCHES)
            self.ref[v.name] = name
            self.names.add(name)
            self.inputs.append(name)

    # ---------------------------------------------------------------- helpers
    def unsupported(self, node: Any, why: str = "") -> ConfigError:
        return ConfigError(
            f"from_onnx: the operator {node.op_type} at ONNX node {node.name!r} is not supported"
            f"{why}. Supported operators: {', '.join(sorted(_HANDLERS))} (and constant "
            f"arithmetic on shapes: {', '.join(sorted(_FOLD))}). Nothing is approximated."
        )

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def is_data(self, name: str) -> bool:
        return name in self.ref

    def value(self, node: Any, k: int, what: str) -> np.ndarray:
        if k >= len(node.input) or not node.input[k]:
            raise self.unsupported(node, f": missing input {what}")
        name = node.input[k]
        if name not in self.const:
            raise self.unsupported(node, f": its {what} ({name!r}) must be a constant")
        a, b = self.const[name]
        if not np.array_equal(a, b):
            raise self.unsupported(node, f": its {what} depends on the batch size")
        return a

    def optional(self, node: Any, k: int) -> np.ndarray | None:
        if k >= len(node.input) or not node.input[k]:
            return None
        return self.const[node.input[k]][0] if node.input[k] in self.const else None

    def data(self, node: Any, k: int) -> str:
        name = node.input[k]
        if self.ref.get(name) == _PENDING:
            _finish_slices(self, name)
        if name not in self.ref:
            raise self.unsupported(node, f": input {name!r} must be a tensor the graph computes")
        return self.ref[name]

    def emit(self, node: Any, module: nn.Module, inputs: list[str], outputs: Any = None,
             suffix: str = "", op: str | None = None) -> str:
        """A graph node for ONNX ``node`` (named as if its operator were ``op``)."""
        node_name = node.name if op is None else node.name.rpartition("/")[0] + "/" + op
        if self.ours and "/" in node.name:  # convscope writes "<module path>/<operator>"
            qualified = node.name.rpartition("/")[0]
        else:
            qualified = _qualified(node_name, op or node.op_type, len(self.nodes))
        name = unique_name(qualified + suffix, self.names)
        self.nodes.append(nn.Node(name, module, tuple(inputs)))
        in_shapes = [self.shape_of_ref(r) for r in inputs]
        shapes = tuple(module.output_shape(*[s[i] for s in in_shapes])
                       for i in range(len(_BATCHES)))
        self.ref_shapes[name] = shapes
        for out in (outputs if outputs is not None else [node.output[0]]):
            self.ref[out] = name
        return name

    ref_shapes: dict[str, Any]

    def shape_of_ref(self, ref: str) -> tuple[tuple[int, ...], ...]:
        if ref in self.ref_shapes:
            return tuple(self.ref_shapes[ref])
        base, _, k = ref.rpartition(":")
        return tuple(s[int(k)] for s in self.ref_shapes[base])

    def shape(self, name: str) -> tuple[tuple[int, ...], ...]:
        if self.ref.get(name) == _PENDING:
            _finish_slices(self, name)
        return self.shape_of_ref(self.ref[name])

    # ---------------------------------------------------------------- translation
    def run(self) -> nn.Module:
        self.ref_shapes = {self.ref[n]: s for n, s in self.shapes.items()}
        for node in self.proto.graph.node:  # known up front: patterns look ahead at them
            if node.op_type == "Constant":
                self._fold(node)
        for index, node in enumerate(self.proto.graph.node):
            if index in self.skip:
                continue
            if node.domain not in ("", "ai.onnx"):
                raise self.unsupported(node, f" (domain {node.domain!r})")
            if not any(self.is_data(i) for i in node.input if i):
                self._fold(node)
                continue
            if node.op_type == "Shape":
                self._shape_node(node)
                continue
            handler = _HANDLERS.get(node.op_type)
            if handler is None:
                raise self.unsupported(node)
            handler(self, node)
        outputs = []
        for v in self.proto.graph.output:
            if v.name not in self.ref:
                raise ConfigError(f"from_onnx: the graph output {v.name!r} is a constant; "
                                  f"convscope imports graphs whose outputs depend on the input.")
            if self.ref[v.name] == _PENDING:
                _finish_slices(self, v.name)
            outputs.append(self.ref[v.name])
        return nn.Graph(self.nodes, inputs=tuple(self.inputs),
                        outputs=outputs[0] if len(outputs) == 1 else tuple(outputs))

    def _shape_node(self, node: Any) -> None:
        shapes = self.shape(node.input[0])
        a = self.attrs(node)
        start, end = a.get("start", 0), a.get("end")
        values = [np.array(s[start:end], dtype=np.int64) for s in shapes]
        self.const[node.output[0]] = (values[0], values[1])

    def _fold(self, node: Any) -> None:
        fold = _FOLD.get(node.op_type)
        if fold is None:
            raise self.unsupported(node, " on constants")
        results = []
        for k in range(len(_BATCHES)):
            args = [self.const[i][k] if i else None for i in node.input]
            results.append(fold(self, node, args))
        self.const[node.output[0]] = (results[0], results[1])


# -------------------------------------------------------------------------- constant folding
def _gather(imp: _Importer, node: Any, args: list) -> np.ndarray:
    return np.take(args[0], args[1], axis=imp.attrs(node).get("axis", 0))


def _axes(imp: _Importer, node: Any, args: list) -> list[int]:
    if len(args) > 1 and args[1] is not None:
        return [int(v) for v in np.atleast_1d(args[1])]
    return list(imp.attrs(node).get("axes", []))


def _unsqueeze(imp: _Importer, node: Any, args: list) -> np.ndarray:
    out = args[0]
    for ax in sorted(_axes(imp, node, args)):
        out = np.expand_dims(out, ax)
    return out


def _squeeze(imp: _Importer, node: Any, args: list) -> np.ndarray:
    axes = _axes(imp, node, args)
    return np.squeeze(args[0], axis=tuple(axes)) if axes else np.squeeze(args[0])


def _cast(imp: _Importer, node: Any, args: list) -> np.ndarray:
    to = imp.onnx.helper.tensor_dtype_to_np_dtype(imp.attrs(node)["to"])
    return args[0].astype(to)


def _slice_const(imp: _Importer, node: Any, args: list) -> np.ndarray:
    x, starts, ends = args[0], args[1], args[2]
    axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
    steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _div(imp: _Importer, node: Any, args: list) -> np.ndarray:
    a, b = args
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.asarray(a // b)
    return np.asarray(a / b)


def _constant(imp: _Importer, node: Any, args: list) -> np.ndarray:
    a = imp.attrs(node)
    if "value" in a:
        return np.asarray(imp.onnx.numpy_helper.to_array(a["value"]))
    for key in ("value_int", "value_float"):
        if key in a:
            return np.asarray(a[key])
    for key in ("value_ints", "value_floats"):
        if key in a:
            return np.asarray(list(a[key]))
    raise imp.unsupported(node, f" with attributes {sorted(a)}")


_FOLD: dict[str, Callable[..., np.ndarray]] = {
    "Constant": _constant, "Identity": lambda i, n, a: a[0], "Gather": _gather,
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Cast": _cast, "Slice": _slice_const,
    "Concat": lambda i, n, a: np.concatenate([np.atleast_1d(v) for v in a],
                                             axis=i.attrs(n).get("axis", 0)),
    "Div": _div, "Mul": lambda i, n, a: np.asarray(a[0] * a[1]),
    "Add": lambda i, n, a: np.asarray(a[0] + a[1]), "Sub": lambda i, n, a: np.asarray(a[0] - a[1]),
    "Reshape": lambda i, n, a: a[0].reshape(a[1]),
    "Transpose": lambda i, n, a: np.transpose(a[0], i.attrs(n).get("perm")),
    "ConstantOfShape": lambda i, n, a: np.full(
        tuple(int(v) for v in a[0]),
        i.onnx.numpy_helper.to_array(i.attrs(n)["value"]).reshape(-1)[0]
        if "value" in i.attrs(n) else np.float32(0)),
}


# -------------------------------------------------------------------------- data operators
def _pairs(pads: list[int], nd: int) -> tuple[tuple[int, int], ...]:
    pads = list(pads) or [0] * (2 * nd)
    return tuple((int(pads[i]), int(pads[i + nd])) for i in range(nd))


def _no_auto_pad(imp: _Importer, node: Any, a: dict) -> None:
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        raise imp.unsupported(node, f" with auto_pad={auto}")


def _conv(imp: _Importer, node: Any, pad: tuple[str, tuple[tuple[int, int], ...]] | None = None,
          source: str | None = None) -> None:
    """A Conv; ``pad`` = ``(padding_mode, pairs)`` of a ``Pad`` folded in front of it (whose
    input ``source`` is then the convolution's input)."""
    a = imp.attrs(node)
    _no_auto_pad(imp, node, a)
    w = imp.value(node, 1, "weight")
    b = imp.optional(node, 2)
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise imp.unsupported(node, f" with {nd} spatial axes")
    groups = int(a.get("group", 1))
    stride = tuple(int(v) for v in a.get("strides", [1] * nd))
    dilation = tuple(int(v) for v in a.get("dilations", [1] * nd))
    mode, padding = pad if pad is not None else ("zeros", _pairs(a.get("pads", []), nd))
    x = imp.data(node, 0) if source is None else imp.ref[source]
    if _is_blur(w, b, groups, dilation, padding):
        blur = getattr(nn, f"BlurPool{nd}d")(groups, w.shape[-1], stride, mode)
        imp.emit(node, blur, [x])
        return
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
    conv = cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=stride,
               padding=padding, dilation=dilation, groups=groups, bias=b is not None,
               padding_mode=mode, dtype=np.float32)
    conv.weight.data[...] = w
    if b is not None and conv.bias is not None:
        conv.bias.data[...] = b
    imp.emit(node, conv, [x])


def _is_blur(w: np.ndarray, b: np.ndarray | None, groups: int, dilation: tuple[int, ...],
             padding: tuple[tuple[int, int], ...]) -> bool:
    """A depthwise, bias-free Conv whose every filter is the binomial one, padded by
    ``blur_padding``: what ``to_onnx`` writes for ``BlurPool`` (and what antialiased-cnns'
    BlurPool exports as)."""
    f, nd = w.shape[-1], w.ndim - 2
    if b is not None or w.shape[:2] != (groups, 1) or set(w.shape[2:]) != {f} or \
            not 1 <= f <= 7 or set(dilation) != {1} or set(padding) != {blur_padding(f)}:
        return False
    return bool(np.allclose(w, binomial_filter(f, nd), rtol=1e-6, atol=1e-7))


_PAD_MODES = {onnx_mode: mode for mode, onnx_mode in _EXPORTED_PAD_MODES.items()}  # ONNX -> convscope
_PAD_RULE = (" (only a Pad of the spatial axes by a constant amount, reflect, edge, wrap or "
             "constant 0, that feeds one Conv of its own: it becomes that Conv's padding, or a "
             "BlurPool when the Conv is the binomial blur)")


def _pad(imp: _Importer, node: Any) -> None:
    """``Pad -> Conv`` (how ``to_onnx`` writes a convolution or blur pool with reflect,
    replicate or circular padding) -> one Conv or BlurPool with that padding."""
    conv = _only_user(imp, node.output[0], "Conv")
    if conv is None or conv.input[0] != node.output[0]:
        raise imp.unsupported(node, _PAD_RULE)
    a = imp.attrs(node)
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    rank = len(imp.shape(node.input[0])[0])
    pads = list(a.get("pads", [])) if imp.opset < 11 else imp.value(node, 1, "pads").tolist()
    axes = imp.optional(node, 3)
    full = [0] * (2 * rank)
    for k, axis in enumerate(range(rank) if axes is None else [int(v) % rank for v in axes]):
        full[axis], full[axis + rank] = int(pads[k]), int(pads[k + len(pads) // 2])
    value = imp.optional(node, 2)
    conv_pads = imp.attrs(conv).get("pads", [])
    if any(full[i] or full[i + rank] for i in (0, 1)) or min(full) < 0 or any(conv_pads) or \
            (mode == "constant" and value is not None and float(value) != 0.0) or \
            mode not in (*_PAD_MODES, "constant"):
        raise imp.unsupported(node, f" with mode={mode}, pads={full}" + _PAD_RULE)
    pairs = tuple((full[i], full[i + rank]) for i in range(2, rank))
    imp.skip.add(list(imp.proto.graph.node).index(conv))
    _conv(imp, conv, (_PAD_MODES.get(mode, "zeros"), pairs), source=node.input[0])


def _normalize(imp: _Importer, node: Any) -> None:
    """``Sub(x, mean) -> Div(., std)`` with per-channel constants (how ``to_onnx`` writes
    ``Normalize``, and how a preprocessing ``(x - mean) / std`` exports) -> ``Normalize``."""
    div = _only_user(imp, node.output[0], "Div")
    rule = (" (only as (x - mean) / std with constant, per-channel mean and std: a "
            "Normalize)")
    if div is None or node.input[1] not in imp.const or imp.is_data(node.input[1]) or \
            div.input[0] != node.output[0] or imp.is_data(div.input[1]):
        raise imp.unsupported(node, rule)
    shape = imp.shape(node.input[0])[0]
    mean, std = imp.value(node, 1, "mean"), imp.value(div, 1, "std")
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    for v in (mean, std):
        if v.size not in (1, shape[1]) or (v.size > 1 and np.broadcast_shapes(
                v.shape, per_channel) != per_channel) or v.ndim > len(shape):
            raise imp.unsupported(node, f" with a constant of shape {v.shape}" + rule)
    if not np.all(std > 0) or not np.all(np.isfinite(std)):
        raise imp.unsupported(node, " dividing by a constant that is not positive" + rule)
    imp.emit(div, nn.Normalize(mean.reshape(-1), std.reshape(-1)), [imp.data(node, 0)],
             op="Normalize")
    imp.skip.add(list(imp.proto.graph.node).index(div))


def _simple(make: Callable[[_Importer, Any], nn.Module]) -> Callable[..., None]:
    def handler(imp: _Importer, node: Any) -> None:
        imp.emit(node, make(imp, node), [imp.data(node, 0)])
    return handler


def _clip(imp: _Importer, node: Any) -> nn.Module:
    a = imp.attrs(node)
    lo = imp.optional(node, 1) if len(node.input) > 1 else a.get("min")
    hi = imp.optional(node, 2) if len(node.input) > 2 else a.get("max")
    lo_v = None if lo is None else float(np.asarray(lo))
    hi_v = None if hi is None else float(np.asarray(hi))
    if lo_v == 0.0 and hi_v == 6.0:
        return nn_layer("ReLU6")()
    if lo_v == 0.0 and hi_v is None:
        return nn.ReLU()
    raise imp.unsupported(node, f" with min={lo_v}, max={hi_v} (only Clip(0, 6), ReLU6)")


def _hardsigmoid(imp: _Importer, node: Any) -> nn.Module:
    a = imp.attrs(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
        raise imp.unsupported(node, f" with alpha={alpha}, beta={beta} (PyTorch's "
                                    f"Hardsigmoid is alpha=1/6, beta=1/2)")
    return nn_layer("Hardsigmoid")()


def _softmax(imp: _Importer, node: Any) -> nn.Module:
    axis = int(imp.attrs(node).get("axis", -1 if imp.opset >= 13 else 1))
    if imp.opset < 13 and axis != len(imp.shape(node.input[0])[0]) - 1:
        raise imp.unsupported(node, " before opset 13 on an axis other than the last")
    return nn.Softmax(axis)


def _gelu(imp: _Importer, node: Any) -> nn.Module:
    approx = imp.attrs(node).get("approximate", b"none")
    return nn_layer("GELU")(approximate=approx.decode() if isinstance(approx, bytes) else approx)


def _merge(kind: str) -> Callable[..., None]:
    def handler(imp: _Importer, node: Any) -> None:
        if not all(imp.is_data(i) for i in node.input):
            raise imp.unsupported(node, ": one input is a constant (convscope merges two "
                                        "tensors the graph computes)")
        module = nn.Add() if kind == "Add" else nn.Mul()
        imp.emit(node, module, [imp.data(node, k) for k in range(len(node.input))])
    return handler


def _concat(imp: _Importer, node: Any) -> None:
    rank = len(imp.shape(next(i for i in node.input if imp.is_data(i)))[0])
    axis = int(imp.attrs(node)["axis"]) % rank
    if axis == 0:
        raise imp.unsupported(node, " along the batch axis")
    imp.emit(node, nn.Concat(dim=axis), [imp.data(node, k) for k in range(len(node.input))])


def _pool(kind: str) -> Callable[..., None]:
    def handler(imp: _Importer, node: Any) -> None:
        a = imp.attrs(node)
        _no_auto_pad(imp, node, a)
        k = tuple(int(v) for v in a["kernel_shape"])
        nd = len(k)
        s = tuple(int(v) for v in a.get("strides", [1] * nd))
        pads = _pairs(a.get("pads", []), nd)
        ceil = bool(a.get("ceil_mode", 0))
        layer: nn.Module
        if kind == "max":
            if len(node.output) > 1 and node.output[1]:
                raise imp.unsupported(node, " with an indices output")
            layer = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd](
                k, s, pads, tuple(a.get("dilations", [1] * nd)), ceil)
        else:
            layer = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd](
                k, s, pads, ceil, bool(a.get("count_include_pad", 0)))
        imp.emit(node, layer, [imp.data(node, 0)])
    return handler


def _global(kind: str) -> Callable[..., None]:
    def handler(imp: _Importer, node: Any) -> None:
        nd = len(imp.shape(node.input[0])[0]) - 2
        imp.emit(node, getattr(nn, f"Adaptive{kind}Pool{nd}d")(1), [imp.data(node, 0)])
    return handler


def _reduce_mean(imp: _Importer, node: Any) -> None:
    a = imp.attrs(node)
    rank = len(imp.shape(node.input[0])[0])
    axes = a.get("axes")
    if axes is None and len(node.input) > 1:
        axes = imp.value(node, 1, "axes").tolist()
    axes = sorted(int(v) % rank for v in (axes or range(rank)))
    if axes != list(range(2, rank)):
        raise imp.unsupported(node, f" over axes {axes} (only all spatial axes)")
    pool = getattr(nn, f"AdaptiveAvgPool{rank - 2}d")(1)
    if a.get("keepdims", 1):
        imp.emit(node, pool, [imp.data(node, 0)])
        return
    ref = imp.emit(node, pool, [imp.data(node, 0)], outputs=[], suffix=".pool")
    imp.emit(node, nn.Flatten(1), [ref])


def _flatten(imp: _Importer, node: Any) -> None:
    axis = int(imp.attrs(node).get("axis", 1))
    if axis != 1:
        raise imp.unsupported(node, f" with axis={axis} (only 1: keep the batch axis)")
    imp.emit(node, nn.Flatten(1), [imp.data(node, 0)])


def _linear(imp: _Importer, node: Any, w: np.ndarray, b: np.ndarray | None,
            outputs: list[str]) -> None:
    fc = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=np.float32)
    fc.weight.data[...] = w
    if b is not None and fc.bias is not None:
        fc.bias.data[...] = np.broadcast_to(b, (w.shape[0],))
    imp.emit(node, fc, [imp.data(node, 0)], outputs=outputs)


def _gemm(imp: _Importer, node: Any) -> None:
    a = imp.attrs(node)
    if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
        raise imp.unsupported(node, " with transA, alpha or beta other than 0, 1, 1")
    w = imp.value(node, 1, "weight")
    w = w if a.get("transB", 0) else w.T
    b = imp.optional(node, 2)
    _linear(imp, node, w, b, [node.output[0]])


def _matmul(imp: _Importer, node: Any) -> None:
    w = imp.value(node, 1, "weight").T
    users = imp.consumers.get(node.output[0], [])
    outputs = [node.output[0]]
    b = None
    if len(users) == 1 and users[0].op_type == "Add":
        add = users[0]
        other = [i for i in add.input if i != node.output[0]]
        if len(other) == 1 and other[0] in imp.const:
            bias = imp.const[other[0]][0]
            if bias.size == w.shape[0]:
                b = bias.reshape(-1)
                outputs = [add.output[0]]
                imp.skip.add(list(imp.proto.graph.node).index(add))
    _linear(imp, node, w, b, outputs)


def _batch_norm(imp: _Importer, node: Any) -> None:
    a = imp.attrs(node)
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise imp.unsupported(node, " in training mode")
    scale, bias, mean, var = (imp.value(node, k, what) for k, what in
                              ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    rank = len(imp.shape(node.input[0])[0])
    cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
    bn = cls(scale.shape[0], eps=float(a.get("epsilon", 1e-5)),
             momentum=round(1.0 - float(a.get("momentum", 0.9)), 9), dtype=np.float32)
    for target, value in ((bn.weight.data, scale), (bn.bias.data, bias),  # type: ignore[union-attr]
                          (bn.running_mean, mean), (bn.running_var, var)):
        target[...] = value  # type: ignore[index]
    bn.eval()
    imp.emit(node, bn, [imp.data(node, 0)])


def _reshape_rule(shape: tuple[int, ...], target: np.ndarray, allowzero: int) -> tuple[int, ...]:
    out = [int(shape[i]) if (v == 0 and not allowzero) else int(v) for i, v in enumerate(target)]
    if -1 in out:
        known = int(np.prod([v for v in out if v != -1]))
        out[out.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return tuple(out)


def _reshape(imp: _Importer, node: Any) -> None:
    if node.input[1] not in imp.const:
        raise imp.unsupported(node, ": its target shape must be a constant")
    allowzero = int(imp.attrs(node).get("allowzero", 0))
    ins = imp.shape(node.input[0])
    outs = [_reshape_rule(s, t, allowzero) for s, t in zip(ins, imp.const[node.input[1]])]
    if any(o[0] != b for o, b in zip(outs, _BATCHES)) or outs[0][1:] != outs[1][1:]:
        raise imp.unsupported(node, f" to {outs[0]}: the batch axis must stay first (a file "
                                    f"exported with a fixed batch size: export with a dynamic "
                                    f"batch axis)")
    if _shuffle(imp, node, ins[0], outs[0]) or _shuffle_back(imp, node, outs[0]):
        return
    imp.emit(node, nn.Reshape(tuple(outs[0][1:])), [imp.data(node, 0)])


def _only_user(imp: _Importer, name: str, op: str) -> Any:
    users = imp.consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0].op_type == op else None


def _shuffle(imp: _Importer, node: Any, x: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """Reshape (N, C, *s) -> (N, g, C/g, *s), Transpose(0, 2, 1, ...), Reshape back."""
    if len(out) != len(x) + 1 or out[1] * out[2] != x[1] or out[3:] != x[2:]:
        return False
    trans = _only_user(imp, node.output[0], "Transpose")
    if trans is None or list(imp.attrs(trans)["perm"]) != [0, 2, 1] + list(range(3, len(out))):
        return False
    back = _only_user(imp, trans.output[0], "Reshape")
    if back is None or back.input[1] not in imp.const:
        return False
    shapes = [_reshape_rule((b, out[2], out[1], *out[3:]), t, 0)
              for b, t in zip(_BATCHES, imp.const[back.input[1]])]
    if [s[1:] for s in shapes] != [tuple(x[1:])] * 2:
        return False
    imp.emit(node, nn.ChannelShuffle(int(out[1])), [imp.data(node, 0)],
             outputs=[node.output[0], trans.output[0], back.output[0]])
    graph_nodes = list(imp.proto.graph.node)
    imp.skip.update({graph_nodes.index(trans), graph_nodes.index(back)})
    return True


def _shuffle_back(imp: _Importer, node: Any, out: tuple[int, ...]) -> bool:
    """The channel shuffle seen from its last Reshape (PyTorch computes that Reshape's target
    after the Transpose, so the first Reshape could not look ahead): the Reshape and Permute
    nodes already emitted become one ChannelShuffle."""
    graph_nodes = {n.output[0]: n for n in imp.proto.graph.node if n.output}
    trans = graph_nodes.get(node.input[0])
    first = graph_nodes.get(trans.input[0]) if trans is not None and trans.input else None
    if trans is None or trans.op_type != "Transpose" or first is None or first.op_type != "Reshape":
        return False
    if len(imp.consumers.get(trans.output[0], [])) != 1 or \
            len(imp.consumers.get(first.output[0], [])) != 1:
        return False
    x = first.input[0]
    grouped = imp.shape(first.output[0])[0]
    if not imp.is_data(x) or imp.shape(x)[0] != out or len(grouped) != len(out) + 1 or \
            list(imp.attrs(trans)["perm"]) != [0, 2, 1] + list(range(3, len(grouped))):
        return False
    drop = {imp.ref[first.output[0]], imp.ref[trans.output[0]]}
    kinds = {n.name: n.module.layer_kind for n in imp.nodes if n.name in drop}
    if sorted(kinds.values()) != ["permute", "reshape"]:
        return False
    imp.nodes = [n for n in imp.nodes if n.name not in drop]
    imp.names -= drop
    imp.emit(first, nn.ChannelShuffle(int(grouped[1])), [imp.ref[x]], outputs=[node.output[0]])
    return True


def _transpose(imp: _Importer, node: Any) -> None:
    rank = len(imp.shape(node.input[0])[0])
    perm = [int(v) for v in imp.attrs(node).get("perm", list(reversed(range(rank))))]
    if perm[0] != 0:
        raise imp.unsupported(node, f" with perm={perm}: the batch axis must stay first")
    imp.emit(node, nn.Permute(tuple(p - 1 for p in perm[1:])), [imp.data(node, 0)])


def _split(imp: _Importer, node: Any) -> None:
    a = imp.attrs(node)
    shape = imp.shape(node.input[0])[0]
    axis = int(a.get("axis", 0)) % len(shape)
    sizes = a.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        sizes = imp.value(node, 1, "split").tolist()
    if sizes is None:
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-shape[axis] // n)
        sizes = [min(chunk, shape[axis] - k * chunk) for k in range(n)]
    if axis == 0:
        raise imp.unsupported(node, " along the batch axis")
    name = imp.emit(node, nn.Split(tuple(int(s) for s in sizes), dim=axis), [imp.data(node, 0)],
                    outputs=[])
    for k, out in enumerate(node.output):
        imp.ref[out] = f"{name}:{k}"


def _slice(imp: _Importer, node: Any) -> None:
    """A Slice of a computed tensor: one piece of a split, emitted when a piece is first used.

    PyTorch exports ``chunk`` as Slices that together tile one axis; the pieces of one
    source become one Split node once all of them are known (see :meth:`_Importer.data`).
    """
    source = node.input[0]
    shape = imp.shape(source)[0]
    starts, ends = (imp.value(node, k, w) for k, w in ((1, "starts"), (2, "ends")))
    axes, steps = imp.optional(node, 3), imp.optional(node, 4)
    if len(starts) != 1 or (steps is not None and int(steps[0]) != 1):
        raise imp.unsupported(node, _SLICE_RULE)
    axis = int(axes[0]) % len(shape) if axes is not None else 0
    n = shape[axis]
    begin, end = (min(max(int(v) + (n if v < 0 else 0), 0), n) for v in (starts[0], ends[0]))
    imp.pending.setdefault(source, []).append((axis, begin, end, node))
    imp.ref[node.output[0]] = _PENDING


_PENDING = "\x00pending slice"
_SLICE_RULE = ": only slices along one axis (not the batch), step 1, that together cover it (a split)"


def _finish_slices(imp: _Importer, name: str) -> None:
    """Emit the Split whose piece ``name`` is."""
    source = next(src for src, pieces in imp.pending.items()
                  if any(p[3].output[0] == name for p in pieces))
    pieces = sorted(imp.pending.pop(source), key=lambda p: p[1])
    shape = imp.shape(source)[0]
    bounds = [(p[1], p[2]) for p in pieces]
    axis = pieces[0][0]
    tiled = ({p[0] for p in pieces} == {axis} and axis != 0 and bounds[0][0] == 0
             and bounds[-1][1] == shape[axis]
             and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:])))
    if not tiled:
        raise imp.unsupported(pieces[0][3], _SLICE_RULE)
    ref = imp.emit(pieces[0][3], nn.Split(tuple(e - b for b, e in bounds), dim=axis),
                   [imp.ref[source]], outputs=[])
    for k, piece in enumerate(pieces):
        imp.ref[piece[3].output[0]] = f"{ref}:{k}"


def _erf_gelu(imp: _Importer, node: Any) -> None:
    """PyTorch's export of exact GELU before opset 20: x * 0.5 * (1 + erf(x / sqrt(2)))
    (``Div -> Erf -> Add 1 -> Mul x -> Mul 0.5``) -> ``GELU``."""
    x = node.input[0]

    def const_other(n: Any, value: float) -> bool:
        other = [i for i in n.input if i in imp.const and not imp.is_data(i)]
        return len(other) == 1 and np.allclose(imp.const[other[0]][0], value, rtol=1e-6)

    chain = [node]
    for op in ("Erf", "Add", "Mul", "Mul"):
        nxt = _only_user(imp, chain[-1].output[0], op)
        if nxt is None:
            raise imp.unsupported(node, " (only as part of the exact GELU pattern "
                                        "x * 0.5 * (1 + erf(x / sqrt(2))))")
        chain.append(nxt)
    div, _, add, mul_x, half = chain
    if not (div.input[0] == x and const_other(div, np.sqrt(2.0)) and const_other(add, 1.0)
            and x in mul_x.input and const_other(half, 0.5)):
        raise imp.unsupported(node, " (only as part of the exact GELU pattern "
                                    "x * 0.5 * (1 + erf(x / sqrt(2))))")
    imp.emit(node, nn_layer("GELU")(), [imp.data(node, 0)], outputs=[half.output[0]], op="Gelu")
    graph_nodes = list(imp.proto.graph.node)
    imp.skip.update(graph_nodes.index(n) for n in chain[1:])


def _alias(imp: _Importer, node: Any) -> None:
    imp.ref[node.output[0]] = imp.data(node, 0)


_HANDLERS: dict[str, Callable[..., None]] = {
    "Conv": _conv, "Relu": _simple(lambda i, n: nn.ReLU()),
    "Sigmoid": _simple(lambda i, n: nn.Sigmoid()), "Tanh": _simple(lambda i, n: nn.Tanh()),
    "LeakyRelu": _simple(lambda i, n: nn.LeakyReLU(float(i.attrs(n).get("alpha", 0.01)))),
    "Softmax": _simple(_softmax), "HardSwish": _simple(lambda i, n: nn_layer("Hardswish")()),
    "HardSigmoid": _simple(_hardsigmoid), "Clip": _simple(_clip), "Gelu": _simple(_gelu),
    "Add": _merge("Add"), "Mul": _merge("Mul"), "Concat": _concat,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global("Avg"), "GlobalMaxPool": _global("Max"),
    "ReduceMean": _reduce_mean, "Flatten": _flatten, "Gemm": _gemm, "MatMul": _matmul,
    "BatchNormalization": _batch_norm, "Reshape": _reshape, "Transpose": _transpose,
    "Split": _split, "Slice": _slice, "Identity": _alias, "Dropout": _alias,
    "Div": _erf_gelu, "Pad": _pad, "Sub": _normalize,
}


def from_onnx(path: str | os.PathLike | Any) -> nn.Module:
    """A convscope ``nn.Graph`` that computes what an ONNX file computes.

    Args:
        path: an ``.onnx`` file (or an ``onnx.ModelProto``) whose operators are in the
            table of the module docstring, float32, with a batch axis first (fixed or
            dynamic) and every other axis fixed. PyTorch's ``torch.onnx.export`` of the
            reference CNNs (ResNet, VGG, AlexNet, SqueezeNet, MobileNetV2/V3, DenseNet,
            ShuffleNetV2) gives such files; export with a dynamic batch axis
            (``dynamic_axes={"input": {0: "batch"}}``) when the forward reshapes.

    Returns:
        An ``nn.Graph`` in evaluation mode with float32 copies of the weights.

    Raises:
        MissingDependencyError: ``onnx`` is not installed.
        ConfigError: an unsupported operator or attribute (named with the node and the
            supported list), a symbolic non-batch axis, a file that cannot be read.

    Example:
        >>> import tempfile, os
        >>> from convscope import nn
        >>> from convscope.export import to_onnx
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten())
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     graph = from_onnx(to_onnx(model, os.path.join(tmp, "m.onnx"), (1, 5, 5)))
        >>> [m.layer_kind for _, m in graph.named_children()]
        ['conv', 'relu', 'flatten']
    """
    onnx = import_onnx("from_onnx")
    if isinstance(path, onnx.ModelProto):
        proto = path
    elif isinstance(path, (str, os.PathLike)):
        try:
            proto = onnx.load(os.fspath(path))
        except (OSError, Exception) as exc:
            raise ConfigError(f"from_onnx: could not read the ONNX file {os.fspath(path)!r} "
                              f"({type(exc).__name__}: {exc}).") from None
    else:
        raise ArgumentTypeError(
            f"from_onnx: path must be a str, os.PathLike or onnx.ModelProto; got "
            f"{type(path).__name__}.")
    graph = _Importer(onnx, proto).run()
    graph.eval()
    return graph
