"""N-D convolution (the ML "convolution", i.e. cross-correlation) and its backward.

The notes' recipe, written once for any number of spatial axes:

* **forward** (Key Equation 15): cut the padded input into windows ``v_i``, one per output
  position, and take the dot product of each filter ``f`` with each window:
  ``y_i = f . v_i + f_0``. Every window becomes one column of a matrix (im2col), so all
  dot products of a filter bank are one matrix product ``W @ V``.
* **filter derivative** (notes 9.4.5, Key Equation 68): ``dZ_i/dW_j = X_{i+j-1}``, the
  input entry that weight ``j`` meets in window ``i``; summed over the windows and the batch
  (weight sharing), ``dL/dW = dy @ V^T``.
* **bias derivative**: each offset ``f_0`` adds to every output of its filter, so
  ``dL/df_0`` is ``dy`` summed over the batch and the positions.
* **input derivative** (the same sum 9.28, differentiated by the input: ``dZ_i/dX_{i+j-1} =
  W_j``): window ``i`` receives ``W^T dy_i``, added back where it was read (col2im), and the
  padding's share is folded back onto the input. Equivalently, a "full" convolution of ``dy``
  with the reversed filter (:func:`_dx_transposed`).

(The third derivative of the notes' backward pass, max pooling's one-hot Key Equation 69,
is in :mod:`convscope.functional.pool`.)

How the work is laid out and chunked (so that a window matrix never exceeds the workspace
budget, ``convscope.settings.set_workspace_budget``: a 1x3x1024x1024 image with 64 3x3
filters runs without allocating gigabytes), and shared out to threads, is
:mod:`convscope.functional.conv_plan`; this file only calls it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ShapeError
from ..shapes import ConvGeometry, float_inputs, format_shape
from .conv_plan import Plan, geometry, group_matmul, group_matmul_nt, plan_for, use_transposed_dx
from .windows import check_allocation, check_dy

__all__ = ["conv", "conv_backward"]


def _prepare(op, x, w, b, stride, padding, dilation, groups, padding_mode, flip):
    """The validated arrays (``w`` flipped for a true convolution) and the geometry; every
    size checked against the array limit before anything is allocated."""
    x, w, b = float_inputs(op, x, w, b)
    if not isinstance(flip, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: flip must be True or False; got {flip!r}.")
    geo = geometry(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, op)
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


# ----------------------------------------------------------------------------------------
# Forward: y_i = f . v_i + f_0 (Key Equation 15)
# ----------------------------------------------------------------------------------------
def _forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, geo: ConvGeometry, plan: Plan) -> np.ndarray:
    """The forward of validated arrays (``w`` already flipped if asked for)."""
    y = np.empty(geo.y_shape, dtype=x.dtype)
    plan.share_forward(partial(_forward_chunk, x, w, b, y, plan), x)
    return y


def _forward_chunk(x, w, b, y, plan: Plan, groups, blocks, shared=None) -> None:
    """Write the outputs of the given sample groups and row blocks into ``y`` (``shared``:
    the padded source of the only group, built once for all threads)."""
    geo = plan.geo
    g, cog = geo.g, geo.c_out // geo.g
    # One row per filter f (with its offset f_0 as one more weight where the plan folds it).
    wmat, rows, folded = plan.filter_matrix(w, b)
    ws_cols = plan.workspace(rows, x.dtype)
    ws_out = plan.workspace(0 if plan.direct else geo.c_out, x.dtype)  # (direct: y itself)
    for bs in groups:
        src = plan.source(x[bs]) if shared is None else shared  # padded (notes 9.1.7)
        bsize = bs.stop - bs.start
        if plan.direct:  # one sample at a time: its products (C_out, *out) are y[n] itself
            columns = plan.length(geo.out[0])
            cols = ws_cols[: rows * columns].reshape(g, -1, columns)
            for i in range(bsize):
                plan.im2col(src[i : i + 1], 0, geo.out[0], ws_cols, ones=folded)
                n = bs.start + i
                group_matmul(wmat, cols, out=y[n : n + 1].reshape(g, cog, columns))
                if b is not None and not folded:
                    y[n] += b.reshape((-1,) + (1,) * geo.ndim)
            continue
        for r0, rc in blocks:
            # The windows v_i of this block of outputs, one column each (Key Equation 15).
            plan.im2col(src, r0, rc, ws_cols, ones=folded)
            columns = bsize * plan.length(rc)
            cols = ws_cols[: rows * columns].reshape(g, -1, columns)
            # Every dot product f . v_i of the block, all filters of a group at once.
            block = ws_out[: geo.c_out * columns].reshape(g, cog, columns)
            group_matmul(wmat, cols, out=block)
            # ... + f_0, into y's layout.
            plan.outputs(block, y[bs, :, r0 : r0 + rc], None if folded else b)


# ----------------------------------------------------------------------------------------
# Backward: the filter derivative (Key Equation 68), the bias and the input derivatives
# ----------------------------------------------------------------------------------------
def _backward(
    dy: np.ndarray, ctx: _Context, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The backward of validated arrays; ``dw`` is for the flipped filter if ``ctx.flip``.

    Sample groups may run on several threads; each returns its own partial filter and bias
    gradients, summed here in a fixed order.
    """
    x, geo, plan = ctx.x, ctx.geo, ctx.plan
    transposed = input_grad and use_transposed_dx(geo)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad and not transposed else None
    parts = plan.share_backward(partial(_backward_chunk, dy, ctx, dx))
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


def _backward_chunk(dy: np.ndarray, ctx: _Context, dx: np.ndarray | None, groups) -> tuple[np.ndarray, np.ndarray]:
    """Write ``dx`` of the given sample groups (unless ``dx`` is None); return their share
    of ``(dw, db)``."""
    x, wk, geo, plan = ctx.x, ctx.w, ctx.geo, ctx.plan
    g, cog = geo.g, geo.c_out // geo.g
    wmat_t = wk.reshape(g, cog, -1).transpose(0, 2, 1)
    dwmat = np.zeros((g, cog, wmat_t.shape[1]), dtype=x.dtype)
    dw_part_t = np.empty((g, wmat_t.shape[1], cog), dtype=x.dtype)
    sum_axes = (0, *range(2, dy.ndim))
    db = np.zeros(geo.c_out, dtype=x.dtype)
    ws_cols = plan.workspace(plan.rows_k, x.dtype)
    ws_dy = plan.workspace(geo.c_out, x.dtype)
    for bs in groups:
        src = plan.source(x[bs])
        dsrc = plan.grad_source(src) if dx is not None else None
        bsize = bs.stop - bs.start
        # Bias: f_0 adds to every output of its filter, so dL/df_0 sums dy over them.
        db += dy[bs].sum(axis=sum_axes)
        for r0, rc in plan.blocks():
            cols = plan.im2col(src, r0, rc, ws_cols)  # the windows v_i again
            columns = bsize * plan.length(rc)
            dyg = plan.gradients(dy[bs, :, r0 : r0 + rc], ws_dy).reshape(g, cog, columns)
            colsg = cols.reshape(g, -1, columns)
            # Filter derivative, Key Equation 68: dZ_i/dW_j = X_{i+j-1}, so dL/dW is the sum
            # over windows (and batch) of dy_i * v_i: dy @ V^T.
            dwmat += group_matmul_nt(dyg, colsg, dw_part_t)
            if dx is None:
                continue
            # Input derivative: dZ_i/dX_{i+j-1} = W_j, so window i receives W^T dy_i, added
            # back where it was read (col2im, the adjoint of im2col).
            dcols = group_matmul(wmat_t, dyg, out=colsg)
            plan.col2im(dsrc, dcols.reshape(cols.shape), r0, rc)
        if dx is not None:
            dx[bs] = plan.grad_input(dsrc)  # the padding's share folded back (adjoint of pad)
    return dwmat, db


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
    geo_t = geometry(dy.shape, wt.shape, 1, pads, geo.d, 1, "zeros", "conv_backward")
    return _forward(dy, wt, None, geo_t, plan_for(geo_t, dy.dtype.itemsize, forward=True))


# ----------------------------------------------------------------------------------------
# The public pair
# ----------------------------------------------------------------------------------------
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
    return _forward(x, w, b, geo, plan_for(geo, x.dtype.itemsize, forward=True))


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
    dy = check_dy(dy, x, geo.y_shape, op, f"the forward output's shape {format_shape(geo.y_shape)} "
                  f"(from x {format_shape(x.shape)} and w {format_shape(geo.w_shape)})")
    if not isinstance(input_grad, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: input_grad must be True or False; got {input_grad!r}.")
    ctx = _Context(x, wk, geo, plan_for(geo, x.dtype.itemsize), bool(flip), wk.shape)
    return _backward(dy, ctx, bool(input_grad))

