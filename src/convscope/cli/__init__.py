"""The ``convscope`` command: train, evaluate, predict, summarise, explain and export CNNs.

Usage (``convscope COMMAND --help`` lists every option)::

    convscope train                      # the default CNN on the built-in 8x8 digits
    convscope train --dataset mnist --data-dir ~/data/mnist --epochs 5 --out runs/mnist
    convscope evaluate runs/mnist/model.npz --dataset mnist --data-dir ~/data/mnist
    convscope predict runs/mnist/model.npz digit.png other.npy
    convscope summary --arch lenet       # or: convscope summary runs/mnist/model.npz
    convscope explain conv --input "1 1 -1 -1 -1 1 -1 1 1 1" --filter "1 -1 1"
    convscope export runs/mnist/model.npz --format onnx --out model.onnx
    convscope bench --quick              # the benchmark suite (BENCHMARKS.md)
    convscope exercise conv --seed 3 --solution   # an exercise and its worked solution

One module per command group, each with a builder ``add_NAME(subparsers)`` that adds the
command's parser (options checked by argparse types) and sets its handler
``run_NAME(args) -> exit status``:

=================  ===========================================================
module             commands
=================  ===========================================================
``train``          ``train``, ``evaluate``, ``predict``
``summary``        ``summary``
``explain``        ``explain`` and the notes' ``conv``, ``pool``, ``shape``,
                   ``params``, ``jacobian``, ``demo``
``shift``          ``explain shift``
``pictures``       ``explain filters``, ``features``, ``model`` (convscope.viz)
``export``         ``export`` (convscope.export)
``bench``          ``bench`` (the benchmark suite, package ``benchmarks``)
``exercise``       ``exercise`` conv, pool, shape, params, backprop, ``check``, ``sheet``
``serve``          ``explain serve`` (the live explainer, convscope.viz.serve)
``_common``        the parser class, argument types, model loading, image reading
=================  ===========================================================

Errors a user can fix (a :class:`~convscope.errors.ConvscopeError`, or an ``OSError``
such as a missing file) are printed as ONE line on standard error, ``convscope
COMMAND: error: ...`` (without the name of the library function that raised it, which
a message of the Python API starts with), and the exit status is 2 (as for a bad option); ``--debug``
(anywhere on the line) shows the full traceback instead. Ctrl-C exits with status 130.

A program may add a command of its own: a builder decorated with :func:`subcommand`
joins :data:`SUBCOMMANDS` (and :func:`convscope.cli.explain.explain_subcommand` adds an
``explain`` subcommand the same way)::

    @subcommand
    def add_hello(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.set_defaults(handler=lambda args: print("hello") or 0)

Handlers print results on standard output and progress on standard error, and import
heavy modules inside the handler. Nothing in the library imports this package.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .. import settings
from ..errors import ConvscopeError
from ..schema import check_arguments
from ._common import CommandParser, OptionError, err, error_text
from .bench import add_bench, bench
from .exercise import add_exercise
from .explain import add_explain
from .export import add_export
from .summary import add_summary
from .train import add_evaluate, add_predict, add_train

__all__ = ["main", "build_parser", "subcommand", "SUBCOMMANDS"]

#: Parser builders, in the order ``convscope --help`` lists the commands.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_train, add_evaluate, add_predict, add_summary, add_explain, add_export, add_exercise, add_bench,
]


def subcommand(builder: Callable[[Any], None]) -> Callable[[Any], None]:
    """Add ``builder(subparsers)``, which adds one command, to :data:`SUBCOMMANDS`."""
    if builder not in SUBCOMMANDS:
        SUBCOMMANDS.append(builder)
    return builder


def build_parser() -> CommandParser:
    """The full ``convscope`` parser, with every command of :data:`SUBCOMMANDS`."""
    from .. import __version__

    parser = CommandParser(
        prog="convscope",
        description="Convolutional neural networks you can see through: train, evaluate, predict, "
        "summarise.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for builder in SUBCOMMANDS:
        builder(subparsers)
    return parser


def _report(command: str, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    else:
        text = error_text(exc, command)
        err(f"{command}: error: {text} (--debug shows the traceback)")
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``convscope`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every option after it is the suite's own (its parser reads them)
        try:
            return bench(argv[1:])
        except ConvscopeError as exc:
            return _report("convscope bench", exc, False)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except OptionError as exc:
        return _report(exc.prog, exc, "--debug" in argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    if os.environ.get("CONVSCOPE_MALLOC", "") != "default":
        settings.retain_freed_memory()  # this process is ours: no fresh pages every step
    try:
        check_arguments(argv, "command line")
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        err(f"convscope {args.command}: interrupted")
        return 130
    except (ConvscopeError, OSError) as exc:
        return _report(f"convscope {args.command}", exc, getattr(args, "debug", False))
