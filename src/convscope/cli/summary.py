"""``convscope summary``: the layer table of a saved model or a built-in architecture.

::

    convscope summary --arch lenet
    convscope summary runs/mnist/model.npz
    convscope summary --arch cifar --input-shape 3,64,64
    convscope summary --arch lenet --out lenet.svg      # the architecture as a picture (9.3)
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ._common import add_command, model_and_input_shape, sample_shape

__all__ = ["add_summary", "run_summary"]


def add_summary(subparsers: Any) -> None:
    p = add_command(subparsers, "summary", run_summary, "layer table of a saved model or a built-in architecture")
    p.add_argument("model", metavar="MODEL", nargs="?", help="a model.npz (or give --arch)")
    p.add_argument("--arch", metavar="NAME|SPEC.json", help="digits, lenet, cifar, resnet or a JSON spec file")
    p.add_argument("--input-shape", type=sample_shape(3), metavar="C,H,W",
                   help="input of one image (default: the model's recorded / the architecture's own)")
    p.add_argument("--out", metavar="FILE.png|FILE.svg",
                   help="also draw the architecture (notes 9.3): each layer as a box with its output shape, "
                        "parameter count and receptive field (PNG or SVG, by the suffix)")


def run_summary(args: argparse.Namespace) -> int:
    """Print each layer's output shape, parameter count with its formula, the count a
    fully-connected layer would need, receptive field, jump and window-matrix memory."""
    from ..nn.summary import summary

    if (args.model is None) == (args.arch is None):
        raise ConfigError("summary: give a MODEL file or --arch NAME (one of them).")
    model, shape = model_and_input_shape(args.model, args.arch, args.input_shape)
    print(summary(model, shape))
    if args.out is not None:
        from ..viz import plot_architecture
        from .explain_pictures import write_picture

        write_picture(args.out, lambda: plot_architecture(model, shape))
    return 0
