"""A teacher's sheet: N exercises, and the separate sheet of worked solutions (text, HTML, LaTeX).

Question ``i`` (from 1) is the exercise of kind ``kinds[(i - 1) % len(kinds)]`` drawn from seed
``seed + i - 1``; each question names its seed and the command that checks an answer to it,
so a student can mark their own work (``convscope exercise check ...``).

Example:
    >>> sheet = exercise_sheet(count=3, seed=10, fmt="text")
    >>> [ex.command for ex in sheet.exercises]
    ['conv --seed 10', 'pool --seed 11 --variant max', 'shape --seed 12 --variant pool']
    >>> print(sheet.questions.splitlines()[3])
    Question 1
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArgumentTypeError, ConfigError
from ._doc import FORMATS, html_page, latex_document, latex_escape
from .exercise import KINDS, Exercise, make_exercise

__all__ = ["ExerciseSheet", "exercise_sheet"]

MAX_QUESTIONS = 200


@dataclass(frozen=True, eq=False)
class ExerciseSheet:
    """A question sheet and its solution sheet, as complete documents.

    Attributes:
        exercises: the exercises, in order.  fmt: "text", "html" or "latex".
        questions: the question sheet.  solutions: the solution sheet.
    """

    exercises: tuple[Exercise, ...]
    fmt: str
    title: str
    questions: str
    solutions: str

    def save(self, questions: Any, solutions: Any) -> tuple[Path, Path]:
        """Write the question sheet and the solution sheet (atomically); return both paths.

        Raises:
            ConfigError: both paths name the same file, or a target that is not a regular file.
        """
        from ..files import as_path, write_text

        q, s = as_path(questions, "ExerciseSheet.save"), as_path(solutions, "ExerciseSheet.save")
        if q.resolve() == s.resolve():
            raise ConfigError(f"ExerciseSheet.save: the solutions must go to another file than the questions; "
                              f"both are {q}.")
        return (write_text(q, self.questions, op="ExerciseSheet.save"),
                write_text(s, self.solutions, op="ExerciseSheet.save"))

    def _repr_html_(self) -> str:
        return "".join(f"<h4>Question {i}</h4>{ex.question('html')}" for i, ex in enumerate(self.exercises, 1))

    def __repr__(self) -> str:
        return f"ExerciseSheet({self.title!r}, {len(self.exercises)} questions, {self.fmt})"


def _check_line(ex: Exercise) -> str:
    return f"Check an answer: convscope exercise check {ex.command} \"ANSWER\""


def _section(i: int, heading: str, body: str, fmt: str, note: str | None) -> str:
    if fmt == "html":
        extra = f'<p class="check">{html.escape(note)}</p>' if note else ""
        return f'<section id="q{i}"><h2>{html.escape(heading)}</h2>\n{body}\n{extra}</section>'
    if fmt == "latex":
        extra = f"\n\n{{\\small {latex_escape(note)}}}" if note else ""
        return f"\\section*{{{latex_escape(heading)}}}\n{body}{extra}\n"
    return f"{heading}\n{'-' * len(heading)}\n{body}" + (f"\n{note}" if note else "")


def _document(title: str, sections: list[str], fmt: str) -> str:
    if fmt == "html":
        return html_page(title, "\n".join(sections))
    if fmt == "latex":
        return latex_document(title, "\n".join(sections))
    return f"{title}\n{'=' * len(title)}\n\n" + "\n\n".join(sections) + "\n"


def exercise_sheet(count: int = 10, seed: int = 0, kinds: Sequence[str] = KINDS, fmt: str = "html",
                   title: str | None = None) -> ExerciseSheet:
    """``count`` exercises cycling through ``kinds``, with a separate solution sheet.

    Args:
        count: number of questions (1 to 200).
        seed: question ``i`` uses seed ``seed + i - 1``.
        kinds: the kinds to cycle through (default all five).
        fmt: "text", "html" (a self-contained page) or "latex" (a complete document).
        title: the sheet's title (default "Convolutional networks: exercises").

    Returns:
        An :class:`ExerciseSheet` whose ``questions`` and ``solutions`` are complete documents.

    Raises:
        ConfigError: a bad count, an unknown kind or format.
    """
    op = "exercise_sheet"
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or not 1 <= count <= MAX_QUESTIONS:
        raise ConfigError(f"{op}: count must be an int from 1 to {MAX_QUESTIONS}; got {count!r}.")
    if isinstance(kinds, str) or not kinds or any(k not in KINDS for k in kinds):
        raise ConfigError(f"{op}: kinds must be a non-empty list drawn from {', '.join(KINDS)}; got {kinds!r}.")
    if fmt not in FORMATS:
        raise ConfigError(f"{op}: fmt must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ArgumentTypeError(f"{op}: seed must be a non-negative int; got {seed!r}.")
    name = title or "Convolutional networks: exercises"
    exercises = tuple(make_exercise(kinds[i % len(kinds)], seed=int(seed) + i) for i in range(count))
    questions = [_section(i + 1, f"Question {i + 1}", ex.question(fmt), fmt, _check_line(ex))
                 for i, ex in enumerate(exercises)]
    solutions = [_section(i + 1, f"Solution {i + 1}", ex.solution(fmt), fmt, f"({ex.command})")
                 for i, ex in enumerate(exercises)]
    return ExerciseSheet(exercises, fmt, name, _document(name, questions, fmt),
                         _document(name + " - solutions", solutions, fmt))
