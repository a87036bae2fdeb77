"""``convscope explain ...``: the notes' computations traced from the shell.

Each subcommand prints, in the notes' notation, what one :mod:`convscope.explain` function
computes::

    convscope explain conv --input "1 1 -1 -1 -1 1 -1 1 1 1" --filter "1 -1 1"
    convscope explain pool --input "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]" --size 2
    convscope explain shape --n 64 --k 2 --s 2           # Key Equation 48, both forms
    convscope explain shape --arch lenet                  # the shape walk through a model
    convscope explain params --input-shape 1,5,5 --out-channels 1 --kernel 3 --padding 1
    convscope explain jacobian --example chain            # 9.26, 9.31, 9.35 and the chain 9.32
    convscope explain demo --out pictures                 # filter banks and the donut (9.1.11-9.1.14)
    convscope explain shift runs/mnist/model.npz          # shift consistency (Concept 59)
    convscope explain filters | features | model ...      # pictures of a model (convscope.cli.pictures)
    convscope explain serve runs/mnist/model.npz          # the live explainer (convscope.cli.serve)
    convscope explain gradients MODEL --input digit.png --label 3 --out gradients.png
    convscope explain conv ... --out w.png                # conv, pool, shape, jacobian draw what they print

Arrays (``--input``, ``--filter``) are written as ``"1 1 -1"``, ``"1 2; 3 4"``,
``"[[1,3],[4,5]]"``, or the path of a ``.npy`` or image file
(:func:`convscope.explain.parse_array`), and read by the handler. Per-axis options
(``--stride``, ``--padding``, ...) take one int or one per axis, ``2`` or ``1,2``.

The notes' subcommands (conv to shift) check every option value while parsing and report
a bad one as the CLI's one error line (``convscope explain conv: error: --stride expects
...``) with exit status 2. ``explain shape`` exits with 1 when the window does not fit
(the explanation of why is printed all the same).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._common import add_command, axes, choice, count, finite_number, model_and_input_shape, padding, sample_shape
from .explain_pictures import (
    add_animate,
    add_gradients,
    add_out,
    conv_picture,
    jacobian_picture,
    pool_picture,
    shape_picture,
    write_animation,
    write_picture,
)
from .pictures import add_features, add_filters, add_model
from .serve import add_serve
from .shift import add_shift

__all__ = ["EXPLAIN_SUBCOMMANDS", "explain_subcommand", "add_explain"]


def add_explain(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="trace the notes' computations: windows, pooling, shapes, derivatives, shifts",
        description="See inside a CNN: every window and dot product of a convolution, every receptive "
        "field of a pooling, output sizes by Key Equation 48, parameter counts, the derivatives of "
        "section 9.4, the filter-bank demo and the shift consistency of a trained model.",
    )
    inner = p.add_subparsers(dest="explain_command", metavar="WHAT")
    for builder in EXPLAIN_SUBCOMMANDS:
        builder(inner)

    def no_subcommand(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(handler=no_subcommand)


def _array(text: str | None, option: str, example: str) -> Any:
    from ..explain import parse_array

    if text is None:
        raise ConfigError(f"{option} is required: give the numbers (e.g. {option} {example!r}), a nested "
                          f"list \"[[1,2],[3,4]]\", or a .npy or image file.")
    return parse_array(text)


# ------------------------------------------------------------------------------- conv


def add_conv(sub: Any) -> None:
    p = add_command(sub, "conv", run_conv,
                    "a convolution window by window (Key Equation 15) and its bright spot", one_line_errors=True)
    p.add_argument("--input", metavar="X", help='the signal or image: "1 1 -1", "[[1,2],[3,4]]", x.npy, x.png')
    p.add_argument("--filter", metavar="F",
                   help="one filter, shaped like a window, or a filter bank: filters stacked on a new first axis")
    p.add_argument("--bias", type=finite_number, default=0.0, metavar="B",
                   help="the offset f_0 added to every dot product (default 0)")
    p.add_argument("--stride", type=axes(1), default=1, metavar="S", help="int or one per axis (default 1)")
    p.add_argument("--padding", type=padding, default=0, metavar="P",
                   help="int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--dilation", type=axes(1), default=1, metavar="D", help="int or one per axis (default 1)")
    p.add_argument("--padding-mode", default="zeros", metavar="MODE",
                   help="zeros (default), reflect, replicate or circular")
    p.add_argument("--channels", action="store_true",
                   help="the first axis of the input and filter is a channel axis (decided from the "
                        "shapes otherwise)")
    p.add_argument("--max-steps", type=count(1), default=100, metavar="N", help="print at most N windows (default 100)")
    add_out(p, "the windows, dot products and output")
    add_animate(p, "the window sliding along the input")


def _print_and_draw(trace: Any, args: argparse.Namespace, picture: Callable[[Any], Any], animation: str) -> int:
    """Print a trace (``--max-steps`` of it), write its picture where ``--out`` says and its
    animation (``convscope.viz.<animation>``) where ``--animate`` says; exit status 0."""
    print(trace.text(max_steps=args.max_steps))
    write_picture(args.out, lambda: picture(trace))
    write_animation(args.animate, lambda: getattr(_viz(), animation)(trace))
    return 0


def run_conv(args: argparse.Namespace) -> int:
    """Print every window v_i of the (padded) input, the dot product f . v_i (+ f_0) and the output
    y_i, then the output and its largest entry (the strongest match). The filter is not flipped
    (cross-correlation, as in machine learning)."""
    from ..explain import trace_conv, trace_filter_bank

    x = _array(args.input, "--input", "1 1 -1 -1 -1 1 -1 1 1 1")
    f = _array(args.filter, "--filter", "1 -1 1")
    run = trace_filter_bank if f.ndim == x.ndim + 1 else trace_conv      # one more axis: a bank (9.11)
    trace = run(x, f, args.bias, stride=args.stride, padding=args.padding,
                dilation=args.dilation, padding_mode=args.padding_mode,
                channels=True if args.channels else None)
    return _print_and_draw(trace, args, conv_picture, "animate_conv")


def _viz() -> Any:
    """convscope.viz, imported when a picture is asked for (it loads matplotlib)."""
    from .. import viz

    return viz


# ------------------------------------------------------------------------------- pool


def add_pool(sub: Any) -> None:
    p = add_command(sub, "pool", run_pool,
                    "a pooling receptive field by receptive field, with its derivative", one_line_errors=True)
    p.add_argument("--input", metavar="X", help='"[[1,3],[4,5]]", "1 5 2 2", x.npy or an image file')
    p.add_argument("--size", type=axes(1), metavar="K",
                   help="receptive field size, int or one per axis (blur: the filter size, default 4)")
    p.add_argument("--stride", type=axes(1), metavar="S", help="default: the size (max, avg) or 2 (blur)")
    p.add_argument("--kind", type=choice("max", "avg", "blur"), default="max", metavar="KIND",
                   help="max (default), avg or blur")
    p.add_argument("--padding", type=axes(0), default=0, metavar="P", help="int or one per axis (max, avg; default 0)")
    p.add_argument("--dilation", type=axes(1), default=1, metavar="D", help="int or one per axis (max only; default 1)")
    p.add_argument("--ceil-mode", action="store_true", help="round the output size up (max, avg)")
    p.add_argument("--exclude-pad", action="store_true",
                   help="avg: divide by the entries inside the input only (count_include_pad=False)")
    p.add_argument("--padding-mode", default="reflect", metavar="MODE",
                   help="blur: reflect (default), replicate, zeros or circular")
    p.add_argument("--channels", action="store_true", help="the first axis of the input is a channel axis")
    p.add_argument("--max-steps", type=count(1), default=100, metavar="N",
                   help="print at most N receptive fields (default 100)")
    add_out(p, "the receptive fields and the maximum each chooses")
    p.add_argument("--picture", type=choice("windows", "derivative", "shift"), default="windows", metavar="WHAT",
                   help="what --out draws: windows (default), derivative (the one-hot routing of dy, "
                        "Key Eq. 69) or shift (the input and its copy moved --shift pixels, 9.2.6)")
    p.add_argument("--shift", type=count(1), default=1, metavar="N",
                   help="pixels the copy is moved for --picture shift (default 1)")
    add_animate(p, "the receptive field sliding over the input")


def run_pool(args: argparse.Namespace) -> int:
    """Print every receptive field, its maximum and where it is (max), its mean (avg) or its
    blurred value (blur), the output, and d(sum of y)/dx: one-hot per field for max pooling (Key
    Equation 69)."""
    from ..explain import trace_pool

    x = _array(args.input, "--input", "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]")
    size = args.size if args.size is not None else (4 if args.kind == "blur" else None)
    if size is None:
        raise ConfigError("--size is required for max and avg pooling: the receptive field's size, "
                          "e.g. --size 2 (or 2,2).")
    trace = trace_pool(
        x, size, stride=args.stride, kind=args.kind, padding=args.padding, dilation=args.dilation,
        ceil_mode=args.ceil_mode, count_include_pad=not args.exclude_pad,
        padding_mode=args.padding_mode, channels=True if args.channels else None,
    )
    return _print_and_draw(trace, args, lambda t: pool_picture(t, args.picture, args.shift), "animate_pool")


# ------------------------------------------------------------------------------- shape


def add_shape(sub: Any) -> None:
    p = add_command(sub, "shape", run_shape,
                    "output sizes by Key Equation 48, or the shape walk through a model", one_line_errors=True)
    p.add_argument("--n", type=axes(1), metavar="N", help="input size, int or one per axis (28 or 28,28)")
    p.add_argument("--k", type=axes(1), metavar="K", help="window (filter) size, int or one per axis")
    p.add_argument("--p", type=padding, default=0, metavar="P",
                   help="padding: int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--s", type=axes(1), metavar="S", help="stride (default 1 for conv, k for pool)")
    p.add_argument("--d", type=axes(1), default=1, metavar="D", help="dilation (default 1)")
    p.add_argument("--op", type=choice("conv", "pool"), default="conv", metavar="OP", help="conv (default) or pool")
    p.add_argument("--ceil-mode", action="store_true", help="pool: round the output size up")
    p.add_argument("--model", metavar="MODEL", help="a model.npz (convscope train / convscope.save)")
    p.add_argument("--arch", metavar="NAME|SPEC.json", help="digits, lenet, cifar, resnet or a JSON spec file")
    p.add_argument("--input-shape", type=sample_shape(), metavar="C,H,W",
                   help="the input of one sample (default: the model's recorded / the architecture's own)")
    add_out(p, "the padded axis and every window position (--n/--k, one axis)")


def run_shape(args: argparse.Namespace) -> int:
    """With --n and --k: the output size of one convolution or pooling, per axis, with the
    arithmetic of both forms of Key Equation 48. With --model or --arch: the input shape walked
    through every layer, stopping at the first layer that does not fit, with the reason. Exit
    status 1 when something does not fit."""
    from ..explain import explain_model_shapes, explain_shape

    if args.model is not None or args.arch is not None:
        if args.n is not None or args.k is not None:
            raise ConfigError("give either --n/--k (one layer) or --model/--arch (a "
                              "whole model), not both.")
        if args.model is not None and args.arch is not None:
            raise ConfigError("give a MODEL file (--model) or --arch NAME, one of them.")
        model, shape = model_and_input_shape(args.model, args.arch, args.input_shape, walk_misfits=True)
        if args.out is not None:
            raise ConfigError("--out draws one layer's output size (--n/--k); for a model's picture use "
                              "convscope.viz.plot_architecture.")
        walk = explain_model_shapes(model, shape)
        print(walk.text())
        return 0 if walk.fits else 1
    if args.n is None or args.k is None:
        raise ConfigError("give --n (input size) and --k (window size), e.g. --n 64 --k 2 "
                          "--s 2; or --model MODEL.npz / --arch NAME for a whole model.")
    result = explain_shape(args.n, args.k, args.p, args.s, args.d, op=args.op, ceil_mode=args.ceil_mode)
    print(result.text())
    write_picture(args.out, lambda: shape_picture(result))
    return 0 if result.fits else 1


# ------------------------------------------------------------------------------- params


def add_params(sub: Any) -> None:
    p = add_command(sub, "params", run_params,
                    "parameters of a conv layer versus a fully-connected layer (weight sharing)", one_line_errors=True)
    p.add_argument("--input-shape", type=sample_shape(), metavar="C,H,W",
                   help="one input: C,H,W (or H,W for one channel)")
    p.add_argument("--out-channels", type=count(1), default=1, metavar="M", help="number of filters (default 1)")
    p.add_argument("--kernel", type=axes(1), metavar="K", help="filter size, int or one per axis")
    p.add_argument("--padding", type=padding, default=0, metavar="P",
                   help="int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--stride", type=axes(1), default=1, metavar="S", help="default 1")
    p.add_argument("--dilation", type=axes(1), default=1, metavar="D", help="default 1")
    p.add_argument("--groups", type=count(1), default=1, metavar="G", help="default 1")
    p.add_argument("--no-bias", action="store_true", help="filters without an offset f_0")


def run_params(args: argparse.Namespace) -> int:
    """Count a convolutional layer's parameters with the formula, beside the count a
    fully-connected layer with the same input and output sizes would need (the notes' 5x5
    example, 9.1.18: 10 versus 650)."""
    from ..explain import explain_params

    if args.input_shape is None or args.kernel is None:
        raise ConfigError("give --input-shape (C,H,W) and --kernel, e.g. --input-shape "
                          "1,5,5 --out-channels 1 --kernel 3 --padding 1.")
    result = explain_params(args.input_shape, args.out_channels, args.kernel, padding=args.padding,
                            stride=args.stride, dilation=args.dilation, bias=not args.no_bias,
                            groups=args.groups)
    print(result.text())
    return 0


# ------------------------------------------------------------------------------- jacobian

_JACOBIAN_EXAMPLES = ("conv", "relu", "maxpool", "chain")


def add_jacobian(sub: Any) -> None:
    p = add_command(sub, "jacobian", run_jacobian,
                    "the derivatives of section 9.4 as matrices, and the chain rule (9.32)", one_line_errors=True)
    p.add_argument("--example", metavar="WHICH",
                   type=choice(*_JACOBIAN_EXAMPLES, listed=f"one of {', '.join(_JACOBIAN_EXAMPLES)}"),
                   help="conv, relu, maxpool or chain (default: all)")
    p.add_argument("--input", metavar="X",
                   help="conv: the input (or its length n for the symbolic matrix; default n = 6); "
                        "relu: Z; maxpool: a; chain: x")
    p.add_argument("--kernel", type=axes(1), metavar="K",
                   help="conv: the filter size (default 4); maxpool: the window (default: the whole input)")
    p.add_argument("--stride", type=axes(1), metavar="S", help="conv, maxpool, chain: the stride")
    p.add_argument("--padding", type=axes(0), default=0, metavar="P", help="conv, chain: zero padding (default 0)")
    p.add_argument("--filter", metavar="W1", help="chain: the filter W^1")
    p.add_argument("--w2", metavar="W2", help="chain: the fully-connected weights W^2 (one per output)")
    p.add_argument("--target", type=finite_number, metavar="Y", help="chain: the target y")
    add_out(p, "the matrix (with --example)")


# The notes' examples; where the notes give only the pattern (9.26: "Z_3 was negative",
# 9.35: "a_4 was the largest out of 6"), values with that pattern.
_RELU_Z = "0.5 2 -1 3"
_MAXPOOL_A = "1 0 2 5 -1 3"
_CHAIN: dict[str, Any] = {"x": "1 -2 3 1 0 2", "w1": "1 0 1 -1", "w2": "1 -1 2", "y": 1.0}


def run_jacobian(args: argparse.Namespace) -> int:
    """dZ/dW of a convolution as the (k x n) matrix of inputs (9.31), the ReLU derivative as a
    diagonal (9.26), the max-pool derivative as a one-hot vector (9.35), and dL/dW^1 of the
    notes' 1-D network assembled from its four factors (9.32) and checked against the library's
    backward functions. Without --example: all four, on the notes' examples."""
    from ..explain import chain_9_32, conv_weight_jacobian, maxpool_jacobian, parse_array, relu_jacobian

    which = _JACOBIAN_EXAMPLES if args.example is None else (args.example,)
    if args.input is not None and len(which) != 1:
        raise ConfigError("--input needs --example: it means a different array for each example.")
    if args.out is not None and len(which) != 1:
        raise ConfigError("--out needs --example: one picture per matrix (conv, relu, maxpool or chain).")
    if args.stride is not None and which == ("relu",):
        raise ConfigError("--stride does not apply to --example relu (ReLU acts entry by entry, Key Equation 66).")
    if isinstance(args.stride, tuple) and "chain" in which:
        raise ConfigError(f"--stride for the chain is one int (the notes' network is 1-D); got {args.stride}.")
    blocks = []
    results: list[Any] = []
    for name in which:
        if name == "conv":
            text = args.input or "6"
            x: Any = int(text) if text.strip().isdigit() else parse_array(text)
            kernel = 4 if args.kernel is None else args.kernel
            stride = 1 if args.stride is None else args.stride
            results.append(conv_weight_jacobian(x, kernel, stride=stride, padding=args.padding))
        elif name == "relu":
            results.append(relu_jacobian(parse_array(args.input or _RELU_Z)))
        elif name == "maxpool":
            results.append(maxpool_jacobian(parse_array(args.input or _MAXPOOL_A), args.kernel, args.stride))
        else:
            results.append(chain_9_32(parse_array(args.input or _CHAIN["x"]),
                                      parse_array(args.filter or _CHAIN["w1"]),
                                      parse_array(args.w2 or _CHAIN["w2"]),
                                      _CHAIN["y"] if args.target is None else args.target,
                                      padding=args.padding, stride=1 if args.stride is None else args.stride))
        blocks.append(results[-1].text())
    print("\n\n".join(blocks))
    write_picture(args.out, lambda: jacobian_picture(results[0]))
    return 0


# ------------------------------------------------------------------------------- demo


def add_demo(sub: Any) -> None:
    p = add_command(sub, "demo", run_demo,
                    "the notes' filter-bank story: line detectors, a tensor filter, the donut", one_line_errors=True)
    p.add_argument("--out", metavar="DIR", help="folder for the pictures")


def run_demo(args: argparse.Namespace) -> int:
    """On a generated image, a filter bank of two 3x3 filters (vertical and horizontal lines) gives
    two channels; one tensor filter across both finds only the hollow square; compose() turns
    the two layers into one 7x7 'donut' filter (9.1.11-9.1.14). Prints the numbers; with --out
    also saves the pictures (PNG, convscope.viz)."""
    from ..errors import MissingDependencyError
    from ..explain import filter_bank_demo

    demo = filter_bank_demo()
    print(demo.text())
    if args.out is not None:
        from ..viz import save_filter_bank_demo

        try:
            written = save_filter_bank_demo(demo, Path(args.out))
        except MissingDependencyError as exc:
            print(f"convscope explain demo: pictures not written: {exc}", file=sys.stderr)
            return 0
        print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


#: Builders of ``explain`` subcommands, in the order ``convscope explain --help`` lists them.
EXPLAIN_SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_conv, add_pool, add_shape, add_params, add_jacobian, add_demo, add_shift,
    add_filters, add_features, add_model, add_gradients, add_serve,
]


def explain_subcommand(builder: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``builder(explain_subparsers)``, which adds one more ``explain`` subcommand
    (as :func:`convscope.cli.subcommand` adds a top-level one)."""
    if builder not in EXPLAIN_SUBCOMMANDS:
        EXPLAIN_SUBCOMMANDS.append(builder)
    return builder
