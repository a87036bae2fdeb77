"""The explainer page of a ResNet-18 (graph, projection shortcuts) on a 224 x 224 image stays bounded and
every layer, layer4 and the classifier included, embeds its click arithmetic (measured with
``python -m benchmarks.page_size``: 16.8 MB, of it 8.7 MB feature-map PNGs and 5.8 MB embedded numbers,
about 3 s on one core; 24.7 MB before the palette PNGs and the deflated numbers)."""

import base64
import re
import sys
from pathlib import Path

import numpy as np

import convscope
from convscope.viz import explain_model_html

from .test_explainer_slices import _data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "explain"))
from resnet18 import resnet18_graph  # noqa: E402  (tests/explain/resnet18.py, the reference)

PAGE_MB = 18          # measured 16.85 MB (feature maps 8.7 MB, filters 0.3 MB, numbers 5.8 MB)


def test_resnet18_224_page_is_bounded_and_every_layer_has_arithmetic(tmp_path):
    old = convscope.get_num_threads()
    convscope.set_num_threads(1)
    try:
        x = np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32)
        path = explain_model_html(resnet18_graph().eval(), x, tmp_path / "r18.html")
    finally:
        convscope.set_num_threads(old)
    text = path.read_text()
    assert len(text.encode()) < PAGE_MB * 1e6
    maps = re.findall(r'<img class="fmap" src="data:image/png;base64,([^"]*)" width', text)
    types = [base64.b64decode(m[:44])[25] for m in maps]           # IHDR colour type: 3 = palette
    assert len(maps) == 4288 and types.count(3) >= 3000 and set(types) <= {2, 3}
    data = _data(text)
    assert len(data["layers"]) == 69 and data["backward"] is not None
    notes = " ".join(re.findall(r'<p class="note">(.*?)</p>', text.split('<script type="application/json"')[0]))
    assert "not embedded" not in notes
    for lay in data["layers"]:
        assert lay["values"] is not None, lay["name"]
        if lay["kind"] == "conv":
            assert lay["conv"]["padded"] is not None and lay["conv"]["channels"], lay["name"]
        if lay["kind"] == "linear":
            assert lay["linear"]["rows"], lay["name"]
    names = [lay["name"] for lay in data["layers"]]
    assert any("layer4.1.conv2" in n for n in names) and any("layer4.0.downsample.0" in n for n in names)
