"""One pixel of a model's feature map, explained: where it looks and the arithmetic that made it.

:func:`plot_feature_pixel` runs one input through the model (:func:`forward_layers`), finds
the pixel's receptive field on the input (:func:`convscope.explain.receptive_field`) and draws
the input with that region outlined beside the layer's feature map with the pixel marked.
:func:`pixel_arithmetic` draws the computation of that one number with explain's traces: for a
convolution the window of the layer's input, the filter, the products and the sum
(:func:`~convscope.viz.plot_conv2d` / :func:`~convscope.viz.plot_conv1d`), for a pooling its
receptive field and maximum. :func:`convscope.viz.notebook.feature_explorer` puts both behind a
click in Jupyter, as the HTML explainer does in a browser.

Example:
    >>> from convscope import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2))
    >>> x = np.eye(6)
    >>> plot_feature_pixel(model, x, layer=1, channel=1, pixel=(2, 3)).title
    'layer 1: Conv2d(1, 2, kernel_size=(3, 3), padding=(1, 1)), channel 2, pixel (2, 3)'
    >>> pixel_arithmetic(model, x, layer=1, channel=1, pixel=(2, 3)).title.startswith("2-D convolution")
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, ShapeError
from ..explain import receptive_field, trace_conv, trace_pool
from ._canvas import ACCENTS, Canvas
from .activations import forward_layers
from .figure import Figure
from .notes_conv import plot_conv1d, plot_conv2d
from .notes_pool import plot_pool

__all__ = ["plot_feature_pixel", "pixel_arithmetic", "spatial_layers"]


def spatial_layers(model: Any, x: Any) -> list[tuple[int, str, str]]:
    """``(index, name, layer)`` of every layer whose output still has spatial axes (and a channel axis)."""
    _, acts = forward_layers(model, x, "spatial_layers")
    return [(a.index, a.name, repr(a.module).split("\n")[0]) for a in acts if a.y.ndim >= 3 and not a.nested]


def _activation(model: Any, x: Any, layer: int, op: str):
    xb, acts = forward_layers(model, x, op)
    found = [a for a in acts if a.index == int(layer)]
    if not found:
        raise ConfigError(f"{op}: the model has layers 1..{len(acts)}; got layer {layer!r}.")
    act = found[0]
    if act.y.ndim < 3:
        raise ConfigError(f"{op}: layer {layer} ({type(act.module).__name__}) has no spatial output to pick a "
                          f"pixel from (shape {act.y.shape}).")
    return xb, act


def _pixel(act: Any, channel: int, pixel: Any, op: str) -> tuple[int, tuple[int, ...]]:
    spatial = act.y.shape[2:]
    if not 0 <= int(channel) < act.y.shape[1]:
        raise ShapeError(f"{op}: channel must be 0..{act.y.shape[1] - 1}; got {channel!r}.")
    if pixel is None:
        flat = int(np.argmax(act.y[0, int(channel)]))
        pixel = np.unravel_index(flat, spatial)
    idx = (int(pixel),) if np.ndim(pixel) == 0 else tuple(int(v) for v in pixel)
    if len(idx) != len(spatial) or any(not 0 <= i < n for i, n in zip(idx, spatial)):
        raise ShapeError(f"{op}: pixel must be a 0-based position inside {spatial}; got {pixel!r}.")
    return int(channel), idx


def plot_feature_pixel(model: Any, x: Any, layer: int, channel: int = 0, pixel: Any = None) -> Figure:
    """Draw the input with the receptive field of one feature-map pixel, beside that feature map.

    Args:
        model: a :class:`convscope.nn.Module` on 1-D or 2-D inputs.
        x: one sample (as :func:`convscope.viz.forward_layers` takes it).
        layer: the 1-based layer number (as :func:`convscope.summary`).
        channel: the 0-based output channel.
        pixel: the 0-based position in that channel; default its largest value.

    Returns:
        A :class:`~convscope.viz.Figure`.
    """
    op = "plot_feature_pixel"
    xb, act = _activation(model, x, layer, op)
    channel, idx = _pixel(act, channel, pixel, op)
    rf = receptive_field(model, xb.shape, pixel=idx, layer=int(layer))
    img = xb[0].mean(axis=0)
    fmap = act.y[0, channel]
    if img.ndim == 1:
        img, fmap = img[None], fmap[None]
    assert rf.mask is not None and rf.exact is not None  # receptive_field was given a pixel
    mask = rf.mask if rf.mask.ndim == 2 else rf.mask[None]
    h, w = img.shape
    c = Canvas(cell_in=min(0.45, max(0.12, 7.0 / max(w, 1))))
    numbers = h * w <= 144
    c.text(0.0, -0.5, "input (mean over channels)" if xb.shape[1] > 1 else "input", scale=0.9, weight="bold")
    c.matrix(img, 0.0, 0.0, cmap="gray", numbers=numbers)
    rows, cols = np.nonzero(mask)
    c.rect(cols.min() - 0.05, rows.min() - 0.05, cols.max() - cols.min() + 1.1, rows.max() - rows.min() + 1.1,
           edge=ACCENTS["match"], lw=3.0)
    fh, fw = fmap.shape
    scale = max(1.0, min(h / fh, w / fw))
    x0 = w + 3.0
    c.text(x0, -0.5, f"layer {layer} output, channel {channel + 1}", scale=0.9, weight="bold")
    cmap = "diverging" if fmap.min() < 0 else "sequential"
    c.matrix(fmap, x0, 0.0, cmap=cmap, numbers=fh * fw <= 144 and scale >= 1.0, cell=scale)
    pi = idx if len(idx) == 2 else (0,) + idx
    c.rect(x0 + pi[1] * scale - 0.05, pi[0] * scale - 0.05, scale + 0.1, scale + 0.1, edge=ACCENTS["match"], lw=3.0)
    sizes = "x".join(str(int(a[-1] - a[0] + 1)) for a in rf.exact)
    c.text(0.0, max(h, fh * scale) + 0.9, f"the orange region ({sizes} entries of the input) is all that pixel "
           f"{idx} can see: its receptive field (Definition 50)", scale=0.85)
    title = f"layer {layer}: {repr(act.module).splitlines()[0]}, channel {channel + 1}, pixel {idx}"
    return c.finish(title, f"value {float(fmap[pi]):.6g}; receptive field from convscope.explain.receptive_field")


def pixel_arithmetic(model: Any, x: Any, layer: int, channel: int = 0, pixel: Any = None,
                     max_channels: int = 3) -> Figure:
    """Draw how one feature-map pixel was computed: its window, filter, products and sum (or max).

    Args:
        model, x, layer, channel, pixel: as :func:`plot_feature_pixel`.
        max_channels: input channels drawn at most for a convolution (the sum covers all).

    Returns:
        A :class:`~convscope.viz.Figure`; the numbers come from
        :func:`~convscope.explain.trace_conv` / :func:`~convscope.explain.trace_pool` on the
        layer's own input, and equal the model's forward.

    Raises:
        ConfigError: a layer that is neither a convolution nor a pooling (a grouped
            convolution is drawn with its group's input channels).
    """
    op = "pixel_arithmetic"
    _, act = _activation(model, x, layer, op)
    channel, idx = _pixel(act, channel, pixel, op)
    win = act.module.window
    xin = np.asarray(act.x[0], dtype=np.float64)
    if win is not None:
        pairs = win.padding_pairs(xin.shape[1:])
    if win is not None and win.op == "conv":
        module = act.module
        s, d, mode = win.stride, win.dilation, win.padding_mode
        w = np.asarray(module.weight.data[channel], dtype=np.float64)
        b = float(module.bias.data[channel]) if getattr(module, "bias", None) is not None else 0.0
        notes = []
        if win.groups != 1:   # a grouped (depthwise) conv: the filter reads its group's channels only
            per_in, group = w.shape[0], channel // (module.weight.shape[0] // win.groups)
            xin = xin[group * per_in:(group + 1) * per_in]
            notes.append(f"group {group + 1} of {win.groups}: input channels {group * per_in + 1}.."
                         f"{(group + 1) * per_in} of the layer's input are channels 1..{per_in} here")
        keep = min(max_channels, xin.shape[0])
        if keep < xin.shape[0]:
            # the other channels' share enters as the offset, so the drawn sum is still the output
            rest = trace_conv(xin[keep:], w[keep:], 0.0, s, pairs, d, mode, channels=True)
            share = float(rest.step(idx).y)
            notes.append(f"f_0 here = the layer's bias {b:.3g} + {share:.3g}, the sum of f \u2299 v over input "
                         f"channels {keep + 1}..{xin.shape[0]} (not drawn)")
            b += share
            xin, w = xin[:keep], w[:keep]
        note = "; ".join(notes) or None
        t = trace_conv(xin, w, b, s, pairs, d, mode, channels=True)
        if t.y.ndim == 2:
            return plot_conv2d(t, at=idx, note=note)
        return plot_conv1d(trace_conv(xin[0], w[0], b, s, pairs, d))
    if win is not None and win.op in ("max", "avg"):
        pt = trace_pool(xin[channel], win.kernel_size, win.stride, kind=win.op,
                        padding=tuple(b for b, _ in pairs), dilation=win.dilation if win.op == "max" else 1,
                        ceil_mode=win.ceil_mode)
        return plot_pool(pt)
    effect = act.layer.effect
    why = {"merge": "its pixel combines the same pixel of each of its inputs",
           "global": "each of its values reads the whole of its input (global pooling)"}.get(
        effect, "its pixel is a function of the same pixel of its input")
    raise ConfigError(f"{op}: layer {layer} ({type(act.module).__name__}) is not a convolution or a max/avg "
                      f"pooling; {why}.")
