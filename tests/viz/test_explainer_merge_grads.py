"""The explainer's backward view of a graph's merges: what an Add, a Concat and a Mul (an SE gate,
broadcast from (C, 1, 1)) send back to each input, checked against the graph's own explicit
backward (``nn.Graph.backward``, recorded at each merge node), and the fan-out sums.

The merge card's header names every input by the layer that made it, with its shape (a Concat's
the ranges it fills, a Mul's the axes it is broadcast over).
"""

import re
from pathlib import Path

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers

from .test_explainer_slices import _data, _dec

CAP = 120            # numbers per layer: the merges' maps are tiled


def merge_graph():
    """Each merge once, in float64: a residual Add (the stem feeds the block and the skip), a fire
    module's Concat (the Add's ReLU feeds both expands) and a squeeze-and-excitation Mul
    ``x * gate`` (the Concat feeds the squeeze and the Mul)."""
    g = nn.GraphBuilder()
    stem = g.add("stem_relu", nn.ReLU(), g.add("stem", nn.Conv2d(2, 3, 3, padding=1, rng=0), g.input))
    y = g.add("block.relu1", nn.ReLU(), g.add("block.conv1", nn.Conv2d(3, 3, 3, padding=1, rng=1), stem))
    y = g.add("block.bn2", nn.BatchNorm2d(3), g.add("block.conv2", nn.Conv2d(3, 3, 3, padding=1, rng=2), y))
    r = g.add("block.relu", nn.ReLU(), g.add("block.add", nn.Add(), y, stem))
    e1 = g.add("fire.expand1x1", nn.Conv2d(3, 2, 1, rng=3), r)
    e3 = g.add("fire.expand3x3", nn.Conv2d(3, 3, 3, padding=1, rng=4), r)
    h = g.add("fire.cat", nn.Concat(), e1, e3)                                   # 2 + 3 channels
    z = g.add("se.fc1", nn.Conv2d(5, 2, 1, rng=10), g.add("se.squeeze", nn.AvgPool2d(5), h))
    z = g.add("se.relu", nn.ReLU(), z)
    gate = g.add("se.gate", nn.Sigmoid(), g.add("se.fc2", nn.Conv2d(2, 5, 1, rng=6), z))
    h = g.add("se.scale", nn.Mul(), h, gate)                                     # x * s, s of shape (5, 1, 1)
    h = g.add("flatten", nn.Flatten(), g.add("pool", nn.AvgPool2d(5), h))
    model = g.build(outputs=g.add("fc", nn.Linear(5, 4, rng=7), h)).to(np.float64).eval()
    bn = model.node("block.bn2").module
    bn.running_mean[...] = [0.1, -0.2, 0.3]
    bn.running_var[...] = [0.5, 1.5, 2.0]
    return model


def merge_x():
    return np.random.default_rng(3).normal(size=(2, 5, 5))


def graph_backward(model, x, target):
    """What the graph's own backward sends from each merge node to each of its inputs, and the dL/dy
    each node receives, for the loss -log p_target (dL/dz = p - onehot)."""
    sent, received = {}, {}
    originals = {}
    for node in model.nodes:
        module = node.module
        originals[node.name] = module.backward

        def spy(dy, _name=node.name, _back=module.backward):
            received[_name] = np.array(dy)
            dx = _back(dy)
            sent[_name] = tuple(np.array(d) for d in dx) if isinstance(dx, tuple) else (np.array(dx),)
            return dx
        module.backward = spy
    try:
        z = model(x[None])
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        g = p.copy()
        g[0, target] -= 1.0
        model.backward(g)
    finally:
        for node in model.nodes:
            del node.module.backward                  # the class's own backward again
    return sent, received


@pytest.fixture(scope="module", params=[{}, {"max_layer_numbers": CAP}], ids=["whole-maps", "tiled"])
def page(request, tmp_path_factory):
    model, x = merge_graph(), merge_x()
    text = Path(explain_model_html(model, x, tmp_path_factory.mktemp("grads") / "g.html",
                                   **request.param)).read_text()
    return request.param, text, _data(text), model, x


def _named(data):
    return {lay["name"].strip(" ()"): lay for lay in data["layers"]}


def _block(a, where):
    """The embedded region of one input's gradient, cut from the full array as the page reads it."""
    if not where["tile"]:
        return a
    a = a if where["channels"] is None else a[where["channels"]]
    return a[(Ellipsis,) + tuple(slice(s, s + t) for s, t in zip(where["start"], where["tile"]))]


def _sent(p, lay, i):
    """The gradient merge ``lay`` sends to input ``i`` as the page reads it: its own numbers, or the
    channels of the layer's embedded dL/dy it equals bit for bit."""
    b = p["sent"][str(lay["index"])][i]
    if b is not None and "same_as_dy" in b:
        dy, shown = _dec(p["layers"][str(lay["index"])]), lay["values"]["channels"]
        return dy[[shown.index(c) for c in b["same_as_dy"]]]
    return _dec(b)


def test_each_input_gets_what_the_graphs_backward_sends_it(page):
    kwargs, _, data, model, x = page
    names = _named(data)
    assert {names[n]["kind"] for n in ("block.add", "fire.cat", "se.scale")} == {"add", "concat", "mul"}
    for target in data["backward"]["targets"]:
        sent, _ = graph_backward(model, x, target)
        p = data["backward"]["passes"][str(target)]
        for name in ("block.add", "fire.cat", "se.scale"):
            lay = names[name]
            regions, embedded = lay["sent_at"], p["sent"][str(lay["index"])]
            assert len(regions) == len(embedded) == 2
            for i, where in enumerate(regions):
                want = _block(sent[name][i][0], where)
                np.testing.assert_array_equal(_sent(p, lay, i), want, err_msg=f"{name} input {i + 1}, class {target}")
            # an Add's and a Concat's are dL/dy's own numbers (named, not repeated); a Mul's its own
            assert all(("same_as_dy" in b) == (name != "se.scale") for b in embedded)
            assert all(b["dtype"] == "f8" for b in embedded if "b64" in b)
    if kwargs:                                    # tiled: the Add's gradient only on its block
        assert names["block.add"]["sent_at"][0]["tile"] != [5, 5]


def test_the_mul_rule_rebuilds_each_factors_gradient(page):
    """The Mul's rule from the forward values: dL/dx = dL/dy * s, and the gate's dL/ds = dL/dy * x
    summed over H and W (the axes its (C, 1, 1) was broadcast over)."""
    kwargs, _, data, model, x = page
    mul = _named(data)["se.scale"]
    p = data["backward"]["passes"][str(data["backward"]["default"])]
    dy = _dec(p["layers"][str(mul["index"])])
    _, acts = forward_layers(model, x)
    by_name = {a.name: a for a in acts}
    shown, (start, tile) = mul["values"]["channels"], (mul["values"]["start"], mul["values"]["tile"])
    h = _block(by_name["fire.cat"].y[0], mul["values"])
    s = by_name["se.gate"].y[0][shown]
    np.testing.assert_allclose(_sent(p, mul, 0), dy * s, rtol=1e-14)
    assert _sent(p, mul, 1).shape == (len(shown), 1, 1) and mul["sent_at"][1]["tile"] == [1, 1]
    if not kwargs:                        # the whole map: the sum over every position
        np.testing.assert_allclose(_sent(p, mul, 1), (dy * h).sum(axis=(1, 2), keepdims=True), rtol=1e-12)
    else:                                 # a block: the sum over it is only part of the library's
        assert tile != [5, 5] and start is not None
        assert not np.allclose(_sent(p, mul, 1), (dy * h).sum(axis=(1, 2), keepdims=True))


def test_a_fanned_out_output_gets_the_sum_of_what_its_consumers_send(page):
    _, _, data, model, x = page
    names = _named(data)
    target = data["backward"]["default"]
    sent, received = graph_backward(model, x, target)
    cat, stem = names["fire.cat"], names["stem_relu"]
    assert sorted(map(tuple, cat["consumers"])) == [(names["se.squeeze"]["index"], 0), (names["se.scale"]["index"], 0)]
    assert sorted(map(tuple, stem["consumers"])) == [(names["block.conv1"]["index"], 0),
                                                     (names["block.add"]["index"], 1)]
    assert "consumers" not in names["block.add"]                          # one reader: no fan-out
    assert np.abs(sent["se.squeeze"][0]).min() > 0 and np.abs(sent["se.scale"][0]).min() > 0   # both paths live
    np.testing.assert_allclose(received["fire.cat"], sent["se.squeeze"][0] + sent["se.scale"][0], rtol=1e-13)
    p = data["backward"]["passes"][str(target)]
    dy = _dec(p["layers"][str(cat["index"])])
    np.testing.assert_array_equal(dy, _block(received["fire.cat"][0], cat["values"]))


def test_a_merge_card_names_every_inputs_shape(page):
    _, text, data, _, _ = page
    names = _named(data)
    lines = {int(i): line for i, line in re.findall(
        r'<section class="card layer[^"]*" id="layer-(\d+)".*?<p class="meta shapes">(.*?)</p>', text, re.S)}

    def plain(i):
        return re.sub(r"<[^>]+>", "", lines[names[i]["index"]]).replace("&rarr;", "->").replace("&times;", "x")
    assert plain("block.add") == "shape: block.bn2 (3, 5, 5) + stem_relu (3, 5, 5) -> (3, 5, 5) (one sample)"
    assert plain("fire.cat") == ("shape: fire.expand1x1 (2, 5, 5) -> channels 1..2 | fire.expand3x3 (3, 5, 5) -> "
                                 "channels 3..5 -> (5, 5, 5) (one sample; the inputs side by side)")
    assert plain("se.scale") == ("shape: fire.cat (5, 5, 5) x se.gate (5, 1, 1) -> (5, 5, 5) (one sample); "
                                 "(5, 1, 1) is broadcast over the rows and columns: one factor per channel")
    assert plain("stem") == "shape (1, 2, 5, 5) -> (1, 3, 5, 5)"          # one input: as before
    add = lines[names["block.add"]["index"]]
    assert all(f'href="#layer-{names[n]["index"]}"' in add for n in ("block.bn2", "stem_relu"))


def test_a_gate_first_mul_in_float32_gets_what_the_graph_sends(tmp_path):
    """torchvision's order ``scale * input`` (the gate is input 1) and the model's own float32: each
    input's embedded gradient is the graph's backward's, to float32 rounding (sums of a fan-out may
    add in another order)."""
    from .test_explainer_merges import fire_se_graph
    from .test_explainer_merges import merge_x as fire_x

    model, x = fire_se_graph(), fire_x()
    data = _data(explain_model_html(model, x, tmp_path / "f.html").read_text())
    names = _named(data)
    mul = names["se.scale"]
    assert [s["shape"] for s in mul["inputs"]] == [[6, 1, 1], [6, 6, 6]]
    assert mul["sent_at"][0] == {"channels": list(range(6)), "start": [0, 0], "tile": [1, 1]}
    for target in data["backward"]["targets"][:3]:
        sent, _ = graph_backward(model, x, target)
        p = data["backward"]["passes"][str(target)]
        for name in ("fire.cat", "se.scale"):
            for i, where in enumerate(names[name]["sent_at"]):
                got, want = _sent(p, names[name], i), _block(sent[name][i][0], where)
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max(),
                                           err_msg=f"{name} input {i + 1}")
