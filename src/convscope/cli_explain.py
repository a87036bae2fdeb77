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
    convscope explain shift --dataset mnist --train-compare --out runs/shift

Arrays (``--input``, ``--filter``) are written as ``"1 1 -1"``, ``"1 2; 3 4"``,
``"[[1,3],[4,5]]"``, or the path of a ``.npy`` or image file
(:func:`convscope.explain.parse_array`). Per-axis options (``--stride``, ``--padding``, ...)
take one int or one per axis, ``2`` or ``1,2``.

Every value is checked by the handler, not by argparse, so a bad value gives the CLI's one
error line (``convscope explain: error: ...``) and exit status 2. ``explain shape`` exits
with 1 when the window does not fit (the explanation of why is printed all the same).

Other modules add ``explain`` subcommands with :func:`explain_subcommand`, the way
:func:`convscope.cli.subcommand` adds top-level ones::

    from convscope.cli_explain import explain_subcommand

    @explain_subcommand
    def add_filters(explain_subparsers):
        p = explain_subparsers.add_parser("filters", help="...")
        p.set_defaults(handler=run_filters)

and list the module in :data:`convscope.cli.PLUGIN_MODULES` after ``convscope.cli_explain``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .cli import _load_model, _normalizer, subcommand
from .errors import ConfigError, ShapeError

__all__ = ["EXPLAIN_SUBCOMMANDS", "explain_subcommand"]

#: Builders of ``explain`` subcommands, in the order ``convscope explain --help`` lists them.
EXPLAIN_SUBCOMMANDS: list[Callable[[Any], None]] = []


def explain_subcommand(builder: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``builder(explain_subparsers)``, which adds one ``explain`` subcommand."""
    if builder not in EXPLAIN_SUBCOMMANDS:
        EXPLAIN_SUBCOMMANDS.append(builder)
    return builder


@subcommand
def add_explain(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain", help="trace the notes' computations: windows, pooling, shapes, derivatives, shifts",
        description="See inside a CNN: every window and dot product of a convolution, every receptive "
        "field of a pooling, output sizes by Key Equation 48, parameter counts, the derivatives of "
        "section 9.4, the filter-bank demo and the shift consistency of a trained model.",
    )
    inner = p.add_subparsers(dest="explain_command", metavar="WHAT")
    original = inner.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = original(name, **kwargs)
        sub.set_defaults(command=f"explain {name}")   # error lines read "convscope explain NAME: ..."
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the full traceback of an error")
        return sub

    inner.add_parser = add_parser  # type: ignore[method-assign]
    for builder in EXPLAIN_SUBCOMMANDS:
        builder(inner)

    def no_subcommand(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(handler=no_subcommand)


# ------------------------------------------------------------------------- value parsing


def _ints(text: str | None, option: str, minimum: int, default: Any = None) -> Any:
    """``"2"`` -> 2, ``"1,2"`` / ``"(1, 2)"`` -> (1, 2); None -> ``default``."""
    if text is None:
        return default
    body = text.strip().strip("()[]")
    try:
        values = tuple(int(v) for v in body.replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if not values or any(v < minimum for v in values):
        rule = "a positive integer" if minimum >= 1 else "an integer >= 0"
        raise ConfigError(f"{option} expects {rule} or one per axis separated by commas (2 or 1,2); "
                          f"got {text!r}.")
    return values[0] if len(values) == 1 else values


def _padding(text: str | None) -> Any:
    if text is not None and text.strip().lower() in ("same", "valid"):
        return text.strip().lower()
    try:
        return _ints(text, "--padding", 0, default=0)
    except ConfigError:
        raise ConfigError(f"--padding expects an integer >= 0, one per axis (1,2), 'same' or 'valid'; "
                          f"got {text!r}.") from None


def _number(text: str | None, option: str, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{option} expects a finite number; got {text!r}.")
    return value


def _array(text: str | None, option: str, example: str) -> Any:
    from .explain import parse_array

    if text is None:
        raise ConfigError(f"{option} is required: give the numbers (e.g. {option} {example!r}), a nested "
                          f"list \"[[1,2],[3,4]]\", or a .npy or image file.")
    return parse_array(text)


def _shape_arg(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    value = _ints(text.replace("x", ","), option, 1)
    return value if isinstance(value, tuple) else (value,)


def _count(text: str | None, option: str, minimum: int, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{option} expects an integer >= {minimum}; got {text!r}.")
    return value


# ------------------------------------------------------------------------------- conv


@explain_subcommand
def add_conv(sub: Any) -> None:
    p = sub.add_parser(
        "conv", help="a convolution window by window (Key Equation 15) and its bright spot",
        description="Print every window v_i of the (padded) input, the dot product f . v_i (+ f_0) "
        "and the output y_i, then the output and its largest entry (the strongest match). The "
        "filter is not flipped (cross-correlation, as in machine learning).",
    )
    p.add_argument("--input", metavar="X", help='the signal or image: "1 1 -1", "[[1,2],[3,4]]", x.npy, x.png')
    p.add_argument("--filter", metavar="F", help="one filter, shaped like a window")
    p.add_argument("--bias", metavar="B", help="the offset f_0 added to every dot product (default 0)")
    p.add_argument("--stride", metavar="S", help="int or one per axis (default 1)")
    p.add_argument("--padding", metavar="P", help="int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--dilation", metavar="D", help="int or one per axis (default 1)")
    p.add_argument("--padding-mode", default="zeros", metavar="MODE",
                   help="zeros (default), reflect, replicate or circular")
    p.add_argument("--channels", action="store_true",
                   help="the first axis of the input and filter is a channel axis (decided from the "
                        "shapes otherwise)")
    p.add_argument("--max-steps", metavar="N", help="print at most N windows (default 100)")
    p.set_defaults(handler=run_conv)


def run_conv(args: argparse.Namespace) -> int:
    from .explain import trace_conv

    x = _array(args.input, "--input", "1 1 -1 -1 -1 1 -1 1 1 1")
    f = _array(args.filter, "--filter", "1 -1 1")
    trace = trace_conv(
        x, f, b=_number(args.bias, "--bias", 0.0), stride=_ints(args.stride, "--stride", 1, 1),
        padding=_padding(args.padding), dilation=_ints(args.dilation, "--dilation", 1, 1),
        padding_mode=args.padding_mode, channels=True if args.channels else None,
    )
    print(trace.text(max_steps=_count(args.max_steps, "--max-steps", 1, 100)))
    return 0


# ------------------------------------------------------------------------------- pool


@explain_subcommand
def add_pool(sub: Any) -> None:
    p = sub.add_parser(
        "pool", help="a pooling receptive field by receptive field, with its derivative",
        description="Print every receptive field, its maximum and where it is (max), its mean (avg) "
        "or its blurred value (blur), the output, and d(sum of y)/dx: one-hot per field for max "
        "pooling (Key Equation 69).",
    )
    p.add_argument("--input", metavar="X", help='"[[1,3],[4,5]]", "1 5 2 2", x.npy or an image file')
    p.add_argument("--size", metavar="K", help="receptive field size, int or one per axis (blur: the "
                                               "filter size, default 4)")
    p.add_argument("--stride", metavar="S", help="default: the size (max, avg) or 2 (blur)")
    p.add_argument("--kind", default="max", metavar="KIND", help="max (default), avg or blur")
    p.add_argument("--padding", metavar="P", help="int or one per axis (max, avg; default 0)")
    p.add_argument("--dilation", metavar="D", help="int or one per axis (max only; default 1)")
    p.add_argument("--ceil-mode", action="store_true", help="round the output size up (max, avg)")
    p.add_argument("--exclude-pad", action="store_true",
                   help="avg: divide by the entries inside the input only (count_include_pad=False)")
    p.add_argument("--padding-mode", default="reflect", metavar="MODE",
                   help="blur: reflect (default), replicate, zeros or circular")
    p.add_argument("--channels", action="store_true", help="the first axis of the input is a channel axis")
    p.add_argument("--max-steps", metavar="N", help="print at most N receptive fields (default 100)")
    p.set_defaults(handler=run_pool)


def run_pool(args: argparse.Namespace) -> int:
    from .explain import trace_pool

    x = _array(args.input, "--input", "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]")
    if args.kind not in ("max", "avg", "blur"):
        raise ConfigError(f"--kind expects max, avg or blur; got {args.kind!r}.")
    size = _ints(args.size, "--size", 1, 4 if args.kind == "blur" else None)
    if size is None:
        raise ConfigError("--size is required for max and avg pooling: the receptive field's size, "
                          "e.g. --size 2 (or 2,2).")
    trace = trace_pool(
        x, size, stride=_ints(args.stride, "--stride", 1), kind=args.kind,
        padding=_ints(args.padding, "--padding", 0, 0), dilation=_ints(args.dilation, "--dilation", 1, 1),
        ceil_mode=args.ceil_mode, count_include_pad=not args.exclude_pad,
        padding_mode=args.padding_mode, channels=True if args.channels else None,
    )
    print(trace.text(max_steps=_count(args.max_steps, "--max-steps", 1, 100)))
    return 0


# ------------------------------------------------------------------------------- shape


@explain_subcommand
def add_shape(sub: Any) -> None:
    p = sub.add_parser(
        "shape", help="output sizes by Key Equation 48, or the shape walk through a model",
        description="With --n and --k: the output size of one convolution or pooling, per axis, with "
        "the arithmetic of both forms of Key Equation 48. With --model or --arch: the input shape "
        "walked through every layer, stopping at the first layer that does not fit, with the "
        "reason. Exit status 1 when something does not fit.",
    )
    p.add_argument("--n", metavar="N", help="input size, int or one per axis (28 or 28,28)")
    p.add_argument("--k", metavar="K", help="window (filter) size, int or one per axis")
    p.add_argument("--p", metavar="P", help="padding: int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--s", metavar="S", help="stride (default 1 for conv, k for pool)")
    p.add_argument("--d", metavar="D", help="dilation (default 1)")
    p.add_argument("--op", default="conv", metavar="OP", help="conv (default) or pool")
    p.add_argument("--ceil-mode", action="store_true", help="pool: round the output size up")
    p.add_argument("--model", metavar="MODEL", help="a model.npz (convscope train / convscope.save)")
    p.add_argument("--arch", metavar="NAME|SPEC.json", help="digits, lenet, cifar or a JSON spec file")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="the input of one sample (default: the model's recorded / the architecture's own)")
    p.set_defaults(handler=run_shape)


def _model_and_shape(args: argparse.Namespace, command: str) -> tuple[Any, tuple[int, ...]]:
    from .models import ARCHITECTURES, build_model

    if (args.model is None) == (args.arch is None):
        raise ConfigError(f"give a MODEL file (--model) or --arch NAME, one of them.")
    shape = _shape_arg(args.input_shape, "--input-shape")
    if args.model is not None:
        model, metadata = _load_model(args.model)
        shape = shape or (tuple(metadata["image_shape"]) if metadata.get("image_shape") else None)
        if shape is None:
            raise ConfigError(f"{args.model} does not record its input shape; pass "
                              f"--input-shape C,H,W.")
        return model, shape
    key = args.arch.lower()
    if key in ARCHITECTURES:
        shape = shape or ARCHITECTURES[key].input_shape
        try:
            return build_model(key, input_shape=shape, seed=0), shape
        except ShapeError:
            # Too small for the architecture's blocks: walk the model built for its own
            # input, so the walk shows the layer that stops and why.
            return build_model(key, seed=0), shape
    model = build_model(args.arch, seed=0)
    if shape is None:
        raise ConfigError(f"pass --input-shape C,H,W for the spec file {args.arch}.")
    return model, shape


def run_shape(args: argparse.Namespace) -> int:
    from .explain import explain_model_shapes, explain_shape

    if args.model is not None or args.arch is not None:
        if args.n is not None or args.k is not None:
            raise ConfigError("give either --n/--k (one layer) or --model/--arch (a "
                              "whole model), not both.")
        model, shape = _model_and_shape(args, "shape")
        walk = explain_model_shapes(model, shape)
        print(walk.text())
        return 0 if walk.fits else 1
    if args.n is None or args.k is None:
        raise ConfigError("give --n (input size) and --k (window size), e.g. --n 64 --k 2 "
                          "--s 2; or --model MODEL.npz / --arch NAME for a whole model.")
    if args.op not in ("conv", "pool"):
        raise ConfigError(f"--op expects conv or pool; got {args.op!r}.")
    pad = args.p
    if pad is not None and pad.strip().lower() in ("same", "valid"):
        padding: Any = pad.strip().lower()
    else:
        padding = _ints(pad, "--p", 0, 0)
    result = explain_shape(_ints(args.n, "--n", 1), _ints(args.k, "--k", 1), padding,
                           _ints(args.s, "--s", 1), _ints(args.d, "--d", 1, 1), op=args.op,
                           ceil_mode=args.ceil_mode)
    print(result.text())
    return 0 if result.fits else 1


# ------------------------------------------------------------------------------- params


@explain_subcommand
def add_params(sub: Any) -> None:
    p = sub.add_parser(
        "params", help="parameters of a conv layer versus a fully-connected layer (weight sharing)",
        description="Count a convolutional layer's parameters with the formula, beside the count a "
        "fully-connected layer with the same input and output sizes would need (the notes' 5x5 "
        "example, 9.1.18: 10 versus 650).",
    )
    p.add_argument("--input-shape", metavar="C,H,W", help="one input: C,H,W (or H,W for one channel)")
    p.add_argument("--out-channels", metavar="M", help="number of filters (default 1)")
    p.add_argument("--kernel", metavar="K", help="filter size, int or one per axis")
    p.add_argument("--padding", metavar="P", help="int, one per axis, 'same' or 'valid' (default 0)")
    p.add_argument("--stride", metavar="S", help="default 1")
    p.add_argument("--dilation", metavar="D", help="default 1")
    p.add_argument("--groups", metavar="G", help="default 1")
    p.add_argument("--no-bias", action="store_true", help="filters without an offset f_0")
    p.set_defaults(handler=run_params)


def run_params(args: argparse.Namespace) -> int:
    from .explain import explain_params

    shape = _shape_arg(args.input_shape, "--input-shape")
    if shape is None or args.kernel is None:
        raise ConfigError("give --input-shape (C,H,W) and --kernel, e.g. --input-shape "
                          "1,5,5 --out-channels 1 --kernel 3 --padding 1.")
    result = explain_params(shape, _count(args.out_channels, "--out-channels", 1, 1),
                            _ints(args.kernel, "--kernel", 1), padding=_padding(args.padding),
                            stride=_ints(args.stride, "--stride", 1, 1),
                            dilation=_ints(args.dilation, "--dilation", 1, 1), bias=not args.no_bias,
                            groups=_count(args.groups, "--groups", 1, 1))
    print(result.text())
    return 0


# ------------------------------------------------------------------------------- jacobian

_JACOBIAN_EXAMPLES = ("conv", "relu", "maxpool", "chain")


@explain_subcommand
def add_jacobian(sub: Any) -> None:
    p = sub.add_parser(
        "jacobian", help="the derivatives of section 9.4 as matrices, and the chain rule (9.32)",
        description="dZ/dW of a convolution as the (k x n) matrix of inputs (9.31), the ReLU "
        "derivative as a diagonal (9.26), the max-pool derivative as a one-hot vector (9.35), and "
        "dL/dW^1 of the notes' 1-D network assembled from its four factors (9.32) and checked "
        "against the library's backward functions. Without --example: all four, on the notes' "
        "examples.",
    )
    p.add_argument("--example", metavar="WHICH", help="conv, relu, maxpool or chain (default: all)")
    p.add_argument("--input", metavar="X",
                   help="conv: the input (or its length n for the symbolic matrix; default n = 6); "
                        "relu: Z; maxpool: a; chain: x")
    p.add_argument("--kernel", metavar="K", help="conv: the filter size (default 4); maxpool: the "
                                                 "window (default: the whole input)")
    p.add_argument("--stride", metavar="S", help="conv, maxpool: the stride")
    p.add_argument("--padding", metavar="P", help="conv, chain: zero padding (default 0)")
    p.add_argument("--filter", metavar="W1", help="chain: the filter W^1")
    p.add_argument("--w2", metavar="W2", help="chain: the fully-connected weights W^2 (one per output)")
    p.add_argument("--target", metavar="Y", help="chain: the target y")
    p.set_defaults(handler=run_jacobian)


# The notes' examples; where the notes give only the pattern (9.26: "Z_3 was negative",
# 9.35: "a_4 was the largest out of 6"), values with that pattern.
_RELU_Z = "0.5 2 -1 3"
_MAXPOOL_A = "1 0 2 5 -1 3"
_CHAIN = {"x": "1 -2 3 1 0 2", "w1": "1 0 1 -1", "w2": "1 -1 2", "y": "1"}


def run_jacobian(args: argparse.Namespace) -> int:
    from .explain import chain_9_32, conv_weight_jacobian, maxpool_jacobian, parse_array, relu_jacobian

    which = _JACOBIAN_EXAMPLES if args.example is None else (args.example,)
    if which[0] not in _JACOBIAN_EXAMPLES:
        raise ConfigError(f"--example expects one of {', '.join(_JACOBIAN_EXAMPLES)}; got {args.example!r}.")
    if args.input is not None and len(which) != 1:
        raise ConfigError("--input needs --example: it means a different array for each example.")
    blocks = []
    for name in which:
        if name == "conv":
            text = args.input or "6"
            x: Any = int(text) if text.strip().isdigit() else parse_array(text)
            blocks.append(conv_weight_jacobian(x, _ints(args.kernel, "--kernel", 1, 4),
                                               stride=_ints(args.stride, "--stride", 1, 1),
                                               padding=_ints(args.padding, "--padding", 0, 0)).text())
        elif name == "relu":
            blocks.append(relu_jacobian(parse_array(args.input or _RELU_Z)).text())
        elif name == "maxpool":
            blocks.append(maxpool_jacobian(parse_array(args.input or _MAXPOOL_A),
                                           _ints(args.kernel, "--kernel", 1),
                                           _ints(args.stride, "--stride", 1)).text())
        else:
            chain = chain_9_32(parse_array(args.input or _CHAIN["x"]),
                               parse_array(args.filter or _CHAIN["w1"]),
                               parse_array(args.w2 or _CHAIN["w2"]),
                               _number(args.target, "--target", float(_CHAIN["y"])),
                               padding=_ints(args.padding, "--padding", 0, 0))
            blocks.append(chain.text())
    print("\n\n".join(blocks))
    return 0


# ------------------------------------------------------------------------------- demo


@explain_subcommand
def add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="the notes' filter-bank story: line detectors, a tensor filter, the donut",
        description="On a generated image, a filter bank of two 3x3 filters (vertical and horizontal "
        "lines) gives two channels; one tensor filter across both finds only the hollow square; "
        "compose() turns the two layers into one 7x7 'donut' filter (9.1.11-9.1.14). Prints the "
        "numbers; with --out also saves the pictures (PNG, convscope.viz).",
    )
    p.add_argument("--out", metavar="DIR", help="folder for the pictures")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from .errors import MissingDependencyError
    from .explain import filter_bank_demo

    demo = filter_bank_demo()
    print(demo.text())
    if args.out is not None:
        from .viz import save_filter_bank_demo

        try:
            written = save_filter_bank_demo(demo, Path(args.out))
        except MissingDependencyError as exc:
            print(f"convscope explain demo: pictures not written: {exc}", file=sys.stderr)
            return 0
        print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


# ------------------------------------------------------------------------------- shift


@explain_subcommand
def add_shift(sub: Any) -> None:
    p = sub.add_parser(
        "shift", help="shift consistency of a trained model (Concept 59), MaxPool versus BlurPool",
        description="Zhang 2019's classification consistency: two random shifts of each test image "
        "(crops of a zero-padded canvas, and circular shifts), the share of images whose top-1 class "
        "is the same for both, reported with the accuracy. With --train-compare, trains the "
        "dataset's recipe twice, with MaxPool and with MaxPool(stride 1) + BlurPool, and compares "
        "them; also prints the correct-class probability per shift (saved as PNG curves with --out).",
    )
    p.add_argument("model", metavar="MODEL", nargs="?", help="a model.npz written by convscope train")
    p.add_argument("--dataset", metavar="NAME|PATH",
                   help="default: the model's own dataset; with --train-compare and no MODEL: digits")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's standard files")
    p.add_argument("--no-download", action="store_true", help="read only the cache, never download")
    p.add_argument("--max-shift", metavar="N", help="largest shift per axis in pixels (default: image "
                                                    "height // 8, at least 1)")
    p.add_argument("--mode", default="both", metavar="MODE", help="crop, circular or both (default)")
    p.add_argument("--images", metavar="N", help="test images to measure on (default: all)")
    p.add_argument("--pairs", metavar="N", help="pairs of random shifts per image (default 1)")
    p.add_argument("--seed", metavar="S", help="seed of the shifts and of training (default 0)")
    p.add_argument("--curve-images", metavar="N",
                   help="images averaged in the per-shift probability curve (default 100)")
    p.add_argument("--curve-image", metavar="I",
                   help="the test image whose per-shift curve is drawn in the PNG (default 0)")
    p.add_argument("--out", metavar="DIR", help="save the curve (PNG) and the trained models here")
    p.add_argument("--train-compare", action="store_true",
                   help="train a MaxPool model and its MaxPool(stride 1) + BlurPool twin with the same "
                        "recipe, and compare them")
    p.add_argument("--arch", metavar="NAME", help="--train-compare: the architecture (default: the "
                                                  "recipe's or the model's)")
    p.add_argument("--epochs", metavar="N", help="--train-compare: epochs (default: the recipe's)")
    p.add_argument("--train-images", metavar="N",
                   help="--train-compare: train on the first N training images only (default: all)")
    p.add_argument("--blur-filter", metavar="F", help="--train-compare: BlurPool filter size (default 4)")
    p.add_argument("--progress", default="epochs", metavar="MODE",
                   help="--train-compare: bar, lines, epochs (default) or none")
    p.set_defaults(handler=run_shift)


def _pool_description(model: Any) -> str:
    """What pools in ``model``: ``"MaxPool2d(stride 2,2), MaxPool2d(stride 2,2)"``, ``"... ; 2 BlurPool"``."""
    from .nn.pool import _BlurPoolNd, _WindowPoolNd

    pools, blurs = [], 0
    for _, module in model.named_modules():
        if isinstance(module, _BlurPoolNd):
            blurs += 1
        elif isinstance(module, _WindowPoolNd):
            pools.append(f"{type(module).__name__}(stride {','.join(map(str, module.stride))})")
    parts = []
    if pools:
        parts.append(", ".join(pools))
    if blurs:
        parts.append(f"{blurs} BlurPool")
    return "; ".join(parts) or "no pooling layers"


def antialiased(model: Any, input_shape: Sequence[int], filter_size: int = 4) -> Any:
    """The anti-aliased twin of ``model``: every max pooling of stride ``s > 1`` becomes
    ``MaxPool(k, stride 1)`` followed by ``BlurPool(stride s)`` (Zhang 2019, notes 9.2.6).

    :class:`~convscope.nn.Sequential` containers are rebuilt; every other layer is the same
    object in both models, so give this function a freshly built model (same seed, same
    initial weights) when both are to be trained. The output shape must stay the same, so
    the layers after each pooling still fit.

    Raises:
        ConfigError: the model has no strided max pooling, or the twin's output shape differs.

    Example:
        >>> from convscope.models import build_model
        >>> twin = antialiased(build_model("digits", seed=0), (1, 8, 8))
        >>> twin[2]
        Sequential(
          (0): MaxPool2d(kernel_size=(2, 2), stride=(1, 1))
          (1): BlurPool2d(32)
        )
        >>> twin.output_shape((1, 1, 8, 8))
        (1, 10)
    """
    from . import nn
    from .nn.pool import MaxPool1d, MaxPool2d, MaxPool3d

    maxpools = {1: MaxPool1d, 2: MaxPool2d, 3: MaxPool3d}
    blurpools = {1: nn.BlurPool1d, 2: nn.BlurPool2d, 3: nn.BlurPool3d}
    replaced = 0

    def rebuild(module: Any, shape: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
        nonlocal replaced
        if isinstance(module, nn.Sequential):
            children = []
            for child in module:
                new, shape = rebuild(child, shape)
                children.append(new)
            return nn.Sequential(*children), shape
        out = module.output_shape(shape)
        if isinstance(module, tuple(maxpools.values())) and any(s > 1 for s in module.stride):
            replaced += 1
            nd = module.ndim
            dense = maxpools[nd](module.kernel_size, stride=1, padding=module.padding,
                                 dilation=module.dilation)
            blur = blurpools[nd](shape[1], filter_size=filter_size, stride=module.stride)
            return nn.Sequential(dense, blur), out
        return module, out

    shape = (1, *tuple(int(v) for v in input_shape))
    twin, _ = rebuild(model, shape)
    if not replaced:
        raise ConfigError(f"--train-compare: the model has no max pooling with stride > 1 to replace "
                          f"by MaxPool(stride 1) + BlurPool ({_pool_description(model)}).")
    want, got = model.output_shape(shape), twin.output_shape(shape)
    if want != got:
        raise ConfigError(f"--train-compare: the BlurPool twin gives outputs of shape {got} instead of "
                          f"{want}; the layers after the pooling would not fit. Try another --blur-filter.")
    return twin


def _train_with_recipe(model: Any, train: Any, recipe: Any, epochs: int, seed: int,
                       progress: Any) -> tuple[Any, Any]:
    """Train ``model`` as ``convscope train`` does (recipe's optimizer, schedule, augmentation)."""
    from . import cli, nn
    from .data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomShift
    from .train import fit

    mean, std = train.channel_stats()
    std = tuple(s if s > 0 else 1.0 for s in std)
    norm = Normalize(mean, std)
    augment: list[Any] = []
    if recipe.shift:
        augment.append(RandomShift(recipe.shift))
    if recipe.crop_padding:
        augment.append(RandomCrop(padding=recipe.crop_padding))
    if recipe.flip:
        augment.append(RandomHorizontalFlip())
    transform = Compose([*augment, norm]) if augment else norm
    optimizer = cli._make_optimizer(recipe.optimizer, model, recipe, recipe.lr)
    steps = epochs * (-(-len(train) // recipe.batch_size))
    scheduler = cli._make_scheduler(recipe.schedule, optimizer, recipe.lr, steps)
    history = fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=epochs,
                  batch_size=recipe.batch_size, seed=seed, scheduler=scheduler,
                  scheduler_interval="batch", progress=progress, transform=transform,
                  threads=getattr(recipe, "threads", None))
    return norm, history


def run_shift(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import load_dataset
    from .explain import per_shift_probability, shift_consistency
    from .models import build_model, check_fits, default_arch, recipe_for
    from .train import predict

    if args.model is None and not args.train_compare:
        raise ConfigError("give a MODEL (a model.npz from convscope train), or "
                          "--train-compare to train a MaxPool model and its BlurPool twin.")
    if args.mode not in ("crop", "circular", "both"):
        raise ConfigError(f"--mode expects crop, circular or both; got {args.mode!r}.")
    # Every option is checked before anything is loaded or trained.
    seed = _count(args.seed, "--seed", 0, 0)
    pairs = _count(args.pairs, "--pairs", 1, 1)
    n_images = _count(args.images, "--images", 1, 0)
    curve_n = _count(args.curve_images, "--curve-images", 1, 100)
    pick = _count(args.curve_image, "--curve-image", 0, 0)
    max_shift_arg = _count(args.max_shift, "--max-shift", 0, -1)
    train_images = _count(args.train_images, "--train-images", 1, 0)
    epochs_arg = _count(args.epochs, "--epochs", 1, 0)
    filter_size = _count(args.blur_filter, "--blur-filter", 1, 4)
    progress = {"bar": True, "lines": "plain", "epochs": "epochs", "none": False}.get(args.progress)
    if progress is None:
        raise ConfigError(f"--progress expects bar, lines, epochs or none; got {args.progress!r}.")
    model_file, metadata = (None, {}) if args.model is None else _load_model(args.model)
    dataset = args.dataset or metadata.get("dataset") or "digits"
    load = {"data_dir": args.data_dir, "download": not args.no_download}
    test = load_dataset(dataset, split="test", **load)
    test = test.subset(np.arange(min(n_images or len(test), len(test))))
    images, labels = test.images, test.labels
    if pick >= len(images):
        raise ConfigError(f"--curve-image must be the index of one of the {len(images)} test images "
                          f"measured; got {pick}.")
    curve_n = min(curve_n, len(images))
    height = test.image_shape[1] if len(test.image_shape) > 1 else test.image_shape[0]
    max_shift = max_shift_arg if max_shift_arg >= 0 else max(1, height // 8)

    # (label, model, normalisation) for every model measured.
    entries: list[tuple[str, Any, Any]] = []
    if model_file is not None:
        check_fits(model_file, test.image_shape, test.num_classes, f"the {test.name!r}")
        print(f"{args.model}: pooling {_pool_description(model_file)}")
        entries.append((Path(args.model).name, model_file, _normalizer(metadata)))
    if args.train_compare:
        from .io import save

        train = load_dataset(dataset, split="train", **load)
        if train_images:
            train = train.subset(np.arange(min(train_images, len(train))))
        recipe = recipe_for(dataset)
        arch = args.arch or metadata.get("arch") or recipe.arch or default_arch(train.image_shape)
        epochs = epochs_arg or recipe.epochs
        base = build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes, seed=seed)
        twin = antialiased(build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes,
                                       seed=seed), train.image_shape, filter_size)
        print(f"training {arch} twice on {train.name} ({len(train)} images, {epochs} epochs, batch "
              f"{recipe.batch_size}, {recipe.optimizer} lr {recipe.lr:g}, seed {seed}): MaxPool, then "
              f"MaxPool(stride 1) + BlurPool(filter {filter_size})", flush=True)
        out = Path(args.out) if args.out else None
        for label, model in (("MaxPool", base), ("MaxPool(stride 1) + BlurPool", twin)):
            start = time.perf_counter()
            norm, _ = _train_with_recipe(model, train, recipe, epochs, seed, progress)
            print(f"  {label}: trained in {time.perf_counter() - start:.1f} s", flush=True)
            entries.append((label, model, norm))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                name = "maxpool.npz" if label == "MaxPool" else "blurpool.npz"
                save(model, out / name, {
                    "dataset": dataset, "classes": list(train.classes),
                    "image_shape": list(train.image_shape), "arch": arch,
                    "normalize": {"mean": norm.mean.tolist(), "std": norm.std.tolist()},
                    "shift_compare": {"pooling": label, "epochs": epochs, "seed": seed,
                                      "train_images": len(train)},
                })

    modes = ("crop", "circular") if args.mode == "both" else (args.mode,)
    table = []
    for label, model, norm in entries:
        def predict_fn(x: Any, model: Any = model, norm: Any = norm) -> Any:
            return predict(model, x, transform=norm)

        print(f"\n{label}")
        row = [label]
        for mode in modes:
            result = shift_consistency(predict_fn, images, labels, max_shift, n_pairs=pairs,
                                       rng=seed, mode=mode)
            print(result.text())
            row += [result.accuracy, result.consistency, result.shifted_accuracy]
        table.append(row)
    print("\nSummary (accuracy on the unshifted images; consistency = same top-1 class for two random "
          f"shifts in [-{max_shift}, {max_shift}])")
    head = f"{'model':44} {'accuracy':>9}" + "".join(f" {'consistency (' + m + ')':>24}" for m in modes)
    print(head)
    for row in table:
        cells = "".join(f" {100 * row[2 + 3 * i]:>23.2f}%" for i in range(len(modes)))
        print(f"{row[0][:44]:44} {100 * row[1]:>8.2f}%{cells}")

    shifts = list(range(-max_shift, max_shift + 1))
    for mode in modes:
        means, picked = {}, {}
        for label, model, norm in entries:
            def predict_fn(x: Any, model: Any = model, norm: Any = norm) -> Any:
                return predict(model, x, transform=norm)

            curves = [per_shift_probability(predict_fn, img, int(lab), shifts, mode=mode)
                      for img, lab in zip(images[:curve_n], labels[:curve_n])]
            means[label] = np.mean([c.probabilities for c in curves], axis=0)
            picked[label] = (curves[pick] if pick < curve_n else
                             per_shift_probability(predict_fn, images[pick], int(labels[pick]), shifts, mode=mode))
        print(f"\nprobability of the correct class per diagonal shift ({mode} shifts, mean of the first "
              f"{curve_n} test images)")
        print(f"{'shift':>6}" + "".join(f" {label[:30]:>30}" for label in means))
        for i, s in enumerate(shifts):
            print(f"{s:>6}" + "".join(f" {values[i]:>30.4f}" for values in means.values()))
        if args.out is not None:
            from .errors import MissingDependencyError
            from .viz import plot_shift_curve, save_shift_curve

            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
            try:
                mean_path = save_shift_curve(
                    out_dir / f"shift_curve_{mode}.png", shifts, means,
                    title=f"probability of the correct class per diagonal {mode} shift (mean of "
                          f"{curve_n} test images)")
                one_path = plot_shift_curve(
                    picked, out_dir / f"shift_curve_{mode}_image{pick}.png",
                    title=f"test image {pick} (class {int(labels[pick])}): probability of the correct "
                          f"class per diagonal {mode} shift")
            except MissingDependencyError as exc:
                print(f"convscope explain shift: curves not written: {exc}", file=sys.stderr)
                continue
            print(f"wrote {mean_path} (mean of {curve_n} images) and {one_path} (test image {pick}, as "
                  f"Zhang 2019's Figure 1)")
    return 0
