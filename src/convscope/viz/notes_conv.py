"""Pictures of the notes' convolution examples (9.1.4-9.1.21), drawn from explain's traces.

* :func:`plot_conv1d` - 1-D convolution (9.1.4): ``x`` as a row of cells with values, the filter
  under each window with its dot product written out, the output row, the strongest match in
  orange; padding cells grey (9.7), windows a stride skips dashed (9.1.20), entries never read
  hatched red (Key Equation 54).
* :func:`plot_conv2d` - 2-D convolution (9.8-9.10): the image grid with its numbers, the
  highlighted window, the filter, the element-wise products and their sum, the output; one
  row per input channel for a tensor filter (9.12-9.13).
* :func:`plot_filter_bank` - several filters at once, several output maps (9.11, Concept 30).
* :func:`plot_output_size` - Key Equation 48 drawn: the padded axis, every window position,
  the entries never read.

Every number comes from :func:`convscope.explain.trace_conv`,
:func:`~convscope.explain.trace_filter_bank` or :func:`~convscope.explain.explain_shape`
(pass their results, or the same arguments). Each function returns a
:class:`~convscope.viz.Figure`.

Example:
    >>> fig = plot_conv1d([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1], stride=2)
    >>> fig.title
    '1-D convolution y = x * f, window by window (notes 9.1.4, Key Equation 15)'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..explain import ConvTrace, ShapeExplanation, explain_shape, trace_conv
from ..explain._text import label
from ..explain.bank import FilterBankTrace, trace_filter_bank
from ..explain.coverage import coverage_note, never_read
from ..explain.derive import axis_size
from ._canvas import ACCENTS, Canvas, num
from .figure import Figure

__all__ = ["plot_conv1d", "plot_conv2d", "plot_filter_bank", "plot_output_size"]

_LABEL_W = 3.4     # width of the label column, in cells


def given_or_traced(x: Any, arg: Any, trace_type: type, build: Callable[..., Any], both: str, neither: str,
                    **kw: Any) -> Any:
    """``x`` when it is already a ``trace_type``, else ``build(x, arg, **kw)``.

    Raises:
        ArgumentTypeError: ``both`` when a trace comes with ``arg``; ``neither`` when ``x``
            is no trace and ``arg`` is None.
    """
    if isinstance(x, trace_type):
        if arg is not None:
            raise ArgumentTypeError(both)
        return x
    if arg is None:
        raise ArgumentTypeError(neither)
    return build(x, arg, **kw)


def _trace(x: Any, f: Any, op: str, **kw: Any) -> ConvTrace:
    return cast(ConvTrace, given_or_traced(
        x, f, ConvTrace, trace_conv, f"{op}: give a ConvTrace alone, or x and f; got a trace and f.",
        f"{op}: give a ConvTrace (convscope.explain.trace_conv) or x and f.", **kw))


def _uni(text: str) -> str:
    """Arithmetic as printed by explain, with a dot for the product and a true minus."""
    return text.replace(" . ", " \u00b7 ").replace("*", "\u00b7").replace("-", "\u2212")


def _input_cmap(a: np.ndarray) -> str:
    """Signed inputs (the notes' +1/-1) take the diverging map; non-negative images the grey scale."""
    return "diverging" if np.nanmin(a) < 0 else "gray"


def _size_line(t: ConvTrace, axis: int = 0) -> str:
    g = t.geometry
    a = axis_size(g.n[axis], g.k[axis], g.p[axis], g.s[axis], g.d[axis], axis=axis + 1)
    return a.lines[3 if g.d[axis] != 1 else 2].split(":", 1)[1].strip().replace("-", "\u2212")


def _params_text(t: ConvTrace) -> str:
    g = t.geometry
    parts = [f"k = {'x'.join(map(str, g.k))}", f"stride s = {_axes(g.s)}",
             f"padding p = {_axes([b for b, _ in g.p]) if all(b == a for b, a in g.p) else g.p}"]
    if any(v != 1 for v in g.d):
        parts.append(f"dilation d = {_axes(g.d)}")
    if t.b:
        parts.append(f"offset f_0 = {num(t.b)}")
    return ", ".join(parts)


def _signed_sum(values: list[float]) -> str:
    """``9 + 1 - 2`` (a true minus for negative terms after the first)."""
    out = num(values[0])
    for v in values[1:]:
        out += f" \u2212 {num(-v)}" if v < 0 else f" + {num(v)}"
    return out


def _axes(values: Any) -> str:
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else str(values)


def _pad_mask(shape: tuple[int, ...], pairs: Any) -> np.ndarray:
    """True on the padding cells of a padded array of ``shape`` (``(before, after)`` per axis)."""
    mask = np.zeros(shape, dtype=bool)
    for axis, (before, after) in enumerate(pairs):
        index = [slice(None)] * len(shape)
        index[axis] = slice(0, before)
        mask[tuple(index)] = True
        index[axis] = slice(shape[axis] - after, shape[axis])
        mask[tuple(index)] = True
    return mask


def _legend(c: Canvas, x: float, y: float, *, pad: bool = False, skipped: bool = False, unread: bool = False,
            match: bool = True, window: str | None = "window v_i / filter f") -> None:
    items = []
    if window:
        items.append((window, {"kind": "outline", "edge": ACCENTS["window"], "lw": 2.2}))
    if match:
        items.append(("strongest match", {"kind": "outline", "edge": ACCENTS["match"], "lw": 3.0}))
    if pad:
        items.append(("padding (9.1.7)", {"fill": ACCENTS["pad"], "hatch": "///"}))
    if skipped:
        items.append(("window skipped by the stride", {"kind": "outline", "edge": ACCENTS["skipped"], "lw": 1.6,
                                                        "ls": "--"}))
    if unread:
        items.append(("never read by any window", {"hatch": "xx", "hatch_color": ACCENTS["unread"],
                                                  "edge": ACCENTS["unread"]}))
    c.legend(x, y, items)


# ------------------------------------------------------------------------------------ 1-D


def plot_conv1d(x: Any, f: Any = None, *, b: float = 0.0, stride: Any = 1, padding: Any = 0,
                dilation: Any = 1, padding_mode: str = "zeros", frame: int | None = None,
                max_windows: int = 14) -> Figure:
    """Draw a 1-D convolution window by window, as the notes' example 9.1.4 does.

    Args:
        x: a :class:`~convscope.explain.ConvTrace` of a one-channel 1-D convolution, or the
            signal (then ``f`` and the keywords go to :func:`~convscope.explain.trace_conv`).
        f: the filter (when ``x`` is the signal).
        b, stride, padding, dilation, padding_mode: as :func:`~convscope.explain.trace_conv`.
        frame: draw only window ``frame`` (0-based) with the outputs computed so far and
            ``?`` for the rest, as the notes build ``y`` up (9.3); None draws every window.
        max_windows: rows of windows drawn at most (the rest are summarised by a row of dots).

    Returns:
        A :class:`~convscope.viz.Figure`.

    Raises:
        ShapeError: the trace is not of a one-channel 1-D convolution (use :func:`plot_conv2d`).
    """
    op = "plot_conv1d"
    t = _trace(x, f, op, b=b, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode)
    if t.y.ndim != 1 or t.channels:
        raise ShapeError(f"{op}: the trace is of a {t.y.ndim}-D convolution"
                         f"{' with channels' if t.channels else ''}; draw it with plot_conv2d.")
    g = t.geometry
    k, s, d = g.k[0], g.s[0], g.d[0]
    before, after = g.p[0]
    n, n_p = g.n[0], t.x_padded.shape[0]
    span = d * (k - 1) + 1
    steps = list(t.steps)
    best = t.step(t.bright_spot)
    positive = best.y > 0
    current = None if frame is None else steps[int(frame)]
    c = Canvas(cell_in=0.5 if n_p <= 26 else max(0.3, 13.0 / n_p))
    x0 = _LABEL_W
    # index row and the input row
    for i in range(n_p):
        inside = before <= i < before + n
        c.text(x0 + i + 0.5, 0.3, f"x_{i - before + 1}" if inside else "pad", scale=0.65, ha="center",
               color="#555555" if inside else "#888888")
    pad_mask = np.zeros(n_p, dtype=bool)
    pad_mask[:before] = True
    pad_mask[n_p - after:] = True
    unread = np.zeros(n_p, dtype=bool)
    missing = never_read(n, k, g.p[0], s, d)
    for i in missing:
        unread[i + before] = True
    vx = float(np.max(np.abs(t.x_padded))) or 1.0
    c.matrix(t.x_padded, x0, 0.7, cmap=_input_cmap(t.x_padded), vmax=vx if _input_cmap(t.x_padded) == "diverging"
             else None, pad=pad_mask, unread=unread)
    c.text(x0 - 0.3, 1.2, "x_p" if t.padded else "x", ha="right", weight="bold")
    if positive and current is None:
        c.rect(x0 + best.start[0] - 0.06, 0.64, span + 0.12, 1.12, edge=ACCENTS["match"], lw=3.0)
    if current is not None:
        for j in range(k):
            c.rect(x0 + current.start[0] + j * d, 0.7, 1, 1, edge=ACCENTS["window"], lw=2.6)
    # the window rows
    rows: list[tuple[str, Any]] = []
    if current is not None:
        rows = [("take", current)]
    else:
        taken = {st.start[0]: st for st in steps}
        last_start = n_p - span
        if s > 1 and last_start + 1 <= 2 * max_windows:
            rows = [("take", taken[q]) if q in taken else ("skip", q) for q in range(last_start + 1)]
        else:
            rows = [("take", st) for st in steps]
        if len(rows) > max_windows:
            head, tail = rows[: max_windows - 2], [rows[-1]]
            if not any(kind == "take" and item is best for kind, item in head + tail):
                rows = rows[: max_windows - 4] + [("dots", None), ("take", best), ("dots", None)] + tail
            else:
                rows = head + [("dots", None)] + tail
    vf = float(np.max(np.abs(t.f))) or 1.0
    y = 2.4
    text_x = x0 + n_p + 0.8
    skipped_best = t.skipped_best
    for kind, item in rows:
        if kind == "dots":
            c.text(x0 + n_p / 2, y + 0.45, "\u22ee", ha="center", scale=1.3, color="#555555")
            y += 1.0
            continue
        if kind == "skip":
            q = item
            c.rect(x0 + q + 0.04, y + 0.08, span - 0.08, 0.84, edge=ACCENTS["skipped"], lw=1.5, ls="--")
            if skipped_best is not None and skipped_best.start[0] == q:
                c.text(text_x, y + 0.5, f"skipped: f \u00b7 v = {num(skipped_best.y)} here, the true bright spot "
                       f"(s = {s} steps over it)", scale=0.9, color=ACCENTS["unread"], style="italic")
            else:
                c.text(text_x, y + 0.5, f"skipped (stride s = {s})", scale=0.85, color=ACCENTS["skipped"],
                       style="italic")
            y += 1.15
            continue
        st = item
        is_best = positive and st is best and current is None
        edge = ACCENTS["match"] if is_best else ACCENTS["window"]
        for j in range(k):
            c.matrix(t.f[j:j + 1], x0 + st.start[0] + j * d, y, vmax=vf)
            c.rect(x0 + st.start[0] + j * d, y, 1, 1, edge=edge, lw=2.2 if not is_best else 3.0)
        c.text(x0 - 0.3, y + 0.5, label("v", st.index), ha="right")
        arith = _uni(t.arithmetic(st))
        c.text(text_x, y + 0.5, arith + ("   \u2190 strongest match" if is_best else ""), scale=0.95,
               weight="bold" if is_best else "normal", color=ACCENTS["match"] if is_best else ACCENTS["ink"])
        y += 1.15
    # the output row, each output under the centre of its window
    y += 0.35
    c.text(x0 - 0.3, y + 0.5, "y = x * f", ha="right", weight="bold")
    vy = float(np.max(np.abs(t.y))) or 1.0
    done = None if current is None else steps.index(current)
    for i, st in enumerate(steps):
        col = x0 + st.start[0] + span // 2
        if done is not None and i > done:
            c.cell(col, y, "?", fill="white", color="#777777")
        else:
            c.matrix(np.array([st.y]), col, y, vmax=vy)
        c.text(col + 0.5, y + 1.3, st.label, scale=0.55, ha="center", color="#555555")
    if current is None:
        col = x0 + best.start[0] + span // 2
        if positive:
            c.rect(col - 0.06, y - 0.06, 1.12, 1.12, edge=ACCENTS["match"], lw=3.2)
            note = f"strongest match (bright spot): {best.label} = {num(best.y)}, from the window {t.window_text(best)}"
            color = ACCENTS["match"]
        else:
            note = f"largest output {best.label} = {num(best.y)} is not a match: no output is positive"
            color = "#444444"
        c.text(x0, y + 2.1, note, scale=0.95, color=color, weight="bold" if positive else "normal")
        y += 2.1
        if skipped_best is not None:
            y += 0.9
            c.text(x0, y, f"the stride s = {s} skips the true bright spot: {t.window_text(skipped_best)} would give "
                   f"{num(skipped_best.y)} (9.1.20, 9.2.6)",
                   scale=0.95, color=ACCENTS["unread"])
        if missing:
            y += 0.9
            c.text(x0, y, f"never read: {', '.join(f'x_{i + 1}' for i in missing)} (hatched red)", scale=0.95,
                   color=ACCENTS["unread"])
        y += 1.1
        _legend(c, x0, y, pad=t.padded, skipped=s > 1 and any(kind == "skip" for kind, _ in rows),
                unread=bool(missing), match=positive)
    title = "1-D convolution y = x * f, window by window (notes 9.1.4, Key Equation 15)"
    sub = f"{_params_text(t)}: {len(steps)} windows, output size {_size_line(t)}"
    if current is not None:
        sub = f"window {steps.index(current) + 1} of {len(steps)}; " + sub
    return c.finish(title, sub)


# ------------------------------------------------------------------------------------ 2-D


def plot_conv2d(x: Any, f: Any = None, *, at: Any = None, b: float = 0.0, stride: Any = 1, padding: Any = 0,
                dilation: Any = 1, padding_mode: str = "zeros", channels: bool | None = None,
                frame: int | None = None, note: str | None = None) -> Figure:
    """Draw one window of a 2-D convolution: image, window, filter, products, sum, output (9.8-9.10).

    Args:
        x: a :class:`~convscope.explain.ConvTrace` of a 2-D convolution (one channel or a
            tensor filter over several, 9.12-9.13), or the image (then ``f`` and the keywords go
            to :func:`~convscope.explain.trace_conv`).
        f: the filter (when ``x`` is the image).
        at: the output position whose window is drawn, 0-based ``(row, column)``; default the
            strongest match.
        b, stride, padding, dilation, padding_mode, channels: as :func:`~convscope.explain.trace_conv`.
        frame: draw window ``frame`` (0-based, row-major) with the outputs computed so far and
            ``?`` for the rest (for animations); overrides ``at``.
        note: one more line written under the sum (e.g. what the offset holds).

    Returns:
        A :class:`~convscope.viz.Figure`.

    Raises:
        ShapeError: the trace is not 2-D, or ``at`` is outside the output.
    """
    op = "plot_conv2d"
    t = _trace(x, f, op, b=b, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode,
               channels=channels)
    if t.y.ndim != 2:
        raise ShapeError(f"{op}: the trace is of a {t.y.ndim}-D convolution; "
                         + ("draw it with plot_conv1d." if t.y.ndim == 1 else "only 2-D is drawn."))
    g = t.geometry
    if frame is not None:
        step = t.steps[int(frame)]
    elif at is not None:
        step = t.step(at)
    else:
        step = t.step(t.bright_spot)
    xp = t.x_padded if t.channels else t.x_padded[None]
    fc = t.f if t.channels else t.f[None]
    vc = step.v if t.channels else step.v[None]
    prods = t.products(step)
    prods = prods if t.channels else prods[None]
    n_c, (hp, wp) = xp.shape[0], xp.shape[1:]
    kh, kw = g.k
    dh, dw = g.d
    oh, ow = g.out
    total = _LABEL_W + wp + 2.0 + 3 * kw + 3.0 + 6.5 + ow + 1.0
    c = Canvas(cell_in=min(0.5, max(0.24, 19.0 / total)))
    numbers_x = hp * wp <= 400
    x0 = _LABEL_W
    pad_mask = _pad_mask((hp, wp), g.p)
    (pt, _), (pl, _) = g.p
    unread = np.zeros((hp, wp), dtype=bool)
    for r in never_read(g.n[0], kh, g.p[0], g.s[0], dh):
        unread[r + pt] = True
    for col in never_read(g.n[1], kw, g.p[1], g.s[1], dw):
        unread[:, col + pl] = True
    unread &= ~pad_mask
    cmap_x = _input_cmap(xp)
    vx = float(np.max(np.abs(xp))) or 1.0
    vf = float(np.max(np.abs(fc))) or 1.0
    vp = float(np.max(np.abs(prods))) or 1.0
    is_best = step is t.step(t.bright_spot) and step.y > 0 and frame is None
    wedge = ACCENTS["match"] if is_best else ACCENTS["window"]
    y = 0.0
    block_h = max(hp, kh) + 1.6
    xb = x0 + wp + 2.0                    # v
    xc = xb + kw + 1.5                    # f
    xd = xc + kw + 1.5                    # products
    xe = xd + kw + 0.6                    # the sum
    sums = prods.reshape(n_c, -1).sum(axis=1)
    for ch in range(n_c):
        top = y + 1.0
        name = ("x_p" if t.padded else "x") + (f", channel {ch + 1}" if t.channels else
                                                   (" (x padded)" if t.padded else ""))
        c.text(x0, top - 0.45, name, scale=0.85, weight="bold")
        c.matrix(xp[ch], x0, top, cmap=cmap_x, vmax=vx if cmap_x == "diverging" else None, pad=pad_mask,
                 unread=unread, numbers=numbers_x)
        r0, c0 = step.start
        for i in range(kh):
            for j in range(kw):
                c.rect(x0 + c0 + j * dw, top + r0 + i * dh, 1, 1, edge=wedge, lw=1.2)
        c.rect(x0 + c0 - 0.05, top + r0 - 0.05, dw * (kw - 1) + 1.1, dh * (kh - 1) + 1.1, edge=wedge, lw=3.0)
        c.text(xb, top - 0.45, label("v", step.index) + (f", channel {ch + 1}" if t.channels else ""), scale=0.85)
        v_pad = pad_mask[r0: r0 + dh * (kh - 1) + 1: dh, c0: c0 + dw * (kw - 1) + 1: dw]
        c.matrix(vc[ch], xb, top, cmap=cmap_x, vmax=vx if cmap_x == "diverging" else None, pad=v_pad)
        c.rect(xb, top, kw, kh, edge=wedge, lw=2.4)
        c.text(xb + kw + 0.75, top + kh / 2, "\u2299", ha="center", scale=1.6)
        c.text(xc, top - 0.45, "f" + (f", channel {ch + 1}" if t.channels else ""), scale=0.85)
        c.matrix(fc[ch], xc, top, vmax=vf)
        c.rect(xc, top, kw, kh, edge=ACCENTS["window"], lw=2.4)
        c.text(xc + kw + 0.75, top + kh / 2, "=", ha="center", scale=1.6)
        c.text(xd, top - 0.45, "f \u2299 v (element-wise)", scale=0.85)
        c.matrix(prods[ch], xd, top, vmax=vp)
        c.text(xe + 0.4, top + kh / 2, f"sum = {num(sums[ch])}", scale=1.0)
        y += block_h
    # the total and the output grid
    terms = _signed_sum(list(sums) + ([t.b] if t.b else []))
    total_text = (f"{step.label} = f \u00b7 {label('v', step.index)}" + (" + f_0" if t.b else "")
                  + (" = sum of f \u2299 v" if n_c == 1 and not t.b else f" = {terms}") + f" = {num(step.y)}")
    c.text(xb, y + 0.3, total_text + ("   (sum over every channel, Concept 31)" if n_c > 1 else ""),
           scale=1.05, weight="bold", color=ACCENTS["match"] if is_best else ACCENTS["ink"])
    if note:
        y += 0.9
        c.text(xb, y + 0.3, note, scale=0.9, color="#444444")
    xo = xe + 6.0
    c.text(xo, 0.55, "y = x * f", scale=0.85, weight="bold")
    vy = float(np.max(np.abs(t.y))) or 1.0
    done = None if frame is None else int(frame)
    texts = np.full((oh, ow), "", dtype=object)
    for i, st in enumerate(t.steps):
        texts[st.index] = "?" if done is not None and i > done else num(st.y)
    shown = t.y.copy() if done is None else np.where(texts == "?", 0.0, t.y)
    c.matrix(shown, xo, 1.0, vmax=vy, texts=texts if oh * ow <= 400 else np.where(texts == "?", "?", ""))
    best = t.step(t.bright_spot)
    if best.y > 0 and best is not step and frame is None:
        c.rect(xo + best.index[1] - 0.05, 1.0 + best.index[0] - 0.05, 1.1, 1.1, edge=ACCENTS["match"], lw=3.0)
    c.rect(xo + step.index[1] - 0.05, 1.0 + step.index[0] - 0.05, 1.1, 1.1, edge=wedge, lw=3.0)
    c.text(xo, 1.0 + oh + 0.6, f"{step.label} outlined", scale=0.75, color="#555555")
    notes = []
    if frame is None:
        if best.y > 0:
            notes.append((f"strongest match: {best.label} = {num(best.y)}"
                          + ("" if is_best else " (this picture shows another window)"), ACCENTS["match"]))
        else:
            notes.append((f"largest output {best.label} = {num(best.y)} is not a match: no output is positive",
                          "#444444"))
        if t.skipped_best is not None:
            notes.append((f"the stride skips the true bright spot: {t.window_text(t.skipped_best)} would give "
                          f"{num(t.skipped_best.y)}", ACCENTS["unread"]))
        if unread.any():
            notes.append(("hatched red: entries no window reads (Key Equation 54)", ACCENTS["unread"]))
    y += 1.4
    for text, color in notes:
        c.text(xb, y, text, scale=0.95, color=color)
        y += 0.85
    _legend(c, x0, y + 0.2, pad=t.padded, unread=bool(unread.any()), match=best.y > 0)
    kind = "tensor filter over " + str(n_c) + " channels (9.12-9.13)" if t.channels else "one channel (9.1.8-9.1.9)"
    title = f"2-D convolution, {kind}: window, filter, element-wise products, sum"
    sub = (f"{_params_text(t)}: output {oh}x{ow} (Key Equation 48 per axis); y = sum of f \u2299 v "
           f"(Definition 21)")
    if frame is not None:
        sub = f"window {int(frame) + 1} of {len(t.steps)}; " + sub
    return c.finish(title, sub)


# ------------------------------------------------------------------------------------ bank


def plot_filter_bank(x: Any, bank: Any = None, *, b: Any = None, stride: Any = 1, padding: Any = 0,
                     dilation: Any = 1, padding_mode: str = "zeros", channels: bool | None = None) -> Figure:
    """Draw a filter bank: every filter beside the output channel it makes (9.11, Concept 30).

    Args:
        x: a :class:`~convscope.explain.FilterBankTrace`, or the input (then ``bank`` and the
            keywords go to :func:`~convscope.explain.trace_filter_bank`).
        bank: ``(m, *filter)``: the filters stacked on a new first axis.
        b, stride, padding, dilation, padding_mode, channels: as ``trace_filter_bank``.

    Returns:
        A :class:`~convscope.viz.Figure`.
    """
    op = "plot_filter_bank"
    if isinstance(x, FilterBankTrace):
        if bank is not None:
            raise ArgumentTypeError(f"{op}: give a FilterBankTrace alone, or x and bank.")
        t = x
    elif bank is None:
        raise ArgumentTypeError(f"{op}: give a FilterBankTrace (convscope.explain.trace_filter_bank) or x and bank.")
    else:
        t = trace_filter_bank(x, bank, b, stride, padding, dilation, padding_mode, channels)
    first = t.traces[0]
    if first.y.ndim > 2:
        raise ShapeError(f"{op}: only 1-D and 2-D filter banks are drawn; got {first.y.ndim}-D.")
    xin = first.x_padded if first.channels else first.x_padded[None]
    as2 = (lambda a: a[None]) if first.y.ndim == 1 else (lambda a: a)
    n_c = xin.shape[0]
    h, w = as2(xin[0]).shape
    fh, fw = as2(t.traces[0].f if not first.channels else t.traces[0].f[0]).shape
    oh, ow = as2(first.y).shape
    width = _LABEL_W + w + 2 + n_c * (fw + 1) + 2 + ow + 8
    c = Canvas(cell_in=min(0.5, max(0.24, 19.0 / width)))
    x0 = 0.5
    cmap_x = _input_cmap(xin)
    vx = float(np.max(np.abs(xin))) or 1.0
    y = 1.0
    for ch in range(n_c):
        c.text(x0, y - 0.45, ("x_p" if first.padded else "x") + (f", channel {ch + 1}" if first.channels else ""),
               scale=0.85, weight="bold")
        pad = as2(_pad_mask(xin.shape[1:], first.geometry.p))
        c.matrix(as2(xin[ch]), x0, y, cmap=cmap_x, vmax=vx if cmap_x == "diverging" else None, pad=pad,
                 numbers=h * w <= 400)
        y += h + 1.4
    xf = x0 + w + 2.0
    vf = float(np.max(np.abs(t.bank))) or 1.0
    vy = float(np.max(np.abs(t.y))) or 1.0
    row = 1.0
    for m, tr in enumerate(t.traces):
        fcs = tr.f if tr.channels else tr.f[None]
        for ch in range(fcs.shape[0]):
            xc = xf + ch * (fw + 1)
            c.text(xc, row - 0.45, f"filter {m + 1}" + (f", ch {ch + 1}" if tr.channels else ""), scale=0.75)
            c.matrix(as2(fcs[ch]), xc, row, vmax=vf)
            c.rect(xc, row, fw, fh, edge=ACCENTS["window"], lw=2.0)
        xa = xf + fcs.shape[0] * (fw + 1) + 0.2
        mid = row + max(fh, oh) / 2
        c.arrow(xa, mid, xa + 1.4, mid)
        xo = xa + 1.8
        c.text(xo, row - 0.45, f"output channel {m + 1}" + (f" (f_0 = {num(tr.b)})" if tr.b else ""), scale=0.75)
        c.matrix(as2(tr.y), xo, row, vmax=vy, numbers=oh * ow <= 400)
        best = tr.step(tr.bright_spot)
        bi = (0, best.index[0]) if tr.y.ndim == 1 else best.index
        if best.y > 0:
            c.rect(xo + bi[1] - 0.05, row + bi[0] - 0.05, 1.1, 1.1, edge=ACCENTS["match"], lw=3.0)
            c.text(xo + ow + 0.5, mid, f"strongest match {best.label} = {num(best.y)}", scale=0.8,
                   color=ACCENTS["match"])
        else:
            c.text(xo + ow + 0.5, mid, f"no positive output (largest {num(best.y)})", scale=0.8, color="#555555")
        row += max(fh, oh) + 1.6
    y = max(y, row) + 0.2
    kdims = " x ".join(map(str, first.geometry.k))
    c.text(x0, y, f"the bank holds {t.m} filters of {kdims}: the notes' (k x k x m) = ({kdims} x {t.m}); each "
           f"filter is applied to the same input and makes one channel (Concept 29)", scale=0.85, color="#444444")
    _legend(c, x0, y + 0.8, match=True, pad=first.padded)
    title = f"A filter bank of {t.m} filters -> {t.m} output channels (notes 9.1.11, Definition 27)"
    sub = _params_text(first) + f"; input {'x'.join(map(str, first.x.shape))}, output {'x'.join(map(str, t.y.shape))}"
    return c.finish(title, sub)


# ------------------------------------------------------------------------------------ output size


def plot_output_size(n: Any, k: Any = None, p: Any = 0, s: Any = None, d: Any = 1, op: str = "conv",
                     ceil_mode: bool = False, max_windows: int = 40) -> Figure:
    """Draw Key Equation 48 along one axis: the padded input, every window, the entries never read.

    Args:
        n: the input size (int), or a :class:`~convscope.explain.ShapeExplanation` of one axis.
        k, p, s, d, op, ceil_mode: as :func:`~convscope.explain.explain_shape` (``s`` None: 1
            for a convolution, ``k`` for pooling).
        max_windows: window rows drawn at most (the middle ones are summarised).

    Returns:
        A :class:`~convscope.viz.Figure`.

    Raises:
        ConfigError: more than one spatial axis (draw one axis at a time).
    """
    name = "plot_output_size"
    if isinstance(n, ShapeExplanation):
        e = n
    else:
        if k is None:
            raise ArgumentTypeError(f"{name}: give n and k (and p, s, d), or a ShapeExplanation.")
        e = explain_shape(n, k, p, s, d, op=op, ceil_mode=ceil_mode)
    if len(e.axes) != 1:
        raise ConfigError(f"{name}: draws one axis at a time; got {len(e.axes)} axes (pass ints).")
    a = e.axes[0]
    before, after = a.p
    n_p = a.n + before + after
    span = a.d * (a.k - 1) + 1
    c = Canvas(cell_in=0.5 if n_p <= 30 else max(0.22, 15.0 / n_p))
    x0 = _LABEL_W
    missing = never_read(a.n, a.k, a.p, a.s, a.d) if a.fits else ()
    texts = np.array(["0"] * before + [str(i + 1) for i in range(a.n)] + ["0"] * after, dtype=object)
    pad = np.array([True] * before + [False] * a.n + [True] * after)
    unread = np.zeros(n_p, dtype=bool)
    for i in missing:
        unread[i + before] = True
    c.text(x0, 0.25, "entries of x, numbered from 1; padding grey", scale=0.6, color="#555555")
    c.matrix(np.zeros(n_p), x0, 0.7, cmap=None, texts=texts, pad=pad, unread=unread,
             scale=0.8 if n_p <= 30 else 0.6)
    c.text(x0 - 0.3, 1.2, "x_p" if before or after else "x", ha="right", weight="bold")
    y = 2.3
    outputs = a.out if a.fits else 0
    starts = [i * a.s for i in range(max(outputs, 0))]
    rows: list[Any] = starts
    if len(starts) > max_windows:
        rows = starts[: max_windows // 2] + [None] + starts[-(max_windows // 2 - 1):]
    for _i, start in enumerate(rows):
        if start is None:
            c.text(x0 + n_p / 2, y + 0.35, "\u22ee", ha="center", scale=1.2, color="#555555")
            y += 0.9
            continue
        index = start // a.s
        for j in range(a.k):
            c.cell(x0 + start + j * a.d + 0.1, y + 0.1, "", fill="#cab2d6", edge=ACCENTS["window"], lw=1.4,
                   w=0.8, h=0.6)
        if a.d > 1:
            c.rect(x0 + start + 0.5, y + 0.38, span - 1, 0.04, edge=ACCENTS["window"], lw=1.0)
        c.text(x0 - 0.3, y + 0.4, f"v_{index + 1}", ha="right", scale=0.8)
        c.text(x0 + n_p + 0.4, y + 0.4, f"x_p[{start}:{start + span}" + (f":{a.d}" if a.d > 1 else "") + "]",
               scale=0.7, color="#555555")
        y += 0.9
    if not a.fits:
        c.rect(x0, y + 0.1, span, 0.6, edge=ACCENTS["unread"], lw=2.0, ls="--")
        c.text(x0 + span + 0.4, y + 0.4, f"the window ({span} entries) is longer than the padded input ({n_p})",
               color=ACCENTS["unread"], scale=0.85)
        y += 1.0
    y += 0.5
    for line in a.lines[1:]:
        c.text(x0, y, line.strip(), scale=0.85, family="monospace")
        y += 0.7
    if missing:
        note = coverage_note(a.n, a.k, a.p, a.s, a.d) or ""
        c.text(x0, y + 0.1, "hatched red, " + note.replace(": ", ":\n", 1), scale=0.9, color=ACCENTS["unread"])
        y += 1.6
    _legend(c, x0, y + 0.2, pad=bool(before or after), unread=bool(missing), match=False,
            window="the taps of one window position")
    what = "convolution" if e.op == "conv" else "pooling"
    title = (f"Output size of a {what} (Key Equation 48): n = {a.n}, k = {a.k}, p = "
             f"{before if before == after else a.p}, s = {a.s}" + (f", d = {a.d}" if a.d != 1 else "")
             + (f" -> {a.out}" if a.fits else " -> does not fit"))
    sub = f"{outputs} window position{'s' if outputs != 1 else ''}, each shifted s = {a.s} from the last"
    return c.finish(title, sub)
