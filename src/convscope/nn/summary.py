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

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConvscopeError
from ..shapes import conv_geometry, format_shape
from .activation import Softmax
from .container import Residual, Sequential
from .conv import _ConvNd
from .flatten import Flatten
from .linear import Linear
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d, _BatchNorm
from .pool import _AvgPoolNd, _BlurPoolNd, _MaxPoolNd, _WindowPoolNd

__all__ = ["summary", "Summary", "LayerRow", "layer_table_html"]

_WHOLE = None  # receptive field marker: the output depends on the whole input


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
            None when it is the whole input (after Linear).
        jump: input-pixel distance between neighbouring outputs' fields per axis, or None.
        window_bytes: bytes of the convolution's window matrix (0 for other layers).
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
                str(r.index), r.name, r.layer, format_shape(r.output_shape), r.formula,
                r.fc_formula if r.fc_params is not None else "-",
                _axes_text(r.receptive_field, "all"), _axes_text(r.jump, "-"),
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

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} layers, input {format_shape(self.input_shape)} -> output "
                f"{format_shape(self.output_shape)}, {self.total_params:,} parameters; print() for the table)")

    def _repr_html_(self) -> str:
        from .._display import esc, panel, table

        rows = [[r.index, esc(r.name), esc(r.layer), format_shape(r.output_shape), esc(r.formula),
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

    rows = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        rows.append([len(rows) + 1, esc(name or "(model)"), esc(_one_line(module)), f"{module.num_parameters():,}"])
    body = table(["#", "name", "layer", "parameters"], rows, raw=True)
    return panel(f"{type(model).__name__}: {len(rows)} layers, {model.num_parameters():,} parameters", body,
                 note="convscope.summary(model, input_shape) adds output shapes and receptive fields")


def _axes_text(values: tuple[int, ...] | None, none_text: str) -> str:
    if values is None:
        return none_text
    return "x".join(str(v) for v in values) if values else "-"


def _prod_text(values: Sequence[int]) -> str:
    return "*".join(str(v) for v in values)


def _leaf_input_rank(model: Module) -> int | None:
    """Axes (with batch) the first shape-fixing layer needs, or None if it does not say."""
    for module in model.modules():
        if isinstance(module, (_ConvNd, _WindowPoolNd, _BlurPoolNd)):
            return module.ndim + 2
        if isinstance(module, BatchNorm2d):
            return 4
        if isinstance(module, Linear):
            return 2
        if isinstance(module, (BatchNorm1d, Flatten)):
            return None
    return None


class _Walker:
    def __init__(self, batch: int) -> None:
        self.rows: list[LayerRow] = []
        self.batch = batch

    def walk(self, module: Module, name: str, shape: tuple[int, ...], rf: Any, jump: Any):
        if isinstance(module, Sequential):
            for child_name, child in module.named_children():
                shape, rf, jump = self.walk(child, f"{name}.{child_name}" if name else child_name,
                                            shape, rf, jump)
            return shape, rf, jump
        if isinstance(module, Residual):
            block_name = f"{name}.block" if name else "block"
            out, rf_b, jump_b = self.walk(module.block, block_name, shape, rf, jump)
            self._fit(module, name, shape)  # checks the block keeps the shape
            self._row(name or "(model)", "Residual: x + block(x)", out, 0, "0", None, "",
                      rf_b, jump_b, 0)
            return out, rf_b, jump_b
        return self._leaf(module, name or "(model)", shape, rf, jump)

    def _fit(self, module: Module, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        try:
            return tuple(module.output_shape(shape))
        except ConvscopeError as exc:
            index = len(self.rows) + 1
            where = f" at {name!r}" if name else ""
            raise type(exc)(
                f"summary: layer {index} ({_one_line(module)}){where} does not fit its input of "
                f"shape {format_shape(shape)}: {exc}"
            ) from None

    def _row(self, name, layer, out, params, formula, fc, fc_formula, rf, jump, window_bytes):
        self.rows.append(LayerRow(len(self.rows) + 1, name, layer, tuple(out), params, formula,
                                  fc, fc_formula, rf, jump, window_bytes))

    def _leaf(self, module: Module, name: str, shape: tuple[int, ...], rf: Any, jump: Any):
        out = self._fit(module, name, shape)
        layer = _one_line(module)
        params = module.num_parameters()
        formula = f"{params:,}"
        fc = None
        fc_formula = ""
        window_bytes = 0
        if isinstance(module, _ConvNd):
            c_out, c_per_group, *k = module.weight.shape
            weights = f"{c_out}*({_prod_text([c_per_group, *k])})"
            formula = f"{weights}+{c_out} = {params:,}" if module.bias is not None else f"{weights} = {params:,}"
            geo = conv_geometry(shape, module.weight.shape, module.stride, module.padding,
                                module.dilation, module.groups, module.padding_mode, layer)
            fc, fc_formula = _fc_equivalent(shape, out, module.bias is not None)
            window_bytes = (geo.batch * int(np.prod(geo.out)) * geo.c_in * int(np.prod(geo.k))
                            * module.dtype.itemsize)
            rf, jump = _grow(rf, jump, geo.k, geo.s, geo.d)
        elif isinstance(module, (_MaxPoolNd, _AvgPoolNd)):
            rf, jump = _grow(rf, jump, module.kernel_size, module.stride, module.dilation)
        elif isinstance(module, _BlurPoolNd):
            nd = module.ndim
            rf, jump = _grow(rf, jump, (module.filter_size,) * nd, module.stride, (1,) * nd)
        elif isinstance(module, Linear):
            w = f"{module.out_features}*{module.in_features}"
            formula = f"{w}+{module.out_features} = {params:,}" if module.bias is not None else f"{w} = {params:,}"
            fc, fc_formula = _fc_equivalent(shape, out, module.bias is not None)
            rf, jump = _WHOLE, _WHOLE
        elif isinstance(module, _BatchNorm):
            formula = f"2*{module.num_features} = {params}" if module.affine else "0"
        elif isinstance(module, Softmax):
            n_spatial = len(shape) - 2
            if n_spatial > 0 and module.dim % len(shape) >= 2:
                rf, jump = _WHOLE, _WHOLE
        elif isinstance(module, Flatten):
            jump = None if rf is _WHOLE else ()
        self._row(name, layer, out, params, formula, fc, fc_formula, rf, jump, window_bytes)
        return out, rf, jump


def _fc_equivalent(in_shape, out_shape, bias: bool) -> tuple[int, str]:
    """A dense layer from every input entry of one sample to every output entry."""
    n_in = int(np.prod(in_shape[1:]))
    n_out = int(np.prod(out_shape[1:]))
    count = n_in * n_out + (n_out if bias else 0)
    text = f"{n_out}*{n_in}" + (f"+{n_out}" if bias else "")  # like Linear: out*in + out
    return count, f"{text} = {count:,}"


def _grow(rf, jump, k, s, d):
    """Receptive field and jump after a window layer: rf += d*(k-1)*jump, jump *= s."""
    if rf is _WHOLE or not rf:
        return rf, jump
    rf = tuple(r + di * (ki - 1) * j for r, j, ki, di in zip(rf, jump, k, d))
    jump = tuple(j * si for j, si in zip(jump, s))
    return rf, jump


def _one_line(module: Module) -> str:
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}(...)"


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
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"summary: model must be a convscope Module; got {type(model).__name__}.")
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = all(int(v) == v and v >= 1 for v in input_shape) and len(shape) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArgumentTypeError(
            f"summary: input_shape must be a tuple of positive ints such as (1, 28, 28); got "
            f"{input_shape!r}."
        )
    rank = _leaf_input_rank(model)
    batch_added = rank is not None and len(shape) == rank - 1
    if batch_added:
        shape = (1, *shape)
    n_spatial = max(len(shape) - 2, 0)
    walker = _Walker(shape[0])
    out, _, _ = walker.walk(model, "", shape, (1,) * n_spatial, (1,) * n_spatial)
    return Summary(shape, tuple(out), walker.rows, batch_added)
