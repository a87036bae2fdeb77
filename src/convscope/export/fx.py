"""Import any traceable PyTorch CNN: torch.fx's graph, node by node, as a convscope ``nn.Graph``.

:func:`from_torch` uses this when a module is not a ``Sequential`` of supported layers
(a ResNet, a MobileNet, a DenseNet ...). ``torch.fx.symbolic_trace`` records the module's
``forward`` as a list of nodes; each becomes one node of a :class:`convscope.nn.Graph`:

* ``call_module`` of a supported layer (the layers :func:`from_torch` converts in a
  ``Sequential``) -> that layer with copies of its weights, named by the torch qualified
  name (``"layer1.0.conv1"``), so the graph's ``state_dict`` keys are torch's. A
  parameterless module called twice (torchvision's ``BasicBlock`` calls ``self.relu``
  twice) becomes two nodes (``"layer1.0.relu"``, ``"layer1.0.relu_1"``); a module with
  parameters or buffers called twice is refused (each convscope node owns its module).
* ``+`` / ``torch.add`` -> ``Add``, ``*`` / ``torch.mul`` of two tensors -> ``Mul``,
  ``torch.cat`` -> ``Concat``, ``torch.flatten`` / ``x.flatten`` -> ``Flatten``,
  ``x.chunk`` / ``torch.split`` (and ``[k]`` of the result) -> ``Split``,
  ``x.view`` / ``x.reshape`` -> ``Reshape`` (batch axis kept), ``transpose`` / ``permute``
  -> ``Permute``, ``contiguous`` -> nothing; the pattern ``view(b, g, c // g, h, w)`` ->
  ``transpose(1, 2)`` -> ``view(b, c, h, w)`` -> ``ChannelShuffle(g)``.
* ``F.relu`` / ``relu6`` / ``hardswish`` / ``hardsigmoid`` / ``silu`` / ``gelu`` /
  ``sigmoid`` / ``tanh`` / ``leaky_relu`` / ``softmax``, ``F.dropout``, ``F.max_pool*d`` /
  ``avg_pool*d``, ``F.adaptive_avg_pool*d`` / ``adaptive_max_pool*d``, ``mean`` over all
  spatial axes -> the layer of the same name.
* ``x.size()``, ``x.shape``, ``[k]`` and arithmetic on sizes -> constants, computed by
  running the module (in eval mode, without gradients, its state untouched) on an input
  of ``input_shape`` at two batch sizes: a size that changes with the batch is the batch
  axis. Ops that need sizes (``size()``, ``chunk``, ``transpose``, ``mean``) need
  ``input_shape`` or ``example_input``.

Anything else is refused with a :class:`~convscope.errors.ConfigError` naming the
operation, the fx node and the supported operations: nothing is approximated.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from .. import nn
from ..errors import ArgumentTypeError, ConfigError, ShapeError
from .common import unique_name

__all__ = ["graph_from_torch", "sequential_convertible"]

_SHAPE_METHODS = {"size", "dim"}
_ARITH = {operator.floordiv, operator.mul, operator.add, operator.sub, operator.truediv,
          operator.getitem, getattr, operator.neg}


class _Needs(Exception):
    """Raised inside the translation when a node needs concrete sizes."""


def sequential_convertible(converter: Any, module: Any) -> bool:
    """Whether ``module`` is for the Sequential path: a tree of Sequentials and PyTorch's or
    convscope's layers, no class with a forward of its own (that one is traced)."""
    known = set(converter.table) | set(converter.pad_types) | {converter.L.SamePad}
    return all(type(m) in known or type(m).__module__.startswith("torch.nn.")
               for m in module.modules())


def _shape_of(value: Any) -> Any:
    """What the translation keeps of a value seen while running the module."""
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(int(v) for v in value.shape))
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor)
                                                           for v in value):
        return ("tensors", [tuple(int(d) for d in v.shape) for v in value])
    if isinstance(value, torch.Size):
        return ("const", tuple(int(v) for v in value))
    return ("const", value)


class _Translator:
    def __init__(self, converter: Any, module: Any, input_shape: Any, example_input: Any) -> None:
        self.C = converter
        self.torch = converter.torch
        self.module = module
        torch = self.torch
        tn = torch.nn
        known = set(converter.table) | set(converter.pad_types) | {converter.L.SamePad}
        leaf_types = known - {tn.Sequential, converter.L.Residual}

        tracer_base: Any = torch.fx.Tracer  # torch is imported at run time (optional)

        class Tracer(tracer_base):
            def is_leaf_module(self, m: Any, qualname: str) -> bool:
                if type(m) in leaf_types:
                    return True
                return bool(super().is_leaf_module(m, qualname))

        tracer = Tracer()
        try:
            self.fx_graph = tracer.trace(module)
        except Exception as exc:  # torch.fx's own errors (control flow on tensors ...)
            raise ConfigError(
                f"from_torch: torch.fx could not trace {type(module).__name__}.forward "
                f"({type(exc).__name__}: {exc}). Only modules whose forward torch.fx can "
                f"trace (no Python control flow on tensor values) can be imported."
            ) from None
        self.gm = torch.fx.GraphModule(module, self.fx_graph)
        self.values: dict[Any, Any] = {}
        self.batch_dep: dict[Any, Any] = {}
        if example_input is not None or input_shape is not None:
            self._propagate(input_shape, example_input)
        self.nodes: list[Any] = []
        self.names: set[str] = set()
        self.ref: dict[Any, Any] = {}
        self.calls: dict[int, list[str]] = {}

    # ---------------------------------------------------------------- running the module
    def _propagate(self, input_shape: Any, example_input: Any) -> None:
        torch = self.torch
        placeholders = [n for n in self.fx_graph.nodes if n.op == "placeholder"]
        if example_input is not None:
            xs = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
            if not all(isinstance(x, torch.Tensor) for x in xs):
                raise ArgumentTypeError(
                    f"from_torch: example_input must be a torch.Tensor (or a tuple of them, one "
                    f"per input); got {type(example_input).__name__}.")
            first = tuple(x.detach() for x in xs)
        else:
            shapes = input_shape if (input_shape and isinstance(input_shape[0], (tuple, list))) \
                else (input_shape,)
            for s in shapes:
                if not isinstance(s, (tuple, list)) or not all(
                        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                        for v in s):
                    raise ConfigError(
                        f"from_torch: input_shape must be the shape of ONE sample without the "
                        f"batch axis, positive ints, e.g. (3, 224, 224); got {input_shape!r}.")
            dtype = next((p.dtype for p in self.module.parameters()), torch.float32)
            g = torch.Generator().manual_seed(0)
            first = tuple(torch.randn((2, *s), generator=g, dtype=dtype) for s in shapes)
        if len(first) != len(placeholders):
            raise ConfigError(
                f"from_torch: the module's forward takes {len(placeholders)} inputs; got "
                f"{len(first)} example inputs.")
        second = tuple(torch.cat([x, x[:1]]) for x in first)
        runs = [self._run(first), self._run(second)]
        for node, a in runs[0].items():
            b = runs[1][node]
            self.values[node] = a
            if a[0] == "const" and isinstance(a[1], tuple):
                self.batch_dep[node] = tuple(x != y for x, y in zip(a[1], b[1]))
            elif a[0] == "const":
                self.batch_dep[node] = a[1] != b[1]

    def _run(self, inputs: tuple[Any, ...]) -> dict[Any, Any]:
        torch = self.torch
        record: dict[Any, Any] = {}

        interpreter: Any = torch.fx.Interpreter

        class Recorder(interpreter):
            def run_node(self, n: Any) -> Any:
                result = super().run_node(n)
                record[n] = _shape_of(result)
                return result

        modes = {m: m.training for m in self.gm.modules()}
        try:
            self.gm.eval()
            with torch.no_grad():
                Recorder(self.gm).run(*inputs)
        except Exception as exc:
            raise ShapeError(
                f"from_torch: running the module on inputs of shape "
                f"{[tuple(x.shape) for x in inputs]} failed ({type(exc).__name__}: {exc}); "
                f"check input_shape (one sample, no batch axis)."
            ) from None
        finally:
            for m, mode in modes.items():
                m.training = mode
        return record

    # ---------------------------------------------------------------- helpers
    def unsupported(self, node: Any, op: str, why: str = "") -> ConfigError:
        return ConfigError(
            f"from_torch: the operation {op} at torch.fx node {node.name!r} is not supported"
            f"{why}. Supported operations: {', '.join(_SUPPORTED)}; and call_module of the "
            f"layers {self.C.supported()}. Nothing is approximated: rewrite that part of the "
            f"forward with supported operations."
        )

    def needs(self, node: Any, op: str) -> ConfigError:
        return ConfigError(
            f"from_torch: torch.fx node {node.name!r} ({op}) needs the sizes of its input; "
            f"pass input_shape=(C, H, W) (one sample, without the batch axis) or "
            f"example_input=<a tensor> so the module is run once to find them."
        )

    def shape(self, node: Any, op: str) -> tuple[int, ...]:
        value = self.values.get(node)
        if value is None or value[0] != "tensor":
            raise self.needs(node, op)
        return tuple(value[1])

    def const(self, arg: Any, user: Any, op: str) -> Any:
        """The Python value of ``arg`` (a literal, or a node computed from sizes)."""
        torch = self.torch
        if isinstance(arg, torch.fx.Node):
            value = self.values.get(arg)
            if value is None:
                if self.is_shape_node(arg):
                    raise self.needs(user, op)
                raise self.unsupported(user, op, f": argument {arg.name!r} must be a constant")
            if value[0] != "const":
                raise self.unsupported(user, op, f": argument {arg.name!r} must be a constant, "
                                                 f"not a tensor")
            return value[1]
        if isinstance(arg, (tuple, list)):
            return type(arg)(self.const(a, user, op) for a in arg)
        return arg

    def is_shape_node(self, node: Any) -> bool:
        if node.op == "call_method" and node.target in _SHAPE_METHODS:
            return True
        if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            return True
        return node.op == "call_function" and node.target in _ARITH and any(
            isinstance(a, self.torch.fx.Node) and self.is_shape_node(a) for a in node.args)

    def tensor(self, arg: Any, user: Any, op: str) -> str:
        """The graph reference of a tensor argument."""
        ref = self.ref.get(arg) if isinstance(arg, self.torch.fx.Node) else None
        if not isinstance(ref, str):
            raise self.unsupported(user, op, f": argument {arg!r} is not a tensor the graph "
                                             f"computes (a constant or a parameter)")
        return ref

    def emit(self, name: str, module: nn.Module, inputs: Sequence[str]) -> str:
        name = unique_name(name, self.names)
        self.nodes.append(nn.Node(name, module, tuple(inputs)))
        return name

    def rank(self, node: Any, op: str) -> int:
        return len(self.shape(node, op))

    # ---------------------------------------------------------------- translation
    def translate(self) -> nn.Module:
        torch = self.torch
        inputs: list[str] = []
        outputs: Any = None
        placeholders = [n for n in self.fx_graph.nodes if n.op == "placeholder"]
        for node in self.fx_graph.nodes:
            if node in self.ref:
                continue
            if node.op == "placeholder":
                name = "input" if len(placeholders) == 1 else node.name
                self.names.add(name)
                inputs.append(name)
                self.ref[node] = name
            elif node.op == "output":
                outputs = self._outputs(node.args[0], node)
            elif node.op == "get_attr":
                raise self.unsupported(
                    node, f"get_attr {node.target!r}",
                    ": a parameter or buffer used outside a layer (convscope keeps weights "
                    "inside layers)")
            elif node.op == "call_module":
                self.ref[node] = self._module(node)
            else:
                value = self.values.get(node)
                if value is not None and value[0] == "const":
                    self.ref[node] = None  # a size: folded into the nodes that use it
                    continue
                if self.is_shape_node(node) and not self.values:
                    self.ref[node] = _Needs  # raise only if a node really uses it
                    continue
                self.ref[node] = self._call(node)
        graph = nn.Graph(self.nodes, inputs=tuple(inputs), outputs=outputs)
        graph.train(bool(self.module.training))
        del torch
        return graph

    def _outputs(self, out: Any, node: Any) -> Any:
        if isinstance(out, (tuple, list)):
            return tuple(self.tensor(o, node, "output") for o in out)
        return self.tensor(out, node, "output")

    def _module(self, node: Any) -> str:
        torch = self.torch
        target = str(node.target)
        layer = self.gm.get_submodule(target)
        calls = self.calls.setdefault(id(layer), [])
        if calls and len(layer.state_dict()) > 0:
            raise ConfigError(
                f"from_torch: the module {target!r} ({type(layer).__name__}) is called more than "
                f"once (torch.fx nodes {calls[0]!r} and {node.name!r}) and has parameters or "
                f"buffers; a convscope graph gives each node its own module, so shared weights "
                f"cannot be imported. Use one module per call.")
        calls.append(node.name)
        if type(layer) in self.C.pad_types or type(layer) is self.C.L.SamePad:
            users = list(node.users)
            convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
            if len(users) == 1 and users[0].op == "call_module" and isinstance(
                    self.gm.get_submodule(str(users[0].target)), convs):
                return f"pad:{target}"  # fused into the conv that reads it
            raise self.unsupported(
                node, f"call_module {type(layer).__name__}",
                ": a padding layer is supported only when a Conv layer alone reads it")
        if type(layer) not in self.C.table:
            raise self.unsupported(node, f"call_module {type(layer).__name__}",
                                   f" (the layer {target!r})")
        if len(node.args) != 1 or node.kwargs:
            raise self.unsupported(node, f"call_module {type(layer).__name__}",
                                   ": a layer takes exactly one tensor")
        arg = node.args[0]
        ref = self.ref.get(arg)
        if isinstance(ref, str) and ref.startswith("pad:"):
            pad_target = ref[4:]
            pad = self.gm.get_submodule(pad_target)
            converted = self.C._conv(layer, target, pad=pad, pad_path=pad_target)
            return self.emit(target, converted, [self.tensor(arg.args[0], node, "pad")])
        converted = self.C.convert(layer, target)
        return self.emit(target, converted, [self.tensor(arg, node, "call_module")])

    def _call(self, node: Any) -> Any:
        handler: Callable[..., Any] | None
        if node.op == "call_function":
            handler = _FUNCTIONS.get(node.target) or _BY_NAME.get(
                getattr(node.target, "__name__", ""))
            op = f"call_function {getattr(node.target, '__module__', '') or ''}." \
                 f"{getattr(node.target, '__name__', node.target)}"
            op = op.replace("torch._C._VariableFunctions", "torch").replace("_operator", "operator")
        else:
            handler = _METHODS.get(node.target)
            op = f"call_method Tensor.{node.target}"
        if handler is None:
            raise self.unsupported(node, op)
        try:
            return handler(self, node, op)
        except _Needs:
            raise self.needs(node, op) from None

    # ---------------------------------------------------------------- argument binding
    def bind(self, node: Any, op: str, names: Sequence[str], **defaults: Any) -> dict[str, Any]:
        """The call's arguments by name (``names`` in positional order)."""
        args = dict(zip(names, node.args))
        if len(node.args) > len(names):
            raise self.unsupported(node, op, f": {len(node.args)} positional arguments")
        for key, value in node.kwargs.items():
            if key not in names:
                raise self.unsupported(node, op, f": argument {key}=")
            args[key] = value
        for key, value in defaults.items():
            args.setdefault(key, value)
        missing = [n for n in names if n not in args]
        if missing:
            raise self.unsupported(node, op, f": missing argument {missing[0]}")
        return args


# -------------------------------------------------------------------------- op handlers
def nn_layer(name: str) -> Callable[..., nn.Module]:
    """The convscope layer class ``name``, looked up when an import needs it."""
    cls = getattr(nn, name, None)
    if cls is None:  # pragma: no cover - every name below is a convscope layer
        raise ConfigError(f"from_torch: convscope.nn has no layer {name}.")
    return cast(Callable[..., nn.Module], cls)


def _binary(kind: str) -> Callable[..., Any]:
    def handler(t: _Translator, node: Any, op: str) -> Any:
        a = t.bind(node, op, ["input", "other", "alpha"], alpha=1)
        if a["alpha"] != 1:
            raise t.unsupported(node, op, f" with alpha={a['alpha']}")
        torch = t.torch
        for key in ("input", "other"):
            if not isinstance(a[key], torch.fx.Node) or not isinstance(t.ref.get(a[key]), str):
                raise t.unsupported(node, op, f": {key} is a constant ({a[key]!r}); convscope "
                                              f"merges two tensors the graph computes")
        module = nn.Add() if kind == "add" else nn.Mul()
        return t.emit(node.name, module, [t.tensor(a["input"], node, op),
                                          t.tensor(a["other"], node, op)])
    return handler


def _dim(t: _Translator, node: Any, x: Any, dim: int, op: str) -> int:
    if dim < 0:
        dim += t.rank(x, op)
    if dim == 0:
        raise t.unsupported(node, op, ": along the batch axis (dim 0)")
    return dim


def _cat(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["tensors", "dim"], dim=0)
    xs = list(a["tensors"])
    dim = _dim(t, node, xs[0], int(t.const(a["dim"], node, op)), op)
    refs = [t.tensor(x, node, op) for x in xs]
    if len(refs) == 1:
        return refs[0]
    return t.emit(node.name, nn.Concat(dim=dim), refs)


def _flatten(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "start_dim", "end_dim"], start_dim=0, end_dim=-1)
    end = int(t.const(a["end_dim"], node, op))
    if end != -1 and (not t.values or end != t.rank(a["input"], op) - 1):
        raise t.unsupported(node, op, f" with end_dim={end} (only the last axis)")
    start = int(t.const(a["start_dim"], node, op))
    return t.emit(node.name, nn.Flatten(start), [t.tensor(a["input"], node, op)])


def _activation(layer: str, names: Sequence[str] = ("input", "inplace"),
                **fixed: Any) -> Callable[..., Any]:
    """F.<act>(input, ..., inplace) -> nn.<layer>(**the named arguments kept)."""
    def handler(t: _Translator, node: Any, op: str) -> str:
        a = t.bind(node, op, list(names), inplace=False, **fixed)
        kwargs = {k: t.const(v, node, op) for k, v in a.items() if k not in ("input", "inplace")}
        return t.emit(node.name, nn_layer(layer)(**kwargs), [t.tensor(a["input"], node, op)])
    return handler


def _leaky_relu(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "negative_slope", "inplace"], negative_slope=0.01,
               inplace=False)
    return t.emit(node.name, nn.LeakyReLU(float(t.const(a["negative_slope"], node, op))),
                  [t.tensor(a["input"], node, op)])


def _softmax(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "dim", "_stacklevel", "dtype"], dim=None, _stacklevel=3,
               dtype=None)
    if a["dim"] is None or a["dtype"] is not None:
        raise t.unsupported(node, op, " without dim (or with dtype)")
    return t.emit(node.name, nn.Softmax(int(t.const(a["dim"], node, op))),
                  [t.tensor(a["input"], node, op)])


def _dropout(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "p", "training", "inplace"], p=0.5, training=True,
               inplace=False)
    return t.emit(node.name, nn.Dropout(float(t.const(a["p"], node, op))),
                  [t.tensor(a["input"], node, op)])


def _adaptive(kind: str, nd: int) -> Callable[..., Any]:
    def handler(t: _Translator, node: Any, op: str) -> str:
        names = ["input", "output_size"] + (["return_indices"] if kind == "Max" else [])
        a = t.bind(node, op, names, return_indices=False)
        if a.get("return_indices"):
            raise t.unsupported(node, op, " with return_indices=True")
        layer = nn_layer(f"Adaptive{kind}Pool{nd}d")(t.const(a["output_size"], node, op))
        return t.emit(node.name, layer, [t.tensor(a["input"], node, op)])
    return handler


def _pool(kind: str, nd: int) -> Callable[..., Any]:
    def handler(t: _Translator, node: Any, op: str) -> str:
        if kind == "max":
            a = t.bind(node, op, ["input", "kernel_size", "stride", "padding", "dilation",
                                  "ceil_mode", "return_indices"], stride=None, padding=0,
                       dilation=1, ceil_mode=False, return_indices=False)
            if a["return_indices"]:
                raise t.unsupported(node, op, " with return_indices=True")
        else:
            a = t.bind(node, op, ["input", "kernel_size", "stride", "padding", "ceil_mode",
                                  "count_include_pad", "divisor_override"], stride=None,
                       padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)
            if a["divisor_override"] is not None:
                raise t.unsupported(node, op, " with divisor_override")
        v = {k: t.const(val, node, op) for k, val in a.items() if k != "input"}

        def tup(value: Any) -> tuple[int, ...]:
            return tuple(int(x) for x in value) if isinstance(value, (tuple, list)) \
                else (int(value),) * nd

        k = tup(v["kernel_size"])
        s = tup(v["stride"]) if v["stride"] not in (None, [], ()) else k
        if kind == "max":
            layer = nn_layer(f"MaxPool{nd}d")(k, s, tup(v["padding"]), tup(v["dilation"]),
                                            bool(v["ceil_mode"]))
        else:
            layer = nn_layer(f"AvgPool{nd}d")(k, s, tup(v["padding"]), bool(v["ceil_mode"]),
                                            bool(v["count_include_pad"]))
        return t.emit(node.name, layer, [t.tensor(a["input"], node, op)])
    return handler


def _mean(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "dim", "keepdim", "dtype"], dim=None, keepdim=False,
               dtype=None)
    x = a["input"]
    rank = t.rank(x, op)
    dims = t.const(a["dim"], node, op)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    dims = sorted(d % rank for d in dims)
    if dims != list(range(2, rank)) or a["dtype"] is not None:
        raise t.unsupported(node, op, f" over axes {dims} of a {rank}-axis tensor (only the "
                                      f"mean over all spatial axes, global average pooling)")
    pool = nn_layer(f"AdaptiveAvgPool{rank - 2}d")(1)
    keep = bool(t.const(a["keepdim"], node, op))
    ref = t.emit(node.name if keep else f"{node.name}_pool", pool, [t.tensor(x, node, op)])
    return ref if keep else t.emit(node.name, nn.Flatten(1), [ref])


def _alias(t: _Translator, node: Any, op: str) -> str:
    return t.tensor(node.args[0], node, op)


def _shape_args(t: _Translator, node: Any, op: str) -> tuple[Any, list[int], list[bool]]:
    x, *shape = node.args
    if "shape" in node.kwargs:
        shape = [node.kwargs["shape"]]
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = list(shape[0])
    torch = t.torch
    values, batch = [], []
    for s in shape:
        values.append(int(t.const(s, node, op)))
        batch.append(bool(isinstance(s, torch.fx.Node) and t.batch_dep.get(s, False)))
    return x, values, batch


def _reshape(t: _Translator, node: Any, op: str) -> str:
    x, shape, batch = _shape_args(t, node, op)
    if shuffled := _channel_shuffle(t, node, x, shape, op):
        return shuffled
    if not shape or any(batch[1:]) or not (batch[0] or shape[0] == -1):
        raise t.unsupported(node, op, f" to shape {tuple(shape)}: the batch axis must stay "
                                      f"first (x.size(0) or -1 there)")
    per_sample = shape[1:]
    if t.values:
        per_sample = list(t.shape(node, op)[1:])
    elif shape[0] == -1 and -1 in per_sample:
        raise t.unsupported(node, op, f" to shape {tuple(shape)} (two -1 axes)")
    return t.emit(node.name, nn.Reshape(tuple(per_sample)), [t.tensor(x, node, op)])


def _chain(node: Any, ops: set[str]) -> Any:
    """The only user of ``node`` when it is one of ``ops`` (method or torch function names)."""
    users = list(node.users)
    if len(users) != 1:
        return None
    user = users[0]
    name = user.target if user.op == "call_method" else getattr(user.target, "__name__", "")
    return user if user.op in ("call_method", "call_function") and name in ops else None


def _channel_shuffle(t: _Translator, node: Any, x: Any, shape: list[int], op: str) -> str | None:
    """view(b, g, c // g, *s) -> transpose(1, 2) [-> contiguous] -> view(b, c, *s)."""
    if not t.values or t.values.get(x, ("",))[0] != "tensor":
        return None
    x_shape = t.shape(x, op)
    out = t.shape(node, op)
    if len(out) != len(x_shape) + 1 or out[0] != x_shape[0] or out[1] * out[2] != x_shape[1] \
            or out[3:] != x_shape[2:]:
        return None
    trans = _chain(node, {"transpose", "permute"})
    if trans is None:
        return None
    swap = list(range(len(out)))
    swap[1], swap[2] = 2, 1
    if trans.target in ("permute",) or getattr(trans.target, "__name__", "") == "permute":
        dims = t.const(list(trans.args[1:]) if len(trans.args) > 2 else trans.args[1], trans, op)
        if [d % len(out) for d in dims] != swap:
            return None
    elif sorted(int(d) % len(out) for d in trans.args[1:3]) != [1, 2]:
        return None
    last = trans
    cont = _chain(trans, {"contiguous"})
    if cont is not None:
        last = cont
    back = _chain(last, {"view", "reshape"})
    if back is None or t.shape(back, op) != x_shape:
        return None
    ref = t.emit(node.name, nn.ChannelShuffle(int(out[1])), [t.tensor(x, node, op)])
    for n in (trans, cont, back):
        if n is not None:
            t.ref[n] = ref
    return ref


def _permute_of(t: _Translator, node: Any, perm: list[int], x: Any, op: str) -> str:
    if perm[0] != 0:
        raise t.unsupported(node, op, f" with axes {perm}: the batch axis must stay first")
    return t.emit(node.name, nn.Permute(tuple(d - 1 for d in perm[1:])),
                  [t.tensor(x, node, op)])


def _transpose(t: _Translator, node: Any, op: str) -> str:
    a = t.bind(node, op, ["input", "dim0", "dim1"])
    rank = t.rank(a["input"], op)
    perm = list(range(rank))
    d0, d1 = (int(t.const(a[k], node, op)) % rank for k in ("dim0", "dim1"))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _permute_of(t, node, perm, a["input"], op)


def _permute(t: _Translator, node: Any, op: str) -> str:
    x, dims, _ = _shape_args(t, node, op)
    rank = len(dims)
    return _permute_of(t, node, [d % rank for d in dims], x, op)


def _split(chunks: bool) -> Callable[..., Any]:
    def handler(t: _Translator, node: Any, op: str) -> list[str]:
        a = t.bind(node, op, ["input", "chunks" if chunks else "split_size_or_sections", "dim"],
                   dim=0)
        x = a["input"]
        value = t.values.get(node)
        if value is None:
            raise _Needs
        dim = _dim(t, node, x, int(t.const(a["dim"], node, op)), op)
        sizes = tuple(s[dim] for s in value[1])
        name = t.emit(node.name, nn.Split(sizes, dim=dim), [t.tensor(x, node, op)])
        return [f"{name}:{k}" for k in range(len(sizes))]
    return handler


def _getitem(t: _Translator, node: Any, op: str) -> str:
    seq, index = node.args
    refs = t.ref.get(seq)
    if isinstance(refs, list) and isinstance(index, int):
        return str(refs[index])
    if refs is _Needs:
        raise _Needs
    raise t.unsupported(node, op, f": indexing a tensor with {index!r} (slicing is not supported; "
                                  f"x.chunk / torch.split are)")


def _stochastic_depth(t: _Translator, node: Any, op: str) -> str:
    """torchvision.ops.stochastic_depth (EfficientNet's residual blocks, torch.fx-wrapped):
    the identity when traced in evaluation mode."""
    a = t.bind(node, op, ["input", "p", "mode", "training"], training=True)
    if t.const(a["training"], node, op) and float(t.const(a["p"], node, op)) > 0:
        raise t.unsupported(node, op, " in training mode (trace the module in eval mode: "
                                      "module.eval())")
    return t.tensor(a["input"], node, op)


def _size_method(t: _Translator, node: Any, op: str) -> Any:
    raise _Needs


_ACT_FUNCTIONS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "relu": ("ReLU", ("input", "inplace"), {}),
    "relu6": ("ReLU6", ("input", "inplace"), {}),
    "hardswish": ("Hardswish", ("input", "inplace"), {}),
    "hardsigmoid": ("Hardsigmoid", ("input", "inplace"), {}),
    "silu": ("SiLU", ("input", "inplace"), {}),
    "gelu": ("GELU", ("input", "approximate"), {"approximate": "none"}),
    "sigmoid": ("Sigmoid", ("input",), {}),
    "tanh": ("Tanh", ("input",), {}),
}


def _tables() -> tuple[dict[Any, Any], dict[str, Any]]:
    import torch

    F = torch.nn.functional
    functions: dict[Any, Any] = {
        operator.add: _binary("add"), operator.iadd: _binary("add"), torch.add: _binary("add"),
        operator.mul: _binary("mul"), operator.imul: _binary("mul"), torch.mul: _binary("mul"),
        torch.cat: _cat, torch.concat: _cat, torch.flatten: _flatten,
        F.leaky_relu: _leaky_relu, F.softmax: _softmax, torch.softmax: _softmax,
        F.dropout: _dropout, torch.mean: _mean, torch.transpose: _transpose,
        torch.permute: _permute, torch.reshape: _reshape, torch.chunk: _split(True),
        torch.split: _split(False), operator.getitem: _getitem,
        F.max_pool1d: _pool("max", 1), F.max_pool2d: _pool("max", 2),
        F.max_pool3d: _pool("max", 3), F.avg_pool1d: _pool("avg", 1),
        F.avg_pool2d: _pool("avg", 2), F.avg_pool3d: _pool("avg", 3),
    }
    for nd in (1, 2, 3):
        functions[getattr(F, f"adaptive_avg_pool{nd}d")] = _adaptive("Avg", nd)
        functions[getattr(F, f"adaptive_max_pool{nd}d")] = _adaptive("Max", nd)
    for name, (layer, names, fixed) in _ACT_FUNCTIONS.items():
        handler = _activation(layer, names, **fixed)
        if hasattr(F, name):
            functions[getattr(F, name)] = handler
        if hasattr(torch, name):
            functions[getattr(torch, name)] = handler
    methods: dict[str, Any] = {
        "add": _binary("add"), "add_": _binary("add"), "mul": _binary("mul"),
        "mul_": _binary("mul"), "flatten": _flatten, "view": _reshape, "reshape": _reshape,
        "transpose": _transpose, "permute": _permute, "contiguous": _alias, "mean": _mean,
        "chunk": _split(True), "split": _split(False), "size": _size_method,
        "dim": _size_method, "relu": _activation("ReLU"), "relu_": _activation("ReLU"),
        "sigmoid": _activation("Sigmoid", ("input",)), "tanh": _activation("Tanh", ("input",)),
        "softmax": _softmax,
    }
    return functions, methods


_FUNCTIONS: dict[Any, Any] = {}
# functions other libraries mark with torch.fx.wrap, by name
_BY_NAME: dict[str, Any] = {"stochastic_depth": _stochastic_depth}
_METHODS: dict[str, Any] = {}
_SUPPORTED: list[str] = [
    "+ / torch.add / Tensor.add", "* / torch.mul / Tensor.mul (two tensors)", "torch.cat",
    "torch.flatten / Tensor.flatten", "F.relu / relu6 / hardswish / hardsigmoid / silu / gelu / "
    "sigmoid / tanh / leaky_relu / softmax", "F.dropout", "F.max_pool*d / avg_pool*d",
    "F.adaptive_avg_pool*d / adaptive_max_pool*d", "torch.mean / Tensor.mean over all spatial "
    "axes", "Tensor.view / reshape (batch axis kept)", "torch.transpose / permute (batch axis "
    "kept)", "Tensor.contiguous", "Tensor.chunk / torch.split and [k] of the result",
    "Tensor.size() / .shape and arithmetic on sizes",
    "torchvision.ops.stochastic_depth (eval mode)",
]


def graph_from_torch(converter: Any, module: Any, input_shape: Any = None,
                     example_input: Any = None) -> nn.Module:
    """The ``nn.Graph`` of ``module``'s traced forward (see the module docstring)."""
    if not _FUNCTIONS:
        functions, methods = _tables()
        _FUNCTIONS.update(functions)
        _METHODS.update(methods)
    return _Translator(converter, module, input_shape, example_input).translate()
