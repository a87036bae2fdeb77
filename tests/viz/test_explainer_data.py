"""The numbers the explainer embeds: every layer's arithmetic inputs and the backward passes."""

import json
import re

import numpy as np
import pytest

from convscope import functional as F
from convscope import nn
from convscope.viz import explain_model_html, forward_layers
from convscope.viz._explainer_data import backward_passes, input_refs, unb64


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=1), nn.ReLU())),
        nn.Flatten(), nn.Linear(48, 4, rng=2),
    )


def _x():
    return np.random.default_rng(5).random((8, 8))


def _data(text):
    blob = re.search(r'<script type="application/json" id="convscope-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def _decode(entry):
    return unb64(entry)


def test_input_refs_follow_the_arrays_through_a_residual():
    xb, acts = forward_layers(_model(), _x())
    refs = input_refs(xb, acts)
    # conv, bn, relu, pool, (block conv, block relu), residual, flatten, linear
    assert refs == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 4, 8: 7, 9: 8}


@pytest.mark.parametrize("target", [0, 3])
def test_backward_passes_equal_the_models_own_backward(target):
    m = _model()
    xb, acts = forward_layers(m, _x())
    before = [p.grad.copy() for p in m.parameters()]
    (grad,) = backward_passes(m, xb, acts, [target])
    assert all(np.array_equal(p.grad, b) for p, b in zip(m.parameters(), before))   # the model is left as it was
    m.eval()
    y = m(xb)
    g = F.softmax(y.astype(np.float64), axis=1)
    assert grad.loss == pytest.approx(-np.log(g[0, target]), rel=1e-6)
    g[0, target] -= 1.0
    for p in m.parameters():
        p.zero_grad()
    dx = m.backward(g.astype(np.float32))
    np.testing.assert_allclose(grad.input_grad, dx, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad.weight_grads[1], m[0].weight.grad, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad.weight_grads[5], m[4].block[0].weight.grad, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(grad.grads[9], g.astype(np.float32))


def test_page_embeds_backward_for_label_then_likeliest_classes(tmp_path):
    text = explain_model_html(_model(), _x(), tmp_path / "b.html", label=2).read_text()
    data = _data(text)
    back = data["backward"]
    p = np.array(data["probs"]["p"])
    order = [int(i) for i in np.argsort(-p, kind="stable") if i != 2]
    assert back["targets"] == [2] + order and back["default"] == 2 and back["label"] == 2
    _, acts = forward_layers(_model(), _x())
    (grad,) = backward_passes(_model(), *forward_layers(_model(), _x()), [2])
    embedded = _decode(back["passes"]["2"]["layers"]["4"])
    np.testing.assert_array_equal(embedded, grad.grads[4][0])
    assert set(back["passes"]["2"]["dw"]) == {"1", "5"}


def _count(node):
    """Numbers embedded in a JSON node (its base64 arrays)."""
    if isinstance(node, dict):
        if "b64" in node:
            return int(np.prod(node["shape"]))
        return sum(_count(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count(v) for v in node)
    return 0


def test_backward_passes_stop_at_the_numbers_cap(tmp_path):
    # max_numbers caps the backward passes only (each layer's forward numbers have their own cap)
    full = _data(explain_model_html(_model(), _x(), tmp_path / "f.html").read_text())
    per_class = _count(full["backward"]["passes"]["0"])
    assert per_class == _count(full["backward"]["passes"]["3"]) > 0
    text = explain_model_html(_model(), _x(), tmp_path / "c.html", max_numbers=per_class + 10).read_text()
    data = _data(text)
    assert len(data["backward"]["targets"]) == 1 and "Backward passes are embedded for 1 of 4 classes" in text
    assert _count(data) == _count(full) - 3 * per_class          # the forward numbers do not change
    predicted = int(np.argmax(full["probs"]["p"]))
    assert (f"1 of 4 classes: class {predicted} (the prediction) (each needs {per_class:,} numbers; the cap "
            f"on embedded backward numbers is max_numbers)") in text
    labelled = explain_model_html(_model(), _x(), tmp_path / "l.html", max_numbers=per_class + 10,
                                  label=(predicted + 1) % 4).read_text()
    assert f"1 of 4 classes: class {(predicted + 1) % 4} (the label) (each needs" in labelled
    text = explain_model_html(_model(), _x(), tmp_path / "z.html", max_numbers=per_class - 1).read_text()
    assert _data(text)["backward"] is None and "backward pass is not embedded" in text
    none = _data(explain_model_html(_model(), _x(), tmp_path / "n.html", backward=False).read_text())
    assert none["backward"] is None


def test_layer_numbers_of_batch_norm_linear_and_pooling(tmp_path):
    m = _model()
    m[1].running_mean[...] = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    data = _data(explain_model_html(m, _x(), tmp_path / "n.html").read_text())
    layers = {lay["index"]: lay for lay in data["layers"]}
    assert layers[2]["kind"] == "batch_norm" and layers[2]["bn"]["mean"] == pytest.approx([0.5, -1.0, 0.25])
    assert layers[4]["pool"]["k"] == [2, 2] and layers[4]["pool"]["op"] == "max"
    np.testing.assert_array_equal(_decode(layers[9]["linear"]["weights"]), m[6].weight.data)
    assert layers[7]["kind"] == "residual" and layers[7]["residual"]["block_ref"] == 6


def test_bad_label_is_refused(tmp_path):
    from convscope.errors import ConfigError

    with pytest.raises(ConfigError, match="label must be a class index from 0 to 3"):
        explain_model_html(_model(), _x(), tmp_path / "l.html", label=7)
