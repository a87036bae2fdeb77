"""``convscope bench``: the benchmark suite (convscope next to PyTorch), from any folder.

::

    convscope bench --help               # the suite's options
    convscope bench --quick              # a shorter run of the whole suite (minutes)
    convscope bench --quick --only A --threads 1 --no-torch

It runs the ``benchmarks`` package, which installs beside ``convscope`` (the same code as
``python -m benchmarks`` in a checkout): the options are parsed before NumPy loads, then a
child process without the machine's slow OpenBLAS settings times the suite. Results go to
``benchmarks/results/`` in a checkout, to the current folder for an installed copy (or
``--json PATH``). BENCHMARKS.md explains the cases and the figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..errors import MissingDependencyError
from ._common import add_command

__all__ = ["add_bench", "run_bench"]


def add_bench(subparsers: Any) -> None:
    p = add_command(subparsers, "bench", run_bench, "time convscope's layers next to PyTorch (the benchmark suite)",
                    add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="...",
                   help="the suite's options (convscope bench --help lists them)")


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark suite with its own options (``convscope bench --help`` lists them)."""
    return bench(list(args.bench_args))


def bench(argv: Sequence[str]) -> int:
    """``convscope bench ARGS``: the benchmark launcher with ``argv``; its exit status."""
    try:
        from benchmarks import _env
    except ImportError:
        raise MissingDependencyError(
            "the benchmark suite (the package 'benchmarks', installed with convscope) cannot be "
            "imported; reinstall convscope (pip install convscope) or run python -m benchmarks "
            "from a checkout."
        ) from None
    try:
        return int(_env.launch("benchmarks", list(argv), prog="convscope bench") or 0)
    except SystemExit as exc:  # --help, or a bad option (argparse has printed why)
        return exc.code if isinstance(exc.code, int) else 2
