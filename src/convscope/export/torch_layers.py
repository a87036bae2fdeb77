"""The small torch layers that :func:`convscope.export.to_torch` uses where PyTorch has none.

* :class:`BlurPool`: the binomial filter as a fixed depthwise convolution after padding.
* :class:`Residual`: ``x + block(x)``.
* :class:`SamePad`: convscope's ``padding="same"`` for any stride (TensorFlow's rule).
* :class:`Pool`: max or average pooling with any ``(before, after)`` padding or ``"same"``.
* :class:`Normalize`: ``(x - mean[c]) / std[c]``, a model's input standardisation.

torch is optional, so the classes are defined on first use; ``from
convscope.export.torch_layers import BlurPool`` (and unpickling a module that holds one)
imports torch then, or raises :class:`~convscope.errors.MissingDependencyError` naming the
extra ``convscope[torch]``.

Example:
    >>> import torch
    >>> from convscope.export.torch_layers import Residual
    >>> Residual(torch.nn.Identity())(torch.ones(2)).tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ConfigError, import_optional
from ..functional import binomial_filter
from ..shapes import blur_padding, pool_output_size, same_padding

__all__ = ["BlurPool", "Residual", "SamePad", "Pool", "Normalize", "import_torch", "layers"]

TORCH_EXTRA = 'pip install "convscope[torch]"'

_CUSTOM = ("BlurPool", "Residual", "SamePad", "Pool", "Normalize")
_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def import_torch(what: str = "to_torch") -> Any:
    """The ``torch`` module, or a :class:`MissingDependencyError` naming the extra."""
    return import_optional("torch", what, TORCH_EXTRA)


def __getattr__(name: str) -> Any:
    # The custom torch layers exist only once torch is imported (torch is optional).
    if name in _CUSTOM:
        return getattr(layers(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch_pads(pairs: Any) -> list[int]:
    """Pairs per spatial axis in ``torch.nn.functional.pad``'s order (last axis first)."""
    flat: list[int] = []
    for before, after in reversed(list(pairs)):
        flat += [int(before), int(after)]
    return flat


@functools.cache
def layers() -> SimpleNamespace:
    """The custom torch layers (defined once, on first use) and the torch module."""
    torch = import_torch("convscope.export.torch")
    F = torch.nn.functional
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
    max_pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    avg_pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
    # torch is imported at run time (optional), so the base class is a value to the type checker.
    TorchModule: Any = torch.nn.Module

    class BlurPool(TorchModule):
        """convscope's BlurPool: pad, blur each channel with the binomial filter, subsample.

        ``filter_size - 1`` cells of padding per axis (the odd one after), then a depthwise
        convolution with the fixed filter (a buffer, not a parameter) and the stride.
        """

        def __init__(self, channels: int, filter_size: int = 4, stride: Any = 2,
                     padding_mode: str = "reflect", ndim: int = 2) -> None:
            super().__init__()
            self.channels = int(channels)
            self.filter_size = int(filter_size)
            self.ndim = int(ndim)
            self.stride = (int(stride),) * self.ndim if isinstance(stride, int) else tuple(stride)
            self.padding_mode = padding_mode
            filt = binomial_filter(self.filter_size, self.ndim)
            weight = np.broadcast_to(filt, (self.channels, 1) + filt.shape).astype(np.float32)
            self.register_buffer("filter", torch.from_numpy(weight.copy()), persistent=False)

        def forward(self, x: Any) -> Any:
            if self.filter_size > 1:
                pads = _torch_pads([blur_padding(self.filter_size)] * self.ndim)
                x = F.pad(x, pads, mode=_TORCH_PAD_MODE[self.padding_mode])
            return conv[self.ndim](x, self.filter, stride=self.stride, groups=self.channels)

        def extra_repr(self) -> str:
            return (f"{self.channels}, filter_size={self.filter_size}, stride={self.stride}, "
                    f"padding_mode={self.padding_mode!r}, ndim={self.ndim}")

    class Residual(TorchModule):
        """A skip connection: ``x + block(x)``."""

        def __init__(self, block: Any) -> None:
            super().__init__()
            self.block = block

        def forward(self, x: Any) -> Any:
            return x + self.block(x)

    class SamePad(TorchModule):
        """convscope's ``padding="same"`` for any stride: ``ceil(n / s)`` outputs per axis.

        Total padding ``max((ceil(n/s) - 1)*s + d*(k-1) + 1 - n, 0)`` per axis, the odd one
        after (see :func:`convscope.shapes.same_padding`), computed from each input's size.
        """

        def __init__(self, kernel_size: Any, stride: Any, dilation: Any,
                     padding_mode: str = "zeros") -> None:
            super().__init__()
            self.kernel_size = tuple(kernel_size)
            self.stride = tuple(stride)
            self.dilation = tuple(dilation)
            self.padding_mode = padding_mode

        def forward(self, x: Any) -> Any:
            pairs = [same_padding(int(n), k, s, d) for n, k, s, d in
                     zip(x.shape[2:], self.kernel_size, self.stride, self.dilation)]
            return F.pad(x, _torch_pads(pairs), mode=_TORCH_PAD_MODE[self.padding_mode])

        def extra_repr(self) -> str:
            return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                    f"dilation={self.dilation}, padding_mode={self.padding_mode!r}")

    class Pool(TorchModule):
        """Max or average pooling with any ``(before, after)`` padding or ``"same"``.

        Output size and windows follow PyTorch (and convscope): in ceil mode a last window
        that starts inside the input or its left padding is kept. Max pooling pads with
        ``-inf``; average pooling divides by the cells inside the padded input
        (``count_include_pad=True``) or inside the input only (False).
        """

        def __init__(self, kind: str, kernel_size: Any, stride: Any, padding: Any,
                     dilation: Any = None, ceil_mode: bool = False,
                     count_include_pad: bool = True) -> None:
            super().__init__()
            if kind not in ("max", "avg"):
                raise ConfigError(f"Pool: kind must be 'max' or 'avg'; got {kind!r}.")
            self.kind = kind
            self.kernel_size = tuple(kernel_size)
            nd = len(self.kernel_size)
            self.stride = tuple(stride)
            self.padding = padding if padding == "same" else tuple(tuple(p) for p in padding)
            self.dilation = (1,) * nd if dilation is None else tuple(dilation)
            self.ceil_mode = bool(ceil_mode)
            self.count_include_pad = bool(count_include_pad)

        def forward(self, x: Any) -> Any:
            nd = len(self.kernel_size)
            n = [int(v) for v in x.shape[2:]]
            geometry = list(zip(n, self.kernel_size, self.stride, self.dilation))
            pairs = ([same_padding(*g) for g in geometry] if self.padding == "same"
                     else list(self.padding))
            padded = []
            for (size, k, s, d), p in zip(geometry, pairs):
                out = pool_output_size(size, k, p, s, d, self.ceil_mode)
                # pad the end far enough that floor mode yields exactly `out` windows
                padded.append((p[0], max(p[1], (out - 1) * s + d * (k - 1) + 1 - size - p[0])))
            if self.kind == "max":
                xp = F.pad(x, _torch_pads(padded), value=float("-inf"))
                return max_pool[nd](xp, self.kernel_size, self.stride, 0, self.dilation)
            xp = F.pad(x, _torch_pads(padded))
            counted = pairs if self.count_include_pad else [(0, 0)] * nd
            # ones where a cell counts in the divisor (the input, and the padding if included)
            mask = x.new_ones((1, 1, *(size + cb + ca for size, (cb, ca) in zip(n, counted))))
            rest = [(b - cb, a - ca) for (b, a), (cb, ca) in zip(padded, counted)]
            mask = F.pad(mask, _torch_pads(rest))
            # mean over the window = window sum / number of cells that count
            pool = avg_pool[nd]
            counts = pool(mask, self.kernel_size, self.stride)
            return pool(xp, self.kernel_size, self.stride) / counts

        def extra_repr(self) -> str:
            text = (f"{self.kind!r}, kernel_size={self.kernel_size}, stride={self.stride}, "
                    f"padding={self.padding!r}")
            if self.kind == "max":
                text += f", dilation={self.dilation}"
            else:
                text += f", count_include_pad={self.count_include_pad}"
            return text + f", ceil_mode={self.ceil_mode}"

    class Normalize(TorchModule):
        """convscope's Normalize: ``(x - mean[c]) / std[c]`` per channel (axis 1).

        ``mean`` and ``std`` are buffers (saved in the ``state_dict``, not trained), so the
        module takes raw pixels as the convscope model does.
        """

        def __init__(self, mean: Any, std: Any) -> None:
            super().__init__()
            mean = np.atleast_1d(np.asarray(mean, dtype=np.float32)).reshape(-1)
            std = np.atleast_1d(np.asarray(std, dtype=np.float32)).reshape(-1)
            self.register_buffer("mean", torch.from_numpy(mean.copy()))
            self.register_buffer("std", torch.from_numpy(std.copy()))

        def forward(self, x: Any) -> Any:
            per_channel = (1, -1) + (1,) * (x.dim() - 2)
            return (x - self.mean.reshape(per_channel)) / self.std.reshape(per_channel)

        def extra_repr(self) -> str:
            return f"mean={self.mean.tolist()}, std={self.std.tolist()}"

    classes = dict(BlurPool=BlurPool, Residual=Residual, SamePad=SamePad, Pool=Pool,
                   Normalize=Normalize)
    for name, cls in classes.items():  # so pickling finds them as convscope.export.torch.<name>
        cls.__module__ = __name__
        cls.__qualname__ = name
    return SimpleNamespace(torch=torch, **classes)
