"""PyTorch export and import: the same network as a ``torch.nn.Module``, and back.

:func:`to_torch` builds a ``torch.nn.Sequential`` of PyTorch's own layers with the model's
weights, so the model can be trained further on GPUs or many machines; :func:`from_torch`
turns a ``torch.nn.Sequential`` of the supported layers into a convscope model.

Mapping (convscope -> PyTorch):

* Conv1d/2d/3d (and ConvNd with 1-3 spatial axes) -> ``torch.nn.Conv1d/2d/3d`` with the
  same stride, dilation, groups, bias and ``padding_mode``. Symmetric padding and
  ``padding="same"`` with stride 1 are the layer's own ``padding``; padding PyTorch's conv
  layers do not take (``(before, after)`` pairs that differ) becomes a
  ``nn.Sequential(pad layer, conv)`` with one of ``torch.nn.ZeroPad*d``,
  ``ReflectionPad*d``, ``ReplicationPad*d``, ``CircularPad*d``; ``"same"`` with a stride
  above 1 (convscope's TensorFlow rule, size dependent) becomes
  ``nn.Sequential(SamePad(...), conv)``. ``flip=True`` (true convolution) is exported as a
  plain conv whose filters are reversed along every spatial axis.
* MaxPool*/AvgPool* -> ``torch.nn.MaxPool*d`` / ``AvgPool*d``; padding those layers refuse
  (unequal ``(before, after)``, ``"same"``) uses ``Pool`` (below).
* ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Flatten, Linear, Dropout, BatchNorm1d/2d ->
  the PyTorch layer of the same name and arguments (with the running statistics).
* Sequential -> ``torch.nn.Sequential``; Residual, BlurPool* and Normalize ->
  ``Residual``, ``BlurPool``, ``Normalize`` (below).

Where PyTorch has no layer, :mod:`convscope.export.torch_layers` defines tiny
``torch.nn.Module`` classes: ``BlurPool`` (the binomial filter as a fixed depthwise
convolution after padding), ``Residual`` (``x + block(x)``), ``SamePad`` (convscope's
``"same"`` padding for any stride), ``Normalize`` (``(x - mean[c]) / std[c]``, the
statistics as buffers, so the exported module takes raw pixels) and ``Pool`` (max or average pooling with arbitrary
``(before, after)`` padding, PyTorch's ceil-mode and divisor rules).

``from_torch`` reverses all of this, and also accepts a padding layer directly before a
conv (it becomes the conv's padding). The modules' training/eval mode is carried over.

``torch`` is optional: install it with ``pip install "convscope[torch]"``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from .. import nn
from ..errors import ArgumentTypeError, ConfigError, DTypeError
from ..nn.layer_types import LinearLayer, ResidualLayer
from .common import no_mapping_error
from .fx import graph_from_torch, sequential_convertible
from .graph_export import graph_to_torch
from .torch_layers import _torch_pads, import_torch
from .torch_layers import layers as _layers

__all__ = ["to_torch", "from_torch"]

# ------------------------------------------------------------------------------ to_torch
def _np_dtype_of(model: nn.Module) -> np.dtype:
    dtypes = {p.data.dtype for p in model.parameters()}
    dtypes |= {b.dtype for b in model.buffers() if b.dtype.kind == "f"}
    if len(dtypes) > 1:
        raise DTypeError(
            f"to_torch: every parameter must have one dtype; got {sorted(d.name for d in dtypes)}. "
            f"Convert the model with model.to(np.float32) first."
        )
    return dtypes.pop() if dtypes else np.dtype(np.float32)


def _symmetric(padding: Any) -> bool:
    return padding != "same" and all(b == a for b, a in padding)


class _ToTorch:
    def __init__(self, layers: SimpleNamespace, dtype: np.dtype) -> None:
        self.L = layers
        self.torch = layers.torch
        self.dtype = {np.dtype(np.float32): self.torch.float32,
                      np.dtype(np.float64): self.torch.float64}[dtype]
        tn = self.torch.nn
        # one converter per layer kind (Module.layer_kind): a subclass converts as its kind
        self.table = {
            "sequential": self._sequential, "residual": self._residual,
            "relu": lambda m, p: tn.ReLU(), "sigmoid": lambda m, p: tn.Sigmoid(),
            "tanh": lambda m, p: tn.Tanh(),
            "leaky_relu": lambda m, p: tn.LeakyReLU(m.negative_slope),
            "softmax": lambda m, p: tn.Softmax(dim=m.dim),
            "flatten": lambda m, p: tn.Flatten(m.start_dim, -1),
            "dropout": lambda m, p: tn.Dropout(m.p),
            "linear": self._linear, "conv": self._conv, "max_pool": self._max_pool,
            "avg_pool": self._avg_pool, "blur_pool": self._blur_pool,
            "batch_norm": self._batch_norm, "normalize": self._normalize,
            "graph": lambda m, p: graph_to_torch(self, m, p),
            "relu6": lambda m, p: tn.ReLU6(), "hardsigmoid": lambda m, p: tn.Hardsigmoid(),
            "hardswish": lambda m, p: tn.Hardswish(), "silu": lambda m, p: tn.SiLU(),
            "gelu": lambda m, p: tn.GELU(approximate=m.approximate), "identity": lambda m, p: tn.Identity(),
            "adaptive_avg_pool": lambda m, p: getattr(tn, f"AdaptiveAvgPool{m.ndim}d")(m.output_size),
            "adaptive_max_pool": lambda m, p: getattr(tn, f"AdaptiveMaxPool{m.ndim}d")(m.output_size),
        }

    def convert(self, m: nn.Module, path: str) -> Any:
        handler = self.table.get(m.layer_kind)
        if handler is None:
            raise no_mapping_error("to_torch", "PyTorch", path, m, self.table)
        return handler(m, path)

    def _copy(self, target: Any, array: np.ndarray) -> None:
        with self.torch.no_grad():
            target.copy_(self.torch.from_numpy(np.array(array, order="C", copy=True)))

    def _sequential(self, m: nn.Module, path: str) -> Any:
        return self.torch.nn.Sequential(*(
            self.convert(child, f"{path}.{name}" if path else name)
            for name, child in m.named_children()
        ))

    def _residual(self, m: nn.Module, path: str) -> Any:
        block = cast(ResidualLayer, m).block
        return self.L.Residual(self.convert(block, f"{path}.block" if path else "block"))

    def _conv(self, m: Any, path: str) -> Any:
        tn = self.torch.nn
        if m.ndim not in (1, 2, 3):
            raise ConfigError(
                f"to_torch: {type(m).__name__} at {path!r} has {m.ndim} spatial axes; PyTorch has "
                f"convolution layers for 1, 2 and 3 only (Conv1d/2d/3d)."
            )
        pad_layer = None
        padding: Any  # "same", 0, or one size per axis, as torch's Conv takes it
        if m.padding == "same" and all(s == 1 for s in m.stride):
            padding, mode = "same", m.padding_mode
        elif m.padding == "same":
            pad_layer = self.L.SamePad(m.kernel_size, m.stride, m.dilation, m.padding_mode)
            padding, mode = 0, "zeros"
        elif _symmetric(m.padding):
            padding, mode = tuple(b for b, _ in m.padding), m.padding_mode
        else:
            kind = {"zeros": "ZeroPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad",
                    "circular": "CircularPad"}[m.padding_mode]
            pad_layer = getattr(tn, f"{kind}{m.ndim}d")(tuple(_torch_pads(m.padding)))
            padding, mode = 0, "zeros"
        conv = getattr(tn, f"Conv{m.ndim}d")(
            m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=padding,
            dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=mode,
            dtype=self.dtype,
        )
        w = m.weight.data
        if m.flip:  # true convolution = PyTorch's cross-correlation with reversed filters
            w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * m.ndim]
        self._copy(conv.weight, w)
        if m.bias is not None:
            self._copy(conv.bias, m.bias.data)
        return conv if pad_layer is None else tn.Sequential(pad_layer, conv)

    def _max_pool(self, m: Any, path: str) -> Any:
        half = all(b <= k // 2 for (b, _), k in zip(m.padding, m.kernel_size))
        if _symmetric(m.padding) and half:
            return getattr(self.torch.nn, f"MaxPool{m.ndim}d")(
                m.kernel_size, m.stride, tuple(b for b, _ in m.padding), m.dilation,
                ceil_mode=m.ceil_mode,
            )
        return self.L.Pool("max", m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)

    def _avg_pool(self, m: Any, path: str) -> Any:
        if _symmetric(m.padding):
            return getattr(self.torch.nn, f"AvgPool{m.ndim}d")(
                m.kernel_size, m.stride, tuple(b for b, _ in m.padding), ceil_mode=m.ceil_mode,
                count_include_pad=m.count_include_pad,
            )
        return self.L.Pool("avg", m.kernel_size, m.stride, m.padding, None, m.ceil_mode,
                           m.count_include_pad)

    def _blur_pool(self, m: Any, path: str) -> Any:
        layer = self.L.BlurPool(m.channels, m.filter_size, m.stride, m.padding_mode, m.ndim)
        return layer.to(self.dtype)

    def _linear(self, m: nn.Module, path: str) -> Any:
        fc = cast(LinearLayer, m)
        layer = self.torch.nn.Linear(fc.in_features, fc.out_features, bias=fc.bias is not None,
                                     dtype=self.dtype)
        self._copy(layer.weight, fc.weight.data)
        if fc.bias is not None:
            self._copy(layer.bias, fc.bias.data)
        return layer

    def _normalize(self, m: Any, path: str) -> Any:
        return self.L.Normalize(m.mean, m.std).to(self.dtype)

    def _batch_norm(self, m: Any, path: str) -> Any:
        layer = getattr(self.torch.nn, "BatchNorm2d" if m.input_rank == 2 else "BatchNorm1d")(
            m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
            track_running_stats=m.track_running_stats, dtype=self.dtype,
        )
        if m.affine:
            self._copy(layer.weight, m.weight.data)
            self._copy(layer.bias, m.bias.data)
        if m.track_running_stats:
            self._copy(layer.running_mean, m.running_mean)
            self._copy(layer.running_var, m.running_var)
            self._copy(layer.num_batches_tracked, np.asarray(m.num_batches_tracked, dtype=np.int64))
        return layer


def to_torch(model: nn.Module) -> Any:
    """A ``torch.nn.Module`` that computes what ``model`` computes, with the same weights.

    Args:
        model: a convscope module built from the layers of :mod:`convscope.nn` (mapping in
            the module docstring).

    Returns:
        A ``torch.nn.Sequential`` (or the single layer), in the model's dtype (float32 or
        float64) and training/eval mode; parameters are copies, not shared memory.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: a module without a PyTorch counterpart (named with its position), such
            as ConvNd with 4 spatial axes.
        DTypeError: parameters of mixed dtypes.

    Example:
        >>> import torch
        >>> from convscope import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(),
        ...                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3, rng=1))
        >>> net = to_torch(model)
        >>> [type(layer).__name__ for layer in net]
        ['Conv2d', 'ReLU', 'MaxPool2d', 'Flatten', 'Linear']
        >>> net[0]
        Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
        >>> bool(np.allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), atol=1e-6))
        True
    """
    import_torch("to_torch")
    layers = _layers()
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"to_torch: model must be a convscope Module (e.g. nn.Sequential(...)); got "
            f"{type(model).__name__}."
        )
    module = _ToTorch(layers, _np_dtype_of(model)).convert(model, "")
    module.train(model.training)
    return module


# ------------------------------------------------------------------------------ from_torch
class _FromTorch:
    def __init__(self, layers: SimpleNamespace) -> None:
        self.L = layers
        self.torch = layers.torch
        tn = self.torch.nn
        self.pad_types = {}
        for nd in (1, 2, 3):
            self.pad_types[getattr(tn, f"ZeroPad{nd}d")] = ("zeros", nd)
            self.pad_types[getattr(tn, f"ConstantPad{nd}d")] = ("zeros", nd)
            self.pad_types[getattr(tn, f"ReflectionPad{nd}d")] = ("reflect", nd)
            self.pad_types[getattr(tn, f"ReplicationPad{nd}d")] = ("replicate", nd)
            self.pad_types[getattr(tn, f"CircularPad{nd}d")] = ("circular", nd)
        self.table: dict[type, Any] = {
            tn.Sequential: self._sequential, layers.Residual: self._residual,
            layers.BlurPool: self._blur_pool, layers.Pool: self._pool,
            layers.Normalize: self._normalize,
            tn.ReLU: lambda t, p: nn.ReLU(), tn.Sigmoid: lambda t, p: nn.Sigmoid(),
            tn.Tanh: lambda t, p: nn.Tanh(),
            tn.LeakyReLU: lambda t, p: nn.LeakyReLU(t.negative_slope),
            tn.Softmax: self._softmax, tn.Flatten: self._flatten, tn.Linear: self._linear,
            tn.Dropout: lambda t, p: nn.Dropout(t.p),
            tn.BatchNorm1d: self._batch_norm, tn.BatchNorm2d: self._batch_norm,
            tn.ReLU6: lambda t, p: nn.ReLU6(), tn.Hardsigmoid: lambda t, p: nn.Hardsigmoid(),
            tn.Hardswish: lambda t, p: nn.Hardswish(), tn.SiLU: lambda t, p: nn.SiLU(),
            tn.GELU: lambda t, p: nn.GELU(t.approximate), tn.Identity: lambda t, p: nn.Identity(),
        }
        for nd in (1, 2, 3):
            self.table[getattr(tn, f"AdaptiveAvgPool{nd}d")] = self._adaptive
            self.table[getattr(tn, f"AdaptiveMaxPool{nd}d")] = self._adaptive
            self.table[getattr(tn, f"Conv{nd}d")] = self._conv
            self.table[getattr(tn, f"MaxPool{nd}d")] = self._max_pool
            self.table[getattr(tn, f"AvgPool{nd}d")] = self._avg_pool

    def supported(self) -> str:
        names = {cls.__name__ for cls in self.table} | {cls.__name__ for cls in self.pad_types}
        return ", ".join(sorted(names))

    def unsupported(self, layer: Any, path: str, why: str = "") -> ConfigError:
        cls = type(layer)
        return ConfigError(
            f"from_torch: layer {path!r} ({cls.__module__}.{cls.__qualname__}) is not supported"
            f"{why}. Supported layer types: {self.supported()}."
        )

    def convert(self, layer: Any, path: str) -> nn.Module:
        if type(layer) in self.pad_types:
            raise self.unsupported(
                layer, path, ": a padding layer is supported only directly before a Conv layer of "
                "the same dimension inside a Sequential, where it becomes the conv's padding")
        handler = self.table.get(type(layer))
        if handler is None:
            raise self.unsupported(layer, path)
        return handler(layer, path)

    def _sequential(self, seq: Any, path: str) -> nn.Module:
        items = list(seq.named_children())
        out: list[nn.Module] = []
        i = 0
        while i < len(items):
            name, layer = items[i]
            where = f"{path}.{name}" if path else name
            nxt = items[i + 1][1] if i + 1 < len(items) else None
            if type(layer) in self.pad_types or type(layer) is self.L.SamePad:
                if nxt is None or type(nxt) not in (
                    self.torch.nn.Conv1d, self.torch.nn.Conv2d, self.torch.nn.Conv3d
                ):
                    raise self.unsupported(
                        layer, where, ": a padding layer is supported only directly before a "
                        "Conv layer, where it becomes the conv's padding")
                out.append(self._conv(nxt, f"{path}.{items[i + 1][0]}" if path else items[i + 1][0],
                                      pad=layer, pad_path=where))
                i += 2
                continue
            out.append(self.convert(layer, where))
            i += 1
        if path and len(items) == 2 and len(out) == 1:
            # a nested Sequential(pad, conv), as to_torch writes it, is just the conv
            return out[0]
        return nn.Sequential(*out)

    def _residual(self, layer: Any, path: str) -> nn.Module:
        return nn.Residual(self.convert(layer.block, f"{path}.block"))

    def _dtype(self, layer: Any, path: str) -> Any:
        dtypes = {p.dtype for p in layer.parameters()}
        if not dtypes:
            return np.float32
        names = {self.torch.float32: np.float32, self.torch.float64: np.float64}
        if len(dtypes) > 1 or next(iter(dtypes)) not in names:
            raise DTypeError(
                f"from_torch: layer {path!r} has parameters of dtype "
                f"{sorted(str(d) for d in dtypes)}; convscope takes float32 or float64. Convert "
                f"the module with module.float() or module.double() first."
            )
        return names[next(iter(dtypes))]

    @staticmethod
    def _np(tensor: Any) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def _conv(self, layer: Any, path: str, pad: Any = None, pad_path: str = "") -> nn.Module:
        nd = len(layer.kernel_size)
        if layer.transposed:  # pragma: no cover - ConvTranspose has its own types, kept for safety
            raise self.unsupported(layer, path)
        padding: Any = layer.padding
        mode = layer.padding_mode
        if not isinstance(padding, str):
            padding = tuple((int(p), int(p)) for p in padding)
        if pad is not None:
            padding, mode = self._fuse_pad(pad, pad_path, layer, path, nd, padding, mode)
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
        conv = cls(
            layer.in_channels, layer.out_channels, tuple(layer.kernel_size),
            stride=tuple(layer.stride),
            padding=padding, dilation=tuple(layer.dilation), groups=layer.groups,
            bias=layer.bias is not None, padding_mode=mode, dtype=self._dtype(layer, path),
        )
        conv.weight.data[...] = self._np(layer.weight)
        if layer.bias is not None:
            _fill(conv.bias, self._np(layer.bias))
        return conv

    def _fuse_pad(self, pad: Any, pad_path: str, conv: Any, conv_path: str, nd: int,
                  padding: Any, mode: str) -> tuple[Any, str]:
        no_own_padding = padding == "valid" or (
            padding != "same" and not any(b or a for b, a in padding))
        if type(pad) is self.L.SamePad:
            if not no_own_padding or mode != "zeros":
                raise self.unsupported(pad, pad_path,
                                       f": the conv after it ({conv_path!r}) pads too")
            if (tuple(pad.kernel_size), tuple(pad.stride), tuple(pad.dilation)) != (
                tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.dilation)
            ):
                raise self.unsupported(
                    pad, pad_path,
                    f": its kernel_size/stride/dilation differ from those of the conv "
                    f"after it ({conv_path!r})")
            return "same", pad.padding_mode
        pad_mode, pad_nd = self.pad_types[type(pad)]
        if pad_nd != nd:
            raise self.unsupported(pad, pad_path, f": it pads {pad_nd} axes but the conv after it "
                                               f"({conv_path!r}) has {nd}")
        if pad_mode == "zeros" and float(pad.value) != 0.0:
            raise self.unsupported(pad, pad_path, f": constant padding with value {pad.value} "
                                               f"(only 0 is a convolution padding)")
        flat = [int(v) for v in pad.padding]
        if any(v < 0 for v in flat):
            raise self.unsupported(pad, pad_path, ": negative padding (cropping)")
        pairs = tuple((flat[2 * (nd - 1 - i)], flat[2 * (nd - 1 - i) + 1]) for i in range(nd))
        if no_own_padding:
            return pairs, pad_mode
        if pad_mode == "zeros" and mode == "zeros" and padding != "same":
            return tuple((b + pb, a + pa) for (b, a), (pb, pa) in zip(padding, pairs)), "zeros"
        raise self.unsupported(pad, pad_path, f": the conv after it ({conv_path!r}) also pads, "
                                           f"with padding_mode {mode!r}")

    @staticmethod
    def _tuple(value: Any, nd: int) -> tuple[int, ...]:
        if isinstance(value, (tuple, list)):
            return tuple(int(v) for v in value)
        return (int(value),) * nd

    def _max_pool(self, layer: Any, path: str) -> nn.Module:
        if layer.return_indices:
            raise self.unsupported(layer, path, " with return_indices=True")
        nd = int(type(layer).__name__[-2])
        cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
        k = self._tuple(layer.kernel_size, nd)
        return cls(k, self._tuple(layer.stride if layer.stride is not None else k, nd),
                   self._tuple(layer.padding, nd), self._tuple(layer.dilation, nd),
                   bool(layer.ceil_mode))

    def _avg_pool(self, layer: Any, path: str) -> nn.Module:
        if getattr(layer, "divisor_override", None) is not None:
            raise self.unsupported(layer, path, f" with divisor_override={layer.divisor_override}")
        nd = int(type(layer).__name__[-2])
        cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd]
        k = self._tuple(layer.kernel_size, nd)
        return cls(k, self._tuple(layer.stride if layer.stride is not None else k, nd),
                   self._tuple(layer.padding, nd), bool(layer.ceil_mode),
                   bool(layer.count_include_pad))

    def _pool(self, layer: Any, path: str) -> nn.Module:
        nd = len(layer.kernel_size)
        if layer.kind == "max":
            max_cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[nd]
            return max_cls(layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                           layer.ceil_mode)
        avg_cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[nd]
        return avg_cls(layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                   layer.count_include_pad)

    def _adaptive(self, layer: Any, path: str) -> nn.Module:
        name = type(layer).__name__          # AdaptiveAvgPool2d, AdaptiveMaxPool1d, ...
        if getattr(layer, "return_indices", False):
            raise self.unsupported(layer, path, ": return_indices=True returns two tensors")
        return getattr(nn, name)(layer.output_size)

    def _blur_pool(self, layer: Any, path: str) -> nn.Module:
        cls = {1: nn.BlurPool1d, 2: nn.BlurPool2d, 3: nn.BlurPool3d}.get(layer.ndim)
        if cls is None:
            raise self.unsupported(layer, path, f" with {layer.ndim} spatial axes")
        return cls(layer.channels, layer.filter_size, layer.stride, layer.padding_mode)

    def _normalize(self, layer: Any, path: str) -> nn.Module:
        mean, std = self._np(layer.mean).reshape(-1), self._np(layer.std).reshape(-1)
        dtype = np.float64 if mean.dtype == np.float64 else np.float32
        return nn.Normalize(mean, std, dtype=dtype)

    def _softmax(self, layer: Any, path: str) -> nn.Module:
        if layer.dim is None:
            raise self.unsupported(layer, path, " with dim=None (name the axis: nn.Softmax(dim=1))")
        return nn.Softmax(layer.dim)

    def _flatten(self, layer: Any, path: str) -> nn.Module:
        if layer.end_dim != -1:
            raise self.unsupported(layer, path,
                                   f" with end_dim={layer.end_dim} (only -1, the last axis)")
        return nn.Flatten(layer.start_dim)

    def _linear(self, layer: Any, path: str) -> nn.Module:
        fc = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                       dtype=self._dtype(layer, path))
        fc.weight.data[...] = self._np(layer.weight)
        if layer.bias is not None:
            _fill(fc.bias, self._np(layer.bias))
        return fc

    def _batch_norm(self, layer: Any, path: str) -> nn.Module:
        cls = {"BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d}[type(layer).__name__]
        dtype = self._dtype(layer, path)
        if not layer.affine and layer.running_mean is not None:
            dtype = {self.torch.float32: np.float32, self.torch.float64: np.float64}.get(
                layer.running_mean.dtype, np.float32)
        bn = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                 track_running_stats=layer.track_running_stats, dtype=dtype)
        if layer.affine:
            _fill(bn.weight, self._np(layer.weight))
            _fill(bn.bias, self._np(layer.bias))
        if layer.track_running_stats:
            _fill(bn.running_mean, self._np(layer.running_mean))
            _fill(bn.running_var, self._np(layer.running_var))
            _fill(bn.num_batches_tracked, int(layer.num_batches_tracked))
        return bn


def _fill(target: nn.Parameter | np.ndarray | None, value: Any) -> None:
    """Copy ``value`` into a parameter or buffer of a layer just built to have it."""
    assert target is not None, "the layer was built with this parameter or buffer"
    (target.data if isinstance(target, nn.Parameter) else target)[...] = value


def from_torch(module: Any, input_shape: Any = None, *, example_input: Any = None) -> nn.Module:
    """A convscope model that computes what a PyTorch module computes.

    A ``torch.nn.Sequential`` of supported layers becomes a convscope ``Sequential``; any
    other module whose ``forward`` torch.fx can trace to supported operations (a ResNet,
    MobileNet, DenseNet, ShuffleNet ...) becomes an ``nn.Graph`` with one node per traced
    operation, named by torch's qualified names (see :mod:`convscope.export.fx`).

    Args:
        module: a ``torch.nn.Module``; in a Sequential (nested ones allowed) or called in a
            traced forward, the supported layers are:
            ``Conv1d/2d/3d`` (any padding, ``padding_mode``, dilation, groups),
            ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``, ``ReLU``, ``LeakyReLU``, ``Sigmoid``,
            ``Tanh``, ``Softmax``, ``Flatten``, ``Linear``, ``Dropout``,
            ``BatchNorm1d/2d``, the padding layers directly before a conv, and the layers of
            :mod:`convscope.export.torch_layers` (``BlurPool``, ``Residual``, ``Pool``,
            ``Normalize``, and
            ``SamePad`` before a conv). A single supported layer works too.
        input_shape: the shape of one input sample without the batch axis, e.g.
            ``(3, 224, 224)``; needed only when the traced forward uses sizes
            (``x.size()``, ``chunk``, ``transpose``, ``mean``): the module is then run once
            (eval mode, no gradients, state untouched) to find them.
        example_input: a tensor (with batch axis) to use instead of ``input_shape``.

    Returns:
        A convscope ``Sequential`` (or the single layer), or an ``nn.Graph``, with copies of
        the weights and running statistics, in the module's dtype and training/eval mode.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: an unsupported layer or operation, named with its position
            (``"features.3"``) or torch.fx node and type, and the list of supported ones; a
            module with parameters called twice; a forward torch.fx cannot trace.
        DTypeError: parameters that are not float32 or float64.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
        >>> from_torch(net)
        Sequential(
          (0): Conv2d(1, 2, kernel_size=(3, 3))
          (1): ReLU()
          (2): Flatten()
        )
        >>> up = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Upsample(scale_factor=2))
        >>> from_torch(up)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        convscope.errors.ConfigError: from_torch: layer '1' (...Upsample) is not supported. ...
    """
    import_torch("from_torch")
    layers = _layers()
    if not isinstance(module, layers.torch.nn.Module):
        raise ArgumentTypeError(
            f"from_torch: module must be a torch.nn.Module (usually torch.nn.Sequential); got "
            f"{type(module).__name__}."
        )
    converter = _FromTorch(layers)
    if sequential_convertible(converter, module):
        model = converter.convert(module, "")
    else:
        model = graph_from_torch(converter, module, input_shape, example_input)
    model.train(bool(module.training))
    return model
