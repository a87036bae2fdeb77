"""``convscope.summary``: a layer-by-layer table of shapes, parameter counts and windows.

For each layer it shows, computed by arithmetic alone (no forward pass):

* the output shape (Key Equation 48 per spatial axis, via :mod:`convscope.shapes`);
* the parameter count WITH its formula, e.g. ``8*(1*5*5)+8 = 208`` for ``Conv2d(1, 8, 5)``
  (8 filters of 1x5x5 weights plus 8 offsets);
* the count a fully-connected layer would need to map the same input size to the same
  output size, the notes' weight-sharing point (9.1.18: 5x5 in, 5x5 out, 3x3 filter with
  p=1: ``10`` parameters where a fully-connected layer needs ``25*25+25 = 650``);
* the receptive field of one output pixel (how many input pixels per axis can influence
  it) and its jump (how far apart, in input pixels, neighbouring outputs' fields are):
  ``rf_out = rf_in + d*(k-1)*jump_in`` and ``jump_out = jump_in * s``;
* the memory of the window matrix (im2col) a convolution layer builds for the given
  input: ``N * prod(out) * C_in * prod(k)`` entries. Pooling reads its windows through
  strided views and needs none. (The convolution itself works through the batch in chunks
  that stay under :func:`convscope.functional.get_workspace_budget`.)

Totals come at the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..shapes import format_shape
from .layer_types import BatchNormLayer, ConvLayer, LinearLayer
from .module import Module
from .receptive import field_steps
from .walk import LayerRecord, batched_input_shape, one_line, walk

__all__ = ["summary", "Summary", "LayerRow", "layer_table_html"]


@dataclass(frozen=True)
class LayerRow:
    """One row of the summary.

    Attributes:
        index: 1-based layer number (the number used in error messages).
        name: dotted path in the model (``"features.0"``).
        layer: the layer's repr.
        output_shape: shape of its output for the summarised input.
        params: trainable parameters; ``formula`` shows how they add up.
        fc_params: what a fully-connected layer with the same input and output sizes would
            need (``in*out + out``), for layers with weights; None otherwise.
        fc_formula: the formula of ``fc_params``.
        receptive_field: input pixels per spatial axis that can reach one output pixel, or
            None when it is the whole input (after Linear) or unknown (``field_note``).
        jump: input-pixel distance between neighbouring outputs' fields per axis, or None.
        window_bytes: bytes of the convolution's window matrix (0 for other layers).
        field_note: "unknown layer" after a layer whose effect on positions convscope does
            not know (its receptive field is then None), else "".
        output_shapes: every output's shape for a layer with several (a graph's Split;
            ``output_shape`` is the first), else ``()``.
    """

    index: int
    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    formula: str
    fc_params: int | None
    fc_formula: str
    receptive_field: tuple[int, ...] | None
    jump: tuple[int, ...] | None
    window_bytes: int
    field_note: str = ""
    output_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def output_text(self) -> str:
        """The output shape as the table shows it: every piece of a Split, ``(..), (..)``."""
        return ", ".join(format_shape(s) for s in self.output_shapes or (self.output_shape,))


@dataclass
class Summary:
    """The result of :func:`summary`; ``str()`` gives the table, attributes give the numbers."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    batch_added: bool = False

    @property
    def total_params(self) -> int:
        """Sum of the rows' parameter counts."""
        return sum(r.params for r in self.rows)

    @property
    def total_fc_params(self) -> int:
        """Fully-connected equivalent summed over the layers that have one."""
        return sum(r.fc_params for r in self.rows if r.fc_params is not None)

    @property
    def total_window_bytes(self) -> int:
        """Sum of the window-matrix bytes over all layers."""
        return sum(r.window_bytes for r in self.rows)

    @property
    def peak_window_bytes(self) -> int:
        """The largest single window matrix (what one forward needs at a time)."""
        return max((r.window_bytes for r in self.rows), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for the CLI and reports)."""
        return {
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "rows": [
                {
                    "index": r.index, "name": r.name, "layer": r.layer,
                    "output_shape": list(r.output_shape), "params": r.params,
                    **({"output_shapes": [list(o) for o in r.output_shapes]} if r.output_shapes else {}),
                    "formula": r.formula, "fc_params": r.fc_params,
                    "receptive_field": None if r.receptive_field is None else list(r.receptive_field),
                    "jump": None if r.jump is None else list(r.jump),
                    "window_bytes": r.window_bytes,
                }
                for r in self.rows
            ],
            "total_params": self.total_params,
            "total_fc_params": self.total_fc_params,
            "peak_window_bytes": self.peak_window_bytes,
        }

    def __str__(self) -> str:
        header = ["#", "name", "layer", "output shape", "params (formula)", "FC equivalent",
                  "receptive field", "jump", "window matrix"]
        table = [header]
        for r in self.rows:
            table.append([
                str(r.index), r.name, r.layer, r.output_text, r.formula,
                r.fc_formula if r.fc_params is not None else "-",
                _axes_text(r.receptive_field, "unknown" if r.field_note else "all"),
                _axes_text(r.jump, "-"),
                f"{r.window_bytes:,} B" if r.window_bytes else "-",
            ])
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        right = {0, 4, 5, 8}

        def line(row: list[str]) -> str:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                     enumerate(zip(row, widths))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(line(header))
        batch_note = " (one sample: batch axis of 1 added)" if self.batch_added else ""
        out = [f"Input {format_shape(self.input_shape)}{batch_note}", rule, line(header), rule]
        out += [line(row) for row in table[1:]]
        out.append(rule)
        total = self.total_params
        out.append(f"Total parameters: {total:,}")
        fc_rows = [r for r in self.rows if r.fc_params is not None]
        if fc_rows:
            own = sum(r.params for r in fc_rows)
            ratio = f" ({self.total_fc_params / own:,.1f}x the {own:,} of these layers)" if own else ""
            out.append(
                f"Fully-connected layers with the same sizes would need: "
                f"{self.total_fc_params:,}{ratio}"
            )
        out.append(
            f"Window matrices: largest {self.peak_window_bytes:,} B, all layers "
            f"{self.total_window_bytes:,} B (batch {self.input_shape[0]})"
        )
        out.append(f"Output {format_shape(self.output_shape)}")
        return "\n".join(out)

    def to_text(self, width: int | None = None) -> str:
        """The table as ``str()`` gives it, or fitted to ``width`` columns.

        With a ``width`` the whole table is kept if it fits; otherwise the columns that
        explain rather than count (the formulas, FC equivalents, window memory) are left
        out, the name column too when every name is just the layer's position (a plain
        Sequential), a size the same on every axis is written once (``kernel_size=3`` for
        ``(3, 3)``, as the constructor takes it), and a layer description still too long
        is shortened with ``...``.
        """
        import re

        full = str(self)
        if width is None or max(len(line) for line in full.splitlines()) <= width:
            return full
        header = ["#", "name", "layer", "output shape", "params", "receptive field", "jump"]
        table = [header] + [
            [str(r.index), r.name, re.sub(r"\((\d+)(?:, \1)+\)", r"\1", r.layer), r.output_text,
             f"{r.params:,}", _axes_text(r.receptive_field, "unknown" if r.field_note else "all"),
             _axes_text(r.jump, "-")]
            for r in self.rows
        ]
        if all(r.name == str(r.index - 1) for r in self.rows):
            table = [row[:1] + row[2:] for row in table]
        layer = table[0].index("layer")
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        spare = width - (sum(widths) + 2 * (len(widths) - 1))
        if spare < 0:
            widths[layer] = max(len("layer") + 3, widths[layer] + spare)
            for row in table[1:]:
                if len(row[layer]) > widths[layer]:
                    row[layer] = row[layer][: widths[layer] - 3] + "..."
        right = {0, table[0].index("params")}
        lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                           enumerate(zip(row, widths))).rstrip() for row in table]
        rule = "-" * max(len(line) for line in lines)
        batch_note = " (one sample: batch axis of 1 added)" if self.batch_added else ""
        out = [f"Input {format_shape(self.input_shape)}{batch_note}", rule, lines[0], rule, *lines[1:], rule,
               f"Total parameters: {self.total_params:,} (formulas, FC equivalents and window "
               f"memory: convscope summary, or --wide)",
               f"Output {format_shape(self.output_shape)}"]
        return "\n".join(out)

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} layers, input {format_shape(self.input_shape)} -> output "
                f"{format_shape(self.output_shape)}, {self.total_params:,} parameters; print() for the table)")

    def _repr_html_(self) -> str:
        from .._display import esc, panel, table

        rows = [[r.index, esc(r.name), esc(r.layer), r.output_text, esc(r.formula),
                 esc(r.fc_formula) if r.fc_params is not None else "-", _axes_text(r.receptive_field, "all"),
                 _axes_text(r.jump, "-")] for r in self.rows]
        body = table(["#", "name", "layer", "output shape", "params (formula)", "FC equivalent",
                      "receptive field", "jump"], rows, raw=True)
        note = (f"input {format_shape(self.input_shape)}"
                + (" (one sample: batch axis of 1 added)" if self.batch_added else "")
                + f" -> output {format_shape(self.output_shape)}; total {self.total_params:,} parameters")
        return panel("Model summary", body, note=note)


def layer_table_html(model: Module) -> str:
    """A model's layers as an HTML table (number, name, layer, parameters), no input shape needed."""
    from .._display import esc, panel, table

    rows = [[r.index, esc(r.name), esc(one_line(r.module)),
             f"{r.module.num_parameters():,}" if r.kind != "residual" else "x + block(x)"] for r in walk(model)]
    body = table(["#", "name", "layer", "parameters"], rows, raw=True)
    return panel(f"{type(model).__name__}: {len(rows)} layers, {model.num_parameters():,} parameters", body,
                 note="convscope.summary(model, input_shape) adds output shapes and receptive fields")


def _axes_text(values: tuple[int, ...] | None, none_text: str) -> str:
    if values is None:
        return none_text
    return "x".join(str(v) for v in values) if values else "-"


def _prod_text(values: Sequence[int]) -> str:
    return "*".join(str(v) for v in values)


def _row(index: int, record: LayerRecord, rf: Any, jump: Any, note: str) -> LayerRow:
    """The summary row of one walked layer: its parameter formula and window matrix by kind."""
    module, shape, out = record.module, record.in_shape, record.out_shape
    assert shape is not None and out is not None, "summary walks with a shape and stops at a misfit"
    if record.kind == "residual":
        return LayerRow(index, record.name, "Residual: x + block(x)", out, 0, "0", None, "", rf,
                        jump, 0, note)
    params = module.num_parameters()
    formula = f"{params:,}"
    fc = None
    fc_formula = ""
    window_bytes = 0
    kind = record.kind
    if kind == "conv":
        conv = cast(ConvLayer, module)
        c_out, c_per_group, *k = conv.weight.shape
        weights = f"{c_out}*({_prod_text([c_per_group, *k])})"
        formula = f"{weights}+{c_out} = {params:,}" if conv.bias is not None else f"{weights} = {params:,}"
        fc, fc_formula = _fc_equivalent(shape, out, conv.bias is not None)
        window_bytes = (shape[0] * int(np.prod(out[2:])) * shape[1] * int(np.prod(k))
                        * conv.dtype.itemsize)
    elif kind == "linear":
        fc_layer = cast(LinearLayer, module)
        w = f"{fc_layer.out_features}*{fc_layer.in_features}"
        formula = (f"{w}+{fc_layer.out_features} = {params:,}" if fc_layer.bias is not None
                   else f"{w} = {params:,}")
        fc, fc_formula = _fc_equivalent(shape, out, fc_layer.bias is not None)
    elif kind == "batch_norm":
        bn = cast(BatchNormLayer, module)
        formula = f"2*{bn.num_features} = {params}" if bn.affine else "0"
    return LayerRow(index, record.name, one_line(module), out, params, formula, fc, fc_formula,
                    rf, jump, window_bytes, note, record.out_shapes if len(record.out_shapes) > 1 else ())


def _fc_equivalent(in_shape, out_shape, bias: bool) -> tuple[int, str]:
    """A dense layer from every input entry of one sample to every output entry."""
    n_in = int(np.prod(in_shape[1:]))
    n_out = int(np.prod(out_shape[1:]))
    count = n_in * n_out + (n_out if bias else 0)
    text = f"{n_out}*{n_in}" + (f"+{n_out}" if bias else "")  # like Linear: out*in + out
    return count, f"{text} = {count:,}"


def summary(model: Module, input_shape: Sequence[int]) -> Summary:
    """Summarise ``model`` for inputs of ``input_shape``: one row per layer, totals below.

    Args:
        model: a Module (Sequential and Residual are unfolded into their layers).
        input_shape: the input's shape WITH or WITHOUT the batch axis. Without it
            (e.g. ``(1, 28, 28)`` for a model starting with ``Conv2d``), one sample is
            assumed and a batch axis of 1 is added. Which form was given is read from the
            first layer that fixes the number of axes (a convolution or pooling layer:
            ``(C, *spatial)`` vs ``(N, C, *spatial)``; a leading Linear: ``(in_features,)``
            vs ``(N, in_features)``); otherwise the shape is taken as batched.

    Returns:
        A :class:`Summary`; print it for the table.

    Raises:
        ShapeError: a layer does not fit its input; the message names the layer (``layer 3
            (Conv2d(...))``) and shows the output-size arithmetic.
        ArgumentTypeError: ``model`` is not a Module or ``input_shape`` is not a shape.

    Example:
        The notes' weight-sharing example (9.1.18): a 5x5 image to a 5x5 output.

        >>> from convscope.nn import Conv2d
        >>> s = summary(Conv2d(1, 1, 3, padding=1, rng=0), (1, 5, 5))
        >>> s.rows[0].formula, s.rows[0].fc_formula
        ('1*(1*3*3)+1 = 10', '25*25+25 = 650')
        >>> print(s)
        Input (1, 1, 5, 5) (one sample: batch axis of 1 added)
        --------------------------------------------------------------------------------------------------------------------------------------------------
        #  name     layer                                             output shape  params (formula)   FC equivalent  receptive field  jump  window matrix
        --------------------------------------------------------------------------------------------------------------------------------------------------
        1  (model)  Conv2d(1, 1, kernel_size=(3, 3), padding=(1, 1))  (1, 1, 5, 5)  1*(1*3*3)+1 = 10  25*25+25 = 650  3x3              1x1           900 B
        --------------------------------------------------------------------------------------------------------------------------------------------------
        Total parameters: 10
        Fully-connected layers with the same sizes would need: 650 (65.0x the 10 of these layers)
        Window matrices: largest 900 B, all layers 900 B (batch 1)
        Output (1, 1, 5, 5)
    """
    shape, batch_added = batched_input_shape(model, input_shape, "summary")
    records = list(walk(model, shape))
    for record in records:
        if record.error is not None:
            exc = record.error
            where = f" at {record.name!r}" if record.name != "(model)" else ""
            raise type(exc)(
                f"summary: layer {record.index} ({one_line(record.module)}){where} does not fit "
                f"its input of shape {format_shape(record.in_shape or ())}: {exc}"
            ) from None
    rows = []
    for record, step in zip(records, field_steps(records, max(len(shape) - 2, 0))):
        jump = () if step.note == "flattened" else step.jump
        note = "unknown layer" if step.note == "unknown layer" else ""
        rows.append(_row(record.index, record, step.rf, jump, note))
    out = records[-1].out_shape if records else shape
    return Summary(shape, tuple(out or ()), rows, batch_added)


def _module_html(self: Module) -> str:
    """A Module in Jupyter: its layer table (:func:`layer_table_html`)."""
    return layer_table_html(self)


# Every Module shows its layer table in Jupyter; attached here, beside the table, so that
# module.py need not import the summary built on top of it.
Module._repr_html_ = _module_html  # type: ignore[attr-defined]
