"""Graph models: layers wired as a directed acyclic graph (ResNet, SqueezeNet, MobileNet, ...).

A :class:`Graph` is an explicit list of nodes, each ``Node(name, module, inputs)``: the
module and the references it reads. A reference is a graph input's name, a node's name, or
``"name:k"`` for the ``k``-th output of a node with several outputs (:class:`~convscope.nn.Split`).
Nodes are listed in topological order (every reference names something defined earlier), so
the order given is the forward order, and the numbering of ``summary`` and ``walk``.

Why a node list: it is the form torch.fx and ONNX already give a model's forward, so
importing is a node-for-node translation, saving is a JSON list, and every node is a layer
the explainer can show. :class:`GraphBuilder` writes the list for hand-written models in the
Keras functional style (``h = g.add("conv1", nn.Conv2d(...), x)``).

Forward runs the nodes in order, dropping each intermediate tensor after its last reader.
Backward runs them in reverse (notes 9.4: the chain rule, layer by layer): a node's output
gradient is the sum of what its readers send back (fan-out: ``dL/dx = sum_j dL/dx_j``, added
in a fixed order so results are deterministic), and each module's own backward turns it into
its inputs' gradients. There is no autograd tape: only the modules' explicit backwards.

Example:
    A residual block, ``y = relu(x + conv(relu(conv(x))))``:

    >>> import numpy as np
    >>> from convscope import nn
    >>> g = GraphBuilder()
    >>> h = g.add("conv1", nn.Conv2d(2, 2, 3, padding=1, rng=0), g.input)
    >>> h = g.add("relu1", nn.ReLU(), h)
    >>> h = g.add("conv2", nn.Conv2d(2, 2, 3, padding=1, rng=1), h)
    >>> h = g.add("add", nn.Add(), h, g.input)
    >>> model = g.build(g.add("relu2", nn.ReLU(), h))
    >>> x = np.ones((1, 2, 4, 4), dtype=np.float32)
    >>> model(x).shape, model.backward(np.ones((1, 2, 4, 4), dtype=np.float32)).shape
    ((1, 2, 4, 4), (1, 2, 4, 4))
    >>> [(n.name, n.inputs) for n in model.nodes][-2:]
    [('add', ('conv2', 'input')), ('relu2', ('add',))]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..shapes import format_shape
from .module import Module
from .spec import register

__all__ = ["Node", "Graph", "GraphBuilder"]


class Node(NamedTuple):
    """One node of a :class:`Graph`: ``module`` applied to the tensors ``inputs`` name."""

    name: str
    module: Module
    inputs: tuple[str, ...]


def _split_ref(ref: str) -> tuple[str, int | None]:
    base, sep, k = ref.rpartition(":")
    if sep and k.isdigit():
        return base, int(k)
    return ref, None


def _num_outputs(module: Module) -> int:
    return int(getattr(module, "num_outputs", 1))


def _summed(parts: list[np.ndarray] | None, shape: tuple[int, ...] | None = None,
            dtype: np.dtype | None = None) -> Any:
    """The gradients a tensor's readers sent back, added in the order they came (fan-out);
    zeros of ``shape`` when nobody read it (None without a shape)."""
    if not parts:
        return None if shape is None else np.zeros(shape, dtype=dtype)
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(f"Graph: {what} must be a non-empty string without ':'; got {name!r}.")
    return name


class Graph(Module):
    """A model whose layers form a directed acyclic graph (see the module docstring).

    Args:
        nodes: ``Node(name, module, inputs)`` (or plain 3-tuples) in topological order.
        inputs: the names of the graph's inputs (one for a CNN: ``("input",)``).
        outputs: the reference the graph returns, or a tuple of them (several outputs);
            default: the last node.

    Raises:
        ConfigError: a reference to nothing defined before it (a cycle or a typo), a
            duplicate name, a module used by two nodes (each keeps its own forward state:
            make a second instance), or a node given the wrong number of inputs.
    """

    layer_kind = "graph"

    def __init__(self, nodes: Sequence[Any], inputs: Sequence[str] = ("input",),
                 outputs: str | Sequence[str] | None = None) -> None:
        super().__init__()
        if isinstance(inputs, str):
            inputs = (inputs,)
        self.inputs = tuple(_check_name(n, "an input name") for n in inputs)
        if not self.inputs:
            raise ConfigError("Graph: needs at least one input name.")
        self.nodes: list[Node] = []
        defined: dict[str, int] = {name: 1 for name in self.inputs}
        if len(defined) != len(self.inputs):
            raise ConfigError(f"Graph: the input names {list(self.inputs)} repeat a name.")
        seen_modules: dict[int, str] = {}
        for i, raw in enumerate(nodes):
            try:
                name, module, refs = raw
            except (TypeError, ValueError):
                raise ConfigError(
                    f"Graph: node {i + 1} must be Node(name, module, inputs); got {raw!r}.") from None
            name = _check_name(name, f"node {i + 1}'s name")
            if name in defined:
                raise ConfigError(f"Graph: the name {name!r} is used twice (node {i + 1}); names must be unique.")
            if not isinstance(module, Module):
                raise ArgumentTypeError(
                    f"Graph: node {name!r} must hold a convscope Module; got {type(module).__name__}.")
            if id(module) in seen_modules:
                raise ConfigError(
                    f"Graph: node {name!r} uses the same module instance as node "
                    f"{seen_modules[id(module)]!r}; each node keeps its own forward state, so give it "
                    f"its own instance (a shared layer with weights is not supported).")
            seen_modules[id(module)] = name
            if isinstance(refs, str):
                refs = (refs,)
            refs = tuple(refs)
            for ref in refs:
                self._check_ref(ref, defined, f"node {name!r}")
            want = getattr(module, "num_inputs", 1)
            if (want is None and len(refs) < 1) or (want is not None and len(refs) != want):
                raise ConfigError(
                    f"Graph: node {name!r} ({type(module).__name__}) takes "
                    f"{'one or more inputs' if want is None else want}; it was given {len(refs)}: {list(refs)}.")
            self.nodes.append(Node(name, module, refs))
            defined[name] = _num_outputs(module)
        if not self.nodes:
            raise ConfigError("Graph: needs at least one node.")
        if outputs is None:
            outputs = self.nodes[-1].name
        self.outputs: str | tuple[str, ...] = outputs if isinstance(outputs, str) else tuple(outputs)
        for ref in (self.outputs,) if isinstance(self.outputs, str) else self.outputs:
            self._check_ref(ref, defined, "the graph's outputs")
        # the last node that reads each reference (for freeing tensors in forward)
        self._last_use: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            for ref in node.inputs:
                self._last_use[_split_ref(ref)[0]] = i

    @staticmethod
    def _check_ref(ref: Any, defined: dict[str, int], where: str) -> None:
        if not isinstance(ref, str):
            raise ConfigError(f"Graph: {where} reads {ref!r}; references are names (strings).")
        base, k = _split_ref(ref)
        if base not in defined:
            known = ", ".join(list(defined)[-12:])
            raise ConfigError(
                f"Graph: {where} reads {ref!r}, which is not defined before it (nodes must come in "
                f"forward order, with no cycles). Defined so far: {known}.")
        count = defined[base]
        if k is None and count > 1:
            raise ConfigError(f"Graph: {where} reads {ref!r}, which has {count} outputs; name one as "
                              f"'{base}:0' ... '{base}:{count - 1}'.")
        if k is not None and count != -1 and (k >= count or (count == 1 and k > 0)):
            raise ConfigError(f"Graph: {where} reads {ref!r}, but {base!r} has {max(count, 1)} output(s).")

    # ------------------------------------------------------------------ structure
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for node in self.nodes:
            yield node.name, node.module

    @property
    def input_rank(self) -> int | None:
        """The input rank of the first layer that fixes one (see :func:`convscope.nn.input_rank`)."""
        from .walk import input_rank

        return input_rank(self)

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ConfigError(f"Graph: no node is called {name!r}; nodes: {', '.join(n.name for n in self.nodes[:20])}.")

    def __len__(self) -> int:
        return len(self.nodes)

    # ------------------------------------------------------------------ forward / backward
    def _inputs_env(self, xs: tuple[Any, ...], op: str) -> dict[str, Any]:
        if len(xs) != len(self.inputs):
            raise ArgumentTypeError(f"{op}: the graph takes {len(self.inputs)} input(s) "
                                    f"({', '.join(self.inputs)}); got {len(xs)}.")
        return dict(zip(self.inputs, xs))

    @staticmethod
    def _get(env: dict[str, Any], ref: str) -> Any:
        if ref in env:
            return env[ref]
        base, k = _split_ref(ref)
        return env[base][k]

    def forward(self, *xs: Any) -> Any:
        env = self._inputs_env(xs, "Graph.forward")
        keep_bases = {_split_ref(r)[0] for r in ((self.outputs,) if isinstance(self.outputs, str) else self.outputs)}
        meta: dict[str, list[tuple[tuple[int, ...], np.dtype]]] = {}
        for i, node in enumerate(self.nodes):
            args = [self._get(env, r) for r in node.inputs]
            try:
                y = node.module(*args)
            except (ShapeError, ConfigError) as exc:
                shapes = ", ".join(f"{r} {format_shape(np.shape(a))}" for r, a in zip(node.inputs, args))
                raise type(exc)(f"Graph node {node.name!r} ({type(node.module).__name__}, reading {shapes}): "
                                f"{exc}") from None
            outs = y if isinstance(y, tuple) else (y,)
            meta[node.name] = [(o.shape, o.dtype) for o in outs]
            env[node.name] = y
            for base in {_split_ref(ref)[0] for ref in node.inputs}:  # free what no later node reads
                if self._last_use[base] == i and base not in keep_bases and base not in self.inputs:
                    env.pop(base, None)
        self._save(meta=meta)
        if isinstance(self.outputs, str):
            return self._get(env, self.outputs)
        return tuple(self._get(env, r) for r in self.outputs)

    def _grads(self, dy: Any) -> dict[str, list[np.ndarray]]:
        grads: dict[str, list[np.ndarray]] = {}
        outs = (self.outputs,) if isinstance(self.outputs, str) else self.outputs
        dys = (dy,) if isinstance(self.outputs, str) else tuple(dy)
        if len(dys) != len(outs):
            raise ArgumentTypeError(f"Graph.backward: one gradient per output ({len(outs)}); got {len(dys)}.")
        for ref, g in zip(outs, dys):
            grads.setdefault(ref, []).append(np.asarray(g))
        return grads

    def _backward(self, dy: Any, input_grad: bool) -> Any:
        meta = self._pop_saved()["meta"]
        grads = self._grads(dy)
        for node in reversed(self.nodes):
            outs = meta[node.name]
            if len(outs) == 1 and _num_outputs(node.module) == 1:
                g: Any = _summed(grads.pop(node.name, None), *outs[0])
            else:
                g = tuple(_summed(grads.pop(f"{node.name}:{k}", None), *outs[k]) for k in range(len(outs)))
            if not input_grad and len(node.inputs) == 1 and node.inputs[0] in self.inputs:
                node.module.backward_params(g)
                continue
            back: Any = node.module.backward(g)
            for ref, dx in zip(node.inputs, back if isinstance(back, tuple) else (back,)):
                grads.setdefault(ref, []).append(dx)
        if not input_grad:
            return None
        result = [_summed(grads.get(name)) for name in self.inputs]
        return result[0] if len(result) == 1 else tuple(result)

    def backward(self, dy: Any) -> Any:
        return self._backward(dy, True)

    def backward_params(self, dy: Any) -> None:
        """Backward without the gradient of the graph's input (the first layers skip it)."""
        self._backward(dy, False)

    def output_shape(self, *input_shapes: tuple[int, ...]) -> Any:
        if len(input_shapes) != len(self.inputs):
            raise ArgumentTypeError(f"Graph.output_shape: one shape per input ({len(self.inputs)}); "
                                    f"got {len(input_shapes)}.")
        env: dict[str, Any] = {n: tuple(int(v) for v in s) for n, s in zip(self.inputs, input_shapes)}
        for node in self.nodes:
            shapes = [self._get(env, r) for r in node.inputs]
            try:
                out = node.module.output_shape(*shapes)
            except (ShapeError, ConfigError) as exc:
                raise type(exc)(f"Graph node {node.name!r} ({type(node.module).__name__}): {exc}") from None
            env[node.name] = out
        if isinstance(self.outputs, str):
            return self._get(env, self.outputs)
        return tuple(self._get(env, r) for r in self.outputs)

    # ------------------------------------------------------------------ description
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"Graph(inputs={list(self.inputs)}, outputs={self.outputs!r},"]
        for node in self.nodes:
            body = repr(node.module).replace("\n", "\n    ")
            lines.append(f"  ({node.name}) <- {', '.join(node.inputs)}: {body}")
        lines.append(")")
        return "\n".join(lines)

    def config(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "outputs": self.outputs if isinstance(self.outputs, str) else list(self.outputs),
            "nodes": [[node.name, list(node.inputs)] for node in self.nodes],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], children: dict[str, Module]) -> Graph:
        nodes = config.get("nodes")
        if not isinstance(nodes, list) or set(config) - {"inputs", "outputs", "nodes"}:
            raise ConfigError(f"Graph: the config needs 'nodes' (a list of [name, inputs]) and optional "
                              f"'inputs', 'outputs'; got keys {sorted(config)}.")
        built = []
        for i, entry in enumerate(nodes):
            if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                    or not isinstance(entry[1], list) or not all(isinstance(r, str) for r in entry[1])):
                raise ConfigError(f"Graph: node entry {i + 1} must be [name, [input names]]; got {entry!r}.")
            if entry[0] not in children:
                raise ConfigError(f"Graph: node {entry[0]!r} has no module among the children.")
            built.append(Node(entry[0], children[entry[0]], tuple(entry[1])))
        if len(built) != len(children):
            extra = sorted(set(children) - {n.name for n in built})
            raise ConfigError(f"Graph: children {extra} are not nodes of the graph.")
        outputs = config.get("outputs")
        if outputs is not None and not isinstance(outputs, (str, list)):
            raise ConfigError(f"Graph: outputs must be a name or a list of names; got {outputs!r}.")
        inputs = config.get("inputs", ["input"])
        if not isinstance(inputs, list):
            raise ConfigError(f"Graph: inputs must be a list of names; got {inputs!r}.")
        return cls(built, inputs=tuple(inputs), outputs=outputs)


register(Graph)


class GraphBuilder:
    """Write a :class:`Graph` node by node (the Keras functional style).

    >>> from convscope import nn
    >>> g = GraphBuilder()
    >>> a = g.add("left", nn.Conv2d(1, 2, 1, rng=0), g.input)
    >>> b = g.add("right", nn.Conv2d(1, 3, 1, rng=1), g.input)
    >>> model = g.build(g.add("cat", nn.Concat(), a, b))
    >>> model.output_shape((1, 1, 5, 5))
    (1, 5, 5, 5)
    """

    def __init__(self, inputs: Sequence[str] = ("input",)) -> None:
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.nodes: list[Node] = []

    @property
    def input(self) -> str:
        """The (first) input's reference."""
        return self.inputs[0]

    def add(self, name: str, module: Module, *refs: str) -> str:
        """Append node ``name`` computing ``module(*refs)``; returns its reference."""
        self.nodes.append(Node(name, module, tuple(refs)))
        last = name if _num_outputs(module) == 1 else f"{name}:0"
        Graph(self.nodes, self.inputs, last)  # validate now, so the error names this call
        return name

    def build(self, outputs: str | Sequence[str] | None = None) -> Graph:
        """The graph of the nodes added so far, returning ``outputs`` (default: the last node)."""
        return Graph(self.nodes, self.inputs, outputs)
