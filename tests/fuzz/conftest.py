"""Fuzz-suite settings: a small array limit, a hang backstop, and the case count.

Every case judged by :func:`tests.fuzz._harness.judge` is counted; the total is printed at
the end of the run ("fuzz cases tried: N") and, when the environment variable
``CONVSCOPE_FUZZ_COUNT_FILE`` names a file, written there as JSON.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys

import pytest

from convscope.functional.windows import get_array_limit, set_array_limit

from ._harness import ARRAY_LIMIT, CASES

#: Whole-test backstop: a hang inside C code (which SIGALRM cannot interrupt) dumps every
#: thread's stack and ends the run instead of blocking CI.
TEST_BACKSTOP_S = 300


@pytest.fixture(autouse=True)
def _fuzz_limits():
    """Lower the array limit so over-limit requests are cheap to make; restore it after."""
    old = set_array_limit(ARRAY_LIMIT)
    faulthandler.dump_traceback_later(TEST_BACKSTOP_S, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        set_array_limit(old)
    assert get_array_limit() == old


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    total = sum(CASES.values())
    if not total:
        return
    parts = ", ".join(f"{k} {v}" for k, v in sorted(CASES.items()))
    terminalreporter.write_line(f"fuzz cases tried: {total} ({parts})")
    target = os.environ.get("CONVSCOPE_FUZZ_COUNT_FILE")
    if target:
        with open(target, "w", encoding="utf-8") as f:
            json.dump({"total": total, "by_category": dict(sorted(CASES.items()))}, f, indent=1)
