"""docs/notes-walkthrough.md is executed as a doctest, so its printed numbers cannot rot."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np

WALKTHROUGH = Path(__file__).resolve().parents[2] / "docs" / "notes-walkthrough.md"


def test_walkthrough_runs_with_its_printed_output():
    # NumPy's default print options, whatever an earlier test in this process changed.
    with np.printoptions(precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False,
                         nanstr="nan", infstr="inf", sign="-", floatmode="maxprec", legacy=False):
        result = doctest.testfile(
            str(WALKTHROUGH), module_relative=False, encoding="utf-8", verbose=False,
            optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=True,
        )
    # Guard against a file that silently stops being executed (e.g. a broken prompt format).
    assert result.attempted >= 90, f"only {result.attempted} examples found in {WALKTHROUGH}"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (see the report above)"


def test_walkthrough_covers_every_section_of_the_chapter():
    text = WALKTHROUGH.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (\d+\.\d+(?:\.\d+)?)", text, flags=re.M)
    for section in ("9.0", "9.1.2", "9.1.5", "9.1.6", "9.1.7", "9.1.8", "9.1.11", "9.1.14",
                    "9.1.16", "9.1.18", "9.1.19", "9.1.20", "9.2.1", "9.2.3", "9.2.6", "9.3",
                    "9.4.1", "9.4.4", "9.4.5", "9.4.6"):
        assert section in headings, f"no heading for section {section}"
    # The notes' own numbers appear in the executed output.
    for number in ("y = x * f = [-1, 1, -1, 1, -3, 3, -1, 1]", "y = [[44, -1], [11, 321]]",
                   "= 9 + 1 = 10 parameters", "= 625 + 25 = 650 parameters",
                   "ceil(31.5) = 32", "[X_1, X_2, X_3]"):
        assert number in text, number
