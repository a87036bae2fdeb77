"""How a convolution is laid out and cut into chunks: the machinery behind functional.conv.

:mod:`convscope.functional.conv` writes the notes' math (every window ``v_i`` as a column
of a matrix, all dot products ``f . v_i`` of a filter bank as one matrix product, the
gradients as the products' transposes). This module decides how that runs fast:

* :class:`Plan`: the layout of the window matrices (flat, batch-last or strided), the
  chunks (sample groups and row blocks) that keep them cache-sized and under the workspace
  budget, the copies in (im2col) and out, and how chunks are shared out to threads;
* :func:`plan_for` and :func:`geometry`: the plan and the validated geometry, remembered
  per geometry (a layer calls the same one every step);
* :func:`use_transposed_dx`: the measured rule for computing the input gradient as a
  transposed convolution.

Which path is taken can be forced with :func:`convscope.settings.force_path` (layout,
bias folding, transposed input gradient); results agree up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel, settings
from ..shapes import ConvGeometry, conv_geometry
from .windows import get_workspace_budget, kernel_taps, pad, pad_backward, tap_slices

__all__ = ["Plan", "plan_for", "geometry", "group_matmul", "group_matmul_nt", "use_transposed_dx",
           "use_direct_forward"]


# Chunk sizing (measured on the benchmark suite, see benchmarks/): a window matrix of about
# this many bytes (plus its product) stays in the caches between the copy that builds it and
# the matrix product that reads it; whole-batch matrices (tens of MiB) measured up to 2.6x
# slower on (64, 32, 32, 32) -> 64. Below ``_MIN_COLUMNS`` columns the products get
# inefficient, so small-image chunks take more samples.
_CHUNK_BYTES = 4 << 20
_MIN_COLUMNS = 2048
# When the batch-last layout replaces flat (see Plan._choose).
_BATCH_LAST_WASTE = 0.10
_BATCH_LAST_ROWS = 64
_BATCH_LAST_SAMPLES = 8

# When one convolution called on its own is split over threads (training and inference
# split whole shards instead, convscope.train.data_parallel): at least this many
# floating-point operations and samples. Measured on the 2-vCPU Intel Xeon (interleaved,
# 15 repeats, machine loaded): 2 threads took 1.1-1.8x the 1-thread time on conv A's
# forward (20 MFLOP), G's forward (18 MFLOP) and the 3-D case (8 samples, 56 and 112 MFLOP),
# and 0.78-0.91x on B, C, F and G's backward (>= 37 MFLOP, >= 16 samples).
_MIN_SPLIT_FLOPS = 64e6
_MIN_SPLIT_SAMPLES = 16
# A forward whose sample has at least this many outputs per channel, filters and window rows
# (and whose window matrix of one sample stays under _CHUNK_BYTES) runs one sample per
# product, written straight into y (Plan's "direct" forward, see use_direct_forward).
_DIRECT_MIN_OUTPUTS = 256
_DIRECT_MIN_FILTERS = 16
_DIRECT_MIN_ROWS = 27

_GEOMETRIES = settings.cache("conv.geometry", 1024)
_PLANS = settings.cache("conv.plan", 256)


def geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op) -> ConvGeometry:
    """:func:`convscope.shapes.conv_geometry`, remembered (a layer calls the same geometry
    every step; working it out took ~40 us, a tenth of a LeNet layer's forward)."""
    # repr, not the values: 2.0 == 2 and True == 1 hash alike but must still be refused.
    key = repr((x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op))
    geo = _GEOMETRIES.get(key)
    if geo is None:
        geo = _GEOMETRIES.put(key, conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op))
    return geo


def plan_for(geo: ConvGeometry, itemsize: int, forward: bool = False) -> Plan:
    """The plan of ``geo`` (remembered: models call the same geometries every step).

    The layout is the one :func:`convscope.settings.force_path` forces (where the stride
    allows it), else the plan's own choice. ``forward``: the plan of a forward pass, which
    may be the direct one (:func:`use_direct_forward`).
    """
    threads = parallel.workers()
    layout = settings.forced("conv_layout")
    if layout is not None and layout != "strided" and any(s != 1 for s in geo.s):
        layout = "strided"  # flat and batch-last need stride 1
    direct = forward and use_direct_forward(geo, itemsize)
    key = (geo, itemsize, get_workspace_budget(), _CHUNK_BYTES, _MIN_COLUMNS, threads, layout, direct)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS.put(key, Plan(geo, itemsize, "strided" if direct else layout, threads=threads, direct=direct))
    return plan


def use_direct_forward(geo: ConvGeometry, itemsize: int) -> bool:
    """Whether a forward runs one sample per matrix product, written straight into ``y``.

    ``W (C_out x rows) @ V_n (rows x outputs)`` is, for one sample ``n``, already ``y[n]``'s
    layout ``(C_out, *out)``: no copy out of the product's layout, and one sample's window
    matrix is small enough to stay in the caches; the samples are still padded in groups.
    Measured (forward, one thread, 2-vCPU Xeon, interleaved medians; see BENCHMARKS.md):
    faster on the large 3x3 layers (suite shape D, the ResNet-8's 32x32 layers), 2.2x slower
    on LeNet's first layer and shape A (6-8 filters of 25 rows: one sample's product is too
    small to be worth a call) and 1.2x on the 1-D shape G (9 rows). Hence: at least
    ``_DIRECT_MIN_OUTPUTS`` outputs per channel, ``_DIRECT_MIN_FILTERS`` filters,
    ``_DIRECT_MIN_ROWS`` window rows per group, and one sample's window matrix within
    ``_CHUNK_BYTES``; ``force_path(conv_direct=...)`` decides instead, and a forced
    ``conv_layout`` turns it off.
    """
    forced = settings.forced("conv_direct")
    if forced is not None:
        return bool(forced)
    if settings.forced("conv_layout") is not None:
        return False
    outputs = int(np.prod(geo.out, dtype=np.int64))
    taps = int(np.prod(geo.k, dtype=np.int64))
    window_bytes = (geo.c_in * taps + 1) * outputs * itemsize
    return (outputs >= _DIRECT_MIN_OUTPUTS and geo.c_out >= _DIRECT_MIN_FILTERS
            and (geo.c_in // geo.g) * taps >= _DIRECT_MIN_ROWS
            and window_bytes <= min(_CHUNK_BYTES, get_workspace_budget()))


def use_transposed_dx(geo: ConvGeometry) -> bool:
    """Whether ``dx`` is computed as a transposed convolution (see
    ``convscope.functional.conv._dx_transposed``) instead of spreading ``W^T dy`` back
    through the windows (col2im).

    Possible for stride 1, one group, zero padding of at most ``d*(k-1)`` per side. Measured
    (fwd+bwd CPU time, one thread): 0.65x the col2im time on (128,32,32,32) -> 32 3x3,
    equal on (128,64,16,16) -> 64 and (64,32,32,32) -> 64, but 1.15-2.2x where the layer has
    more output than input channels ((64,3,32,32) -> 32, LeNet's 6 -> 16, (128,32,16,16) ->
    64): the transposed convolution's window matrix has ``C_out * taps`` rows. Hence: only
    when ``C_out <= C_in``, unless :func:`convscope.settings.force_path` says otherwise.
    """
    wanted = settings.forced("transposed_dx")
    if wanted is None:
        wanted = geo.c_out <= geo.c_in
    return (
        wanted
        and geo.g == 1
        and geo.padding_mode == "zeros"
        and all(s == 1 for s in geo.s)
        and all(max(p) <= d * (k - 1) for p, d, k in zip(geo.p, geo.d, geo.k))
    )


class Plan:
    """How one convolution lays out its window matrices and splits the work into chunks.

    A window matrix has one row per (input channel, kernel tap) and one column per window
    ``v_i``, so a whole filter bank is one matrix product per group. Three layouts of a
    chunk of ``B`` samples, chosen per geometry (:meth:`_choose`):

    * **flat** (stride 1; ``(C_in, taps, B, L)``): the padded plane is read as one long
      vector; the window of output ``o`` starts at flat index ``sum(o_i * P_i)`` (``P_i`` =
      the padded plane's row strides) and kernel tap ``j`` adds ``sum(j_i * d_i * P_i)``,
      so each tap is ONE contiguous slice, fast to gather and to slice-add. The price: the
      columns of positions that wrap past the right edge are computed and thrown away
      (``L`` = last valid flat index + 1): 6% more columns on 32x32 images with padding 1,
      but 22-36% on small images with large kernels (LeNet's second layer).
    * **batch-last** (stride 1, small images; ``(C_in, taps, *out, B)``): the chunk is first
      copied (and padded) with the sample axis last, ``(C_in, *padded, B)``; a tap's entries
      for all windows of all ``B`` samples are then one slice with runs of ``out[-1] * B``
      contiguous entries, and no column is wasted. It costs a transposing copy of the
      input and of the output (and, backward, of ``dy`` and ``dx``), which pays where flat
      wastes many columns and a chunk holds many samples.
    * **strided** (any stride; ``(C_in, taps, B, *out)``): one strided slice per tap, no
      thrown-away columns, samples side by side as in flat.

    Chunks: samples are grouped (and padded) together; each group is cut into blocks of
    output rows. A block's window matrix (with the product's result for it) is kept near
    ``_CHUNK_BYTES`` so it stays in the caches, and never above the workspace budget.
    """

    def __init__(self, geo: ConvGeometry, itemsize: int, layout: str | None = None, threads: int = 1,
                 direct: bool = False):
        self.geo = geo
        self.direct = direct  # one sample per block, the product written into y (strided)
        self.itemsize = itemsize
        self.threads = threads
        self.taps = list(kernel_taps(geo.k))
        self.ntaps = len(self.taps)
        self.rows_k = geo.c_in * self.ntaps  # rows of the window matrix
        self.row_outputs = int(np.prod(geo.out[1:], dtype=np.int64))  # outputs per output row
        self._indices: dict = {}  # (r0, rc) -> every tap's slices (see _tap_views)
        unit = all(v == 1 for v in geo.s)
        self.order = (1, 0, *range(2, geo.ndim + 2))  # (B, C, ...) <-> (C, B, ...)
        self.to_last = (*range(1, geo.ndim + 2), 0)  # (B, C, *sp) -> (C, *sp, B)
        self.to_first = (geo.ndim + 1, *range(geo.ndim + 1))  # (C, *sp, B) -> (B, C, *sp)
        padded = geo.padded
        self.plane = [int(np.prod(padded[i + 1 :], dtype=np.int64)) for i in range(geo.ndim)]
        # multiply-adds of one pass (forward, or each of backward's two products), times 2
        self.flops = 2.0 * geo.batch * geo.c_out * float(np.prod(geo.out)) * (geo.c_in // geo.g) * self.ntaps
        self.offsets = [
            sum(j * d * ps for j, d, ps in zip(tap, geo.d, self.plane)) for tap in self.taps
        ]
        if layout is None:
            layout = self._choose() if unit else "strided"
        if layout not in ("flat", "batch_last", "strided") or (layout != "strided" and not unit):
            raise ValueError(f"Plan: no layout {layout!r} for stride {geo.s}")
        self.layout = layout
        self.flat = layout == "flat"
        self.batch_last = layout == "batch_last"
        self._split()

    def _choose(self) -> str:
        """flat or batch-last for a stride-1 convolution (see the class docstring).

        Measured (fwd+bwd, one thread): batch-last 0.65-0.9x flat's time where flat wastes
        >= 12% of its columns on a window matrix of >= 100 rows with >= 8 samples per chunk
        (LeNet's second layer, 8x8 and 16x16 CIFAR layers, 14x14 with k5); 1.1-1.5x where
        flat wastes ~6% (32x32 images) or chunks hold few samples.
        """
        self.layout, self.flat, self.batch_last = "flat", True, False
        flat_len = self.length(self.geo.out[0])
        dense = int(np.prod(self.geo.out, dtype=np.int64))
        waste = flat_len / max(1, dense) - 1
        self.layout, self.flat, self.batch_last = "batch_last", False, True
        self._split()
        if waste >= _BATCH_LAST_WASTE and self.rows_k >= _BATCH_LAST_ROWS and self.per >= _BATCH_LAST_SAMPLES:
            return "batch_last"
        return "flat"

    def strides(self, rc: int) -> list[int]:
        """Element strides of the virtual output grid of a flat or strided block."""
        if self.flat:
            return self.plane
        count = (rc, *self.geo.out[1:])
        return [int(np.prod(count[i + 1 :], dtype=np.int64)) for i in range(self.geo.ndim)]

    def length(self, rc: int) -> int:
        """Columns per sample of a block with ``rc`` output rows."""
        count = (rc, *self.geo.out[1:])
        if self.flat:
            return sum((c - 1) * ps for c, ps in zip(count, self.plane)) + 1
        return rc * self.row_outputs

    def _split(self) -> None:
        """Choose the sample groups and row blocks (see the class docstring)."""
        geo = self.geo
        rows = geo.out[0]
        if self.direct:  # groups padded together, one whole sample per product
            padded_bytes = geo.c_in * int(np.prod(geo.padded, dtype=np.int64)) * self.itemsize
            self.per = max(1, min(geo.batch, _CHUNK_BYTES // max(1, padded_bytes)))
            self.step = rows
            self.max_cols = self.length(rows)
            return
        column_bytes = (self.rows_k + geo.c_out) * self.itemsize
        # Each of the threads builds its own window matrix: they share the budget.
        budget_cols = max(1, get_workspace_budget() // column_bytes // self.threads)
        want = min(max(_MIN_COLUMNS, _CHUNK_BYTES // column_bytes), budget_cols)
        per_sample = self.length(rows)
        if geo.batch == 0:
            self.per, self.step = 1, rows
        elif per_sample <= max(want, min(2 * want, budget_cols)):
            per = max(1, want // per_sample)
            count = -(-geo.batch // per)
            if self.threads > 1:  # a whole number of groups per thread
                count = min(geo.batch, -(-count // self.threads) * self.threads)
            self.per, self.step = -(-geo.batch // count), rows  # balanced groups
        else:
            step = max(1, min(rows, rows * want // per_sample))
            while step > 1 and self.length(step) > budget_cols:
                step -= 1
            count = -(-rows // step)
            self.per, self.step = 1, -(-rows // count)
        self.max_cols = self.per * self.length(self.step)

    def groups(self) -> Iterator[slice]:
        """Consecutive sample groups (each padded and processed together)."""
        for start in range(0, self.geo.batch, self.per):
            yield slice(start, min(self.geo.batch, start + self.per))

    def blocks(self) -> Iterator[tuple[int, int]]:
        """``(first output row, number of rows)`` of every block of a group."""
        rows = self.geo.out[0]
        for r0 in range(0, rows, self.step):
            yield r0, min(self.step, rows - r0)

    def workspace(self, rows: int, dtype) -> np.ndarray:
        """A flat buffer for ``rows`` rows of the largest block's columns."""
        return np.empty(rows * self.max_cols, dtype=dtype)

    def source(self, xb: np.ndarray) -> np.ndarray:
        """The padded group in the layout :meth:`im2col` reads: ``(B, C, *padded)`` for
        flat, ``(C, *padded, B)`` for batch-last (one copy, the padding written with it)."""
        geo = self.geo
        if not self.batch_last:
            return pad(xb, geo.p, geo.padding_mode)
        if geo.padding_mode != "zeros":
            return np.ascontiguousarray(pad(xb, geo.p, geo.padding_mode).transpose(self.to_last))
        src = np.empty((geo.c_in, *geo.padded, xb.shape[0]), dtype=xb.dtype)
        inner = (slice(None),) + tuple(slice(b, b + n) for (b, _), n in zip(geo.p, geo.n))
        if any(b or a for b, a in geo.p):
            for axis, (before, after) in enumerate(geo.p):  # zero the borders only
                index = [slice(None)] * src.ndim
                if before:
                    index[axis + 1] = slice(0, before)
                    src[tuple(index)] = 0
                if after:
                    index[axis + 1] = slice(src.shape[axis + 1] - after, None)
                    src[tuple(index)] = 0
        src[inner] = xb.transpose(self.to_last)
        return src

    def grad_source(self, like: np.ndarray) -> np.ndarray:
        """A zeroed gradient of :meth:`source`'s array (what :meth:`col2im` adds into)."""
        return np.zeros(like.shape, dtype=like.dtype)

    def grad_input(self, dsrc: np.ndarray) -> np.ndarray:
        """The gradient of the group ``(B, C, *n)`` from that of its :meth:`source`."""
        geo = self.geo
        if not self.batch_last:
            return pad_backward(dsrc, geo.p, geo.padding_mode)
        if geo.padding_mode != "zeros":
            return pad_backward(dsrc.transpose(self.to_first), geo.p, geo.padding_mode)
        inner = (slice(None),) + tuple(slice(b, b + n) for (b, _), n in zip(geo.p, geo.n))
        return dsrc[inner].transpose(self.to_first)

    def _tap_views(self, a: np.ndarray, r0: int, rc: int):
        """Per kernel tap, the slice of a padded group it reads for rows ``r0 .. r0+rc``:
        ``(C, rc, *out[1:], B)`` batch-last, ``(B, C, rc, *out[1:])`` strided."""
        key = (r0, rc)
        indices = self._indices.get(key)
        if indices is None:  # the same few blocks every call: build their slices once
            geo = self.geo
            out_start = (r0,) + (0,) * (geo.ndim - 1)
            out_count = (rc, *geo.out[1:])
            indices = [tap_slices(tap, geo.s, geo.d, out_start, out_count) for tap in self.taps]
            if self.batch_last:
                indices = [index[1:] + (slice(None),) for index in indices]
            self._indices[key] = indices
        return (rc, *self.geo.out[1:]), [a[index] for index in indices]

    def im2col(self, src: np.ndarray, r0: int, rc: int, buf: np.ndarray, ones: bool = False) -> np.ndarray:
        """The window matrix of rows ``r0 .. r0+rc`` of a padded group (from :meth:`source`,
        written into ``buf``): ``(C_in, taps, rc, *out[1:], B)``, or ``(C_in, taps, B, L)``
        for flat.

        Entry ``[c, t, o, b]`` is channel ``c`` at kernel tap ``t`` of window ``o`` of sample
        ``b`` (the notes' ``v_i``, one tap at a time). ``ones``: also write a row of ones
        under the matrix in ``buf`` (the bias row of :meth:`filter_matrix`).
        """
        geo = self.geo
        length = self.length(rc)
        if ones:
            columns = src.shape[-1 if self.batch_last else 0] * length
            buf[self.rows_k * columns : (self.rows_k + 1) * columns] = 1
        if self.flat:
            bsize = src.shape[0]
            cols = buf[: self.rows_k * bsize * length].reshape(geo.c_in, self.ntaps, bsize, length)
            xf = src.reshape(bsize, geo.c_in, -1).transpose(1, 0, 2)
            base = r0 * self.plane[0]
            for t, off in enumerate(self.offsets):
                cols[:, t] = xf[:, :, base + off : base + off + length]
            return cols
        out_count, views = self._tap_views(src, r0, rc)
        if self.batch_last:
            bsize = src.shape[-1]
            cols = buf[: self.rows_k * bsize * length].reshape(geo.c_in, self.ntaps, *out_count, bsize)
            for t, v in enumerate(views):
                cols[:, t] = v
            return cols
        bsize = src.shape[0]
        cols = buf[: self.rows_k * bsize * length].reshape(geo.c_in, self.ntaps, bsize, *out_count)
        for t, v in enumerate(views):
            cols[:, t] = v.transpose(self.order)
        return cols

    def col2im(self, dsrc: np.ndarray, dcols: np.ndarray, r0: int, rc: int) -> None:
        """Add every window's gradient back where the window was read (adjoint of im2col)."""
        geo = self.geo
        if self.flat:
            bsize = dsrc.shape[0]
            length = self.length(rc)
            df = dsrc.reshape(bsize, geo.c_in, -1).transpose(1, 0, 2)
            base = r0 * self.plane[0]
            for t, off in enumerate(self.offsets):
                df[:, :, base + off : base + off + length] += dcols[:, t]
            return
        _, views = self._tap_views(dsrc, r0, rc)
        for t, v in enumerate(views):
            v += dcols[:, t] if self.batch_last else dcols[:, t].transpose(self.order)

    def filter_matrix(self, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, int, bool]:
        """The filter bank as the matrix product's left operand ``(groups, C_out/groups,
        rows)``, with the number of its rows, and whether the bias is folded into it.

        Folding: the offset ``f_0`` as one more weight, on a row of ones under the window
        matrix (``im2col(..., ones=True)``); the product then holds ``f . v_i + f_0`` and the
        copy out is a plain copy (adding a broadcast bias while copying into ``y``'s layout
        measured ~3x slower than copying). One group only; ``force_path(fold_bias=False)``
        turns it off.
        """
        geo = self.geo
        g = geo.g
        cog = geo.c_out // g
        fold = b is not None and g == 1 and settings.forced("fold_bias") is not False
        if fold and b is not None:
            return np.concatenate([w.reshape(1, cog, -1), b.reshape(1, cog, 1)], axis=2), self.rows_k + 1, True
        return w.reshape(g, cog, -1), self.rows_k, False

    def split_threads(self, backward: bool = False) -> int:
        """Threads to split this convolution over: :func:`convscope.parallel.workers`, or 1
        where splitting was measured slower (less than ``_MIN_SPLIT_FLOPS`` of work, counting
        backward's two products, or fewer than ``_MIN_SPLIT_SAMPLES`` samples): more threads
        are then never slower than one."""
        forced = settings.forced("conv_split")
        work = self.flops * (2 if backward else 1)
        small = work < _MIN_SPLIT_FLOPS or self.geo.batch < _MIN_SPLIT_SAMPLES
        if forced is False or (forced is None and small):
            return 1
        return parallel.workers()

    def share_forward(self, chunk: Callable[..., None], x: np.ndarray) -> None:
        """Run ``chunk(groups, blocks[, shared])`` over the whole batch of ``x``.

        With :func:`convscope.set_num_threads` above 1 the sample groups (or, for a single
        group, its row blocks, the group padded once and ``shared``) are shared out to that
        many threads (:mod:`convscope.parallel`); else one call does everything.
        """
        groups = list(self.groups())
        blocks = list(self.blocks())
        threads = self.split_threads()
        if threads > 1 and len(groups) > 1:
            runs = parallel.split_evenly(groups, threads)
            parallel.run_parallel([partial(chunk, run, blocks) for run in runs])
        elif threads > 1 and len(blocks) > 1:  # one group: pad it once, share it
            src = self.source(x[groups[0]])
            runs = parallel.split_evenly(blocks, threads)
            parallel.run_parallel([partial(chunk, groups, run, src) for run in runs])
        else:
            chunk(groups, blocks)

    def share_backward(self, chunk: Callable[[list], Any]) -> list:
        """``chunk(groups)`` over runs of the sample groups, one run per thread (see
        :meth:`share_forward`); the results in the groups' order, so that partial sums
        are added in a fixed order."""
        groups = list(self.groups())
        threads = self.split_threads(backward=True)
        if threads > 1 and len(groups) > 1:
            runs = parallel.split_evenly(groups, threads)
            return parallel.run_parallel([partial(chunk, run) for run in runs])
        return [chunk(groups)]

    def grid(self, flat: np.ndarray, rc: int) -> np.ndarray:
        """View the valid outputs of a flat block ``(C, B, L)`` as ``(C, B, rc, *out[1:])``."""
        geo = self.geo
        st = flat.strides
        shape = flat.shape[:2] + (rc, *geo.out[1:])
        strides = st[:2] + tuple(v * self.itemsize for v in self.strides(rc))
        return as_strided(flat, shape=shape, strides=strides, writeable=flat.flags.writeable)

    def outputs(self, block: np.ndarray, y_block: np.ndarray, bias: np.ndarray | None) -> None:
        """Copy the block's products ``(C_out, columns)`` into ``y_block`` ``(B, C_out, rc,
        *out[1:])``, adding the bias (``(C_out,)`` or None) on the way.

        The axis order handed to NumPy is the one measured faster per layout (the same copy
        with the axes listed the other way round took up to 1.4x (flat) or 2x (batch-last)
        as long)."""
        geo = self.geo
        bsize, rc = y_block.shape[0], y_block.shape[2]
        spatial = (1,) * geo.ndim
        if self.batch_last:
            valid = block.reshape(geo.c_out, rc, *geo.out[1:], bsize).transpose(self.to_first)
            target = y_block
            bias = None if bias is None else bias.reshape((1, -1) + spatial)
        else:
            if self.flat:
                valid = self.grid(block.reshape(geo.c_out, bsize, -1), rc)
            else:
                valid = block.reshape(geo.c_out, bsize, rc, *geo.out[1:])
            target = y_block.transpose(self.order)
            bias = None if bias is None else bias.reshape((-1, 1) + spatial)
        if bias is None:
            np.copyto(target, valid)
        else:  # + f_0, fused into the copy out of the window-matrix layout
            np.add(valid, bias, out=target)

    def gradients(self, dyb: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """``dy`` of a block ``(B, C_out, rc, ...)`` as the product's layout ``(C_out,
        columns)`` (written into ``buf``; zero in the flat layout's thrown-away columns)."""
        geo = self.geo
        bsize, rc = dyb.shape[0], dyb.shape[2]
        length = self.length(rc)
        dyv = buf[: geo.c_out * bsize * length]
        if self.flat:
            dyv = dyv.reshape(geo.c_out, bsize, length)
            dyv.fill(0)
            self.grid(dyv, rc)[...] = dyb.transpose(self.order)
        elif self.batch_last:
            dyv.reshape(geo.c_out, rc, *geo.out[1:], bsize)[...] = dyb.transpose(self.to_last)
        else:
            dyv.reshape(geo.c_out, bsize, rc, *geo.out[1:])[...] = dyb.transpose(self.order)
        return dyv.reshape(geo.c_out, bsize * length)


#: Bytes of one column block of a skinny product's operand and result (:func:`_column_block`).
_PANEL_BYTES = 256 << 10
#: Fewest columns in a block of a skinny product (tests lower it to block small arrays).
_MIN_BLOCK = 512
#: Bytes of one inner block of a filter gradient with few filters (:func:`group_matmul_nt`).
_INNER_BYTES = 16 << 10


def _column_block(m: int, k: int, itemsize: int) -> int:
    """Columns per call of an ``(m x k) @ (k x n)`` product, or 0 for one call.

    OpenBLAS runs a product with few rows and a short inner dimension well below its peak
    when the columns are many: on the 2-vCPU Xeon (SkylakeX kernel, one thread; n = 32768)
    products with m and k both <= 32 ran 1.3-3.4x faster in blocks of columns whose operand
    and result fit in about 256 KiB (LeNet's first layer, 6 x 26 by 26 x 28544: 0.26 ->
    0.13 ms). Wider products gained nothing or lost up to 15% alone, and inside a
    convolution a long side lost (the 3-D suite shape's 8 x 109 forward and 108 x 8 input
    gradient: fwd+bwd 7.2 -> 7.9 ms on one thread, 9.2 on two), so they stay one call. The
    blocks change no sum: every output is the same dot product.
    """
    if not (m <= 32 and k <= 32):
        return 0
    c = _PANEL_BYTES // ((m + k) * itemsize)
    return max(_MIN_BLOCK, min(8192, 1 << (max(c, 1).bit_length() - 1)))


def group_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a[q] @ b[q]`` for every group ``q``, as 2-D products (skinny ones in blocks of
    columns, :func:`_column_block`).

    NumPy's stacked matmul falls back to a slow non-BLAS loop for some layouts (a transposed
    second operand was measured 9x slower); one BLAS call per group avoids that.
    """
    if out is None:
        out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
    n = b.shape[2]
    c = _column_block(a.shape[1], a.shape[2], out.itemsize)
    for q in range(a.shape[0]):
        if c and n >= 2 * c:
            aq, bq, oq = a[q], b[q], out[q]
            for i in range(0, n, c):
                np.matmul(aq, bq[:, i : i + c], out=oq[:, i : i + c])
        else:
            np.matmul(a[q], b[q], out=out[q])
    return out


def group_matmul_nt(a: np.ndarray, b: np.ndarray, out_t: np.ndarray) -> np.ndarray:
    """``a[q] @ b[q].T`` for every group ``q`` (a filter gradient: ``dy @ V^T``), computed as
    its transpose ``b[q] @ a[q].T`` into ``out_t`` (``(g, k, m)``); returns the
    ``(g, m, k)`` view of ``out_t``.

    The transposed product measured 1.1-1.8x faster than ``dy @ V^T`` on every filter
    gradient of the benchmarks (2-vCPU Xeon, OpenBLAS, one thread: shape B's 16 x 12544 by
    12544 x 200, 1.56 -> 0.94 ms), and with few filters of few rows (m <= 8, k <= 32) a
    long inner dimension runs 2x faster again in blocks of about 16 KiB per row (LeNet's
    first layer, 6 filters of 25 rows over 28544 windows: 0.45 -> 0.16 ms), the blocks'
    products added in order. (With more rows the blocks gained nothing on one thread and
    lost on two: the 3-D suite shape, 8 filters of 108 rows, fwd+bwd 7.2 -> 9.1 ms.)
    """
    m, n = a.shape[1], a.shape[2]
    c = _INNER_BYTES // out_t.itemsize if m <= 8 and b.shape[1] <= 32 else 0
    for q in range(a.shape[0]):
        aq, bq, oq = a[q], b[q], out_t[q]
        if c and n >= 2 * c:
            np.matmul(bq[:, :c], aq[:, :c].T, out=oq)
            part = np.empty_like(oq)
            for i in range(c, n, c):
                np.matmul(bq[:, i : i + c], aq[:, i : i + c].T, out=part)
                oq += part
        else:
            np.matmul(bq, aq.T, out=oq)
    return out_t.transpose(0, 2, 1)
