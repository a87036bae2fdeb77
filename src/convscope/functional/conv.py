"""N-D convolution (the ML "convolution", i.e. cross-correlation) and its backward.

The notes' recipe (Key Equation 15) made fast: every window ``v_i`` of the padded input is
gathered into one column of a matrix (im2col), so all the dot products ``f . v_i`` of a whole
filter bank become one matrix product. The backward reuses the same windows: the filter
derivative (notes 9.4.5, Key Equation 68: ``dZ_i/dW_j = X_{i+j-1}``) contracts the upstream
gradient with the windows, and the input derivative spreads it back through the windows
(col2im: one strided slice-add per kernel tap).

Work is chunked over the batch (and, for one huge sample, over output rows) so that the
window matrix never exceeds the workspace budget (``set_workspace_budget``, 256 MiB by
default): a 1x3x1024x1024 image with 64 3x3 filters runs without allocating gigabytes.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from ..errors import ArgumentTypeError, ShapeError
from ..shapes import ConvGeometry, as_float_array, check_same_dtype, conv_geometry, format_shape
from .windows import (
    check_allocation,
    get_workspace_budget,
    kernel_taps,
    pad,
    pad_backward,
    tap_slices,
)

__all__ = ["conv", "conv_backward"]


_GEOMETRIES: dict = {}


def _geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op) -> ConvGeometry:
    """:func:`conv_geometry`, remembered (a layer calls the same geometry every step;
    working it out took ~40 us, a tenth of a LeNet layer's forward)."""
    # repr, not the values: 2.0 == 2 and True == 1 hash alike but must still be refused.
    key = repr((x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op))
    geo = _GEOMETRIES.get(key)
    if geo is None:
        geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode, op)
        if len(_GEOMETRIES) >= 1024:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = geo
    return geo


def _prepare(op, x, w, b, stride, padding, dilation, groups, padding_mode, flip):
    x = as_float_array(x, "x", op)
    w = as_float_array(w, "w", op)
    if b is not None:
        b = as_float_array(b, "b", op)
    check_same_dtype(op, x=x, w=w, b=b)
    if not isinstance(flip, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: flip must be True or False; got {flip!r}.")
    geo = _geometry(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, op)
    if b is not None and b.shape != (geo.c_out,):
        raise ShapeError(
            f"{op}: bias b must have shape ({geo.c_out},), one offset f_0 per filter; got shape "
            f"{format_shape(b.shape)}."
        )
    # The geometry in the message: a huge padding or a huge x is what a user must spot.
    check_allocation(geo.y_shape, x.dtype, f"output ({geo.c_out} filters; stride={geo.s}, "
                     f"padding={geo.p}, dilation={geo.d})", op)
    check_allocation((geo.batch, geo.c_in, *geo.padded), x.dtype,
                     f"input x padded by padding={geo.p}", op)
    if flip:
        # True convolution = cross-correlation with the kernel reversed on every spatial axis
        # (notes, Clarification 17 and Notation 64).
        w = np.flip(w, axis=tuple(range(2, w.ndim)))
    return x, w, b, geo


# Chunk sizing (measured on the benchmark suite, see benchmarks/): a window matrix of about
# this many bytes (plus its product) stays in the caches between the copy that builds it and
# the matrix product that reads it; whole-batch matrices (tens of MiB) measured up to 2.6x
# slower on (64, 32, 32, 32) -> 64. Below ``_MIN_COLUMNS`` columns the products get
# inefficient, so small-image chunks take more samples.
_CHUNK_BYTES = 4 << 20
_MIN_COLUMNS = 2048
# When the batch-last layout replaces flat (see _Plan._choose).
_BATCH_LAST_WASTE = 0.10
_BATCH_LAST_ROWS = 64
_BATCH_LAST_SAMPLES = 8
# Fold the bias into the matrix product (see _forward_part).
_FOLD_BIAS = True
# dx as a transposed convolution where that measured faster (see _transposed_dx); None:
# decide by the rule there, True/False: force (tests use this to exercise both paths).
_TRANSPOSED_DX: bool | None = None


class _Plan:
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

    def __init__(self, geo: ConvGeometry, itemsize: int, layout: str | None = None, threads: int = 1):
        self.geo = geo
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
        self.offsets = [
            sum(j * d * ps for j, d, ps in zip(tap, geo.d, self.plane)) for tap in self.taps
        ]
        if layout is None:
            layout = self._choose() if unit else "strided"
        if layout not in ("flat", "batch_last", "strided") or (layout != "strided" and not unit):
            raise ValueError(f"_Plan: no layout {layout!r} for stride {geo.s}")
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

    def im2col(self, src: np.ndarray, r0: int, rc: int, buf: np.ndarray) -> np.ndarray:
        """The window matrix of rows ``r0 .. r0+rc`` of a padded group (from :meth:`source`,
        written into ``buf``): ``(C_in, taps, rc, *out[1:], B)``, or ``(C_in, taps, B, L)``
        for flat.

        Entry ``[c, t, o, b]`` is channel ``c`` at kernel tap ``t`` of window ``o`` of sample
        ``b`` (the notes' ``v_i``, one tap at a time).
        """
        geo = self.geo
        length = self.length(rc)
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


def _group_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a[q] @ b[q]`` for every group ``q``, as 2-D products.

    NumPy's stacked matmul falls back to a slow non-BLAS loop for some layouts (a transposed
    second operand was measured 9x slower); one BLAS call per group avoids that.
    """
    if out is None:
        out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
    for q in range(a.shape[0]):
        np.matmul(a[q], b[q], out=out[q])
    return out


class _Context:
    """What the backward needs: the validated input and filter bank (flipped if asked for),
    the geometry and the plan.

    The forward's window matrices are not kept for the backward: keeping them (fresh
    buffers of the whole batch) made a LeNet training step 1.7x slower than building them
    again, cache-hot, in the backward.
    """

    __slots__ = ("x", "w", "geo", "plan", "flip", "w_shape")

    def __init__(self, x, w, geo, plan, flip, w_shape):
        self.x, self.w, self.geo, self.plan = x, w, geo, plan
        self.flip, self.w_shape = flip, w_shape


_PLANS: dict = {}


def _plan_for(geo: ConvGeometry, itemsize: int) -> _Plan:
    """The plan of ``geo`` (cached: models call the same geometries every step)."""
    threads = parallel.workers()
    key = (geo, itemsize, get_workspace_budget(), _CHUNK_BYTES, _MIN_COLUMNS, threads)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(geo, itemsize, threads=threads)
    return plan


def _forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry, plan: _Plan) -> np.ndarray:
    """The forward of validated arrays (``w`` already flipped if asked for).

    With :func:`convscope.set_num_threads` above 1 the sample groups (or, for a single
    group, its row blocks) are shared out to that many threads (:mod:`convscope.parallel`).
    """
    y = np.empty(geo.y_shape, dtype=x.dtype)
    groups = list(plan.groups())
    blocks = list(plan.blocks())
    threads = parallel.workers()
    if threads > 1 and len(groups) > 1:
        runs = parallel.split_evenly(groups, threads)
        parallel.run_parallel([partial(_forward_part, x, w, b, y, plan, run, blocks) for run in runs])
    elif threads > 1 and len(blocks) > 1:  # one group: pad it once, share it
        src = plan.source(x[groups[0]])
        runs = parallel.split_evenly(blocks, threads)
        parallel.run_parallel([partial(_forward_part, x, w, b, y, plan, groups, run, src) for run in runs])
    else:
        _forward_part(x, w, b, y, plan, groups, blocks)
    return y


def _forward_part(x, w, b, y, plan: _Plan, groups, blocks, shared=None) -> None:
    """Write the outputs of the given sample groups and row blocks into ``y`` (``shared``:
    the padded source of the only group, built once for all threads)."""
    geo = plan.geo
    g = geo.g
    cog = geo.c_out // g
    rows = plan.rows_k
    # The offset f_0 as one more weight, on a row of ones under the window matrix: the
    # product then holds f . v_i + f_0 and the copy out is a plain copy (adding a
    # broadcast bias while copying into y's layout measured ~3x slower than copying).
    fold = _FOLD_BIAS and b is not None and g == 1
    if fold:
        wmat = np.concatenate([w.reshape(1, cog, -1), b.reshape(1, cog, 1)], axis=2)
        rows += 1
    else:
        wmat = w.reshape(g, cog, -1)
    ws_cols = plan.workspace(rows, x.dtype)
    ws_out = plan.workspace(geo.c_out, x.dtype)
    for bs in groups:
        src = plan.source(x[bs]) if shared is None else shared
        bsize = bs.stop - bs.start
        for r0, rc in blocks:
            plan.im2col(src, r0, rc, ws_cols)  # the first rows_k rows of ws_cols
            columns = bsize * plan.length(rc)
            if fold:
                ws_cols[plan.rows_k * columns : rows * columns] = 1
            # Every dot product f . v_i of the block, all filters of a group at once.
            block = ws_out[: geo.c_out * columns].reshape(g, cog, columns)
            _group_matmul(wmat, ws_cols[: rows * columns].reshape(g, -1, columns), out=block)
            plan.outputs(block, y[bs, :, r0 : r0 + rc], None if fold else b)


def _backward(dy: np.ndarray, ctx: _Context, input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The backward of validated arrays; ``dw`` is for the flipped filter if ``ctx.flip``.

    Sample groups are shared out to :func:`convscope.get_num_threads` threads; each adds
    its own partial filter gradient, summed here in a fixed order.
    """
    x, geo, plan = ctx.x, ctx.geo, ctx.plan
    transposed = input_grad and _transposed_dx(geo)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad and not transposed else None
    groups = list(plan.groups())
    threads = parallel.workers()
    if threads > 1 and len(groups) > 1:
        runs = parallel.split_evenly(groups, threads)
        parts = parallel.run_parallel([partial(_backward_part, dy, ctx, dx, run) for run in runs])
    else:
        parts = [_backward_part(dy, ctx, dx, groups)]
    dwmat, db = parts[0]
    for dw_more, db_more in parts[1:]:
        dwmat += dw_more
        db += db_more
    if transposed:
        dx = _dx_transposed(dy, ctx)
    dw = dwmat.reshape(ctx.w_shape)
    if ctx.flip:
        dw = np.flip(dw, axis=tuple(range(2, dw.ndim)))
    return dx, np.ascontiguousarray(dw), db


def _transposed_dx(geo: ConvGeometry) -> bool:
    """Whether ``dx`` is computed as a transposed convolution (:func:`_dx_transposed`)
    instead of spreading ``W^T dy`` back through the windows (col2im).

    Possible for stride 1, one group, zero padding of at most ``d*(k-1)`` per side. Measured
    (fwd+bwd CPU time, one thread): 0.65x the col2im time on (128,32,32,32) -> 32 3x3,
    equal on (128,64,16,16) -> 64 and (64,32,32,32) -> 64, but 1.15-2.2x where the layer has
    more output than input channels ((64,3,32,32) -> 32, LeNet's 6 -> 16, (128,32,16,16) ->
    64): the transposed convolution's window matrix has ``C_out * taps`` rows. Hence: only
    when ``C_out <= C_in``.
    """
    if _TRANSPOSED_DX is not None:
        possible = _TRANSPOSED_DX
    else:
        possible = geo.c_out <= geo.c_in
    return (
        possible
        and geo.g == 1
        and geo.padding_mode == "zeros"
        and all(s == 1 for s in geo.s)
        and all(max(p) <= d * (k - 1) for p, d, k in zip(geo.p, geo.d, geo.k))
    )


def _dx_transposed(dy: np.ndarray, ctx: _Context) -> np.ndarray:
    """``dx`` as the cross-correlation of ``dy`` with the filter bank reversed on every
    spatial axis and its two channel axes swapped (notes 9.4.5: the input derivative is a
    "full" convolution of the output derivative with the filter).

    Input position ``i`` received ``dy[i + p_before - d*t] * W[t]`` from every tap ``t``:
    padding ``dy`` by ``d*(k-1) - p_before`` before and ``d*(k-1) - p_after`` after and
    sliding the reversed kernel over it gives exactly those sums, and the output has the
    input's length (stride 1).
    """
    geo = ctx.geo
    spatial = tuple(range(2, ctx.w.ndim))
    wt = np.ascontiguousarray(np.flip(ctx.w, axis=spatial).swapaxes(0, 1))
    pads = tuple((d * (k - 1) - before, d * (k - 1) - after) for (before, after), d, k in zip(geo.p, geo.d, geo.k))
    geo_t = _geometry(dy.shape, wt.shape, 1, pads, geo.d, 1, "zeros", "conv_backward")
    return _forward(dy, wt, None, geo_t, _plan_for(geo_t, dy.dtype.itemsize))


def _backward_part(dy: np.ndarray, ctx: _Context, dx: np.ndarray | None, groups) -> tuple[np.ndarray, np.ndarray]:
    """Write ``dx`` of the given sample groups (unless ``dx`` is None); return their share
    of ``(dw, db)``."""
    x, wk, geo, plan = ctx.x, ctx.w, ctx.geo, ctx.plan
    g = geo.g
    cog = geo.c_out // g
    wmat_t = wk.reshape(g, cog, -1).transpose(0, 2, 1)
    dwmat = np.zeros((g, cog, wmat_t.shape[1]), dtype=x.dtype)
    dw_part = np.empty_like(dwmat)
    sum_axes = (0, *range(2, dy.ndim))
    db = np.zeros(geo.c_out, dtype=x.dtype)
    ws_cols = plan.workspace(plan.rows_k, x.dtype)
    ws_dy = plan.workspace(geo.c_out, x.dtype)
    for bs in groups:
        src = plan.source(x[bs])
        dsrc = plan.grad_source(src) if dx is not None else None
        bsize = bs.stop - bs.start
        db += dy[bs].sum(axis=sum_axes)
        for r0, rc in plan.blocks():
            cols = plan.im2col(src, r0, rc, ws_cols)
            columns = bsize * plan.length(rc)
            dyg = plan.gradients(dy[bs, :, r0 : r0 + rc], ws_dy).reshape(g, cog, columns)
            colsg = cols.reshape(g, -1, columns)
            # Filter derivative: sum over windows (and batch) of dy_i * v_i  (Key Equation 68).
            dwmat += _group_matmul(dyg, colsg.transpose(0, 2, 1), out=dw_part)
            if dx is None:
                continue
            # Input derivative: each window receives W^T dy_i, added back where it was read.
            dcols = _group_matmul(wmat_t, dyg, out=colsg)
            plan.col2im(dsrc, dcols.reshape(cols.shape), r0, rc)
        if dx is not None:
            dx[bs] = plan.grad_input(dsrc)
    return dwmat, db


def conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
) -> np.ndarray:
    """Convolve a batch with a filter bank: ``y_i = f . v_i + f_0`` for every window ``v_i``.

    This is the ML convolution of the notes (cross-correlation, Clarification 17): the
    filter is not reversed. ``flip=True`` computes the true convolution of signal
    processing (filter reversed on every spatial axis). Any number of spatial axes: 1-D
    (sound), 2-D (images), 3-D (volumes) and more, read from ``w.ndim - 2``.

    Args:
        x: input ``(N, C_in, *spatial)``, float32 or float64.
        w: filter bank ``(C_out, C_in // groups, *kernel)``, same dtype as ``x``.
        b: offsets ``(C_out,)`` (the notes' ``f_0``, one per filter) or None.
        stride: int or one int per spatial axis (default 1).
        padding: int, per-axis ints, ``(before, after)`` pairs, "valid" or "same"
            ("same" works for any stride; see :mod:`convscope.shapes`).
        dilation: int or per-axis ints; spacing of the kernel taps (1 = no gaps).
        groups: split channels into this many independent groups (``C_in`` = depthwise).
        padding_mode: "zeros", "reflect", "replicate" or "circular" (as PyTorch).
        flip: compute the true convolution instead of cross-correlation.

    Returns:
        ``y`` of shape ``(N, C_out, *out)`` and the dtype of ``x``.

    Shape:
        Per spatial axis ``out = floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1``;
        for ``d = 1`` and symmetric padding this is the notes' Key Equation 48.

    Raises:
        ShapeError: wrong number of axes, channel mismatch, kernel larger than the padded
            input, bias of the wrong shape.
        ConfigError: invalid stride, dilation, padding, groups or padding_mode.
        DTypeError: non-float arrays or mixed dtypes.
        ResourceError: the output would exceed the array limit.

    Example:
        The notes' 1-D example (9.1.4): looking for a "bright spot" ``[+1 -1 +1]``.

        >>> x = np.array([[[1, 1, -1, -1, -1, 1, -1, 1, 1, 1]]], dtype=float)
        >>> f = np.array([[[1, -1, 1]]], dtype=float)
        >>> conv(x, f)[0, 0]
        array([-1.,  1., -1.,  1., -3.,  3., -1.,  1.])
        >>> conv(x, f, padding=1, stride=2)[0, 0]
        array([0., 1., 1., 3., 1.])

    Notes:
        Chunked over the batch (then output rows) so the window matrix stays under the
        workspace budget; results do not depend on the chunking.
    """
    x, w, b, geo = _prepare("conv", x, w, b, stride, padding, dilation, groups, padding_mode, flip)
    return _forward(x, w, b, geo, _plan_for(geo, x.dtype.itemsize))


def conv_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    flip: bool = False,
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of a convolution: ``(dx, dw, db)`` from the upstream gradient ``dy``.

    ``db`` is ``dy`` summed over the batch and spatial axes (each offset ``f_0`` adds to every
    output of its filter); ``dw`` contracts ``dy`` with the windows (notes 9.4.5, Key Equation
    68: ``dZ_i/dW_j = X_{i+j-1}``, summed over windows and batch: weight sharing); ``dx``
    spreads ``dy`` back through the same windows, weighted by the filter, and folds the
    padding's share back onto the input (dropped for zero padding, added to the copied
    entries for the other modes).

    Args:
        dy: d(loss)/d(y), shape ``(N, C_out, *out)``.
        x, w: the forward's input and filter bank.
        stride, padding, dilation, groups, padding_mode, flip: as in :func:`conv`.
        input_grad: False skips ``dx`` (returned as None): the first layer of a network fed
            with images needs only ``dw`` and ``db``, and ``dx`` costs a matrix product and
            the adding back of every window.

    Returns:
        ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``(C_out,)``; ``db`` is returned
        whether or not the forward used a bias.

    Raises:
        ShapeError: ``dy`` does not have the forward's output shape; as :func:`conv`.
        DTypeError, ConfigError: as :func:`conv`.

    Example:
        The notes' 9.31: 4 weights, 6 inputs, 3 outputs. With ``dy = [1, 0, 0]`` the filter
        gradient is the first window ``(X_1 .. X_4)``.

        >>> x = np.arange(1.0, 7.0).reshape(1, 1, 6)
        >>> w = np.zeros((1, 1, 4))
        >>> dx, dw, db = conv_backward(np.array([[[1.0, 0.0, 0.0]]]), x, w)
        >>> dw[0, 0], db
        (array([1., 2., 3., 4.]), array([1.]))
    """
    op = "conv_backward"
    x, wk, _, geo = _prepare(op, x, w, None, stride, padding, dilation, groups, padding_mode, flip)
    dy = as_float_array(dy, "dy", op)
    check_same_dtype(op, dy=dy, x=x)
    if dy.shape != geo.y_shape:
        raise ShapeError(
            f"{op}: dy must have the forward output's shape {format_shape(geo.y_shape)} (from x "
            f"{format_shape(x.shape)} and w {format_shape(w.shape)}); got {format_shape(dy.shape)}."
        )
    if not isinstance(input_grad, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: input_grad must be True or False; got {input_grad!r}.")
    ctx = _Context(x, wk, geo, _plan_for(geo, x.dtype.itemsize), bool(flip), wk.shape)
    return _backward(dy, ctx, bool(input_grad))

