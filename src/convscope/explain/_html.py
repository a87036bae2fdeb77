"""How explain's results show themselves in Jupyter: HTML tables in the notes' notation.

Every result object of :mod:`convscope.explain` has a ``_repr_html_`` that calls one function
here. The fragments are built from :mod:`convscope._display` (the one colour convention and
the table helpers shared with ``nn`` and ``viz``): arrays as small grids with their numbers,
coloured blue-white-red around 0, padding grey, the window purple, the strongest match and
the chosen maximum orange, entries never read hatched red. Pictures of the same results are
drawn by :mod:`convscope.viz` (explain does not import viz).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._display import esc, grid, panel, pre, table
from ._text import fmt_array, fmt_num, fmt_shape, label, plural
from .coverage import never_read

__all__ = ["array_grid", "conv_trace_html", "pool_trace_html", "filter_bank_html", "routing_html",
           "centred_html", "jacobian_html", "chain_html", "shape_html", "params_html",
           "model_shapes_html", "text_html"]

_MAX_GRID = 32 * 32       # entries up to which an array is drawn as a grid of numbers
_MAX_ROWS = 40            # table rows shown before "... n more"


def array_grid(a: Any, classes: Any = None, cmap: str = "diverging", vmax: float | None = None,
               row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None) -> str:
    """A 1-D or 2-D array as a grid of its numbers (3-D: one grid per leading index); too large: its shape."""
    a = np.asarray(a, dtype=np.float64)
    if a.size > _MAX_GRID:
        return f'<div class="cs-note">array of shape {esc(fmt_shape(a.shape))} (too large to write out)</div>'
    if a.ndim > 2:
        cls = None if classes is None else np.asarray(classes, dtype=object)
        return "".join(f'<span class="cs-label">[{i}]</span>'
                       + array_grid(a[i], None if cls is None else cls[i], cmap, vmax) for i in range(a.shape[0]))
    cells = np.vectorize(fmt_num, otypes=[object])(a) if a.size else np.empty(a.shape, dtype=object)
    return grid(cells, a, cmap, classes, vmax, row_labels, col_labels)


def _labelled(name: str, body: str) -> str:
    return f'<div style="display:inline-block;margin-right:14px;vertical-align:top">' \
           f'<div class="cs-label">{esc(name)}</div><div>{body}</div></div>'


def _rows(rows: list[list[Any]], header: list[str], raw: bool = False) -> str:
    shown = rows[:_MAX_ROWS]
    more = (f'<div class="cs-note">... {len(rows) - len(shown)} more rows (print the object for all)</div>'
            if len(rows) > len(shown) else "")
    return table(header, shown, raw=raw) + more


def step_html(title: str, values: Any, note: str) -> str:
    """One window or receptive field of a trace: its numbers as a grid under a title, with a note."""
    return panel(title, array_grid(values), note=note)


def text_html(obj: Any, title: str) -> str:
    """The printed text of a result under a title (for results whose text is the table)."""
    return panel(title, pre(obj.text()))


# ----------------------------------------------------------------------------- conv


def _pad_classes(shape_p: tuple[int, ...], pairs, channels: bool, n: tuple[int, ...], k, s, d) -> np.ndarray:
    """CSS classes over the padded input: "cs-pad" for padding, "cs-unread" for entries never read."""
    spatial = shape_p[1:] if channels else shape_p
    cls = np.full(spatial, "", dtype=object)
    for axis, (b, a) in enumerate(pairs):
        index = [slice(None)] * len(spatial)
        index[axis] = slice(0, b)
        cls[tuple(index)] = "cs-pad"
        index[axis] = slice(spatial[axis] - a, spatial[axis])
        cls[tuple(index)] = "cs-pad"
        for i in never_read(n[axis], k[axis], (b, a), s[axis], d[axis]):
            index[axis] = slice(i + b, i + b + 1)
            sub = cls[tuple(index)]
            cls[tuple(index)] = np.where(sub == "cs-pad", "cs-pad", "cs-unread")
    if channels:
        cls = np.broadcast_to(cls, shape_p).copy()
    return cls


def conv_trace_html(t: Any) -> str:
    """A :class:`~convscope.explain.ConvTrace`: input (padding grey), filter, every window, output."""
    g = t.geometry
    best = t.step(t.bright_spot)
    xp_cls = _pad_classes(t.x_padded.shape, g.p, t.channels, g.n, g.k, g.s, g.d)
    y_cls = np.full(t.y.shape, "", dtype=object)
    if best.y > 0:
        y_cls[best.index] = "cs-match"
    parts = [_labelled("x_p (x padded, grey)" if t.padded else "x", array_grid(t.x_padded, xp_cls)),
             _labelled("f", array_grid(t.f))]
    if t.b:
        parts.append(_labelled("f_0", esc(fmt_num(t.b))))
    parts.append(_labelled("y = x * f", array_grid(t.y, y_cls)))
    rows = [[label("v", st.index), t.window_text(st), fmt_array(st.v), t.arithmetic(st)] for st in t.steps]
    lines = t.text().splitlines()
    notes = [ln.strip() for ln in lines if ln.strip().startswith(("axis", "bright spot", "largest output",
                                                                  "the stride"))]
    pad = (str(g.p[0][0]) if all(b == a == g.p[0][0] for b, a in g.p) else str(tuple(g.p)))
    note = (f"k = {fmt_shape(g.k)}, stride {fmt_shape(g.s)}, padding {pad}, dilation {fmt_shape(g.d)} -> "
            f"{plural(len(t.steps), 'window')}, output {fmt_shape(g.out)}")
    return panel("Convolution y = x * f, window by window (Key Equation 15)",
                 "<div>" + "".join(parts) + "</div>",
                 "".join(f'<div class="cs-note">{esc(n)}</div>' for n in notes),
                 _rows(rows, ["window", "slice", "v_i", "y_i = f . v_i" + (" + f_0" if t.b else "")]),
                 note=note)


def filter_bank_html(t: Any) -> str:
    """A :class:`~convscope.explain.FilterBankTrace`: each filter beside the channel it makes."""
    first = t.traces[0]
    parts = [_labelled("x", array_grid(first.x_padded if first.padded else first.x))]
    for c, tr in enumerate(t.traces):
        cls = np.full(tr.y.shape, "", dtype=object)
        best = tr.step(tr.bright_spot)
        if best.y > 0:
            cls[best.index] = "cs-match"
        parts.append("<div>" + _labelled(f"filter {c + 1}", array_grid(tr.f))
                     + _labelled(f"-> output channel {c + 1}" + (f" (f_0 = {fmt_num(tr.b)})" if tr.b else ""),
                                 array_grid(tr.y, cls)) + "</div>")
    return panel(f"Filter bank: {plural(t.m, 'filter')} -> {plural(t.m, 'output channel')} (9.11, Concept 30)",
                 *parts, note=t.text().splitlines()[0])


# ----------------------------------------------------------------------------- pool


def pool_trace_html(t: Any) -> str:
    """A :class:`~convscope.explain.PoolTrace`: input, output, each receptive field, the derivative."""
    n = t.x.shape[1:] if t.channels else t.x.shape
    chosen = np.full(t.x.shape, "", dtype=object)
    if t.kind == "max":
        for st in t.steps:
            if st.argmax is not None:
                chosen[((st.channel,) + st.argmax) if t.channels else st.argmax] = "cs-match"
    if t.kind != "blur":
        for axis in range(len(n)):
            for i in never_read(n[axis], t.k[axis], t.p[axis], t.s[axis], t.d[axis]):
                index = [slice(None)] * t.x.ndim
                index[axis + (1 if t.channels else 0)] = slice(i, i + 1)
                chosen[tuple(index)] = "cs-unread"
    rows = [[label("r", st.index) if not t.channels else f"ch {st.channel + 1}: {label('r', st.index)}",
             t.field_text(st), fmt_array(st.values), fmt_num(st.y)] for st in t.steps]
    lines = t.text().splitlines()
    notes = [ln.strip() for ln in lines if "never seen" in ln]
    title = {"max": "Max-pooling (Definition 51)", "avg": "Average pooling", "blur": "Blur pooling"}[t.kind]
    what = {"max": "max", "avg": "mean", "blur": "blurred"}[t.kind]
    return panel(f"{title}: receptive field {fmt_shape(t.k)}, stride {fmt_shape(t.s)}",
                 "<div>" + _labelled("x (chosen maxima orange)" if t.kind == "max" else "x",
                                     array_grid(t.x, chosen))
                 + _labelled("y", array_grid(t.y))
                 + _labelled("d(sum of y)/dx", array_grid(t.derivative, cmap="sequential")) + "</div>",
                 "".join(f'<div class="cs-note">{esc(n)}</div>' for n in notes),
                 _rows(rows, ["field", "slice", "values", what]))


def routing_html(r: Any) -> str:
    """A :class:`~convscope.explain.PoolRouting`: dy, where each goes, dx."""
    rows = []
    for step, g, pos in r.routes:
        rows.append([label("dy", step.index), fmt_num(g), r.trace.field_text(step),
                     "padding" if pos is None else "x[" + ", ".join(map(str, pos)) + "]"])
    return panel("Max-pool backward: dy routed to each field's maximum (Key Equation 69, 9.35)",
                 "<div>" + _labelled("dy", array_grid(r.dy)) + _labelled("dx", array_grid(r.dx)) + "</div>",
                 _rows(rows, ["upstream", "value", "receptive field", "goes to"]))


def centred_html(c: Any) -> str:
    """A :class:`~convscope.explain.CentredIndexing`."""
    return text_html(c, "Centred indexing (Clarification 16)")


# ----------------------------------------------------------------------------- jacobians


def jacobian_html(j: Any) -> str:
    """A :class:`~convscope.explain.Jacobian` as a labelled matrix (symbols and numbers)."""
    r, c = j.shape
    row_labels = [f"{j.rows.split()[-1].split('_')[0]}_{i + 1}" for i in range(r)]
    col_labels = [f"{j.cols.split()[-1].split('_')[0]}_{i + 1}" for i in range(c)]
    parts = []
    if j.matrix is not None:
        parts.append(_labelled("numbers", array_grid(j.matrix, row_labels=row_labels, col_labels=col_labels)))
    if j.symbols is not None and j.symbols.size <= _MAX_GRID:
        parts.append(_labelled("in the notes' symbols", grid(j.symbols, None, row_labels=row_labels,
                                                             col_labels=col_labels)))
    return panel(f"{j.name} ({r} x {c}): row = {j.rows}, column = {j.cols} ({j.reference})",
                 "<div>" + "".join(parts) + "</div>", note=j.note)


def chain_html(ch: Any) -> str:
    """A :class:`~convscope.explain.Chain932`: the four factors and their product, side by side."""
    k, n = ch.dz_dw.shape
    factors = [("dZ^1/dW^1", ch.dz_dw.matrix, f"({k} x {n})"), ("dA^1/dZ^1", ch.da1_dz1.matrix, f"({n} x {n})"),
               ("dA^2/dA^1", ch.da2_da1, f"({n} x 1)"), ("dL/dA^2", ch.dl_da2, "(1 x 1)")]
    parts = []
    for i, (name, m, shape) in enumerate(factors):
        parts.append(_labelled(f"{name} {shape}", array_grid(m)))
        parts.append('<span class="cs-label" style="font-size:18px">' + ("&middot;" if i < 3 else "=") + "</span>")
    parts.append(_labelled(f"dL/dW^1 ({k} x 1)", array_grid(ch.product)))
    forward = [["A^0 = X", fmt_array(ch.a0)], ["W^1", fmt_array(ch.w1)], ["Z^1 = W^1 * A^0", fmt_array(ch.z1)],
               ["A^1 = ReLU(Z^1)", fmt_array(ch.a1)], ["A^2 = (W^2)^T A^1", fmt_num(ch.a2)],
               ["L = (A^2 - y)^2", fmt_num(ch.loss)]]
    return panel("The chain rule (9.32): dL/dW^1 = dZ^1/dW^1 . dA^1/dZ^1 . dA^2/dA^1 . dL/dA^2",
                 table(["forward (9.4.1)", "value"], forward), "<div>" + "".join(parts) + "</div>",
                 note=f"library conv_backward gives dw = {fmt_array(ch.library_dw)}; largest difference "
                      f"{ch.max_abs_diff:.3g}")


# ----------------------------------------------------------------------------- derivations


def shape_html(e: Any) -> str:
    """A :class:`~convscope.explain.ShapeExplanation`: one table row per axis."""
    rows = []
    for i, a in enumerate(e.axes):
        missing = never_read(a.n, a.k, a.p, a.s, a.d) if a.fits else ()
        rows.append([str(i + 1), str(a.n), str(a.k), str(a.p[0]) if a.p[0] == a.p[1] else str(a.p), str(a.s),
                     str(a.d), f"ceil {a.ceil_form}, floor {a.floor_form}",
                     str(a.out) if a.fits else "does not fit",
                     ", ".join(f"x_{m + 1}" for m in missing[:10]) + (" ..." if len(missing) > 10 else "")])
    body = table(["axis", "n", "k", "p", "s", "d", "both forms of Key Equation 48", "output", "never read"], rows)
    return panel(f"Output size of a {'convolution' if e.op == 'conv' else 'pooling'} (Key Equation 48)",
                 body, pre(e.text()),
                 note=None if e.fits else f"no output: {e.reason}")


def params_html(p: Any) -> str:
    """A :class:`~convscope.explain.ParamsExplanation`: conv layer beside a fully-connected one."""
    lines = p.text().splitlines()
    rows = [["convolutional layer", f"{p.conv_weights:,}", f"{p.conv_biases:,}", f"{p.conv_params:,}"],
            ["fully-connected layer, same sizes", f"{p.fc_weights:,}", f"{p.fc_biases:,}", f"{p.fc_params:,}"]]
    return panel("Parameters: weight sharing (Definition 42)", table(["layer", "weights", "biases", "total"], rows),
                 "".join(f'<div class="cs-note">{esc(ln)}</div>' for ln in lines), note=lines[0])


def model_shapes_html(w: Any) -> str:
    """A :class:`~convscope.explain.ModelShapes`: the shape walk as a table."""
    rows = [[str(i), esc(name), esc(layer), esc(str(tuple(a))), esc(str(tuple(b))) if b is not None else "does not fit",
             "<br>".join(esc(d) for d in deriv)] for i, name, layer, a, b, deriv in w.rows]
    tail = (f"stopped at layer {w.failure[0]} ({w.failure[1]}): {w.failure[2]}" if w.failure is not None
            else f"output {w.output_shape}")
    return panel(f"Shape walk for input {tuple(w.input_shape)}", _rows(rows, ["#", "name", "layer", "input",
                                                                            "output", "Key Equation 48"], raw=True),
                 note=tail)
