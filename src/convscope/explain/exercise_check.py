"""Mark a student's answer to an exercise: which entries are wrong, why, and what is right.

:func:`check_answer` compares an answer (a matrix typed as text, a file, or an array) with the
exercise's answer entry by entry. For the first wrong entry it shows how that entry is
computed - the window and its products for a convolution, the receptive field and its
maximum for pooling, the tap's sum for ``dL/dW``, the routing for the max-pool derivative -
from the same trace that wrote the solution.

Typed answers are read like :func:`convscope.explain.parse_array` reads arrays (``"1 2; 3 4"``,
rows on new lines, ``[[1, 2], [3, 4]]``) and also accept fractions (``7/4``). A whole-number
entry must be exact; any other entry may be off by at most 0.01 (two decimals).

Example:
    >>> from convscope.explain import make_exercise
    >>> ex = make_exercise("pool", seed=0, size=(4, 4))
    >>> wrong = ex.answer.copy(); wrong[1, 0] += 1
    >>> r = check_answer(ex, wrong)
    >>> r.correct, [r.exercise.entry_label(i) for i in r.wrong]
    (False, ['y_{2,1}'])
    >>> print(r.text().splitlines()[1])
    First wrong entry y_{2,1}: you wrote 9, the right value is 8.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files import check_readable
from ._text import fmt_grid, fmt_num, fmt_shape, plural
from .parse import as_explain_array, parse_array

__all__ = ["CheckResult", "check_answer", "parse_answer", "TOLERANCE"]

#: How far a non-integer entry may be from the exact value (two decimals).
TOLERANCE = 0.01
_MAX_CHARS = 1_000_000


def _number(token: str, text: str) -> float:
    try:
        return float(Fraction(token))
    except (ValueError, ZeroDivisionError):
        raise DataError(
            f"check_answer: expected numbers such as 3, -1.5 or 7/4, rows separated by ';' or new "
            f"lines; could not read {token!r} in {text[:200]!r}."
        ) from None


def _parse_text(text: str) -> np.ndarray:
    body = text.strip()
    if len(body) > _MAX_CHARS:
        raise DataError(f"check_answer: an answer is at most {_MAX_CHARS:,} characters; got {len(body):,}.")
    if body.startswith("["):
        body = re.sub(r"\]\s*,?\s*\[", ";", body).replace("[", " ").replace("]", " ")
    rows = [r for r in (part.strip() for part in body.replace("\n", ";").split(";")) if r]
    values = [[_number(t, text) for t in row.replace(",", " ").split()] for row in rows]
    if not values:
        raise DataError("check_answer: the answer is empty; type the numbers, e.g. \"1 2; 3 4\".")
    lengths = [len(v) for v in values]
    if len(set(lengths)) != 1:
        raise DataError(f"check_answer: every row must have the same number of entries; got rows of "
                        f"lengths {lengths}.")
    a = np.array(values, dtype=np.float64)
    return a[0] if len(values) == 1 else a


def parse_answer(answer: Any) -> np.ndarray:
    """A student's answer as a float64 array.

    Args:
        answer: text (``"1 2; 3 4"``, rows on new lines, ``[[1, 2], [3, 4]]``, fractions
            like ``7/4``), the path of a text file holding such text or of a ``.npy`` file,
            or an array / nested list.

    Raises:
        DataError: text that is not numbers, ragged rows, an unreadable file.

    >>> parse_answer("1 7/4; -2 0.5")
    array([[ 1.  ,  1.75],
           [-2.  ,  0.5 ]])
    """
    if isinstance(answer, (str, Path)):
        text = str(answer)
        path = Path(text)
        if isinstance(answer, Path) or (len(text) < 4096 and "\n" not in text and os.path.exists(text)):
            check_readable(path, "answer file", op="check_answer")     # no FIFO, device or folder
            if path.suffix.lower() == ".npy":
                return parse_array(path)
            if path.stat().st_size > _MAX_CHARS:
                raise DataError(f"check_answer: an answer file is at most {_MAX_CHARS:,} bytes; {text} "
                                f"has {path.stat().st_size:,}.")
            try:
                return _parse_text(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"check_answer: {text} is not a text file (UTF-8); write the answer as "
                                f"numbers, e.g. \"1 2; 3 4\", or save it with numpy.save.") from None
        return _parse_text(text)
    return as_explain_array(answer, "answer", "check_answer")


@dataclass(frozen=True, eq=False)
class CheckResult:
    """The marking of one answer.

    Attributes:
        exercise: the exercise marked.
        got: the answer as read (None when it could not be compared).
        wrong: 0-based positions of the wrong entries, row-major.
        problem: why the answer could not be compared entry by entry (its shape), or None.
    """

    exercise: Any
    got: np.ndarray | None
    wrong: tuple[tuple[int, ...], ...]
    problem: str | None

    @property
    def expected(self) -> np.ndarray:
        """The right answer."""
        return self.exercise.answer

    @property
    def correct(self) -> bool:
        """True when every entry is right."""
        return self.problem is None and not self.wrong

    def text(self) -> str:
        """What is wrong, why (for the first wrong entry), and the right answer."""
        ex = self.exercise
        right = f"{ex.answer_name} =\n{fmt_grid(ex.answer)}"
        head = f"Checking exercise {ex.command}: "
        if self.problem is not None:
            return head + self.problem + "\nRight answer:\n" + right
        total = ex.answer.size
        if not self.wrong:
            return head + f"all {plural(total, 'entry', 'entries')} of {ex.answer_name} are right."
        labels = [ex.entry_label(i) for i in self.wrong]
        shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
        first = self.wrong[0]
        got = np.asarray(self.got)
        lines = [head + f"{len(self.wrong)} of {plural(total, 'entry', 'entries')} "
                 f"{'is' if len(self.wrong) == 1 else 'are'} wrong: {shown}.",
                 f"First wrong entry {labels[0]}: you wrote {fmt_num(got[first])}, the right "
                 f"value is {fmt_num(ex.answer[first])}."]
        lines += ["  " + ln for ln in ex.why(first).splitlines()]
        lines += ["Right answer:", right]
        return "\n".join(lines)

    __str__ = text

    def _repr_html_(self) -> str:
        colour = "#2b8a3e" if self.correct else "#c92a2a"
        return f'<pre style="border-left:4px solid {colour};padding-left:8px">{html.escape(self.text())}</pre>'

    def __repr__(self) -> str:
        state = "correct" if self.correct else (self.problem and "not comparable") or f"{len(self.wrong)} wrong"
        return f"CheckResult({self.exercise.command!r}: {state})"


def _close(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    whole = np.isclose(expected, np.round(expected), rtol=0, atol=1e-9)
    exact = np.abs(got - expected) <= 1e-9 * np.maximum(1.0, np.abs(expected))
    near = np.abs(got - expected) <= TOLERANCE + 1e-12
    return np.where(whole, exact, near)


def _shape_word(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return plural(shape[0], "number")
    if len(shape) == 2:
        return f"a {fmt_shape(shape)} matrix ({plural(shape[0], 'row')} of {shape[1]})"
    return f"an array of shape {fmt_shape(shape)}"


def check_answer(exercise: Any, answer: Any) -> CheckResult:
    """Compare ``answer`` with ``exercise.answer`` entry by entry.

    Args:
        exercise: an :class:`convscope.explain.Exercise`.
        answer: see :func:`parse_answer`.

    Returns:
        A :class:`CheckResult`; its ``text()`` names every wrong entry, explains the first
        and gives the right answer. An answer of the wrong shape is a result with
        ``problem`` set (saying which shape is expected), not an error.

    Raises:
        DataError: an answer that cannot be read as numbers.
    """
    got = parse_answer(answer)
    expected = exercise.answer
    if got.shape != expected.shape and got.size == expected.size and expected.ndim == 1:
        got = got.reshape(expected.shape)               # a column or a row for a vector answer
    if got.shape != expected.shape:
        problem = (f"the answer {exercise.answer_name} must be {_shape_word(expected.shape)}; got "
                   f"{_shape_word(got.shape) if got.ndim else 'one number'}.")
        return CheckResult(exercise, got, (), problem)
    if not np.isfinite(got).all():
        return CheckResult(exercise, got, (), "the answer holds inf or NaN; every entry must be a number.")
    ok = _close(got, expected)
    wrong = tuple(tuple(int(i) for i in idx) for idx in np.argwhere(~ok))
    return CheckResult(exercise, got, wrong, None)
