"""The ipywidgets playground and feature explorer (convscope[notebook])."""

import numpy as np
import pytest

from convscope import nn

pytest.importorskip("ipywidgets", reason="the widgets need ipywidgets (convscope[notebook])")
pytest.importorskip("matplotlib", reason="the widgets draw pictures (convscope[train])")

from convscope.viz.notebook import feature_explorer, playground  # noqa: E402


def test_playground_redraws_and_shows_the_never_read_entries_with_k3_s4():
    box = playground(n=11, k=3, p=0, s=1)
    assert box.image.value[:4] == b"\x89PNG" and "never read" not in box.text.value
    first = box.image.value
    box.sliders["s"].value = 4
    assert box.image.value != first
    assert "never read: x_4, x_8" in box.text.value and "Key Equation 54" in box.text.value
    box.sliders["k"].value = 12                         # larger than the input: explained, not raised
    assert "does not fit" in box.text.value


def test_feature_explorer_click_shows_field_and_arithmetic():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2))
    box = feature_explorer(model, np.eye(6))
    buttons = box.children[1].children[1].children      # rows of pixel buttons
    assert len(buttons) == 6 and len(buttons[0].children) == 6
    before = box.field.value
    buttons[2].children[3].click()
    assert box.field.value != before and box.arithmetic.value[:4] == b"\x89PNG"
    box.select(3, 1, (1, 1))
    assert box.arithmetic.value[:4] == b"\x89PNG"
