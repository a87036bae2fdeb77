"""``convscope exercise``: exercises with random small integers, worked solutions, a checker, sheets.

::

    convscope exercise conv --seed 3                        # a question
    convscope exercise conv --seed 3 --solution             # ... and its worked solution
    convscope exercise backprop --seed 7 --format latex --out q7.tex
    convscope exercise check conv --seed 3 "-5 5 7; -4 -3 8; -11 2 12"
    convscope exercise check backprop --seed 7 answer.txt     # the answer in a file
    convscope exercise sheet --count 10 --seed 100 --out sheet.html --solutions solutions.html

A question is drawn from its kind, ``--seed`` and ``--size`` (and ``--variant``): the same
arguments give the same exercise on any machine (:func:`convscope.explain.make_exercise`).
The solution is the trace ``convscope explain`` prints. ``check`` exits with status 0 when
every entry is right and 1 otherwise, naming the wrong entries and explaining the first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._common import add_command, checked, choice, non_negative_int, positive_int

__all__ = ["add_exercise", "run_question", "run_check", "run_sheet"]

_KINDS = ("conv", "pool", "shape", "params", "backprop")
_FORMATS = ("text", "html", "latex")


def _size(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.lower().replace(",", "x").split("x"))


size_type = checked(_size, lambda s: 1 <= len(s) <= 3 and min(s) >= 1,
                    "the input size, positive ints such as 5x5 (2-D) or 8 (1-D)", explain=True)


def _exercise_options(p: argparse.ArgumentParser, kind: str | None) -> None:
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="the seed the numbers are drawn from (default 0): same seed, same exercise")
    p.add_argument("--size", type=size_type, metavar="HxW",
                   help="the input size, e.g. 5x5 (2-D) or 8 (1-D); default: drawn from the seed")
    from ..explain.exercise import VARIANTS

    options = VARIANTS[kind] if kind is not None else None
    if kind is None or options:
        variant_type: Any = choice(*options) if options else None
        p.add_argument("--variant", metavar="V", type=variant_type,
                       help="pool: max or avg; shape: conv or pool; backprop: dw (dL/dW of a convolution) or "
                       "maxpool (the max-pool derivative); default: drawn from the seed (pool: max)")
    p.add_argument("--channels", type=positive_int, default=1, metavar="C",
                   help="conv only: input channels (a tensor filter, Concept 31; default 1)")


def _make(args: argparse.Namespace) -> Any:
    from ..explain import make_exercise

    return make_exercise(args.kind, seed=args.seed, size=args.size, variant=args.variant,
                         channels=args.channels)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from ..files import write_text

    write_text(Path(out), text)
    print(f"wrote {out}")


def add_exercise(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "exercise", help="exercises with random small integers, worked solutions and a checker",
        description="Draw an exercise (conv, pool, shape, params, backprop) from a seed, print it with "
        "its worked solution, check an answer, or write a sheet of questions and its solution sheet.",
    )
    inner = p.add_subparsers(dest="exercise_command", metavar="KIND|check|sheet")
    for kind in _KINDS:
        q = add_command(inner, kind, run_question, f"a {kind} exercise (--solution: with its worked solution)",
                        one_line_errors=True)
        q.set_defaults(kind=kind, variant=None)
        _exercise_options(q, kind)
        q.add_argument("--solution", action="store_true", help="print the worked solution after the question")
        q.add_argument("--format", type=choice(*_FORMATS), default="text", help="text (default), html or latex")
        q.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    c = add_command(inner, "check", run_check, "check an answer to an exercise: wrong entries, why, what is right",
                    one_line_errors=True)
    c.add_argument("kind", type=choice(*_KINDS), metavar="KIND", help=", ".join(_KINDS))
    _exercise_options(c, None)
    c.add_argument("answer", metavar="ANSWER",
                   help='the answer: "1 2; 3 4" (rows separated by ; or new lines, fractions such as 7/4 '
                   'allowed), or the path of a text or .npy file holding it')
    s = add_command(inner, "sheet", run_sheet, "a sheet of N questions and its separate solution sheet",
                    one_line_errors=True)
    s.add_argument("--count", type=positive_int, default=10, metavar="N", help="questions (default 10)")
    s.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                   help="question i uses seed N + i - 1 (default 0)")
    s.add_argument("--kinds", metavar="K1,K2", default=",".join(_KINDS),
                   help=f"kinds to cycle through (default {','.join(_KINDS)})")
    s.add_argument("--format", type=choice(*_FORMATS), default="html", help="html (default), latex or text")
    s.add_argument("--title", metavar="TEXT", help="the sheet's title")
    s.add_argument("--out", metavar="FILE", required=True, help="the question sheet")
    s.add_argument("--solutions", metavar="FILE",
                   help="the solution sheet (default: FILE with -solutions before the suffix)")

    def no_subcommand(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(handler=no_subcommand)


def run_question(args: argparse.Namespace) -> int:
    """Print an exercise with random small integers drawn from --seed (the same seed gives the same
    exercise on any machine); --solution adds the worked solution, the trace convscope explain prints."""
    from ..explain._doc import html_page, latex_document

    ex = _make(args)
    fmt = args.format
    body = ex.question(fmt)
    if args.solution:
        head = {"text": "\nSolution\n--------\n", "html": "<h2>Solution</h2>\n", "latex": "\\section*{Solution}\n"}[fmt]
        body += "\n" + head + ex.solution(fmt)
    check = f"Check an answer: convscope exercise check {ex.command} \"ANSWER\""
    if fmt == "text":
        text = body + "\n\n" + check + "\n"
    elif fmt == "html":
        text = html_page(f"Exercise: {ex.command}", body + f'<p class="check">{check}</p>')
    else:
        from ..explain._doc import latex_escape

        text = latex_document(f"Exercise: {ex.command}", body + "\n\n{\\small " + latex_escape(check) + "}")
    _write(text, args.out)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Check an answer to the exercise drawn from KIND, --seed, --size and --variant: which entries are
    wrong, why (the window and its products for the first wrong entry), and the right answer. Exit
    status 0 when every entry is right, 1 otherwise."""
    from ..explain import check_answer

    ex = _make(args)
    result = check_answer(ex, args.answer)
    print(result.text())
    return 0 if result.correct else 1


def run_sheet(args: argparse.Namespace) -> int:
    """Write a sheet of --count questions cycling through --kinds (question i drawn from seed
    --seed + i - 1, named on the sheet with the command that checks it) and the separate sheet of
    worked solutions, in HTML (self-contained), LaTeX or text."""
    from ..errors import ConfigError
    from ..explain import exercise_sheet

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in _KINDS]
    if bad or not kinds:
        raise ConfigError(f"--kinds expects kinds from {', '.join(_KINDS)} separated by commas; got {args.kinds!r}.")
    sheet = exercise_sheet(count=args.count, seed=args.seed, kinds=kinds, fmt=args.format, title=args.title)
    out = Path(args.out)
    solutions = Path(args.solutions) if args.solutions else out.with_name(out.stem + "-solutions" + out.suffix)
    if solutions.resolve() == out.resolve():
        raise ConfigError(f"--solutions must differ from --out; both are {out}.")
    _write(sheet.questions, str(out))
    _write(sheet.solutions, str(solutions))
    return 0
