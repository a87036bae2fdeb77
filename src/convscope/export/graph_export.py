"""Graph models to PyTorch and ONNX: one torch.fx node / one short ONNX chain per graph node.

:func:`convscope.export.to_torch` on an ``nn.Graph`` builds a ``torch.fx.GraphModule``:
each layer node is a submodule at the node's name (``"layer1.0.conv1"``, so the
``state_dict`` keys are the graph's), each merge is a call:

=================  =================================================  ==================
convscope          torch.fx                                           ONNX
=================  =================================================  ==================
Add                ``a + b (+ ...)``                                  ``Add`` chain
Mul                ``a * b``                                          ``Mul``
Concat(dim)        ``torch.cat([...], dim)``                          ``Concat(axis)``
ChannelShuffle(g)  ``channel_shuffle(x, g)`` (view/transpose/view)    Reshape, Transpose,
                                                                      Reshape
Split(sizes, dim)  ``torch.split(x, sizes, dim)`` and ``[k]``         ``Split``
Reshape(shape)     ``x.reshape(-1, *shape)``                          ``Reshape([0, ...])``
Permute(dims)      ``x.permute(0, *(d + 1 for d in dims))``           ``Transpose``
=================  =================================================  ==================

:func:`convscope.export.to_onnx` on an ``nn.Graph`` writes the layers with the same
converters as for a ``Sequential``, node by node in the graph's (topological) order. A graph
with several inputs gives an ONNX graph with one input per graph input, named as the graph
names them, in the graph's order; several outputs give ONNX outputs ``output_0``,
``output_1``, ... in the order of ``Graph.outputs`` (see :func:`~convscope.export.to_onnx`).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["graph_to_torch", "emit_graph_onnx", "channel_shuffle", "reshape", "permute"]

_MERGES = ("add", "mul", "concat", "channel_shuffle", "split", "reshape", "permute")


def channel_shuffle(x: Any, groups: int) -> Any:
    """ShuffleNet's channel shuffle of (N, C, H, W), written as torchvision writes it."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = x.transpose(1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


def reshape(x: Any, shape: tuple[int, ...]) -> Any:
    """Each sample to ``shape`` (the batch axis kept)."""
    return x.reshape(-1, *shape)


def permute(x: Any, dims: tuple[int, ...]) -> Any:
    """Each sample's axes permuted (the batch axis kept)."""
    return x.permute(0, *(d + 1 for d in dims))


def _graph_parts(model: Any) -> tuple[list[Any], tuple[str, ...], Any]:
    nodes = list(model.nodes)
    inputs = tuple(model.inputs)
    outputs = model.outputs
    return nodes, inputs, outputs


def graph_to_torch(converter: Any, model: Any, path: str = "") -> Any:
    """A ``torch.fx.GraphModule`` that computes what the graph ``model`` computes."""
    torch = converter.torch
    fx_graph = torch.fx.Graph()
    nodes, inputs, outputs = _graph_parts(model)
    env: dict[str, Any] = {}
    for name in inputs:
        env[name] = fx_graph.placeholder(name.replace(".", "_"))
    modules: dict[str, Any] = {}

    def get(ref: str) -> Any:
        if ref in env:
            return env[ref]
        base, _, k = ref.rpartition(":")
        return fx_graph.call_function(operator.getitem, (env[base], int(k)))

    for node in nodes:
        m = node.module
        kind = m.layer_kind
        args = [get(r) for r in node.inputs]
        where = f"{path}.{node.name}" if path else node.name
        if kind == "add":
            out = args[0]
            for a in args[1:]:
                out = fx_graph.call_function(operator.add, (out, a))
        elif kind == "mul":
            out = fx_graph.call_function(operator.mul, tuple(args))
        elif kind == "concat":
            out = fx_graph.call_function(torch.cat, (list(args), int(m.dim)))
        elif kind == "channel_shuffle":
            out = fx_graph.call_function(channel_shuffle, (args[0], int(m.groups)))
        elif kind == "split":
            out = fx_graph.call_function(torch.split, (args[0], list(m.sizes), int(m.dim)))
        elif kind == "reshape":
            out = fx_graph.call_function(reshape, (args[0], tuple(m.shape)))
        elif kind == "permute":
            out = fx_graph.call_function(permute, (args[0], tuple(m.dims)))
        else:
            modules[node.name] = converter.convert(m, where)
            out = fx_graph.call_module(node.name, tuple(args))
        env[node.name] = out
    if isinstance(outputs, str):
        fx_graph.output(get(outputs))
    else:
        fx_graph.output(tuple(get(o) for o in outputs))
    gm = torch.fx.GraphModule(modules, fx_graph, class_name="ConvscopeGraph")
    gm.train(bool(model.training))
    return gm


def emit_graph_onnx(exporter: Any, model: Any, shapes: list[tuple[int, ...]],
                    input_names: list[str], prefix: str = "") -> list[tuple[str, Any]]:
    """The ONNX nodes of graph ``model``, its inputs read from the ONNX tensors
    ``input_names`` (one per graph input, in order, of the batched ``shapes``), each node
    labelled ``prefix + name``; returns the ``(tensor name, shape)`` of each graph output, in
    the graph's order."""
    g = exporter.g
    nodes, inputs, outputs = _graph_parts(model)
    names: dict[str, str] = dict(zip(inputs, input_names))
    known: dict[str, Any] = dict(zip(inputs, shapes))

    def get(ref: str) -> tuple[str, Any]:
        if ref in names:
            return names[ref], known[ref]
        raise ConfigError(f"to_onnx: the graph reference {ref!r} is unknown.")  # pragma: no cover

    for node in nodes:
        m = node.module
        kind = m.layer_kind
        ins = [get(r) for r in node.inputs]
        label = prefix + node.name
        if kind in _MERGES:
            out_shape = m.output_shape(*[s for _, s in ins])
            y = _merge_onnx(g, kind, m, [n for n, _ in ins], [s for _, s in ins], label)
        elif kind == "graph":                     # a graph as one node: its own node list
            results = emit_graph_onnx(exporter, m, [s for _, s in ins], [n for n, _ in ins], prefix=f"{label}.")
            y, out_shape = results[0] if len(results) == 1 else ([n for n, _ in results], [s for _, s in results])
        elif kind in ("sequential", "residual"):  # a block as one node: its chain of layers
            y, out_shape = exporter.emit(m, ins[0][1], x=ins[0][0], prefix=f"{label}.")
        else:
            handler = exporter.handlers.get(kind)
            if handler is None:
                from .common import no_mapping_error

                raise no_mapping_error("to_onnx", "ONNX", label, m,
                                       list(exporter.handlers) + list(_MERGES))
            y, out_shape = handler(m, label, ins[0][0], ins[0][1])
        if isinstance(y, list):  # a split: one ONNX output per piece
            for k, (name, s) in enumerate(zip(y, out_shape)):
                names[f"{node.name}:{k}"], known[f"{node.name}:{k}"] = name, s
        names[node.name], known[node.name] = (y if isinstance(y, str) else ""), out_shape
    return [get(ref) for ref in ((outputs,) if isinstance(outputs, str) else outputs)]


def _merge_onnx(g: Any, kind: str, m: Any, xs: list[str], shapes: list[Any], label: str) -> Any:
    if kind == "add":
        y = xs[0]
        for k, x in enumerate(xs[1:]):
            y = g.node("Add", [y, x], label if k == len(xs) - 2 else f"{label}.{k}")
        return y
    if kind == "mul":
        return g.node("Mul", xs, label)
    if kind == "concat":
        return g.node("Concat", xs, label, axis=int(m.dim) % len(shapes[0]))
    if kind == "channel_shuffle":
        n, c, *rest = shapes[0]
        groups = int(m.groups)
        split = g.const(f"{label}.grouped", np.array([0, groups, c // groups, *rest], np.int64))
        y = g.node("Reshape", [xs[0], split], f"{label}.grouped")
        y = g.node("Transpose", [y], f"{label}.swapped", perm=[0, 2, 1, *range(3, len(rest) + 3)])
        back = g.const(f"{label}.shape", np.array([0, c, *rest], np.int64))
        return g.node("Reshape", [y, back], label)
    if kind == "reshape":
        target = g.const(f"{label}.shape", np.array([0, *m.shape], np.int64))
        return g.node("Reshape", [xs[0], target], label)
    if kind == "permute":
        return g.node("Transpose", xs, label, perm=[0, *(int(d) + 1 for d in m.dims)])
    # split: several outputs
    sizes = g.const(f"{label}.sizes", np.array(list(m.sizes), np.int64))
    outs = [g.name(f"{label}:{k}") for k in range(len(m.sizes))]
    g.nodes.append(g.onnx.helper.make_node(
        "Split", [xs[0], sizes], outs, name=g.name(f"{label}/Split"),
        axis=int(m.dim) % len(shapes[0])))
    return outs
