"""The linters are part of the test-suite, so CI (which runs exactly the README's test command)
runs them: ruff (lint and import order) and mypy, both configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "pyproject.toml").is_file() or not (ROOT / "src" / "convscope").is_dir():
    pytest.skip("the linters check a checkout of convscope (pyproject.toml and src/ beside tests/)",
                allow_module_level=True)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    if shutil.which("ruff") is None and _run([sys.executable, "-m", "ruff", "--version"]).returncode:
        pytest.skip("ruff is not installed (it is in the test extra: pip install -e '.[test]')")
    done = _run([sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "docs"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_finds_nothing():
    pytest.importorskip("mypy", reason="mypy is not installed (it is in the test extra: pip install -e '.[test]')")
    done = _run([sys.executable, "-m", "mypy"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
