"""``convscope export``: a saved model to ONNX and PyTorch files from the shell."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.cli import main


@pytest.fixture
def saved_model(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding="same", rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 3 * 3, 4, rng=1))
    path = convscope.save(model, tmp_path / "model.npz", metadata={"image_shape": [1, 6, 6]})
    return model.eval(), path


def test_export_onnx_runs_in_onnxruntime(saved_model, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, path = saved_model
    out = tmp_path / "model.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(batch, 1, 6, 6)" in printed and "onnxruntime check" in printed
    onnx.checker.check_model(onnx.load(str(out)))
    x = np.random.default_rng(0).standard_normal((5, 1, 6, 6)).astype(np.float32)
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-5)


def test_export_torch_loads_with_torch(saved_model, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    model, path = saved_model
    out = tmp_path / "model.pt"
    assert main(["export", str(path), "--format", "torch", "--out", str(out)]) == 0
    assert "weights_only=False" in capsys.readouterr().out
    net = torch.load(out, weights_only=False)
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), rtol=1e-5, atol=1e-6)


def test_input_shape_option_and_errors(saved_model, tmp_path, capsys):
    pytest.importorskip("onnx")
    model, _ = saved_model
    bare = convscope.save(model, tmp_path / "bare.npz")  # no recorded input shape
    out = str(tmp_path / "m.onnx")
    assert main(["export", str(bare), "--format", "onnx", "--out", out]) == 2
    assert "pass --input-shape C,H,W" in capsys.readouterr().err
    assert main(["export", str(bare), "--format", "onnx", "--out", out, "--input-shape", "1,6,6"]) == 0
    capsys.readouterr()
    # a shape the model rejects: one line on stderr, exit status 2, no traceback
    assert main(["export", str(bare), "--format", "onnx", "--out", out, "--input-shape", "2,6,6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected 1 input channels" in err and "Traceback" not in err
    assert main(["export", "no-such-model", "--format", "onnx", "--out", out]) == 2
    assert "no file 'no-such-model' exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(bare), "--format", "onnx", "--out", out, "--input-shape", "1,a"])


def test_missing_extra_is_one_line(saved_model, tmp_path, monkeypatch, capsys):
    _, path = saved_model
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["export", str(path), "--format", "torch", "--out", str(tmp_path / "m.pt")]) == 2
    assert 'pip install "convscope[torch]"' in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
