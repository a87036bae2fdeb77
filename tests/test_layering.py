"""The package's import layering: the command line sits on top, and ``import convscope`` stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import convscope

PACKAGE = Path(convscope.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the convscope modules that ``path`` imports (relative imports resolved)."""
    module = ".".join(("convscope", *path.relative_to(PACKAGE).with_suffix("").parts))
    return _imported_names(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def _imported_names(source: str, module: str, is_package: bool) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            prefix = (base + "." + node.module if node.module else base) if node.level else node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return {n.removesuffix(".__init__") for n in names if n == "convscope" or n.startswith("convscope.")}


def test_no_module_of_the_library_imports_the_command_line():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        bad = {n for n in _imports(path) if n == "convscope.cli" or n.startswith("convscope.cli.")}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_the_scan_sees_every_form_of_import():
    def names(source: str) -> set[str]:
        return _imported_names(source, "convscope.viz.png", is_package=False)

    assert "convscope.cli" in names("def f():\n    from ..cli import main\n")
    assert "convscope.cli._common" in names("from ..cli._common import err\n")
    assert "convscope.cli" in names("from .. import cli\n") | names("from convscope import cli\n")
    assert "convscope.cli" in names("import convscope.cli\n")
    assert "convscope.viz.curves" in names("from .curves import plot_curves\n")
    assert names("import numpy as np\n") == set()


def test_import_convscope_loads_neither_export_nor_viz_nor_the_command_line():
    code = ("import sys, convscope; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['convscope', 'export'], ['convscope', 'viz'], ['convscope', 'cli'])))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(PACKAGE.parent)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_export_and_viz_are_still_attributes_of_the_package():
    code = "import convscope; print(convscope.export.to_onnx.__name__, convscope.viz.plot_curves.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(PACKAGE.parent)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["to_onnx", "plot_curves"]
    assert "export" in convscope.__all__
