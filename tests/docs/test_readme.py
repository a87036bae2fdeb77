"""Every Python code block of README.md runs as it is (the API training example included)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_the_readme_has_the_api_training_example():
    assert len(BLOCKS) >= 2, "README.md lost its Python examples"
    assert any("fit(model, train" in block and "convscope.save(" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # files the example writes land here
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), namespace)
    if "convscope.save(" in BLOCKS[index]:
        import convscope

        model = convscope.load(tmp_path / "digits.npz")
        assert model.input_shape == (1, 8, 8) and model[0].layer_kind == "normalize"
        accuracy = float(capsys.readouterr().out.split()[1])
        assert accuracy > 0.9, accuracy
