"""Interactive pictures for Jupyter, on ipywidgets (``pip install 'convscope[notebook]'``).

* :func:`playground` - sliders for ``n, k, p, s, d`` that redraw the output-size picture of
  Key Equation 48 (:func:`~convscope.viz.plot_output_size`): every window position, the
  padding, and the entries never read (k = 3, s = 4 leaves gaps: Key Equation 54).
* :func:`feature_explorer` - a model's feature maps: pick a layer and a channel, click a pixel
  (a grid of buttons for maps up to 16 x 16; sliders otherwise) and see its receptive field on
  the input and the window arithmetic that made it (:mod:`convscope.viz.explorer`).

Both return an ``ipywidgets`` box; show it by leaving it last in a cell.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConvscopeError, MissingDependencyError
from ..explain import explain_shape
from .explorer import pixel_arithmetic, plot_feature_pixel, spatial_layers
from .notes_conv import plot_output_size

__all__ = ["playground", "feature_explorer"]

_SCREEN_DPI = 100


def _widgets():
    try:
        import ipywidgets
    except ImportError:
        raise MissingDependencyError("convscope.viz.notebook: the interactive widgets need ipywidgets; install "
                                     "them with pip install 'convscope[notebook]'.") from None
    return ipywidgets


def playground(n: int = 11, k: int = 3, p: int = 0, s: int = 4, d: int = 1, op: str = "conv") -> Any:
    """Sliders for the output size (Key Equation 48) that redraw the window positions.

    Args:
        n, k, p, s, d: the starting input size, window size, padding, stride and dilation.
        op: "conv" or "pool".

    Returns:
        An ``ipywidgets.VBox``: the sliders, the picture, the derivation as text. Its
        ``redraw()`` attribute redraws from the sliders' values.
    """
    w = _widgets()
    sliders = {
        "n": w.IntSlider(value=n, min=1, max=40, description="n (input)"),
        "k": w.IntSlider(value=k, min=1, max=12, description="k (window)"),
        "p": w.IntSlider(value=p, min=0, max=8, description="p (padding)"),
        "s": w.IntSlider(value=s, min=1, max=8, description="s (stride)"),
        "d": w.IntSlider(value=d, min=1, max=4, description="d (dilation)"),
    }
    kind = w.Dropdown(options=["conv", "pool"], value=op, description="op")
    image = w.Image(format="png")
    text = w.HTML()

    def redraw(*_: Any) -> None:
        v = {name: sl.value for name, sl in sliders.items()}
        try:
            e = explain_shape(v["n"], v["k"], v["p"], v["s"], v["d"], op=kind.value)
            image.value = plot_output_size(e).png(dpi=_SCREEN_DPI)
            text.value = "<pre>" + e.text().replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
        except ConvscopeError as exc:
            text.value = f"<pre>{str(exc)}</pre>"

    for sl in sliders.values():
        sl.observe(redraw, names="value")
    kind.observe(redraw, names="value")
    redraw()
    box = w.VBox([w.HBox([w.VBox(list(sliders.values())[:3]), w.VBox(list(sliders.values())[3:] + [kind])]),
                  image, text])
    box.redraw = redraw
    box.sliders = sliders
    box.image = image
    box.text = text
    return box


def feature_explorer(model: Any, x: Any, max_buttons: int = 256) -> Any:
    """Click a pixel of any feature map: its receptive field and the arithmetic behind it.

    Args:
        model: a :class:`convscope.nn.Module` on 1-D or 2-D inputs.
        x: one sample.
        max_buttons: maps with at most this many pixels get a grid of buttons to click;
            larger maps get row / column sliders.

    Returns:
        An ``ipywidgets.VBox``; its ``select(layer, channel, pixel)`` attribute does what a
        click does.
    """
    w = _widgets()
    layers = spatial_layers(model, x)
    if not layers:
        raise ConvscopeError("feature_explorer: the model has no layer with a spatial output.")
    from .activations import forward_layers

    _, acts = forward_layers(model, x, "feature_explorer")
    shapes = {a.index: a.y.shape for a in acts}
    pick = w.Dropdown(options=[(f"{i}: {name} {layer}"[:70], i) for i, name, layer in layers],
                      description="layer")
    channel = w.IntSlider(value=0, min=0, max=shapes[layers[0][0]][1] - 1, description="channel")
    where = w.VBox()
    field = w.Image(format="png")
    arith = w.Image(format="png")
    note = w.HTML()
    state: dict[str, Any] = {}

    def show(pixel: Any) -> None:
        state["pixel"] = pixel
        try:
            field.value = plot_feature_pixel(model, x, pick.value, channel.value, pixel).png(dpi=_SCREEN_DPI)
            try:
                arith.value = pixel_arithmetic(model, x, pick.value, channel.value, pixel).png(dpi=_SCREEN_DPI)
                note.value = ""
            except ConvscopeError as exc:
                arith.value = b""
                note.value = f"<i>{exc}</i>"
        except ConvscopeError as exc:
            note.value = f"<pre>{exc}</pre>"

    def rebuild(*_: Any) -> None:
        shape = shapes[pick.value]
        channel.max = shape[1] - 1
        spatial = shape[2:] if len(shape) == 4 else (1,) + tuple(shape[2:])
        count = spatial[0] * spatial[1]
        if count <= max_buttons:
            buttons = []
            for r in range(spatial[0]):
                row = []
                for c in range(spatial[1]):
                    b = w.Button(description="", layout=w.Layout(width="22px", height="22px", padding="0"),
                                 tooltip=f"pixel ({r}, {c})")
                    b.on_click(lambda _b, r=r, c=c: show((r, c) if len(shape) == 4 else c))
                    row.append(b)
                buttons.append(w.HBox(row))
            where.children = [w.HTML("click a pixel of the feature map:"), w.VBox(buttons)]
        else:
            rs = w.IntSlider(min=0, max=spatial[0] - 1, description="row")
            cs = w.IntSlider(min=0, max=spatial[1] - 1, description="column")
            go = w.Button(description="show")
            go.on_click(lambda _b: show((rs.value, cs.value) if len(shape) == 4 else cs.value))
            where.children = [w.HBox([rs, cs, go])]
        show(None)

    pick.observe(rebuild, names="value")
    channel.observe(lambda *_: show(state.get("pixel")), names="value")
    rebuild()
    box = w.VBox([w.HBox([pick, channel]), where, field, arith, note])

    def select(layer: int, ch: int = 0, pixel: Any = None) -> None:
        pick.value = layer
        channel.value = ch
        show(pixel)

    box.select = select
    box.field = field
    box.arithmetic = arith
    return box
