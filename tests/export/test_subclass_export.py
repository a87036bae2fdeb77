"""A user's subclass of a convscope layer exports like the layer it extends (layer protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn


class MyConv(nn.Conv2d):
    """A subclass that only adds a name: it computes what Conv2d computes."""

    def describe(self) -> str:
        return f"my conv with {self.out_channels} filters"


class MyPool(nn.MaxPool2d):
    pass


class MyBatchNorm(nn.BatchNorm2d):
    pass


def _pair():
    """The same weights in a model of subclasses and in a model of convscope's own classes."""
    mine = nn.Sequential(MyConv(2, 3, 3, padding=1, rng=0), MyBatchNorm(3), nn.ReLU(),
                         MyPool(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=1))
    plain = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=1))
    rng = np.random.default_rng(2)
    plain[1].running_mean[...] = mine[1].running_mean[...] = rng.standard_normal(3)
    plain[1].running_var[...] = mine[1].running_var[...] = rng.uniform(0.5, 2.0, 3)
    return mine.eval(), plain.eval()


def test_subclasses_export_to_onnx_like_the_original(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from convscope.export import to_onnx

    mine, plain = _pair()
    protos = [onnx.load(to_onnx(m, tmp_path / f"{i}.onnx", (2, 6, 6))) for i, m in enumerate((mine, plain))]
    assert ([n.op_type for n in protos[0].graph.node] == [n.op_type for n in protos[1].graph.node]
            == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm"])
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 6)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "0.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x})
    np.testing.assert_allclose(got, plain(x), atol=1e-5)


def test_subclasses_export_to_torch_like_the_original():
    torch = pytest.importorskip("torch")
    from convscope.export import to_torch

    mine, plain = _pair()
    ours, theirs = to_torch(mine), to_torch(plain)
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    x = np.random.default_rng(4).standard_normal((2, 2, 6, 6)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(), plain(x), atol=1e-5)


def test_subclasses_are_summarised_and_explained_like_the_original():
    from convscope import summary
    from convscope.explain import explain_model_shapes, receptive_field

    mine, plain = _pair()
    a, b = summary(mine, (2, 6, 6)), summary(plain, (2, 6, 6))
    assert [(r.formula, r.receptive_field, r.jump, r.window_bytes) for r in a.rows] == [
        (r.formula, r.receptive_field, r.jump, r.window_bytes) for r in b.rows]
    assert a.rows[0].formula == "3*(2*3*3)+3 = 57"
    fields = [receptive_field(m, (2, 6, 6), pixel=(1, 1), layer=4) for m in (mine, plain)]
    assert [r.rf for r in fields[0].rows] == [r.rf for r in fields[1].rows]
    assert fields[0].region == fields[1].region
    shapes = [explain_model_shapes(m, (2, 6, 6)) for m in (mine, plain)]
    assert [row[5] for row in shapes[0].rows] == [row[5] for row in shapes[1].rows]
    assert shapes[0].rows[0][5]                      # Key Equation 48 for the subclass's conv too
