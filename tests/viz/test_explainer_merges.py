"""The explainer's arithmetic for a graph's merges other than Add: Concat (a SqueezeNet fire module),
Mul (a squeeze-and-excitation gate, broadcast from (C, 1, 1)) and ChannelShuffle.

The checks redo the page's arithmetic in Python from the embedded numbers only (which input and
channel a Concat's value comes from, x * s with the gate read at its broadcast position, the
shuffle's source channel) and compare it with the library's forward output at every embedded
position; and they check that a merge embeds nothing twice: it reads its inputs' tiles, and the
gate (C, 1, 1) is embedded whole by its own layer.
"""

from pathlib import Path

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers

from .test_explainer_slices import Embedded, _data, _positions

CAP = 250            # numbers per layer: the fire module's 3x3 conv, the Concat and the Mul are tiled


def fire_se_graph():
    """A SqueezeNet fire module (squeeze 1x1, expand 1x1 and 3x3, Concat), then a squeeze-and-excitation
    block whose gate multiplies first (``scale * input``, as torchvision writes it), a channel shuffle,
    global average pooling and a classifier."""
    g = nn.GraphBuilder()
    s = g.add("fire.squeeze", nn.Conv2d(3, 2, 1, rng=0), g.input)
    s = g.add("fire.squeeze_relu", nn.ReLU(), s)
    e1 = g.add("fire.expand1x1_relu", nn.ReLU(), g.add("fire.expand1x1", nn.Conv2d(2, 3, 1, rng=1), s))
    e3 = g.add("fire.expand3x3_relu", nn.ReLU(), g.add("fire.expand3x3", nn.Conv2d(2, 3, 3, padding=1, rng=2), s))
    h = g.add("fire.cat", nn.Concat(), e1, e3)                                       # 3 + 3 channels
    z = g.add("se.squeeze", nn.AvgPool2d(6), h)                                      # (6, 1, 1)
    z = g.add("se.relu", nn.ReLU(), g.add("se.fc1", nn.Conv2d(6, 2, 1, rng=3), z))
    gate = g.add("se.gate", nn.Sigmoid(), g.add("se.fc2", nn.Conv2d(2, 6, 1, rng=4), z))
    h = g.add("se.scale", nn.Mul(), gate, h)
    h = g.add("shuffle", nn.ChannelShuffle(2), h)
    h = g.add("flatten", nn.Flatten(), g.add("pool", nn.AvgPool2d(6), h))
    return g.build(outputs=g.add("fc", nn.Linear(6, 4, rng=5), h)).eval()


def shuffle_source(c, channels, groups):
    """The input channel of output channel ``c``, by the library's own shuffle of the channel numbers."""
    return int(nn.ChannelShuffle(groups)(np.arange(float(channels)).reshape(1, channels, 1, 1))[0, c, 0, 0])


def merge_x():
    return np.random.default_rng(11).normal(size=(3, 6, 6)).astype(np.float32)


def _expected(e, lay, c, pos):
    """The page's arithmetic of one merge value, from the embedded numbers only."""
    kind = lay["kind"]
    if kind == "concat":
        ct = lay["concat"]
        assert ct["axis"] == 0
        i = max(j for j, o in enumerate(ct["offsets"]) if o <= c)
        return e.input(lay, i, c - ct["offsets"][i], pos)
    if kind == "mul":
        out = 1.0
        for i, s in enumerate(lay["inputs"]):
            shape = s["shape"]
            out *= e.input(lay, i, 0 if shape[0] == 1 else c, [0 if n == 1 else p for n, p in zip(shape[1:], pos)])
        return out
    if kind == "channel_shuffle":
        return e.input(lay, 0, shuffle_source(c, lay["in_shape"][1], lay["shuffle"]["groups"]), pos)
    raise AssertionError(kind)


@pytest.fixture(scope="module", params=[{}, {"max_layer_numbers": CAP}, {"max_layer_numbers": CAP, "max_channels": 4}],
                ids=["whole-maps", "tiled", "tiled-4-channels"])
def page(request, tmp_path_factory):
    model, x = fire_se_graph(), merge_x()
    path = explain_model_html(model, x, tmp_path_factory.mktemp("merges") / "m.html", **request.param)
    return request.param, _data(Path(path).read_text()), forward_layers(model, x)[1]


def test_every_merge_value_is_redone_from_the_embedded_numbers(page):
    kwargs, data, acts = page
    e = Embedded(data)
    by_index = {a.index: a for a in acts}
    kinds = set()
    for lay in data["layers"]:
        if lay["kind"] not in ("concat", "mul", "channel_shuffle"):
            continue
        kinds.add(lay["kind"])
        y = np.asarray(by_index[lay["index"]].y[0], dtype=np.float64)
        assert lay["values"]["channels"] == list(range(min(6, kwargs.get("max_channels", 64))))
        for c in lay["values"]["channels"]:
            for pos in _positions(lay):
                lib = e.output(lay, c, pos)
                assert lib == y[(c, *pos)]
                mine = _expected(e, lay, c, pos)
                assert mine is not None, (lay["name"], c, pos)
                if lay["kind"] == "mul":
                    np.testing.assert_allclose(mine, lib, rtol=2 * np.finfo(np.float32).eps)
                else:
                    assert mine == lib, (lay["name"], c, pos)          # a copy: bit-exact
    assert kinds == {"concat", "mul", "channel_shuffle"}


def test_the_concat_entry_names_each_inputs_channels(tmp_path):
    data = _data(explain_model_html(fire_se_graph(), merge_x(), tmp_path / "m.html").read_text())
    names = {lay["name"].strip(" ()"): lay for lay in data["layers"]}
    cat = names["fire.cat"]
    assert cat["concat"] == {"axis": 0, "offsets": [0, 3], "sizes": [3, 3]}
    assert [s["ref"] for s in cat["inputs"]] == [names["fire.expand1x1_relu"]["index"],
                                                 names["fire.expand3x3_relu"]["index"]]
    assert names["shuffle"]["shuffle"] == {"groups": 2}
    assert [shuffle_source(c, 6, 2) for c in range(6)] == [0, 3, 1, 4, 2, 5]


def test_merges_read_their_inputs_tiles_and_the_gate_whole(page):
    kwargs, data, _ = page
    layers = {lay["index"]: lay for lay in data["layers"]}
    names = {lay["name"].strip(" ()"): lay for lay in data["layers"]}
    cat, mul, shuf, gate = names["fire.cat"], names["se.scale"], names["shuffle"], names["se.gate"]
    tiled = "max_layer_numbers" in kwargs
    assert (cat["values"]["tile"] != [6, 6]) == tiled
    for s in cat["inputs"]:                   # the Concat's tile lies inside each input's: nothing of its own
        v = layers[s["ref"]]["values"]
        assert "data" not in s
        assert all(a <= b and b + t <= a + u for a, u, b, t in
                   zip(v["start"], v["tile"], cat["values"]["start"], cat["values"]["tile"]))
    assert mul["values"]["tile"] == cat["values"]["tile"] and mul["values"]["start"] == cat["values"]["start"]
    assert [s["shape"] for s in mul["inputs"]] == [[6, 1, 1], [6, 6, 6]]
    assert all("data" not in s for s in mul["inputs"])                  # the gate's own layer holds it whole
    assert gate["values"]["tile"] == [1, 1] and gate["values"]["channels"] == cat["values"]["channels"]
    # the shuffle reads channels 0, 3, 1, 4 for shown 0..3: channel 4 is not in the Mul's shown, so it slices
    assert ("data" in shuf["inputs"][0]) == (kwargs.get("max_channels") == 4)
    if "data" in shuf["inputs"][0]:
        assert shuf["inputs"][0]["channels"] == [0, 1, 3, 4]
        assert shuf["inputs"][0]["tile"] == shuf["values"]["tile"]
    if tiled:
        def count(node):
            if isinstance(node, dict):
                return int(np.prod(node["shape"])) if "b64" in node else sum(count(v) for v in node.values())
            return sum(count(v) for v in node) if isinstance(node, list) else 0
        assert all(count(lay) <= CAP for lay in data["layers"]), [(lay["name"], count(lay)) for lay in data["layers"]]
