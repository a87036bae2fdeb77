"""Pictures from ``convscope explain``: ``--out FILE.png|FILE.svg`` draws what a subcommand prints.

::

    convscope explain conv --input "1 1 -1 -1 -1 1 -1 1 1 1" --filter "1 -1 1" --out w.png
    convscope explain conv --input x.npy --filter "[[1,-1,1],[-1,1,-1]]" --out bank.svg   # a filter bank
    convscope explain pool --input "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]" --size 2 --out p.png
    convscope explain shape --n 11 --k 3 --s 4 --out never_read.png                         # Key Equation 54
    convscope explain jacobian --example chain --out chain.svg
    convscope explain gradients runs/mnist/model.npz --input digit.png --label 3 --out gradients.png

The pictures are those of :mod:`convscope.viz` (:func:`~convscope.viz.plot_conv1d`,
:func:`~convscope.viz.plot_conv2d`, :func:`~convscope.viz.plot_filter_bank`,
:func:`~convscope.viz.plot_pool`, :func:`~convscope.viz.plot_output_size`,
:func:`~convscope.viz.plot_jacobian`, :func:`~convscope.viz.plot_chain`,
:func:`~convscope.viz.plot_weight_gradients`), drawn from the same explain result the
subcommand prints, so the picture and the text show the same numbers. The suffix chooses the
format.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ._common import MODEL_HELP, add_command, image_for_model, model_or_architecture

__all__ = ["add_out", "write_picture", "conv_picture", "pool_picture", "shape_picture", "jacobian_picture",
           "add_gradients", "run_gradients"]

_SUFFIXES = (".png", ".svg")


def add_out(p: argparse.ArgumentParser, what: str) -> None:
    """The ``--out FILE.png|FILE.svg`` option of a notes subcommand."""
    p.add_argument("--out", metavar="FILE.png|FILE.svg",
                   help=f"also draw {what} into this file (PNG or SVG, by the suffix)")


def add_animate(p: argparse.ArgumentParser, what: str) -> None:
    """The ``--animate FILE.gif|FILE.html`` option: the window sliding, frame by frame."""
    p.add_argument("--animate", metavar="FILE.gif|FILE.html",
                   help=f"also write an animation of {what} (GIF, or HTML with SVG frames, by the suffix)")


def _write(out: str | None, draw: Callable[[], Any], option: str, suffixes: tuple[str, ...]) -> None:
    """Draw and write when the option was given (the suffix chooses the format); say where it went."""
    if out is None:
        return
    if not out.lower().endswith(suffixes):
        kinds = " or ".join(suffixes)
        raise ConfigError(f"{option} must name a {kinds} file (the suffix chooses the format); got {out!r}.")
    path = draw().save(out)
    print(f"wrote {path}")


def write_picture(out: str | None, draw: Callable[[], Any]) -> None:
    """Draw and write the picture when ``--out`` was given."""
    _write(out, draw, "--out", _SUFFIXES)


def write_animation(out: str | None, draw: Callable[[], Any]) -> None:
    """Draw and write the animation when ``--animate`` was given."""
    _write(out, draw, "--animate", (".gif", ".html"))


def conv_picture(result: Any) -> Any:
    """The picture of a ConvTrace (1-D or 2-D) or a FilterBankTrace."""
    from ..explain import FilterBankTrace
    from ..viz import plot_conv1d, plot_conv2d, plot_filter_bank

    if isinstance(result, FilterBankTrace):
        return plot_filter_bank(result)
    if result.y.ndim == 1 and not result.channels:
        return plot_conv1d(result)
    if result.y.ndim == 2:
        return plot_conv2d(result)
    raise ConfigError(f"--out draws 1-D and 2-D convolutions; this one has {result.y.ndim} spatial axes"
                      + (" and channels (draw a 2-D tensor filter, or one channel)" if result.y.ndim == 1 else "")
                      + ".")


def pool_picture(trace: Any, picture: str = "windows", shift: int = 1) -> Any:
    """The picture of a PoolTrace (1-D or 2-D): its windows, its derivative as one-hot routing
    (Key Eq. 69), or the shift problem of 9.2.6 (the same input moved ``shift`` pixels)."""
    from ..viz import plot_pool, plot_pool_derivative, plot_pool_shift

    if len(trace.k) > 2:
        raise ConfigError(f"--out draws 1-D and 2-D pooling; this one has {len(trace.k)} spatial axes.")
    if picture == "windows":
        return plot_pool(trace)
    if trace.kind != "max":
        raise ConfigError(f"--picture {picture} draws max pooling (Key Eq. 69, 9.2.6); this is {trace.kind} pooling.")
    if picture == "derivative":
        return plot_pool_derivative(trace)
    return plot_pool_shift(trace.x, trace.k, stride=trace.s, shift=shift)


def shape_picture(result: Any) -> Any:
    """The output-size picture of a one-axis ShapeExplanation."""
    from ..viz import plot_output_size

    if len(result.axes) != 1:
        raise ConfigError(f"--out draws one axis at a time (Key Equation 48 along it); give --n and --k as one "
                          f"int each; got {len(result.axes)} axes.")
    return plot_output_size(result)


def jacobian_picture(result: Any) -> Any:
    """The picture of a Jacobian or of the chain (9.32)."""
    from ..explain import Chain932
    from ..viz import plot_chain, plot_jacobian

    return plot_chain(result) if isinstance(result, Chain932) else plot_jacobian(result)


# ------------------------------------------------------------------------------- gradients


def add_gradients(sub: Any) -> None:
    p = add_command(sub, "gradients", run_gradients,
                    "picture of dLoss/dW of every layer with weights, for one labelled image (PNG or SVG)")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", required=True, metavar="IMAGE", help="an image file (PNG, JPEG, ...) or .npy array")
    p.add_argument("--label", required=True, type=int, metavar="CLASS", help="its correct class (0-based)")
    p.add_argument("--out", metavar="FILE.png|FILE.svg", default="gradients.png", help="default: gradients.png")
    p.add_argument("--max-filters", type=int, default=32, metavar="N", help="filters drawn per layer at most")
    p.add_argument("--max-channels", type=int, default=8, metavar="N", help="input channels drawn per layer at most")


def run_gradients(args: argparse.Namespace) -> int:
    """Run MODEL on IMAGE, take the cross-entropy loss against --label and backpropagate (9.4): draw
    dL/dW of every convolution (filter grids) and Linear layer (a matrix); blue negative, white 0,
    red positive. The model's weights are not changed."""
    import numpy as np

    from ..viz import plot_weight_gradients

    if not args.out.lower().endswith(_SUFFIXES):
        raise ConfigError(f"--out must name a .png or .svg file; got {args.out!r}.")
    model, metadata, _ = model_or_architecture(args.model)
    # the gradients of the model as it predicts: running statistics, no dropout (a file loads
    # in training mode, where BatchNorm on one image would use that image's own statistics)
    model.eval()
    x, _ = image_for_model(args.input, args.model, metadata, "explain gradients")
    classes = metadata.get("classes")
    count = len(classes) if classes else None
    if args.label < 0 or (count is not None and args.label >= count):
        raise ConfigError(f"--label must be a class of the model (0..{(count or 1) - 1}); got {args.label}.")
    path = plot_weight_gradients(model, args.out, x=x, target=np.array([args.label]),
                                 max_filters=args.max_filters, max_channels=args.max_channels)
    print(f"wrote {path}")
    return 0
