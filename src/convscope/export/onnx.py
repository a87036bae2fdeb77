"""ONNX export: a convscope model as a graph of standard ONNX operators.

:func:`to_onnx` walks the model and writes one ONNX node (or a short fixed chain of nodes)
per module, with the weights as initializers, so the file runs in ONNX Runtime or any other
ONNX engine. The graph computes what the model computes in evaluation mode (Dropout is the
identity, BatchNorm uses its running statistics); the batch axis is dynamic, every other
axis is fixed by ``input_shape``. The model is read through :func:`convscope.nn.walk` and
the layer protocol (:attr:`convscope.nn.Module.layer_kind`), so a subclass of a convscope
layer exports as the layer it extends.

How each module becomes ONNX (opset 17, or 19 when a circular padding needs ``Pad`` with
``mode="wrap"``):

=====================  ================================================================
convscope              ONNX
=====================  ================================================================
Conv1d/2d/3d, ConvNd   ``Conv`` with explicit ``pads``; ``padding="same"`` is resolved to
                       explicit ``(before, after)`` pads FOR THE GIVEN ``input_shape``
                       (convscope's rule, see :func:`convscope.shapes.same_padding`), so
                       the file is only valid for that spatial size. ``padding_mode``
                       reflect / replicate / circular becomes a ``Pad`` node (mode
                       ``reflect`` / ``edge`` / ``wrap``) before a ``Conv`` without pads.
                       ``flip=True`` (true convolution) exports the reversed filters.
MaxPool*               ``MaxPool`` (dilations, pads). ``ceil_mode`` is written as the
                       explicit extra end padding that gives convscope's (PyTorch's)
                       output size, because ONNX's shape inference and ONNX Runtime do not
                       agree on ceil-mode windows that start in the padding; pads that
                       ONNX Runtime refuses (not smaller than the kernel, possible with
                       dilation) become a ``Pad`` node filled with ``-inf``.
AvgPool*               ``AveragePool`` with ``count_include_pad``; a ceil-mode window
                       that overhangs the padding is exported as a zero ``Pad`` node and
                       ``AveragePool(count_include_pad=0)``, which divides by the cells
                       inside the padded input exactly as PyTorch and convscope do.
BlurPool*              a fixed depthwise ``Conv`` (the binomial filter, ``group=C``)
                       after a ``Pad`` node of the layer's padding mode (or the ``Conv``'s
                       own pads for ``"zeros"``).
ReLU, LeakyReLU,       ``Relu``, ``LeakyRelu(alpha)``, ``Sigmoid``, ``Tanh``,
Sigmoid, Tanh,         ``Softmax(axis)``
Softmax
Flatten                ``Flatten(axis=1)``, or ``Reshape`` for another ``start_dim``
Linear                 ``Gemm(transB=1)`` on 2-D input, else ``MatMul`` + ``Add``
Dropout                ``Identity``
Normalize              ``Sub(x, mean)`` then ``Div(., std)``, per channel: the exported
                       model takes raw pixels, as the convscope model does
BatchNorm1d/2d         ``BatchNormalization`` with the running statistics; without
                       running statistics (``track_running_stats=False``) the batch
                       statistics are computed in the graph (``ReduceMean`` ...)
Sequential, Residual   the chain of their children; Residual adds ``Add(x, block(x))``
=====================  ================================================================

The graph is float32 (ONNX Runtime's CPU kernels for Conv and pooling are float32 only); a
float64 model is exported with its parameters rounded to float32.

``onnx`` (and ``onnxruntime`` to run the file) are optional: install them with
``pip install "convscope[onnx]"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from .. import nn
from ..errors import (
    ArgumentTypeError,
    ConfigError,
    ConvscopeError,
    ShapeError,
    import_optional,
)
from ..files import atomic_write
from ..functional import binomial_filter
from ..nn.layer_types import (
    BatchNormLayer,
    BlurPoolLayer,
    ConvLayer,
    FlattenLayer,
    LeakyReLULayer,
    LinearLayer,
    SoftmaxLayer,
    WindowPoolLayer,
)
from ..shapes import conv_geometry, format_shape, pool_geometry
from .common import no_mapping_error, unique_name

__all__ = ["to_onnx", "DEFAULT_OPSET", "WRAP_OPSET"]

#: The opset written when nothing needs a newer one.
DEFAULT_OPSET = 17
#: ``Pad`` with ``mode="wrap"`` (circular padding) exists from opset 19 on.
WRAP_OPSET = 19

ONNX_EXTRA = 'pip install "convscope[onnx]"'

_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def import_onnx(what: str = "to_onnx") -> Any:
    """The ``onnx`` module, or a :class:`MissingDependencyError` naming the extra."""
    return import_optional("onnx", what, ONNX_EXTRA, ("checker", "helper", "numpy_helper"))


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    rule = ("a tuple of positive ints: the shape of ONE sample without the batch axis, e.g. "
            "(1, 28, 28)")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list)):
        raise ArgumentTypeError(
            f"to_onnx: input_shape must be {rule}; got {input_shape!r} of type "
            f"{type(input_shape).__name__}."
        )
    if len(input_shape) == 0:
        raise ConfigError(f"to_onnx: input_shape must be {rule}; got an empty shape.")
    dims = []
    for v in input_shape:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"to_onnx: input_shape must be {rule}; got {input_shape!r}.")
        dims.append(int(v))
    return tuple(dims)


def _input_shapes(input_shape: Any, inputs: tuple[str, ...]) -> list[tuple[int, ...]]:
    """One checked shape per graph input: ``input_shape`` itself for one input (or a list
    holding one shape), a sequence of len(inputs) shapes, or a dict input name -> shape."""
    if len(inputs) == 1:
        if (isinstance(input_shape, (tuple, list)) and len(input_shape) == 1
                and isinstance(input_shape[0], (tuple, list))):
            input_shape = input_shape[0]
        return [_check_input_shape(input_shape)]
    rule = (f"one shape per graph input ({', '.join(inputs)}), each without the batch axis: a list "
            f"of {len(inputs)} shapes in that order, or a dict input name -> shape")
    if isinstance(input_shape, dict):
        if set(input_shape) != set(inputs):
            raise ConfigError(f"to_onnx: input_shape must give {rule}; the dict has keys "
                              f"{sorted(map(str, input_shape))}.")
        input_shape = [input_shape[name] for name in inputs]
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != len(inputs)
            or not all(isinstance(s, (tuple, list)) for s in input_shape)):
        raise ConfigError(f"to_onnx: input_shape must give {rule}; got {input_shape!r}.")
    return [_check_input_shape(s) for s in input_shape]


def _output_names(count: int, inputs: list[str]) -> list[str]:
    """``["output"]`` for one output, else ``output_0``, ``output_1``, ...; a graph input with
    one of those names is refused (the names would clash)."""
    names = ["output"] if count == 1 else [f"output_{k}" for k in range(count)]
    clash = sorted(set(names) & set(inputs))
    if clash:
        raise ConfigError(f"to_onnx: the graph input name(s) {clash} are the names the ONNX outputs get "
                          f"({', '.join(names)}); rename the graph's inputs.")
    return names


def _name_outputs(graph: _Graph, produced: list[str], names: list[str], inputs: list[str]) -> None:
    """Give the tensors ``produced`` (one per output) their public ``names``: rename the tensor
    where it is made and read, or add an ``Identity`` where it is a graph input or already an
    output under another name."""
    final: dict[str, str] = {}
    helper = graph.onnx.helper
    for tensor, want in zip(produced, names):
        if tensor in inputs or tensor in final:
            graph.nodes.append(helper.make_node("Identity", [final.get(tensor, tensor)], [want],
                                                name=graph.name(f"{want}/Identity")))
        else:
            final[tensor] = want
    for node in graph.nodes:
        for names_list in (node.input, node.output):
            for i, name in enumerate(names_list):
                if name in final:
                    names_list[i] = final[name]


def _needs_wrap(model: nn.Module) -> bool:
    for record in nn.walk(model):
        w = record.window
        if w is not None and w.op in ("conv", "blur") and w.padding_mode == "circular":
            if isinstance(w.padding, str) or any(b or a for b, a in w.padding):  # str: "same"
                return True
    return False


class _Graph:
    """Collects nodes and initializers with unique, readable names."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def name(self, hint: str) -> str:
        return unique_name(hint or "t", self._used)

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.name(hint)
        tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.initializers.append(tensor)
        return name

    def node(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.name(hint)
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, [out], name=self.name(f"{hint}/{op_type}"),
                                       **attrs)
        )
        return out

    def pad(self, x: str, pairs: Any, mode: str, hint: str, value: float | None = None) -> str:
        """A ``Pad`` node over the spatial axes (axes 0 and 1, batch and channels, untouched)."""
        begin, end = [b for b, _ in pairs], [a for _, a in pairs]
        pads = np.array([0, 0] + begin + [0, 0] + end, dtype=np.int64)
        inputs = [x, self.const(f"{hint}.pads", pads)]
        if value is not None:
            inputs.append(self.const(f"{hint}.value", np.array(value, dtype=np.float32)))
        return self.node("Pad", inputs, f"{hint}.padded", mode=mode)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def _label(path: str, module: nn.Module) -> str:
    return path or type(module).__name__.lower()


class _Exporter:
    """Turns modules into nodes; each handler returns ``(output name, output shape)``."""

    def __init__(self, graph: _Graph) -> None:
        self.g = graph
        self.batch_kept = True
        # one handler per layer kind (Module.layer_kind): a subclass exports as its kind
        self.handlers: dict[str, Callable[..., tuple[str, tuple[int, ...]]]] = {
            "conv": self._conv, "max_pool": self._max_pool, "avg_pool": self._avg_pool,
            "blur_pool": self._blur_pool, "batch_norm": self._batch_norm,
            "relu": self._simple("Relu"), "sigmoid": self._simple("Sigmoid"),
            "tanh": self._simple("Tanh"), "leaky_relu": self._leaky_relu,
            "softmax": self._softmax, "flatten": self._flatten, "linear": self._linear,
            "dropout": self._simple("Identity"), "normalize": self._normalize,
            "identity": self._simple("Identity"), "hardswish": self._simple("HardSwish"),
            "hardsigmoid": self._hardsigmoid, "relu6": self._relu6, "silu": self._silu,
            "gelu": self._gelu, "adaptive_avg_pool": self._adaptive, "adaptive_max_pool": self._adaptive,
        }

    def emit(self, model: nn.Module, shape: tuple[int, ...],
             x: str = "input", prefix: str = "") -> tuple[str, tuple[int, ...]]:
        """The nodes of every walked layer, from the tensor ``x`` (default: the graph input)
        of ``shape``; ``prefix`` (``"1."``) goes before every layer's dotted path.

        A Sequential with an ``nn.Graph`` among its children (``Sequential(Normalize, graph)``,
        what ``convscope train`` makes of the graph architectures) is emitted child by child,
        each graph through its own node list."""
        if model.layer_kind == "sequential" and any(c.layer_kind == "graph" for _, c in model.named_children()):
            from .graph_export import emit_graph_onnx

            for child_name, child in model.named_children():
                if child.layer_kind == "graph":
                    ((x, shape),) = emit_graph_onnx(self, child, [shape], [x], prefix=f"{prefix}{child_name}.")
                else:
                    x, shape = self.emit(child, shape, x, prefix=f"{prefix}{child_name}.")
            return x, shape
        out = shape
        received: dict[int, str] = {}           # layer index -> its input tensor
        for record in nn.walk(model, shape):
            if record.error is not None:
                raise record.error
            path = prefix[:-1] if record.name == "(model)" else prefix + record.name
            if record.kind == "residual":       # x + block(x), x being what the block received
                x_in = received[record.block[0].index] if record.block else x
                y = self.g.node("Add", [x_in, x], _label(path, record.module))
                out = record.out_shape if record.out_shape is not None else out  # set: it fits
            else:
                handler = self.handlers.get(record.kind)
                if handler is None:
                    raise no_mapping_error(
                        "to_onnx", "ONNX", path, record.module, self.handlers,
                        ", in Sequential and Residual. Rebuild the model from convscope's layers "
                        "or their subclasses.",
                    )
                y, out = handler(record.module, path, x, record.in_shape)
            received[record.index] = x
            x = y
        return x, out

    # ---------------------------------------------------------------- convolution
    def _conv(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(ConvLayer, m)
        op = type(m).__name__
        w = layer.weight.data
        geo = conv_geometry(shape, w.shape, layer.stride, layer.padding, layer.dilation, layer.groups,
                            layer.padding_mode, op)
        if layer.flip:  # true convolution = cross-correlation with every filter reversed
            w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * layer.ndim]
        label = _label(path, m)
        pairs = geo.p
        if layer.padding_mode != "zeros" and any(b or a for b, a in pairs):
            x = self.g.pad(x, pairs, _PAD_MODES[layer.padding_mode], label)
            pairs = ((0, 0),) * layer.ndim
        inputs = [x, self.g.const(f"{label}.weight", _f32(w))]
        if layer.bias is not None:
            inputs.append(self.g.const(f"{label}.bias", _f32(layer.bias.data)))
        y = self.g.node(
            "Conv", inputs, label, kernel_shape=list(geo.k), strides=list(geo.s),
            dilations=list(geo.d), group=geo.g,
            pads=[b for b, _ in pairs] + [a for _, a in pairs],
        )
        return y, geo.y_shape

    # ---------------------------------------------------------------- pooling
    def _max_pool(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(WindowPoolLayer, m)
        op = type(m).__name__
        geo = pool_geometry(shape, layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode, op)
        label = _label(path, m)
        begin, end = _window_pads(geo)
        if all(b < k and e < k for b, e, k in zip(begin, end, geo.k)):
            pads = begin + end
        else:  # ONNX Runtime wants pads < kernel: pad with -inf, which never wins a max
            x = self.g.pad(x, list(zip(begin, end)), "constant", label, value=-np.inf)
            pads = [0] * (2 * geo.ndim)
        y = self.g.node(
            "MaxPool", [x], label, kernel_shape=list(geo.k), strides=list(geo.s),
            dilations=list(geo.d), pads=pads, ceil_mode=0,
        )
        return y, geo.y_shape

    def _avg_pool(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(WindowPoolLayer, m)
        op = type(m).__name__
        geo = pool_geometry(shape, layer.kernel_size, layer.stride, layer.padding, 1, layer.ceil_mode, op)
        label = _label(path, m)
        begin, end = _window_pads(geo)
        overhang = any(e > a for e, (_, a) in zip(end, geo.p))
        attrs = dict(kernel_shape=list(geo.k), strides=list(geo.s), ceil_mode=0)
        if layer.count_include_pad and overhang:
            # The padding counts in the divisor but the overhang beyond it does not (PyTorch's
            # rule): make the padding real zeros, then let the overhang be uncounted padding.
            x = self.g.pad(x, geo.p, "constant", label)
            extra = [e - a for e, (_, a) in zip(end, geo.p)]
            y = self.g.node("AveragePool", [x], label, pads=[0] * geo.ndim + extra,
                            count_include_pad=0, **attrs)
        else:
            y = self.g.node("AveragePool", [x], label, pads=begin + end,
                            count_include_pad=int(layer.count_include_pad), **attrs)
        return y, geo.y_shape

    def _blur_pool(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(BlurPoolLayer, m)
        out = m.output_shape(shape)  # validates channels and the padding against the size
        label = _label(path, m)
        f = layer.filter_size
        w = np.broadcast_to(binomial_filter(f, layer.ndim), (layer.channels, 1) + (f,) * layer.ndim)
        pairs = layer.padding
        if layer.padding_mode != "zeros" and f > 1:
            x = self.g.pad(x, pairs, _PAD_MODES[layer.padding_mode], label)
            pairs = ((0, 0),) * layer.ndim
        y = self.g.node(
            "Conv", [x, self.g.const(f"{label}.filter", _f32(w))], label,
            kernel_shape=[f] * layer.ndim, strides=list(layer.stride), group=layer.channels,
            pads=[b for b, _ in pairs] + [a for _, a in pairs],
        )
        return y, out

    # ---------------------------------------------------------------- element-wise and reshapes
    def _simple(self, op_type: str):
        def handler(m: nn.Module, path: str, x: str, shape):
            return self.g.node(op_type, [x], _label(path, m)), m.output_shape(shape)
        return handler

    def _hardsigmoid(self, m: nn.Module, path: str, x: str, shape):
        return self.g.node("HardSigmoid", [x], _label(path, m), alpha=1.0 / 6.0, beta=0.5), shape

    def _relu6(self, m: nn.Module, path: str, x: str, shape):
        low = self.g.const(f"{path}.min", np.array(0.0, np.float32))
        high = self.g.const(f"{path}.max", np.array(6.0, np.float32))
        return self.g.node("Clip", [x, low, high], _label(path, m)), shape

    def _silu(self, m: nn.Module, path: str, x: str, shape):
        gate = self.g.node("Sigmoid", [x], f"{path}.sigmoid")
        return self.g.node("Mul", [x, gate], _label(path, m)), shape

    def _gelu(self, m: nn.Module, path: str, x: str, shape):
        approximate = getattr(m, "approximate", "none")
        if self.g.opset >= 20:
            return self.g.node("Gelu", [x], _label(path, m), approximate=approximate), shape
        if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = self.g.node("Mul", [x, self.g.node("Mul", [x, x], f"{path}.sq")], f"{path}.cube")
            inner = self.g.node("Add", [x, self.g.node("Mul", [cube, self.g.const(
                f"{path}.c", np.array(0.044715, np.float32))], f"{path}.cc")], f"{path}.inner")
            arg = self.g.node("Mul", [inner, self.g.const(f"{path}.k", np.array(np.sqrt(2 / np.pi), np.float32))],
                              f"{path}.arg")
            phi = self.g.node("Tanh", [arg], f"{path}.tanh")
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            scaled = self.g.node("Mul", [x, self.g.const(f"{path}.k", np.array(1 / np.sqrt(2), np.float32))],
                                 f"{path}.scaled")
            phi = self.g.node("Erf", [scaled], f"{path}.erf")
        one = self.g.node("Add", [phi, self.g.const(f"{path}.one", np.array(1.0, np.float32))], f"{path}.plus1")
        half = self.g.node("Mul", [x, self.g.const(f"{path}.half", np.array(0.5, np.float32))], f"{path}.halfx")
        return self.g.node("Mul", [half, one], _label(path, m)), shape

    def _adaptive(self, m: nn.Module, path: str, x: str, shape):
        out = m.output_shape(shape)
        kind = "Average" if m.layer_kind == "adaptive_avg_pool" else "Max"
        if all(v == 1 for v in out[2:]):
            return self.g.node(f"Global{kind}Pool", [x], _label(path, m)), out
        n = shape[2:]
        if any(a % b for a, b in zip(n, out[2:])):
            raise ConfigError(
                f"to_onnx: layer {path!r} ({type(m).__name__}) pools {tuple(n)} to {tuple(out[2:])}; ONNX has "
                f"adaptive pooling only as global pooling or where the output size divides the input size "
                f"(then it is an ordinary pool). Choose such an input size.")
        k = [a // b for a, b in zip(n, out[2:])]
        return self.g.node(f"{kind}Pool", [x], _label(path, m), kernel_shape=k, strides=k), out

    def _leaky_relu(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(LeakyReLULayer, m)
        return self.g.node("LeakyRelu", [x], _label(path, m), alpha=layer.negative_slope), shape

    def _softmax(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(SoftmaxLayer, m)
        if not -len(shape) <= layer.dim < len(shape):
            raise ShapeError(
                f"to_onnx: Softmax at {path!r} has dim={layer.dim} but its input has shape "
                f"{format_shape(shape)} with {len(shape)} axes."
            )
        return self.g.node("Softmax", [x], _label(path, m), axis=layer.dim), shape

    def _flatten(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(FlattenLayer, m)
        out = m.output_shape(shape)
        start = layer.start_dim % len(shape)
        label = _label(path, m)
        if start == 0:
            self.batch_kept = False
        if start == 1:
            return self.g.node("Flatten", [x], label, axis=1), out
        # Flatten(axis) would merge the leading axes too; keep them (0 = copy that axis)
        target = np.array([0] * start + [-1], dtype=np.int64)
        return self.g.node("Reshape", [x, self.g.const(f"{label}.shape", target)], label), out

    def _linear(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(LinearLayer, m)
        out = m.output_shape(shape)
        label = _label(path, m)
        w = _f32(layer.weight.data)
        if len(shape) == 2:
            inputs = [x, self.g.const(f"{label}.weight", w)]
            if layer.bias is not None:
                inputs.append(self.g.const(f"{label}.bias", _f32(layer.bias.data)))
            return self.g.node("Gemm", inputs, label, transB=1), out
        y = self.g.node("MatMul", [x, self.g.const(f"{label}.weight_t", w.T)], f"{label}.matmul")
        if layer.bias is not None:
            y = self.g.node("Add", [y, self.g.const(f"{label}.bias", _f32(layer.bias.data))], label)
        return y, out

    def _batch_norm(self, m: nn.Module, path: str, x: str, shape):
        layer = cast(BatchNormLayer, m)
        out = m.output_shape(shape)
        label = _label(path, m)
        c = layer.num_features
        # weight and bias exist exactly when affine, the statistics when tracked
        gamma = _f32(layer.weight.data) if layer.weight is not None else np.ones(c, np.float32)
        beta = _f32(layer.bias.data) if layer.bias is not None else np.zeros(c, np.float32)
        if layer.running_mean is not None and layer.running_var is not None:
            inputs = [x] + [
                self.g.const(f"{label}.{name}", value)
                for name, value in (("weight", gamma), ("bias", beta),
                                    ("running_mean", _f32(layer.running_mean)),
                                    ("running_var", _f32(layer.running_var)))
            ]
            return self.g.node("BatchNormalization", inputs, label, epsilon=layer.eps), out
        # No running statistics: the layer normalises with the batch's own mean and
        # (biased) variance in every mode, so the graph computes them.
        axes = [0] + list(range(2, len(shape)))
        per_channel = (c,) + (1,) * (len(shape) - 2)
        mean = self._reduce_mean(x, axes, f"{label}.mean")
        centred = self.g.node("Sub", [x, mean], f"{label}.centred")
        square = self.g.node("Mul", [centred, centred], f"{label}.square")
        var = self._reduce_mean(square, axes, f"{label}.var")
        eps = self.g.const(f"{label}.eps", np.array(layer.eps, dtype=np.float32))
        var_eps = self.g.node("Add", [var, eps], f"{label}.var_eps")
        std = self.g.node("Sqrt", [var_eps], f"{label}.std")
        xhat = self.g.node("Div", [centred, std], f"{label}.xhat")
        gamma_name = self.g.const(f"{label}.weight", gamma.reshape(per_channel))
        beta_name = self.g.const(f"{label}.bias", beta.reshape(per_channel))
        scaled = self.g.node("Mul", [xhat, gamma_name], f"{label}.scaled")
        y = self.g.node("Add", [scaled, beta_name], label)
        return y, out

    def _normalize(self, m: nn.Module, path: str, x: str, shape):
        out = m.output_shape(shape)  # validates the channels
        label = _label(path, m)
        per_channel = (1, -1) + (1,) * (len(shape) - 2)
        norm = cast(nn.Normalize, m)  # dispatched on layer_kind == "normalize"
        mean = self.g.const(f"{label}.mean", _f32(norm.mean).reshape(per_channel))
        std = self.g.const(f"{label}.std", _f32(norm.std).reshape(per_channel))
        centred = self.g.node("Sub", [x, mean], f"{label}.centred")
        return self.g.node("Div", [centred, std], label), out

    def _reduce_mean(self, x: str, axes: list[int], hint: str) -> str:
        if self.g.opset >= 18:  # the axes moved from an attribute to an input in opset 18
            axes_name = self.g.const(f"{hint}.axes", np.array(axes, dtype=np.int64))
            return self.g.node("ReduceMean", [x, axes_name], hint, keepdims=1)
        return self.g.node("ReduceMean", [x], hint, axes=axes, keepdims=1)


def _window_pads(geo: Any) -> tuple[list[int], list[int]]:
    """Begin pads and the end pads that give convscope's output size in floor mode.

    In ceil mode the last window may run past the end padding; padding the end further
    (with cells a max ignores or an average does not count) makes floor mode produce the
    same windows, so no runtime's reading of ``ceil_mode`` matters.
    """
    begin = [b for b, _ in geo.p]
    end = []
    for n, k, s, d, (b, a), out in zip(geo.n, geo.k, geo.s, geo.d, geo.p, geo.out):
        needed = (out - 1) * s + d * (k - 1) + 1 - n - b
        end.append(max(a, needed))
    return begin, end


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Any,
    *,
    opset: int | None = None,
    check: bool = True,
) -> Path:
    """Write ``model`` as an ONNX file that computes its evaluation-mode forward.

    Args:
        model: a convscope module (usually a ``Sequential``) built from the layers of
            :mod:`convscope.nn`; see the module docstring for the mapping of each one.
        path: the ``.onnx`` file to write (replaced atomically: a reader never sees half
            a file).
        input_shape: the shape of ONE sample without the batch axis, e.g. ``(1, 28, 28)``.
            The batch axis of the graph is dynamic (named ``"batch"``); the other axes are
            fixed, because ``padding="same"`` and pooling windows are resolved for them.
            For an ``nn.Graph`` with several inputs: one such shape per input, a list in
            the order of ``model.inputs`` or a dict input name -> shape (every input
            shares the one ``"batch"`` axis).

    Names in the file: one input is ``"input"`` and one output ``"output"``, whatever the
    graph calls them. A graph with several inputs gives ONNX inputs named as the graph's
    inputs (``model.inputs``), in that order; several outputs give ``"output_0"``,
    ``"output_1"``, ... in the order of ``model.outputs`` (an output that is a graph
    input, or the same tensor as an earlier output, is written through an ``Identity``).
    :func:`~convscope.export.from_onnx` reads such a file back into a graph with the same
    input names and outputs in the same order.
        opset: ONNX opset to write; default 17, or 19 when a circular padding needs
            ``Pad(mode="wrap")``.
        check: run ``onnx.checker.check_model`` with full shape inference on the result
            (default True).

    Returns:
        The path written.

    Raises:
        MissingDependencyError: ``onnx`` is not installed.
        ConfigError: a module type without an ONNX mapping (named with its position),
            an opset below what the model needs, a bad ``input_shape`` (not one shape
            per graph input), a graph input named like an ONNX output (``output_0`` ...).
        ShapeError: ``input_shape`` does not fit the model (the model's own message).

    Example:
        >>> import tempfile, os, onnx
        >>> from convscope import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same", rng=0), nn.ReLU(),
        ...                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=1))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = to_onnx(model, os.path.join(tmp, "model.onnx"), (1, 8, 8))
        ...     proto = onnx.load(file)
        >>> [node.op_type for node in proto.graph.node]
        ['Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm']
        >>> [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        ['batch', 1, 8, 8]
    """
    onnx = import_onnx()
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"to_onnx: model must be a convscope Module (e.g. nn.Sequential(...)); got "
            f"{type(model).__name__}."
        )
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"to_onnx: path must be a str or os.PathLike; got {type(path).__name__}."
        )
    graph_inputs: tuple[str, ...] = tuple(model.inputs) if model.layer_kind == "graph" else ("input",)  # type: ignore[attr-defined]
    all_dims = _input_shapes(input_shape, graph_inputs)
    needed = WRAP_OPSET if _needs_wrap(model) else DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = needed
    elif isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer)):
        raise ArgumentTypeError(f"to_onnx: opset must be an int; got {opset!r}.")
    elif not needed <= opset <= newest:
        why = (" (Pad with mode='wrap' for circular padding needs opset 19)"
               if needed == WRAP_OPSET else "")
        raise ConfigError(
            f"to_onnx: opset must be between {needed} and {newest} for this model{why} with the "
            f"installed onnx {onnx.__version__}; got {opset}."
        )
    shapes = [(1, *dims) for dims in all_dims]
    try:
        model.output_shape(*shapes)
    except ShapeError as exc:
        given = ", ".join(format_shape(d) for d in all_dims)
        raise ShapeError(
            f"to_onnx: the model does not accept samples of input_shape {given} "
            f"(input_shape excludes the batch axis): {exc}"
        ) from None

    graph = _Graph(onnx, int(opset))
    in_names = ["input"] if len(graph_inputs) == 1 else list(graph_inputs)
    for name in in_names:
        graph.name(name)
    exporter = _Exporter(graph)
    if model.layer_kind == "graph":
        from .graph_export import emit_graph_onnx

        results = emit_graph_onnx(exporter, model, shapes, in_names)
    else:
        results = [exporter.emit(model, shapes[0])]
    out_names = _output_names(len(results), in_names)
    for name in out_names:
        graph.name(name)
    _name_outputs(graph, [y for y, _ in results], out_names, in_names)
    helper = onnx.helper
    # Flatten(start_dim=0) merges the batch axis into the features: its size is then unknown
    first = ["batch"] * len(results) if exporter.batch_kept else (
        ["flat"] if len(results) == 1 else [f"flat_{k}" for k in range(len(results))])
    proto = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "convscope",
            [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", *dims])
             for name, dims in zip(in_names, all_dims)],
            [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [d0, *out[1:]])
             for name, d0, (_, out) in zip(out_names, first, results)],
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", int(opset))],
        producer_name="convscope",
        doc_string=f"convscope model exported in evaluation mode:\n{model!r}",
    )
    proto.ir_version = min(proto.ir_version, _max_ir_version(onnx, int(opset)))
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:  # a bug here, not the user's input
            raise ConvscopeError(
                f"to_onnx: the exported graph failed onnx's checker: {exc}"
            ) from exc
    return _write_atomically(proto.SerializeToString(), Path(path))


def _max_ir_version(onnx: Any, opset: int) -> int:
    """The IR version that goes with ``opset`` (older runtimes refuse newer IR versions)."""
    for entry in onnx.helper.VERSION_TABLE:
        # rows: (release, ir_version, ai.onnx opset, ai.onnx.ml opset, ...)
        if entry[2] == opset:
            return int(entry[1])
    return onnx.IR_VERSION


def _write_atomically(data: bytes, path: Path, op: str = "to_onnx") -> Path:
    """Write ``data`` to ``path`` with the one atomic writer (:func:`convscope.files.atomic_write`)."""
    return atomic_write(path.expanduser(), lambda f: f.write(data), op=op)
