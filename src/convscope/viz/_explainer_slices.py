"""What one layer of the HTML explainer embeds for its clicks: a block of positions, under a per-layer cap.

Design (issue #14, a ResNet-18 on a 224 x 224 image): every layer gets its own cap on
embedded numbers (``max_layer_numbers``), so the early, large layers can no longer spend a
page-wide budget that the late layers then miss. Within its cap a layer embeds exactly what a
click on it needs, and nothing twice:

* its **values tile**: the outputs of the shown channels on a centred block of positions
  (:func:`tile_of`), the whole map when it fits half the cap. A click inside the tile (the
  dashed box on the maps) shows the arithmetic; outside it the page says where the tile is.
  Layers of the same output shape and channels get the same tile, so an elementwise layer
  (ReLU, BatchNorm, Add, ...) reads its input from the tile of the layer before it;
* for a convolution, the **padded input patch** under its tile, every input channel of the
  groups (a dot product runs over all of them, shown or not) - not the whole padded input -
  and the **filters of the shown channels, as many as fit** (at least one; the page names
  the others as left out) - not the whole bank;
* for a pooling layer, the input region its tile's windows read (shown channels);
* for a Linear layer, the input vector and the weight rows of the largest outputs, as many
  as fit;
* a merge that is not elementwise reads each input where its tile's values come from
  (:func:`merge_reads`): a Concat's input on the channels it contributes (the Concat's tile
  lies inside its inputs' tiles), a Mul's broadcast input (an SE gate ``(C, 1, 1)``) at
  position 0 of its size-1 axes - so it is tiny and read whole - and a ChannelShuffle's input
  on the source channels of the shown ones;
* an adaptive pooling reads the input windows of its tile (:func:`adaptive_region`; a global
  pooling its whole channels), a reference to the producer's tile when that covers them;
* an input slice of its own only when the producer's tile does not cover what it reads.

The tile shrinks (longest axis first) until the layer's numbers fit its cap. Every number is
the library's own, little-endian float bytes of the model's dtype in base64
(:func:`convscope.viz._explainer_data.b64`), so the dot product the page shows reproduces the
embedded output to float rounding. The backward passes embed ``dL/dy`` on the same tiles, and
what a merge sends back to each input where that input is read (:func:`sent_region`; an Add's
copy and a Concat's channel slice of ``dL/dy`` name the channels of ``dL/dy`` they equal bit for
bit instead of repeating them); a
filter's ``dL/dW`` (a sum over every output position) is checked on the first input channels,
from their full input planes and the filter's full ``dL/dy`` plane (:func:`dw_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..functional.windows import pad
from .activations import LayerActivation

__all__ = ["tile_of", "block", "Slice", "window_span", "conv_numbers", "conv_need", "pool_region", "pool_input",
           "dw_inputs", "dw_need", "padded_patch", "linear_rows", "covers", "merge_reads", "concat_parts",
           "shuffle_source", "sent_region", "same_as_dy", "adaptive_region", "MERGES", "WINDOWED", "ADAPTIVE",
           "DW_CHANNELS", "DW_FILTERS"]

WINDOWED = ("conv", "max_pool", "avg_pool", "blur_pool")
ADAPTIVE = ("adaptive_avg_pool", "adaptive_max_pool")     # windows from the sizes (PyTorch's floor / ceil)
MERGES = ("concat", "mul", "channel_shuffle", "split")  # merges and plumbing whose inputs merge_reads reads
DW_CHANNELS = 2          # input channels whose dL/dW the page re-derives on a tiled layer
DW_FILTERS = 2           # filters of a tiled layer with a dL/dW check


def tile_of(spatial: Sequence[int], need: Callable[[list[int]], int], cap: int,
            size: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
    """The centred block (start, size per axis) of at most ``size`` positions whose ``need(size)``
    numbers fit ``cap``.

    The whole map (or ``size``) when it fits; else the longest axis shrinks first, one
    position at a time, down to one position.
    """
    size = [int(n) for n in (spatial if size is None else size)]
    while need(size) > cap and max(size) > 1:
        size[int(np.argmax(size))] -= 1
    return [(int(n) - t) // 2 for n, t in zip(spatial, size)], size


def block(a: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``a[..., start:start + size]`` over the trailing axes."""
    index = tuple(slice(s, s + t) for s, t in zip(start, size))
    return a[(Ellipsis,) + index]


class Slice:
    """A block of an array as the page reads it: channels, start and size per spatial axis, numbers."""

    @staticmethod
    def of(a: np.ndarray, channels: list[int] | None, start: Sequence[int], size: Sequence[int],
           dtype: np.dtype, b64: Any) -> dict[str, Any]:
        part = block(a if channels is None else a[channels], start, size)
        return {"channels": channels, "start": [int(s) for s in start], "tile": [int(t) for t in size],
                "data": b64(part, dtype)}


def window_span(window: Any, start: Sequence[int], size: Sequence[int]) -> tuple[list[int], list[int]]:
    """First and last padded position (per axis) the windows of outputs ``start .. start+size-1`` read."""
    first = [st * s for st, s in zip(start, window.stride)]
    last = [(st + t - 1) * s + d * (k - 1) for st, t, s, d, k in
            zip(start, size, window.stride, window.dilation, window.kernel_size)]
    return first, last


def padded_patch(x: Any, window: Any, start: Sequence[int], size: Sequence[int],
                 channels: list[int] | None = None) -> tuple[np.ndarray, list[int], list, list[int]]:
    """The part of sample 0's padded input (``channels``, default all) that the windows of
    outputs ``start .. start+size-1`` read: ``(patch, first padded position, padding pairs,
    padded shape)``."""
    x_in = np.asarray(x)
    pairs = window.padding_pairs(x_in.shape[2:])
    first, last = window_span(window, start, size)
    xp = pad(x_in, pairs, window.padding_mode)[0]
    if channels is not None:
        xp = xp[channels]
    patch = xp[(slice(None),) + tuple(slice(f, min(e + 1, xp.shape[1 + a])) for a, (f, e) in
                                      enumerate(zip(first, last)))]
    return patch, first, pairs, list(xp.shape)


def conv_numbers(act: LayerActivation, shown: list[int], start: Sequence[int], size: Sequence[int],
                 cap: int, dtype: np.dtype, b64: Any) -> dict[str, Any]:
    """A convolution's geometry, the padded input patch under the tile, and the filters that fit.

    ``cap``: the numbers left for the patch and the filters; the patch and one filter must fit
    (the caller shrinks the tile until they do), then further shown filters join while they fit.
    """
    m: Any = act.module
    geo = m.window
    n = act.x.shape[2:]
    patch, first, pairs, padded_full = padded_patch(act.x, geo, start, size)
    per_filter = int(np.prod(m.weight.data.shape[1:]))
    room = cap - patch.size
    filters = shown[:max(0, min(len(shown), room // max(per_filter, 1)))]
    data: dict[str, Any] = {
        "k": list(geo.kernel_size), "s": list(geo.stride), "d": list(geo.dilation),
        "p_before": [b for b, _ in pairs], "n": list(n), "groups": int(geo.groups),
        "c_in": int(m.in_channels), "c_out": int(m.out_channels), "padding_mode": geo.padding_mode,
        "channels": filters, "padded": None, "padded_start": first, "padded_shape": list(patch.shape),
        "padded_full": padded_full, "weights": None, "bias": None, "note": None,
    }
    if not filters:
        data["note"] = (f"The input patch and one filter of this layer ({patch.size + per_filter:,} numbers) "
                        f"exceed the cap of {cap:,} numbers per layer (max_layer_numbers). Pictures only.")
        return data
    data["padded"] = b64(patch, dtype)
    data["weights"] = b64(m.weight.data[filters], dtype)
    data["bias"] = None if m.bias is None else [float(v) for v in m.bias.data[filters]]
    if len(filters) < len(shown):
        data["note"] = (f"Filters of channels {filters[0] + 1}..{filters[-1] + 1} are embedded; the other "
                        f"{len(shown) - len(filters)} shown channels' filters do not fit the cap of {cap:,} "
                        f"numbers per layer (max_layer_numbers).")
    return data


def conv_need(act: LayerActivation, shown: list[int], start: Sequence[int], size: Sequence[int]) -> int:
    """Numbers of a convolution's tile: values, the padded input patch and one filter."""
    m: Any = act.module
    first, last = window_span(m.window, start, size)
    patch = int(m.in_channels) * int(np.prod([e - f + 1 for f, e in zip(first, last)]))
    return len(shown) * int(np.prod(size)) + patch + int(np.prod(m.weight.data.shape[1:]))


def pool_region(act: LayerActivation, start: Sequence[int], size: Sequence[int]) -> tuple[list[int], list[int]]:
    """The input positions (unpadded, clipped to the input) the tile's windows read: start and size."""
    m: Any = act.module
    n = act.x.shape[2:]
    pairs = m.window.padding_pairs(n)
    first, last = window_span(m.window, start, size)
    lo = [max(0, f - b) for f, (b, _) in zip(first, pairs)]
    hi = [min(int(k) - 1, e - b) for e, (b, _), k in zip(last, pairs, n)]
    return lo, [max(1, h - l + 1) for l, h in zip(lo, hi)]


def pool_input(act: LayerActivation, shown: list[int], start: Sequence[int], size: Sequence[int],
               dtype: np.dtype, b64: Any) -> dict[str, Any]:
    """The input region a pooling tile reads, shown channels."""
    lo, span = pool_region(act, start, size)
    return Slice.of(np.asarray(act.x)[0], shown, lo, span, dtype, b64)


def adaptive_region(n: Sequence[int], out: Sequence[int], start: Sequence[int],
                    size: Sequence[int]) -> tuple[list[int], list[int]]:
    """The input positions (start, size per axis) that the windows of adaptive-pooling outputs
    ``start .. start+size-1`` read: output ``i`` of an axis of ``n`` inputs and ``out`` outputs
    reads ``floor(i*n/out) .. ceil((i+1)*n/out) - 1`` (PyTorch's windows)."""
    lo = [int(s) * int(k) // int(o) for s, k, o in zip(start, n, out)]
    hi = [-(-(int(s) + int(t)) * int(k) // int(o)) for s, t, k, o in zip(start, size, n, out)]
    return lo, [h - l for l, h in zip(lo, hi)]


def linear_rows(act: LayerActivation, cap: int) -> list[int]:
    """The output rows of a Linear layer whose weights fit ``cap``: the largest outputs first."""
    module: Any = act.module
    w = np.asarray(module.weight.data)
    order = [int(i) for i in np.argsort(-np.asarray(act.y[0], dtype=np.float64), kind="stable")]
    return sorted(order[:max(0, min(len(order), cap // max(int(w.shape[1]), 1)))])


def covers(entry: dict[str, Any] | None, channels: list[int] | None, start: Sequence[int],
           size: Sequence[int]) -> bool:
    """Whether an embedded values entry holds ``channels`` on the block ``start .. start+size-1``."""
    if entry is None or entry.get("data") is None:
        return False
    if entry.get("channels") is not None and (channels is None or not set(channels) <= set(entry["channels"])):
        return False
    if "start" not in entry:
        return True
    return all(es <= s and s + t <= es + et for es, et, s, t in zip(entry["start"], entry["tile"], start, size))


def dw_inputs(act: LayerActivation, filters: list[int], dtype: np.dtype, b64: Any,
              from_input: bool) -> dict[str, Any] | None:
    """For a tiled convolution: the full (unpadded) input planes of the first input channels of the
    first filters' group, which the page pads and multiplies by the filter's full dL/dy plane.

    ``from_input``: the layer reads the model's input, which the page embeds whole (no planes then).
    None for other padding modes than zeros (the page pads with zeros) or no filter.
    """
    m: Any = act.module
    if not filters or m.window.padding_mode != "zeros":
        return None
    gsize = int(m.in_channels) // int(m.window.groups)
    group = filters[0] // (int(m.out_channels) // int(m.window.groups))
    chosen = [f for f in filters if f // (int(m.out_channels) // int(m.window.groups)) == group][:DW_FILTERS]
    channels = list(range(group * gsize, group * gsize + min(gsize, DW_CHANNELS)))
    return {"filters": chosen, "channels": channels, "from_input": from_input,
            "planes": None if from_input else b64(np.asarray(act.x)[0, channels], dtype)}


def dw_need(act: LayerActivation, from_input: bool) -> int:
    """Numbers of :func:`dw_inputs` (the input planes), known from the shapes."""
    window: Any = act.module.window
    return 0 if from_input else min(int(act.x.shape[1]) // int(window.groups), DW_CHANNELS) * \
        int(np.prod(act.x.shape[2:]))


def concat_parts(act: LayerActivation) -> tuple[int, list[int], list[int]]:
    """A Concat's axis (of the batched tensors) and each input's offset and size along it."""
    axis = int(getattr(act.module, "dim", 1)) % act.y.ndim
    sizes = [int(x.shape[axis]) for x in act.inputs]
    return axis, [int(v) for v in np.cumsum([0] + sizes[:-1])], sizes


def axis_word(axis: int) -> str:
    """What axis ``axis`` of a batched (N, C, H, W) tensor is called: channels, rows, columns."""
    return {1: "channels", 2: "rows", 3: "columns"}.get(axis, f"axis {axis}")


def piece_text(act: LayerActivation, k: int, who: str) -> str:
    """``piece 2 of layer 19's split (channels 9..16 of its input)``: piece ``k`` of Split ``act``."""
    axis, lo, hi = piece_range(act, k)
    return f"piece {k + 1} of {who}'s split ({axis_word(axis)} {lo + 1}..{hi} of its input)"


def piece_range(act: LayerActivation, k: int) -> tuple[int, int, int]:
    """A Split's piece ``k``: the axis (of the batched tensors) and ``[lo, hi)`` along it."""
    axis = int(getattr(act.module, "dim", 1)) % act.x.ndim
    sizes = [int(y.shape[axis]) for y in act.outputs]
    lo = sum(sizes[:k])
    return axis, lo, lo + sizes[k]


def shuffle_source(c: int, channels: int, groups: int) -> int:
    """The input channel that output channel ``c`` of a channel shuffle comes from: channels viewed
    as ``(groups, channels/groups)`` and transposed, so output ``c = j*groups + i`` is input
    ``i*(channels/groups) + j``."""
    return (c % groups) * (channels // groups) + c // groups


def merge_reads(act: LayerActivation, i: int, shown: list[int],
                tile: tuple[list[int], list[int]]) -> tuple[list[int] | None, list[int], list[int]] | None:
    """Where input ``i`` of a merge (:data:`MERGES`) is read by the values of ``shown`` channels on
    ``tile``: (its channels, start, size), or None when none of them comes from it (a Concat's
    input whose channels are not shown) or the layout is one the page does not redo."""
    kind = act.module.layer_kind
    x_i = act.inputs[i]
    start, size = list(tile[0]), list(tile[1])
    if kind == "concat":
        axis, offsets, sizes = concat_parts(act)
        lo, n = offsets[i], sizes[i]
        if axis == 1:
            channels = [c - lo for c in shown if lo <= c < lo + n]
            return (channels, start, size) if channels else None
        if axis < 2:
            return None
        a = axis - 2                                   # a spatial axis: the part of the tile inside input i
        first, last = max(start[a], lo), min(start[a] + size[a], lo + n)
        if first >= last:
            return None
        start[a], size[a] = first - lo, last - first
        return shown, start, size
    if kind == "mul":
        if x_i.ndim != act.y.ndim:
            return None
        channels = [0] if x_i.shape[1] == 1 else shown            # broadcasting: size-1 axes read at 0
        for a, n in enumerate(x_i.shape[2:]):
            if n == 1:
                start[a], size[a] = 0, 1
        return channels, start, size
    if kind == "channel_shuffle":
        groups = int(getattr(act.module, "groups", 1))
        return sorted({shuffle_source(c, int(x_i.shape[1]), groups) for c in shown}), start, size
    if kind == "split":                                # the card shows piece 1: the input's first part,
        return shown, start, size                      # at the same channels and positions
    return None


def sent_region(act: LayerActivation, i: int, shown: list[int] | None,
                tile: tuple[list[int], list[int]] | None) -> tuple[list[int] | None, list[int], list[int]] | None:
    """Where the gradient a merge (Add, Concat, Mul) sends to input ``i`` is embedded: the block of
    that input its values tile reads, (channels, start, size); ``(None, [], [])`` for a vector
    input (embedded whole); None when none of the shown values reads it.

    Add reads every input at the tile itself; Concat and Mul as :func:`merge_reads` says (a
    Concat's input on its shown channels, a Mul's gate ``(C, 1, 1)`` at its one position).
    """
    x_i = act.inputs[i]
    if x_i.ndim == 2:
        return None, [], []
    if shown is None or tile is None:
        return None
    if act.module.layer_kind == "add":
        return list(shown), list(tile[0]), list(tile[1])
    return merge_reads(act, i, shown, tile)


def same_as_dy(act: LayerActivation, i: int, where: dict[str, Any], shown: list[int] | None,
               tile: tuple[list[int], list[int]] | None) -> list[int] | None:
    """The output channels whose ``dL/dy`` (on the layer's tile) an Add's or a channel Concat's
    input ``i`` gets, when its gradient is embedded (``where``, from :func:`sent_region`) on that
    same tile; else None. The caller still checks that the numbers agree bit for bit."""
    kind = act.module.layer_kind
    if shown is None or tile is None or where["channels"] is None or \
            [where["start"], where["tile"]] != [list(tile[0]), list(tile[1])]:
        return None
    if kind == "add":
        offset = 0
    elif kind == "concat" and concat_parts(act)[0] == 1:
        offset = concat_parts(act)[1][i]
    else:
        return None
    same = [c + offset for c in where["channels"]]
    return same if set(same) <= set(shown) else None
