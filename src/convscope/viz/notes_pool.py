"""Pictures of the notes' max-pooling examples (9.2), drawn from explain's pooling traces.

* :func:`plot_pool` - the grid with its numbers, every receptive field outlined, the maximum
  each one chooses circled in orange, the output grid (example 9.12); entries no field sees
  (``s > k``, Key Equation 54) hatched red.
* :func:`plot_pool_shift` - the shift problem of 9.2.6: two images one pixel apart and their
  different pooled outputs (Concept 59).
* :func:`plot_pool_derivative` - the derivative (Key Equation 69, 9.35) as routing: each
  upstream ``dy_i`` goes to the one entry its field chose.

Numbers come from :func:`convscope.explain.trace_pool` and
:func:`convscope.explain.route_max_pool`; each function returns a :class:`~convscope.viz.Figure`.

Example:
    >>> plot_pool([[1, 3, -9, -22], [44, -10, -11, -1], [0, 10, 4, -3], [11, 9, 321, 99]], 2).title
    'Max-pooling: each output is the maximum of its receptive field (notes 9.2.2, Definition 51)'
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ..errors import ConfigError, ShapeError
from ..explain import PoolTrace, shift_images, trace_pool
from ..explain._text import fmt_array, label
from ..explain.coverage import never_read
from ..explain.routing import PoolRouting, route_max_pool
from ._canvas import ACCENTS, Canvas, num
from .figure import Figure
from .notes_conv import given_or_traced

__all__ = ["plot_pool", "plot_pool_shift", "plot_pool_derivative"]

#: Outline colours that tell neighbouring receptive fields apart (none is an accent colour).
FIELD_COLORS = ("#6a3d9a", "#1f78b4", "#33a02c", "#b15928", "#e7298a", "#666666")


def _trace(x: Any, size: Any, op: str, **kw: Any) -> PoolTrace:
    return cast(PoolTrace, given_or_traced(
        x, size, PoolTrace, trace_pool, f"{op}: give a PoolTrace alone, or x and size.",
        f"{op}: give a PoolTrace (convscope.explain.trace_pool) or x and size.", **kw))


def _grid2(a: np.ndarray) -> np.ndarray:
    return a[None] if a.ndim == 1 else a


def _unread_mask(t: PoolTrace) -> np.ndarray:
    n = t.x.shape[1:] if t.channels else t.x.shape
    mask = np.zeros(n, dtype=bool)
    if t.kind == "blur":
        return mask
    for axis in range(len(n)):
        for i in never_read(n[axis], t.k[axis], t.p[axis], t.s[axis], t.d[axis]):
            index = [slice(None)] * len(n)
            index[axis] = slice(i, i + 1)
            mask[tuple(index)] = True
    return mask


def _field_cells(t: PoolTrace, step: Any) -> list[tuple[int, int]]:
    """The (row, column) cells of the unpadded input that a field covers (2-D view)."""
    cells = []
    ks = t.k if len(t.k) == 2 else (1,) + t.k
    ds = t.d if len(t.d) == 2 else (1,) + t.d
    starts = step.start if len(step.start) == 2 else (0,) + step.start
    pads = t.p if len(t.p) == 2 else ((0, 0),) + t.p
    for i in range(ks[0]):
        for j in range(ks[1]):
            r = starts[0] + i * ds[0] - pads[0][0]
            c = starts[1] + j * ds[1] - pads[1][0]
            cells.append((r, c))
    return cells


def _draw_pool(c: Canvas, t: PoolTrace, x0: float, y0: float, channel: int = 0, frame: int | None = None,
               outputs_x: float | None = None, mark_ties: bool = True) -> tuple[float, float]:
    """Draw one channel: input with fields and maxima, output grid. Returns (width, height)."""
    xin = _grid2(t.x[channel] if t.channels else t.x)
    yout = _grid2(t.y[channel] if t.channels else t.y)
    h, w = xin.shape
    unread = _grid2(_unread_mask(t))
    cmap = "diverging" if np.nanmin(xin) < 0 else "sequential"
    vx = float(np.nanmax(np.abs(xin))) or 1.0
    c.matrix(xin, x0, y0, cmap=cmap, vmax=vx, unread=unread)
    steps = [st for st in t.steps if st.channel == channel]
    order = {id(st): i for i, st in enumerate(steps)}
    shown = steps if frame is None else [steps[int(frame)]]
    for st in shown:
        color = FIELD_COLORS[order[id(st)] % len(FIELD_COLORS)] if frame is None else ACCENTS["window"]
        cells = _field_cells(t, st)
        rows = [r for r, _ in cells]
        cols = [cc for _, cc in cells]
        inset = 0.06 + 0.05 * (order[id(st)] % 2)
        r0, r1 = max(min(rows), 0), min(max(rows), h - 1)
        c0, c1 = max(min(cols), 0), min(max(cols), w - 1)
        c.rect(x0 + c0 + inset, y0 + r0 + inset, c1 - c0 + 1 - 2 * inset, r1 - r0 + 1 - 2 * inset,
               edge=color, lw=2.6)
        flat = st.values[st.counted] if st.counted.any() else st.values
        if t.kind == "max" and st.argmax is not None and (mark_ties or np.ptp(flat) > 0):
            pos = st.argmax if len(st.argmax) == 2 else (0,) + st.argmax
            c.circle(x0 + pos[1] + 0.5, y0 + pos[0] + 0.5)
    xo = outputs_x if outputs_x is not None else x0 + w + 3.0
    mid = y0 + h / 2
    c.arrow(x0 + w + 0.5, mid, xo - 0.5, mid)
    c.text((x0 + w + xo) / 2, mid - 0.5, t.kind + "-pool", ha="center", scale=0.75)
    oh, ow = yout.shape
    oy = mid - oh / 2
    texts = np.array([[num(v) for v in row] for row in yout], dtype=object)
    values = yout.copy()
    if frame is not None:
        for i, st in enumerate(steps):
            if i > int(frame):
                idx = st.index if len(st.index) == 2 else (0,) + st.index
                texts[idx] = "?"
                values[idx] = 0.0
    c.matrix(values, xo, oy, cmap=cmap, vmax=vx, texts=texts)
    for st in shown:
        idx = st.index if len(st.index) == 2 else (0,) + st.index
        color = FIELD_COLORS[order[id(st)] % len(FIELD_COLORS)] if frame is None else ACCENTS["window"]
        c.rect(xo + idx[1] + 0.06, oy + idx[0] + 0.06, 0.88, 0.88, edge=color, lw=2.6)
    return xo + ow - x0, max(h, oh)


def plot_pool(x: Any, size: Any = None, *, stride: Any = None, kind: str = "max", padding: Any = 0,
              dilation: Any = 1, ceil_mode: bool = False, channels: bool | None = None,
              frame: int | None = None) -> Figure:
    """Draw a pooling: the grid, each receptive field, the maximum it chooses, the output (9.12).

    Args:
        x: a :class:`~convscope.explain.PoolTrace` (1-D or 2-D), or the input (then ``size``
            and the keywords go to :func:`~convscope.explain.trace_pool`).
        size, stride, kind, padding, dilation, ceil_mode, channels: as ``trace_pool``.
        frame: draw only field ``frame`` (0-based, row-major) and the outputs so far (for
            animations).

    Returns:
        A :class:`~convscope.viz.Figure`.
    """
    op = "plot_pool"
    t = _trace(x, size, op, stride=stride, kind=kind, padding=padding, dilation=dilation,
               ceil_mode=ceil_mode, channels=channels)
    if len(t.k) > 2:
        raise ShapeError(f"{op}: only 1-D and 2-D pooling is drawn; got {len(t.k)}-D.")
    n_c = t.x.shape[0] if t.channels else 1
    h, w = _grid2(t.x[0] if t.channels else t.x).shape
    c = Canvas(cell_in=0.55 if w <= 16 else max(0.25, 10.0 / w))
    y = 0.0
    for ch in range(n_c):
        if t.channels:
            c.text(0.0, y - 0.4, f"channel {ch + 1} (pooled on its own, Concept 52)", scale=0.85, weight="bold")
        _, hh = _draw_pool(c, t, 0.0, y, ch, frame)
        y += hh + 1.6
    unread = _unread_mask(t)
    notes = []
    if frame is None and t.kind == "max":
        notes.append(("orange circles: the maximum each receptive field chooses (the first one on a tie; its "
                      "one-hot derivative, Key Equation 69)", ACCENTS["match"]))
    if unread.any():
        notes.append((f"hatched red: entries no receptive field sees (s = {max(t.s)} > k = {min(t.k)}, Key "
                       f"Equation 54): nothing they hold reaches the output", ACCENTS["unread"]))
    for text, color in notes:
        c.text(0.0, y - 0.6, text, scale=0.85, color=color)
        y += 0.8
    what = {"max": "Max-pooling: each output is the maximum of its receptive field (notes 9.2.2, Definition 51)",
            "avg": "Average pooling: each output is the mean of its receptive field",
            "blur": "Blur pooling: a binomial low-pass filter, then every s-th entry (notes 9.2.6)"}[t.kind]
    sub = (f"receptive field {'x'.join(map(str, t.k))}, stride {'x'.join(map(str, t.s))}"
           + (f", padding {t.p}" if t.padded else "") + f": input {'x'.join(map(str, t.x.shape))} -> output "
           f"{'x'.join(map(str, t.y.shape))}")
    if frame is not None:
        sub = f"receptive field {int(frame) + 1} of {len([s for s in t.steps if s.channel == 0])}; " + sub
    return c.finish(what, sub)


def plot_pool_shift(x: Any = None, size: Any = 2, *, stride: Any = None, shift: int = 1, axis: int = -1) -> Figure:
    """The shift problem of max-pooling (9.2.6): one pixel of shift, a different pooled output.

    Args:
        x: the image (1-D or 2-D); default the notes' situation: two neighbouring black pixels
            (1) on a white background (0) that one 2x2 max-pool keeps apart and, one pixel to the
            right, merges into one.
        size, stride: the max-pool (default 2x2, stride 2).
        shift: how many pixels the second image is moved (positive: right / down).
        axis: the axis to shift along.

    Returns:
        A :class:`~convscope.viz.Figure` whose two rows come from two ``trace_pool`` calls.
    """
    op = "plot_pool_shift"
    if x is None:
        x = np.zeros((4, 6))
        x[1, 1] = x[1, 2] = 1.0
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2):
        raise ShapeError(f"{op}: x must be a 1-D or 2-D image; got shape {a.shape}.")
    if not isinstance(shift, (int, np.integer)) or isinstance(shift, bool):
        raise ConfigError(f"{op}: shift must be an int number of pixels; got {shift!r}.")
    moves = np.zeros((1, a.ndim), dtype=np.int64)
    moves[0, axis] = int(shift)
    b = shift_images(a[None, None], moves, "crop")[0, 0]
    ta = trace_pool(a, size, stride=stride)
    tb = trace_pool(b, size, stride=stride)
    h, w = _grid2(a).shape
    c = Canvas(cell_in=0.55 if w <= 16 else max(0.25, 10.0 / w))
    c.text(0.0, -0.4, "image", scale=0.85, weight="bold")
    _, hh = _draw_pool(c, ta, 0.0, 0.0, mark_ties=False)
    y = hh + 1.8
    c.text(0.0, y - 0.4, f"the same image shifted {shift} pixel{'s' if abs(shift) != 1 else ''} "
           f"{'right' if (axis % a.ndim) == a.ndim - 1 else 'down'}", scale=0.85, weight="bold")
    _draw_pool(c, tb, 0.0, y, mark_ties=False)
    y += hh + 0.9
    same = np.array_equal(ta.y, tb.y)
    kept_a, kept_b = int(np.sum(ta.y > 0)), int(np.sum(tb.y > 0))
    if same:
        text = "the pooled outputs are equal here: this shift happens to be harmless"
    else:
        text = (f"pooled: {fmt_array(ta.y)} vs {fmt_array(tb.y)}: after a shift of one pixel the output is "
                "different, not just shifted"
                + (f" ({kept_a} positive outputs become {kept_b})" if kept_a != kept_b else ""))
    c.text(0.0, y, text, scale=0.9, color=ACCENTS["unread"] if not same else ACCENTS["ink"])
    c.text(0.0, y + 0.8, "a stride s > 1 skips receptive fields, so max-pool is not translation invariant "
           "(Concept 59); BlurPool (Zhang 2019) blurs before subsampling", scale=0.85, color="#444444")
    title = "Max-pool and translation invariance: two images one pixel apart (notes 9.2.6, Concept 59)"
    sub = f"receptive field {'x'.join(map(str, ta.k))}, stride {'x'.join(map(str, ta.s))}"
    return c.finish(title, sub)


def plot_pool_derivative(x: Any, size: Any = None, *, stride: Any = None, dy: Any = None,
                         padding: Any = 0, dilation: Any = 1) -> Figure:
    """The max-pool derivative as routing (Key Equation 69, 9.35): each ``dy_i`` to its field's maximum.

    Args:
        x: a max-pool :class:`~convscope.explain.PoolTrace`, a
            :class:`~convscope.explain.PoolRouting`, or the input (then ``size`` and the keywords
            go to ``trace_pool``).
        size, stride, padding, dilation: the max-pool (when ``x`` is the input).
        dy: the upstream gradient (shaped like the output); default ones.

    Returns:
        A :class:`~convscope.viz.Figure`: the forward pass above, ``dy`` routed to ``dx`` below.
    """
    op = "plot_pool_derivative"
    if isinstance(x, PoolRouting):
        r = x
    else:
        t = _trace(x, size, op, stride=stride, padding=padding, dilation=dilation)
        r = route_max_pool(t, dy)
    t = r.trace
    if len(t.k) > 2 or t.channels:
        raise ShapeError(f"{op}: draws one channel of a 1-D or 2-D max-pool.")
    xin = _grid2(t.x)
    h, w = xin.shape
    c = Canvas(cell_in=0.55 if w <= 14 else max(0.25, 9.0 / w))
    c.text(0.0, -0.4, "forward: x -> y", scale=0.85, weight="bold")
    width, hh = _draw_pool(c, t, 0.0, 0.0)
    y = hh + 2.2
    dyg = _grid2(r.dy)
    dxg = _grid2(r.dx)
    oh, ow = dyg.shape
    xo = width - ow                     # dy right under y
    c.text(xo, y - 0.4, "dy (upstream)", scale=0.85, weight="bold")
    vg = float(np.max(np.abs(dyg))) or 1.0
    c.matrix(dyg, xo, y + (h - oh) / 2, vmax=vg)
    c.text(0.0, y - 0.4, "dx = d(loss)/dx", scale=0.85, weight="bold")
    texts = np.array([[num(v) for v in row] for row in dxg], dtype=object)
    c.matrix(dxg, 0.0, y, vmax=vg, texts=texts)
    for step, _g, pos in r.routes:
        if pos is None:
            continue
        idx = step.index if len(step.index) == 2 else (0,) + step.index
        p2 = pos if len(pos) == 2 else (0,) + pos
        c.arrow(xo + idx[1] + 0.1, y + (h - oh) / 2 + idx[0] + 0.5, p2[1] + 0.95, y + p2[0] + 0.5,
                color=ACCENTS["gradient"], lw=1.6, rad=0.12)
        c.rect(p2[1] + 0.05, y + p2[0] + 0.05, 0.9, 0.9, edge=ACCENTS["gradient"], lw=2.6)
    y += h + 0.9
    lines = [f"d max / d {label('r', st.index)} = {fmt_array(st.derivative.reshape(-1))}" for st in t.steps[:6]]
    if len(t.steps) > 6:
        lines.append(f"... ({len(t.steps) - 6} more fields)")
    c.text(0.0, y, "one-hot per receptive field (9.35): " + ";  ".join(lines[:3])
           + ("\n" + ";  ".join(lines[3:]) if len(lines) > 3 else ""), scale=0.8, va="top", color="#444444")
    y += 1.8 if len(lines) > 3 else 1.1
    c.text(0.0, y, "every other entry gets 0: it did not win its field, so changing it a little does not "
           "change y", scale=0.85, color=ACCENTS["gradient"])
    title = "Max-pool derivative: dy routed to each field's maximum (Key Equation 69, example 9.35)"
    sub = (f"receptive field {'x'.join(map(str, t.k))}, stride {'x'.join(map(str, t.s))}; "
           "green arrows: where each dy_i goes")
    return c.finish(title, sub)
