"""docs/notebooks/ run with a real Jupyter kernel: every cell executes and the rich outputs are there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (the test extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (the test extra)")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (the test extra)")
pytest.importorskip("matplotlib", reason="the notebooks draw pictures (convscope[train])")
pytest.importorskip("ipywidgets", reason="the notebooks show widgets (convscope[notebook])")

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "notebooks"
SRC = Path(__file__).resolve().parents[2] / "src"
RICH = {"text/html", "image/png", "image/svg+xml", "application/vnd.jupyter.widget-view+json"}


def _kinds(nb) -> list[set[str]]:
    return [set().union(*[set(o.get("data", {})) for o in cell.outputs]) if cell.outputs else set()
            for cell in nb.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name, pictures", [("chapter.ipynb", 15), ("explain_your_model.ipynb", 6),
                                            ("shift_invariance.ipynb", 2)])
def test_notebook_runs_and_shows_rich_outputs(name, pictures, monkeypatch):
    path = FOLDER / name
    saved = nbformat.read(path, as_version=4)
    # The saved copy renders on a code host without running: its outputs are there already.
    assert sum("image/png" in k for k in _kinds(saved)) >= pictures
    # The kernel imports this checkout's convscope.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(FOLDER)}}).execute()
    kinds = _kinds(nb)
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
    assert sum("image/png" in k for k in kinds) >= pictures
    assert any("text/html" in k for k in kinds)
    last_lines = [cell.source.strip().splitlines()[-1] for cell in nb.cells if cell.cell_type == "code"]
    for line, k in zip(last_lines, kinds):
        if not line.startswith(("import", "from", "print(", "for ", "    ")) \
                and "=" not in line.split("(")[0]:
            assert k & RICH, f"{name}: cell ending {line!r} showed no picture or table"
