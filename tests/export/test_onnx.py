"""to_onnx: every module and option, run in ONNX Runtime and compared with convscope."""

from __future__ import annotations

import os
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from convscope import nn  # noqa: E402
from convscope.data.formats import read_idx  # noqa: E402
from convscope.errors import (  # noqa: E402
    ArgumentTypeError,
    ConfigError,
    MissingDependencyError,
    ShapeError,
)
from convscope.export import to_onnx  # noqa: E402
from convscope.shapes import same_padding  # noqa: E402

from ._helpers import CASES, models, note  # noqa: E402

#: The issue's bound for float32 outputs: |ONNX Runtime - convscope| <= 1e-5, measured
#: relative to the output's scale when that exceeds 1 (a float32 ulp grows with the value).
ONNX_ATOL = 1e-5
#: Several batch sizes through one file: the batch axis of the graph is dynamic.
BATCHES = (1, 3, 4)


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_against_onnxruntime(model, input_shape, folder, record, name="onnx: random models",
                              batches=BATCHES, seed=0):
    """Export, run every batch size in ONNX Runtime, compare; returns the loaded proto."""
    model.eval()
    path = to_onnx(model, Path(folder) / "model.onnx", input_shape)
    sess = session(path)
    rng = np.random.default_rng(seed)
    for batch in batches:
        x = rng.standard_normal((batch, *input_shape)).astype(np.float32)
        expected = model(x)
        (got,) = sess.run(None, {"input": x})
        assert got.shape == expected.shape, f"{model!r}\nbatch {batch}: {got.shape} != {expected.shape}"
        diff = float(np.abs(got.astype(np.float64) - expected).max()) if expected.size else 0.0
        note(record, name, diff)
        scale = max(1.0, float(np.abs(expected).max()))
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        assert diff <= ONNX_ATOL * scale, (
            f"{model!r}\ninput_shape {input_shape}, batch {batch}: largest difference {diff:.3g} at "
            f"{worst}: onnxruntime {got[worst]!r}, convscope {expected[worst]!r}"
        )
    return onnx.load(str(path))


def op_types(proto) -> list[str]:
    return [node.op_type for node in proto.graph.node]


def attribute(node, name):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return None


# ------------------------------------------------------------------ numerical agreement
@settings(max_examples=60)
@given(drawn=models())
def test_random_models_match_onnxruntime(drawn, largest_differences):
    model, input_shape = drawn
    with tempfile.TemporaryDirectory() as folder:
        check_against_onnxruntime(model, input_shape, folder, largest_differences)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_option_matches_onnxruntime(name, tmp_path, largest_differences):
    model, input_shape = CASES[name](np.random.default_rng(zlib.crc32(name.encode())))
    proto = check_against_onnxruntime(model, input_shape, tmp_path, largest_differences,
                                      name="onnx: one option per model")
    onnx.checker.check_model(proto, full_check=True)
    # ceil_mode is always written as explicit padding, so no runtime's ceil rule matters
    assert all(attribute(node, "ceil_mode") in (None, 0) for node in proto.graph.node)


def test_float64_model_is_exported_as_float32(tmp_path, largest_differences):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 2, rng=1)).to(np.float64).eval()
    path = to_onnx(model, tmp_path / "m.onnx", (2, 4, 4))
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 4))
    (got,) = session(path).run(None, {"input": x.astype(np.float32)})
    assert got.dtype == np.float32
    note(largest_differences, "onnx: float64 model (weights rounded to float32)", np.abs(got - model(x)).max())
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=ONNX_ATOL)


def test_lenet_on_real_mnist_images(shared_data, tmp_path, largest_differences):
    images = shared_data / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not images.is_file():
        pytest.skip(f"MNIST test images not found at {images}")
    x = read_idx(images)[:256].astype(np.float32)[:, None] / 255.0
    x = (x - 0.1307) / 0.3081
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, rng=0), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.BlurPool2d(6), nn.Conv2d(6, 16, 5, rng=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 120, rng=2), nn.ReLU(),
        nn.Dropout(0.5, rng=0), nn.Linear(120, 84, rng=3), nn.ReLU(), nn.Linear(84, 10, rng=4),
        nn.Softmax(),
    )
    # one training-mode pass gives the batch norm real running statistics
    model(x[:64])
    model.eval()
    path = to_onnx(model, tmp_path / "lenet.onnx", (1, 28, 28))
    sess = session(path)
    expected = model(x)
    for batch in (256, 1, 7):
        (got,) = sess.run(None, {"input": x[:batch]})
        diff = float(np.abs(got - expected[:batch]).max())
        note(largest_differences, "onnx: LeNet on MNIST test images", diff)
        assert diff <= ONNX_ATOL
    assert np.array_equal(got.argmax(1), expected[:7].argmax(1))


# ------------------------------------------------------------------ what the graph looks like
def test_graph_has_dynamic_batch_and_declared_output(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10, rng=1))
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (1, 8, 8))))
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(proto.graph.input[0]) == ["batch", 1, 8, 8]
    assert dims(proto.graph.output[0]) == ["batch", 10]
    assert proto.opset_import[0].version == 17
    assert op_types(proto) == ["Conv", "MaxPool", "Flatten", "Gemm"]


def test_circular_padding_needs_opset_19_and_a_wrap_pad(tmp_path):
    model = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", rng=0)
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (1, 5, 5))))
    assert proto.opset_import[0].version == 19
    pad, conv = proto.graph.node
    assert (pad.op_type, attribute(pad, "mode"), conv.op_type) == ("Pad", b"wrap", "Conv")
    assert attribute(conv, "pads") == [0, 0, 0, 0]
    with pytest.raises(ConfigError, match="opset must be between 19"):
        to_onnx(model, tmp_path / "m.onnx", (1, 5, 5), opset=17)
    with pytest.raises(ArgumentTypeError, match="opset must be an int"):
        to_onnx(model, tmp_path / "m.onnx", (1, 5, 5), opset="19")


@pytest.mark.parametrize("mode, onnx_mode", [("reflect", b"reflect"), ("replicate", b"edge")])
def test_padding_modes_become_pad_nodes(mode, onnx_mode, tmp_path):
    model = nn.Conv1d(1, 1, 3, padding=((2, 1),), padding_mode=mode, rng=0)
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (1, 6))))
    assert proto.opset_import[0].version == 17
    pad = proto.graph.node[0]
    assert attribute(pad, "mode") == onnx_mode
    pads = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}[pad.input[1]]
    assert pads.tolist() == [0, 0, 2, 0, 0, 1]


def test_same_padding_is_resolved_for_the_input_shape(tmp_path):
    model = nn.Conv2d(1, 1, (3, 4), stride=2, padding="same", rng=0)
    conv = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (1, 7, 8)))).graph.node[0]
    (t, b), (l, r) = same_padding(7, 3, 2), same_padding(8, 4, 2)
    assert attribute(conv, "pads") == [t, l, b, r] == [1, 1, 1, 1]


def test_flip_exports_the_reversed_filters(tmp_path):
    model = nn.Conv2d(1, 2, (2, 3), flip=True, rng=0)
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (1, 4, 4))))
    weight = onnx.numpy_helper.to_array(proto.graph.initializer[0])
    np.testing.assert_array_equal(weight, model.weight.data[:, :, ::-1, ::-1])


def test_dilated_max_pool_overhang_pads_with_minus_infinity(tmp_path, largest_differences):
    model, shape = CASES["maxpool1d_ceil_dilated_overhang"](None)
    proto = check_against_onnxruntime(model, shape, tmp_path, largest_differences,
                                      name="onnx: one option per model")
    pad, pool = proto.graph.node
    assert (pad.op_type, pool.op_type, attribute(pool, "pads")) == ("Pad", "MaxPool", [0, 0])
    value = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}[pad.input[2]]
    assert value == -np.inf


def test_blur_pool_is_a_fixed_depthwise_conv_after_its_pad(tmp_path):
    proto = onnx.load(str(to_onnx(nn.BlurPool2d(3, 3), tmp_path / "m.onnx", (3, 6, 6))))
    pad, conv = proto.graph.node
    assert (pad.op_type, attribute(pad, "mode"), conv.op_type, attribute(conv, "group")) == (
        "Pad", b"reflect", "Conv", 3)
    weight = onnx.numpy_helper.to_array(proto.graph.initializer[-1])
    assert weight.shape == (3, 1, 3, 3)
    np.testing.assert_allclose(weight[1, 0] * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_batch_norm_uses_running_statistics_and_dropout_is_identity(tmp_path):
    bn = nn.BatchNorm1d(3)
    bn.running_mean[...] = [1, 2, 3]
    model = nn.Sequential(nn.Dropout(0.9), bn)  # exported in eval mode although training
    proto = onnx.load(str(to_onnx(model, tmp_path / "m.onnx", (3,))))
    assert op_types(proto) == ["Identity", "BatchNormalization"]
    assert model.training  # the model itself is untouched


def test_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    to_onnx(nn.ReLU(), str(target), (2,))
    assert onnx.load(str(target)).graph.node[0].op_type == "Relu"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left


# ------------------------------------------------------------------ errors
class Doubler(nn.Module):
    def forward(self, x):
        return 2 * x

    def output_shape(self, input_shape):
        return tuple(input_shape)


def test_unsupported_module_is_named_with_its_position(tmp_path):
    model = nn.Sequential(nn.ReLU(), nn.Residual(nn.Sequential(nn.Tanh(), Doubler())))
    with pytest.raises(ConfigError, match=r"at '1\.block\.1' of type Doubler has no ONNX mapping"):
        to_onnx(model, tmp_path / "m.onnx", (3,))
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("shape, error, words", [
    ((1, 1, 8, 8), ShapeError, "excludes the batch axis"),
    ((2, 8, 8), ShapeError, "expected 1 input channels"),
    ("1,8,8", ArgumentTypeError, "input_shape must be a tuple"),
    ((1, 0, 8), ConfigError, "positive ints"),
    ((), ConfigError, "empty"),
    ((1, 8.0, 8), ConfigError, "positive ints"),
])
def test_bad_input_shape(shape, error, words, tmp_path):
    with pytest.raises(error, match=words):
        to_onnx(nn.Conv2d(1, 2, 3, rng=0), tmp_path / "m.onnx", shape)


def test_bad_model_and_path(tmp_path):
    with pytest.raises(ArgumentTypeError, match="convscope Module"):
        to_onnx(lambda x: x, tmp_path / "m.onnx", (1,))
    with pytest.raises(ArgumentTypeError, match="path must be"):
        to_onnx(nn.ReLU(), 3, (1,))
    with pytest.raises(ConfigError, match="does not exist"):
        to_onnx(nn.ReLU(), tmp_path / "missing" / "m.onnx", (1,))


def test_missing_onnx_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[onnx\]"') as info:
        to_onnx(nn.ReLU(), tmp_path / "m.onnx", (1,))
    assert isinstance(info.value, ImportError)
    assert not os.listdir(tmp_path)
