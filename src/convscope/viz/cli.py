"""``convscope explain filters | features | model``: pictures of a saved model from the shell.

::

    convscope explain filters runs/mnist/model.npz --layer 4 --out filters.png
    convscope explain features runs/mnist/model.npz digit.png --out features.png
    convscope explain model runs/mnist/model.npz --input digit.png --out report.html

``MODEL`` is a model file written by ``convscope train`` (or :func:`convscope.save`), or the
name of a built-in architecture (``digits``, ``lenet``, ``cifar``: untrained, seed 0, to see
the machinery). ``IMAGE`` is read as ``convscope predict`` reads it (PNG, JPEG, ... or
``.npy``; converted and resized to the model's recorded input shape) and normalised as in
training when the model file records a normalisation.

Registered in :data:`convscope.cli.PLUGIN_MODULES` after ``convscope.cli_explain``, whose
:func:`~convscope.cli_explain.explain_subcommand` adds each builder below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_explain import explain_subcommand
from ..errors import ConfigError

__all__ = ["add_filters", "add_features", "add_model", "run_filters", "run_features", "run_model"]

_MODEL_HELP = ("a model file from convscope train, or a built-in architecture name (digits, lenet, cifar: "
               "untrained, seed 0)")


def _model(text: str) -> tuple[Any, dict[str, Any], str]:
    """(model, metadata, description) for a model file or a built-in architecture name."""
    from ..cli import _load_model
    from ..models import ARCHITECTURES, build_model

    path = Path(text)
    if path.exists() or Path(text + ".npz").exists():
        model, metadata = _load_model(text)
        return model, metadata, str(path)
    key = text.lower()
    if key in ARCHITECTURES:
        arch = ARCHITECTURES[key]
        print(f"note: {key} is a built-in architecture; its weights are untrained (seed 0).", file=sys.stderr)
        return build_model(key, seed=0), {"image_shape": list(arch.input_shape)}, f"untrained {key}"
    raise ConfigError(f"MODEL must be a model file (from convscope train) or one of "
                      f"{', '.join(sorted(ARCHITECTURES))}; no file {text!r} exists.")


def _image(path: str, model_text: str, metadata: dict[str, Any]) -> tuple[Any, str]:
    """The image as the model sees it (batch of one) and a sentence on how it was prepared."""
    from ..cli import _normalizer, _read_image

    shape = metadata.get("image_shape")
    if not shape:
        raise ConfigError(f"{model_text} does not record the image shape it takes; save it with "
                          f"convscope train (metadata {{'image_shape': [C, H, W]}}).")
    x = _read_image(Path(path), shape)[None]
    note = f"Input: {path}, read as {tuple(int(v) for v in shape)} with values in [0, 1]"
    norm = _normalizer(metadata)
    if norm is not None:
        x = norm(x)
        note += f", then normalised as in training (mean {norm.mean.tolist()}, std {norm.std.tolist()})"
    return x, note + "."


@explain_subcommand
def add_filters(sub: Any) -> None:
    p = sub.add_parser(
        "filters", help="picture of the learned filters of a convolution layer (PNG)",
        description="Draw the filters of one convolution layer as a grid: one row per filter, one "
        "column per input channel; blue negative, white 0, red positive.",
    )
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--layer", metavar="N|NAME",
                   help="layer number as in convscope summary, or dotted name (default: the first "
                   "convolution)")
    p.add_argument("--out", metavar="FILE.png", default="filters.png", help="default: filters.png")
    p.add_argument("--max-filters", type=int, default=64, metavar="N", help="rows drawn at most (default 64)")
    p.add_argument("--max-channels", type=int, default=16, metavar="N",
                   help="columns drawn at most (default 16)")
    p.set_defaults(handler=run_filters)


def run_filters(args: argparse.Namespace) -> int:
    from .png import plot_filters

    model, _, _ = _model(args.model)
    layer = args.layer
    if layer is not None and layer.isdigit():
        layer = int(layer)
    path = plot_filters(model, args.out, layer=layer, max_filters=args.max_filters,
                        max_channels=args.max_channels)
    print(f"wrote {path}")
    return 0


@explain_subcommand
def add_features(sub: Any) -> None:
    p = sub.add_parser(
        "features", help="picture of every channel of every layer for one image (PNG)",
        description="Run the model on IMAGE and draw every layer's feature maps, every channel, "
        "one colour scale per layer.",
    )
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, ...) or .npy array")
    p.add_argument("--out", metavar="FILE.png", default="features.png", help="default: features.png")
    p.add_argument("--max-channels", type=int, default=None, metavar="N",
                   help="channels drawn per layer at most (default: all)")
    p.set_defaults(handler=run_features)


def run_features(args: argparse.Namespace) -> int:
    from .png import plot_feature_maps

    model, metadata, _ = _model(args.model)
    x, _ = _image(args.image, args.model, metadata)
    path = plot_feature_maps(model, x, args.out, max_channels=args.max_channels)
    print(f"wrote {path}")
    return 0


@explain_subcommand
def add_model(sub: Any) -> None:
    p = sub.add_parser(
        "model", help="self-contained HTML page walking one image through the model",
        description="Write one HTML file (no network needed) that walks IMAGE through the model "
        "layer by layer: shapes and parameter formulas, every channel's feature map, the filters, "
        "the class probabilities. Clicking a feature-map pixel shows its receptive field and the "
        "window, filter and dot product that made it; a playground shows the output-size formula.",
    )
    p.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--input", required=True, metavar="IMAGE",
                   help="an image file (PNG, JPEG, ...) or .npy array")
    p.add_argument("--out", metavar="FILE.html", default="report.html", help="default: report.html")
    p.add_argument("--max-channels", type=int, default=64, metavar="N",
                   help="feature maps per layer at most (default 64; the page says when some are left out)")
    p.set_defaults(handler=run_model)


def run_model(args: argparse.Namespace) -> int:
    from .html import explain_model_html

    model, metadata, described = _model(args.model)
    x, note = _image(args.input, args.model, metadata)
    classes = metadata.get("classes")
    path = explain_model_html(model, x, args.out, class_names=classes, max_channels=args.max_channels,
                              title=f"convscope explainer: {described} on {Path(args.input).name}",
                              input_note=note)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.2f} MB); open it in a browser (no network needed)")
    return 0
