"""``convscope explain filters | features | model``: pictures of a saved model (convscope.viz).

::

    convscope explain filters runs/mnist/model.npz --layer 4 --out filters.png
    convscope explain features runs/mnist/model.npz digit.png --out features.png
    convscope explain model runs/mnist/model.npz --input digit.png --out report.html

``MODEL`` is a model file written by ``convscope train`` (or :func:`convscope.save`), or the
name of a built-in architecture (``digits``, ``lenet``, ``cifar``: untrained, seed 0, to see
the machinery). ``IMAGE`` is read as ``convscope predict`` reads it (PNG, JPEG, ... or
``.npy``; converted and resized to the model's recorded input shape) and normalised as in
training when the model file records a normalisation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import MODEL_HELP, add_command, image_for_model, layer_ref, model_or_architecture, non_negative_int

__all__ = ["add_filters", "add_features", "add_model", "run_filters", "run_features", "run_model"]


def add_filters(sub: Any) -> None:
    p = add_command(sub, "filters", run_filters, "picture of the learned filters of a convolution layer (PNG)")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--layer", type=layer_ref, metavar="N|NAME",
                   help="layer number as in convscope summary, or dotted name (default: the first "
                   "convolution)")
    p.add_argument("--out", metavar="FILE.png", default="filters.png", help="default: filters.png")
    p.add_argument("--max-filters", type=int, default=64, metavar="N", help="rows drawn at most (default 64)")
    p.add_argument("--max-channels", type=int, default=16, metavar="N", help="columns drawn at most (default 16)")


def run_filters(args: argparse.Namespace) -> int:
    """Draw the filters of one convolution layer as a grid: one row per filter, one column per
    input channel; blue negative, white 0, red positive."""
    from ..viz import plot_filters

    model, _, _ = model_or_architecture(args.model)
    path = plot_filters(model, args.out, layer=args.layer, max_filters=args.max_filters,
                        max_channels=args.max_channels)
    print(f"wrote {path}")
    return 0


def add_features(sub: Any) -> None:
    p = add_command(sub, "features", run_features, "picture of every channel of every layer for one image (PNG)")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...) or .npy array")
    p.add_argument("--out", metavar="FILE.png", default="features.png", help="default: features.png")
    p.add_argument("--max-channels", type=int, default=None, metavar="N",
                   help="channels drawn per layer at most (default: all)")


def run_features(args: argparse.Namespace) -> int:
    """Run the model on IMAGE and draw every layer's feature maps, every channel, one colour scale
    per layer."""
    from ..viz import plot_feature_maps

    model, metadata, _ = model_or_architecture(args.model)
    x, _ = image_for_model(args.image, args.model, metadata, "explain features")
    path = plot_feature_maps(model, x, args.out, max_channels=args.max_channels,
                             class_names=metadata.get("classes"))
    print(f"wrote {path}")
    return 0


def add_model(sub: Any) -> None:
    p = add_command(sub, "model", run_model, "self-contained HTML page walking one image through the model")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", required=True, metavar="IMAGE", help="an image file (PNG, JPEG, ...) or .npy array")
    p.add_argument("--out", metavar="FILE.html", default="report.html", help="default: report.html")
    p.add_argument("--max-channels", type=int, default=64, metavar="N",
                   help="feature maps per layer at most (default 64; the page says when some are left out)")
    p.add_argument("--label", type=non_negative_int, metavar="CLASS",
                   help="the true class of IMAGE (a class index); the backward view starts on it")
    p.add_argument("--no-backward", action="store_true",
                   help="leave out the backward passes (gradient maps, dL/dW): a smaller page")


def run_model(args: argparse.Namespace) -> int:
    """Write one HTML file (no network needed) that walks IMAGE through the model layer by layer:
    the prediction and a layer index at the top, shapes and parameter formulas, every channel's
    feature map, the filters, the class probabilities. Clicking any value of any layer shows how
    it was computed (the window on the previous layer, the receptive field on the input) and can
    slide the window; the backward view shows every layer's gradient for a chosen class and a
    filter's dL/dW; a playground shows the output-size formula."""
    from ..viz import explain_model_html

    model, metadata, described = model_or_architecture(args.model)
    x, note = image_for_model(args.input, args.model, metadata, "explain model")
    path = explain_model_html(model, x, args.out, class_names=metadata.get("classes"),
                              max_channels=args.max_channels,
                              title=f"convscope explainer: {described} on {Path(args.input).name}",
                              input_note=note, label=args.label, backward=not args.no_backward)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB); open it in a browser (no network needed)")
    return 0
