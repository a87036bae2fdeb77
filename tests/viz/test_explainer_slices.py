"""Every layer of every branch of a graph model embeds its click arithmetic, under the per-layer cap.

The checks redo the page's arithmetic in Python from the embedded numbers only (the input
patch and the filter of a convolution, the producer's tile for an elementwise layer, the two
branches of a merge, ...) and compare it with the library's forward output at that position,
for the whole map (the default cap) and for a small cap that tiles every layer.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from convscope import nn
from convscope.viz import explain_model_html, forward_layers
from convscope.viz._explainer_data import backward_passes, unb64
from convscope.viz._explainer_slices import tile_of

SMALL_CAP = 150          # numbers per layer: every spatial layer of the model below is tiled


def _graph():
    """A stem, then one ResNet downsampling block: main path conv-bn-relu-conv and a 1x1 stride-2
    projection shortcut conv-bn, merged by Add; then global average pooling and a classifier."""
    rng = np.random.default_rng(7)
    g = nn.GraphBuilder()
    h = g.add("conv1", nn.Conv2d(2, 4, 3, padding=1, rng=0), g.input)
    h = g.add("bn1", nn.BatchNorm2d(4), h)
    h = g.add("relu", nn.ReLU(), h)
    h = g.add("pool", nn.MaxPool2d(2), h)                                          # 12 -> 6
    y = g.add("b.conv1", nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False, rng=1), h)   # 6 -> 3
    y = g.add("b.bn1", nn.BatchNorm2d(6), y)
    y = g.add("b.relu1", nn.ReLU(), y)
    y = g.add("b.conv2", nn.Conv2d(6, 6, 3, padding=1, bias=False, rng=2), y)
    skip = g.add("b.down", nn.Conv2d(4, 6, 1, stride=2, bias=False, rng=3), h)
    skip = g.add("b.down_bn", nn.BatchNorm2d(6), skip)
    h = g.add("b.relu_out", nn.ReLU(), g.add("b.add", nn.Add(), y, skip))
    h = g.add("flatten", nn.Flatten(), g.add("avgpool", nn.AvgPool2d(3), h))
    model = g.build(outputs=g.add("fc", nn.Linear(6, 5, rng=4), h))
    for m in model.modules():
        if m.layer_kind == "batch_norm":
            c = m.running_mean.shape[0]
            m.running_mean[...] = rng.normal(size=c)
            m.running_var[...] = rng.uniform(0.5, 2.0, size=c)
            m.weight.data[...] = rng.normal(size=c)
            m.bias.data[...] = rng.normal(size=c)
    return model.eval()


def _x():
    return np.random.default_rng(3).normal(size=(2, 12, 12)).astype(np.float32)


def _data(text):
    blob = re.search(r'<script type="application/json" id="convscope-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def _dec(entry):
    return unb64(entry).astype(np.float64)


class Embedded:
    """Reads values out of the page's numbers as its script does (None where nothing is embedded)."""

    def __init__(self, data):
        self.data = data
        self.layers = {lay["index"]: lay for lay in data["layers"]}

    @staticmethod
    def at(s, c, pos):
        if s is None or s.get("data") is None:
            return None
        a = _dec(s["data"])
        if a.ndim == 1:
            return a[pos[0]]
        ci = c if s.get("channels") is None else (s["channels"].index(c) if c in s["channels"] else None)
        if ci is None:
            return None
        start = s.get("start") or [0] * len(pos)
        rel = [p - st for p, st in zip(pos, start)]
        if any(r < 0 or r >= n for r, n in zip(rel, a.shape[1:])):
            return None
        return a[(ci, *rel)]

    def output(self, lay, c, pos):
        return self.at(lay["values"], c, pos)

    def source(self, ref):
        if ref == 0:
            return {"channels": None, "data": self.data["input"]}
        return self.layers[ref]["values"]

    def input(self, lay, i, c, pos):
        s = lay["inputs"][i]
        return self.at(s if s.get("data") is not None else self.source(s["ref"]), c, pos)


def _positions(lay):
    v = lay["values"]
    if "tile" not in v:
        return [[j] for j in range(lay["out_shape"][1])]
    start, tile = v["start"], v["tile"]
    return [[start[0] + i, start[1] + j] for i in range(tile[0]) for j in range(tile[1])]


def _recompute(e, lay, c, pos):
    """The page's arithmetic for one value of one layer, from the embedded numbers only."""
    kind = lay["kind"]
    if kind == "conv":
        cv = lay["conv"]
        f = cv["channels"].index(c)
        patch, w = _dec(cv["padded"]), _dec(cv["weights"])[f]
        g_size = cv["c_in"] // cv["groups"]
        g = c // (cv["c_out"] // cv["groups"])
        first = [p * s - p0 for p, s, p0 in zip(pos, cv["s"], cv["padded_start"])]
        k, d = cv["k"], cv["d"]
        window = patch[g * g_size:(g + 1) * g_size, first[0]:first[0] + d[0] * (k[0] - 1) + 1:d[0],
                       first[1]:first[1] + d[1] * (k[1] - 1) + 1:d[1]]
        return float(np.sum(window * w)) + (cv["bias"][f] if cv["bias"] else 0.0)
    if kind == "batch_norm":
        bn, z = lay["bn"], e.input(lay, 0, c, pos)
        return (z - bn["mean"][c]) / np.sqrt(bn["var"][c] + bn["eps"]) * bn["weight"][c] + bn["bias"][c]
    if kind == "relu":
        return max(0.0, e.input(lay, 0, c, pos))
    if kind == "add":
        return sum(e.input(lay, i, c, pos) for i in range(len(lay["inputs"])))
    if kind in ("max_pool", "avg_pool"):
        pl = lay["pool"]
        cells = [e.input(lay, 0, c, [pos[0] * pl["s"][0] + a - pl["p_before"][0],
                                     pos[1] * pl["s"][1] + b - pl["p_before"][1]])
                 for a in range(pl["k"][0]) for b in range(pl["k"][1])]
        return max(cells) if pl["op"] == "max" else float(np.mean(cells))
    if kind == "flatten":
        shape = lay["in_shape"][1:]
        src = np.unravel_index(pos[0], shape)
        return e.input(lay, 0, int(src[0]), [int(v) for v in src[1:]])
    if kind == "linear":
        li = lay["linear"]
        row = _dec(li["weights"])[li["rows"].index(pos[0])]
        x = np.array([e.input(lay, 0, 0, [i]) for i in range(li["in"])])
        return float(row @ x) + li["bias"][pos[0]]
    raise AssertionError(f"no arithmetic for {kind}")


@pytest.fixture(scope="module", params=[None, SMALL_CAP], ids=["whole-maps", "tiled"])
def page(request, tmp_path_factory):
    model, x = _graph(), _x()
    kwargs = {} if request.param is None else {"max_layer_numbers": request.param}
    path = explain_model_html(model, x, tmp_path_factory.mktemp("slices") / "g.html", **kwargs)
    text = Path(path).read_text()
    return request.param, text, _data(text), forward_layers(model, x)


def test_every_layer_of_every_branch_reproduces_its_output_from_the_embedded_numbers(page):
    cap, text, data, (_, acts) = page
    e = Embedded(data)
    notes = " ".join(re.findall(r'<p class="note">(.*?)</p>', text.split('<script type="application/json"')[0]))
    assert "not embedded" not in notes
    for lay in data["layers"]:                     # no "does not fit" note on any layer's own numbers
        assert not any((lay.get(k) or {}).get("note") for k in ("conv", "linear")) or cap is not None, lay
    names = {lay["name"].strip(" ()"): lay for lay in data["layers"]}
    assert {"b.conv1", "b.conv2", "b.down", "b.down_bn", "b.add"} <= set(names)   # both branches
    assert names["b.add"]["inputs"][0]["ref"] == names["b.conv2"]["index"]          # main path
    assert names["b.add"]["inputs"][1]["ref"] == names["b.down_bn"]["index"]       # projection shortcut
    by_index = {a.index: a for a in acts}
    checked = 0
    for lay in data["layers"]:
        y = np.asarray(by_index[lay["index"]].y[0], dtype=np.float64)
        assert lay["values"] is not None, lay["name"]
        if cap is None:
            assert "start" not in lay["values"] or lay["values"]["tile"] == lay["out_shape"][2:], lay["name"]
        channels = [0] if y.ndim == 1 else (lay["conv"]["channels"] if lay["kind"] == "conv"
                                            else lay["values"]["channels"])
        if lay["kind"] == "linear":
            channels = [0]
        assert channels, lay["name"]
        for c in channels:
            for pos in _positions(lay):
                if lay["kind"] == "linear" and pos[0] not in lay["linear"]["rows"]:
                    continue
                lib = e.output(lay, c, pos)
                assert lib == (y[pos[0]] if y.ndim == 1 else y[(c, *pos)])      # the library's own value
                mine = _recompute(e, lay, c, pos)
                np.testing.assert_allclose(mine, lib, rtol=1e-5, atol=1e-6, err_msg=f"{lay['name']} {c} {pos}")
                checked += 1
    assert checked > 100


def test_a_small_cap_tiles_each_layer_and_bounds_its_numbers(page):
    cap, text, data, _ = page
    notes = " ".join(re.findall(r'<p class="note">(.*?)</p>', text.split('<script type="application/json"')[0]))
    if cap is None:
        assert "dashed box" not in notes
        return

    def count(node):
        if isinstance(node, dict):
            return int(np.prod(node["shape"])) if "b64" in node else sum(count(v) for v in node.values())
        return sum(count(v) for v in node) if isinstance(node, list) else 0

    for lay in data["layers"]:
        assert count(lay) <= cap, (lay["name"], count(lay))
    conv1 = data["layers"][0]
    assert conv1["values"]["tile"] != [12, 12] and "dashed box" in notes
    # the stem conv embeds only the padded input under its tile, every input channel
    first, size = conv1["conv"]["padded_start"], conv1["conv"]["padded_shape"]
    assert size[0] == 2 and size[1:] == [t + 2 for t in conv1["values"]["tile"]]
    assert first == conv1["values"]["start"]


def test_backward_tiles_and_the_tiled_dw_check_equal_the_librarys_backward(page):
    cap, _, data, (xb, acts) = page
    back = data["backward"]
    target = back["default"]
    (grad,) = backward_passes(_graph(), *forward_layers(_graph(), _x()), [target])
    p = back["passes"][str(target)]
    for lay in data["layers"]:
        g = grad.grads[lay["index"]][0]
        emb = _dec(p["layers"][str(lay["index"])])
        v = lay["values"]
        if g.ndim == 1:
            np.testing.assert_array_equal(emb, g)
            continue
        part = g[v["channels"]]
        if "start" in v:
            (r0, c0), (h, w) = v["start"], v["tile"]
            part = part[:, r0:r0 + h, c0:c0 + w]
        np.testing.assert_array_equal(emb, part)
        cv = lay.get("conv")
        if not cv or cv.get("dw") is None:
            continue
        # a tiled conv: dL/dW of the first input channels from their whole planes and the filter's whole dL/dy
        dw = cv["dw"]
        planes = _dec(data["input"])[dw["channels"]] if dw["from_input"] else _dec(dw["planes"])
        xp = np.pad(planes, [(0, 0)] + [(p0, p0) for p0 in cv["p_before"]])
        dy = _dec(p["dy_full"][str(lay["index"])])
        lib = _dec(p["dw"][str(lay["index"])])
        k, s = cv["k"], cv["s"]
        for fi in range(len(dw["filters"])):
            for ci in range(len(dw["channels"])):
                for a in range(k[0]):
                    for b in range(k[1]):
                        taps = xp[ci, a:a + s[0] * dy.shape[1]:s[0], b:b + s[1] * dy.shape[2]:s[1]]
                        np.testing.assert_allclose(np.sum(taps * dy[fi]), lib[fi, ci, a, b], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(lib, grad.weight_grads[lay["index"]][dw["filters"]][:, dw["channels"]])


def test_tile_of_is_centred_and_shrinks_the_longest_axis_first():
    assert tile_of([7, 7], lambda t: 4 * t[0] * t[1], 400) == ([0, 0], [7, 7])      # the whole map fits
    start, size = tile_of([10, 6], lambda t: t[0] * t[1], 20)
    assert size == [4, 5] and start == [3, 0]
    assert tile_of([5], lambda t: 100, 1) == ([2], [1])                              # one position at least
