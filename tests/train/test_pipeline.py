"""The saved model is the whole pipeline (normalisation, input shape, class names), and the
conventional Python API: fit/evaluate/predict with defaults, a Keras-like History,
load_digits() -> (train, test)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import convscope
from convscope import nn, optim
from convscope.cli import main
from convscope.data import Normalize as NormalizeTransform
from convscope.data import load_digits
from convscope.errors import ArgumentTypeError, ConfigError, ShapeError
from convscope.models import add_input_normalization, build_model
from convscope.train import History, Prediction, evaluate, fit, predict


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``convscope train`` on the digits for 2 epochs; (folder, metrics)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "2", "--progress", "none", "--out", str(out)]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def _tiny(seed: int = 0) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=seed + 1))


# ------------------------------------------------------------------ the model is the pipeline


def test_a_cli_trained_model_scores_in_python_as_the_cli_reported(cli_run, capsys):
    out, metrics = cli_run
    model, meta = convscope.load(out / "model.npz", return_metadata=True)
    assert model[0].layer_kind == "normalize" and "normalize" not in meta
    assert model.input_shape == (1, 8, 8) and model.classes == [str(d) for d in range(10)]
    _, test = load_digits()
    # raw [0, 1] pixels in, no transform: the model standardises them itself
    assert evaluate(model, test)["accuracy"] == metrics["test_accuracy"]
    result = predict(model, test.images)
    assert float(np.mean(result.classes == test.labels)) == metrics["test_accuracy"]
    assert result.labels[:3] == [str(c) for c in result.classes[:3]]
    # the CLI's evaluate gives the same number (no second normalisation anywhere)
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == metrics["test_accuracy"]


def test_the_onnx_export_takes_raw_pixels_and_agrees(cli_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from convscope.export import to_onnx

    model = convscope.load(cli_run[0] / "model.npz")
    path = to_onnx(model, tmp_path / "m.onnx", model.input_shape)
    import onnx

    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops[:2] == ["Sub", "Div"]
    _, test = load_digits()
    x = test.images  # raw pixels in [0, 1]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"input": x})
    ours = predict(model, x)
    np.testing.assert_array_equal(scores.argmax(1), ours.classes)
    np.testing.assert_allclose(scores, predict(model, x, probabilities=False), atol=1e-4)


def test_the_torch_export_takes_raw_pixels_and_agrees(cli_run):
    torch = pytest.importorskip("torch")
    from convscope.export import from_torch, to_torch

    model = convscope.load(cli_run[0] / "model.npz")
    net = to_torch(model).eval()
    assert type(net[0]).__name__ == "Normalize"
    _, test = load_digits()
    with torch.no_grad():
        scores = net(torch.from_numpy(test.images)).numpy()
    np.testing.assert_array_equal(scores.argmax(1), predict(model, test.images).classes)
    back = from_torch(net)
    assert back[0].layer_kind == "normalize"
    np.testing.assert_allclose(back.eval()(test.images), model.eval()(test.images), atol=1e-5)


def test_a_python_saved_model_works_with_the_cli_predict(tmp_path, capsys):
    train, test = load_digits()
    model = add_input_normalization(_tiny(), train)
    fit(model, train, epochs=2, progress=False, seed=0)
    names = [f"digit {d}" for d in range(10)]
    path = convscope.save(model, tmp_path / "mine", input_shape=train.image_shape, classes=names)
    np.save(tmp_path / "x.npy", test.images[0])
    capsys.readouterr()
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    again = convscope.load(path)
    expected = predict(again, test.images[:1])
    assert row["class"] == int(predict(model, test.images[:1]).classes[0]) == int(expected.classes[0])
    assert row["label"] == expected.labels[0] == f"digit {row['class']}"
    # the attributes travel too: a model saved again keeps them without arguments
    assert again.input_shape == (1, 8, 8) and again.classes == names
    assert convscope.load(convscope.save(again, tmp_path / "again")).classes == names


def test_a_model_saved_without_its_input_shape_gets_a_helpful_refusal(tmp_path, capsys):
    path = convscope.save(_tiny(), tmp_path / "bare")
    assert convscope.load(path).input_shape is None
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), np.float32))
    capsys.readouterr()
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    assert "input_shape=(C, H, W)" in capsys.readouterr().err


def test_save_checks_input_shape_and_classes_against_the_model(tmp_path):
    with pytest.raises(ShapeError, match="does not take inputs of input_shape"):
        convscope.save(_tiny(), tmp_path / "a", input_shape=(3, 8, 8))
    with pytest.raises(ShapeError, match="gives 10 outputs per input but 3 classes"):
        convscope.save(_tiny(), tmp_path / "a", input_shape=(1, 8, 8), classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match="positive ints"):
        convscope.save(_tiny(), tmp_path / "a", input_shape=(1, 0, 8))
    with pytest.raises(ConfigError, match="class names"):
        convscope.save(_tiny(), tmp_path / "a", classes="abc")


def test_an_old_cli_file_loads_as_saved_warns_and_the_cli_still_normalises(tmp_path, capsys):
    """Files of earlier releases kept the statistics in metadata["normalize"]."""
    model = _tiny()
    stats = {"mean": [0.3], "std": [0.4]}
    path = convscope.save(model, tmp_path / "old", {"normalize": stats, "image_shape": [1, 8, 8],
                                                    "classes": [str(d) for d in range(10)]})
    with pytest.warns(UserWarning, match=r"with_input_normalization\(model, \*\*metadata\['normalize'\]\)"):
        loaded, meta = convscope.load(path, return_metadata=True)
    assert loaded[0].layer_kind == "conv" and meta["normalize"] == stats
    assert loaded.input_shape == (1, 8, 8)
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    expected = model.eval()(NormalizeTransform(0.3, 0.4)(x))
    upgraded = nn.with_input_normalization(loaded, **meta["normalize"])
    np.testing.assert_allclose(upgraded.eval()(x), expected, rtol=1e-6)
    # the command line applies the recorded statistics, once, and shows no warning
    np.save(tmp_path / "x.npy", x[0])
    capsys.readouterr()
    assert main(["predict", str(path), str(tmp_path / "x.npy"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["class"] == int(expected[0].argmax()) and "Warning" not in err
    # re-saved with the layer (and the old metadata): still normalised once
    again = convscope.save(upgraded, tmp_path / "again", meta)
    assert main(["predict", str(again), str(tmp_path / "x.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["probability"] == pytest.approx(
        float(predict(upgraded, x[:1]).max()), rel=1e-5)


def test_build_training_leaves_the_normalisation_to_the_model():
    from convscope.models import RECIPES, build_training

    train, _ = load_digits()
    plain = build_training(RECIPES["mnist"], build_model("digits", seed=0), train)
    model = add_input_normalization(build_model("digits", seed=0), train)
    setup = build_training(RECIPES["mnist"], model, train)
    assert setup.eval_transform is None and type(setup.transform).__name__ == "RandomShift"
    np.testing.assert_allclose(model[0].mean, plain.eval_transform.mean, rtol=1e-6)
    with pytest.raises(ConfigError, match="already starts with a Normalize"):
        add_input_normalization(model, train)


# ------------------------------------------------------------------ nn.Normalize


def test_normalize_layer_forward_backward_and_checks():
    layer = nn.Normalize([0.5, -1.0], [2.0, 0.5], dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 3))
    y = layer(x)
    np.testing.assert_allclose(y[:, 1], (x[:, 1] + 1.0) / 0.5)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(dy)
    eps = 1e-6
    probe = np.zeros_like(x)
    probe[1, 0, 2, 1] = eps
    numeric = np.sum(dy * (layer(x + probe) - layer(x - probe))) / (2 * eps)
    assert dx[1, 0, 2, 1] == pytest.approx(numeric, rel=1e-6)
    assert sorted(layer.state_dict()) == ["mean", "std"]
    with pytest.raises(ShapeError, match="normalises 2 channels"):
        layer(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ConfigError, match="std positive"):
        nn.Normalize(0.0, 0.0)
    with pytest.raises(ConfigError, match="the same count"):
        nn.Normalize([0.0, 1.0], [1.0, 1.0, 1.0])


# ------------------------------------------------------------------ the conventional API


def _toy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    return x, (x[:, 0] > x[:, 1]).astype(np.int64)


def test_fit_defaults_to_cross_entropy_and_adam_and_gives_a_keras_history():
    x, y = _toy()
    model = nn.Sequential(nn.Linear(2, 2, rng=0))
    history = fit(model, (x, y), val=(x, y), epochs=3, batch_size=16, seed=0, progress=False)
    assert isinstance(history, History) and len(history["val_accuracy"]) == 3
    assert history[-1] == history.last and history[-1]["epoch"] == 3
    assert history[0]["epoch"] == 1 and [r["epoch"] for r in history[1:]] == [2, 3]
    assert history.history["val_loss"] == history["val_loss"]
    with pytest.raises(IndexError, match="3 epoch records"):
        history[3]
    # the default optimizer is Adam at 1e-3: the same weights as passing it explicitly
    other = nn.Sequential(nn.Linear(2, 2, rng=0))
    fit(other, (x, y), val=(x, y), epochs=3, batch_size=16, seed=0, progress=False,
        optimizer=optim.Adam(other.named_parameters(), lr=1e-3), loss=nn.CrossEntropyLoss())
    np.testing.assert_array_equal(model[0].weight.data, other[0].weight.data)


def test_the_old_call_forms_still_work_and_warn():
    x, y = _toy()
    new = nn.Sequential(nn.Linear(2, 2, rng=0))
    fit(new, (x, y), epochs=2, batch_size=16, seed=0, progress=False,
        optimizer=optim.SGD(new.named_parameters(), lr=0.5), loss=nn.CrossEntropyLoss())
    old = nn.Sequential(nn.Linear(2, 2, rng=0))
    with pytest.warns(DeprecationWarning, match=r"fit\(model, loss, optimizer, train, val\) is deprecated"):
        fit(old, nn.CrossEntropyLoss(), optim.SGD(old.named_parameters(), lr=0.5), (x, y), epochs=2,
            batch_size=16, seed=0, progress=False)
    np.testing.assert_array_equal(new[0].weight.data, old[0].weight.data)
    with pytest.warns(DeprecationWarning, match=r"evaluate\(model, loss, data\) is deprecated"):
        scores = evaluate(old, nn.CrossEntropyLoss(), (x, y))
    assert scores == evaluate(old, (x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new forms do not warn
        evaluate(old, (x, y), loss=nn.CrossEntropyLoss())
        fit(old, (x, y), epochs=1, progress=False)


def test_loss_fn_is_another_name_of_loss():
    x, y = _toy()
    a, b = nn.Sequential(nn.Linear(2, 2, rng=0)), nn.Sequential(nn.Linear(2, 2, rng=0))
    fit(a, (x, y), epochs=2, seed=0, progress=False, loss=nn.CrossEntropyLoss())
    fit(b, (x, y), epochs=2, seed=0, progress=False, loss_fn=nn.CrossEntropyLoss())
    np.testing.assert_array_equal(a[0].weight.data, b[0].weight.data)
    assert evaluate(a, (x, y), loss_fn=nn.CrossEntropyLoss()) == evaluate(a, (x, y))
    with pytest.raises(ConfigError, match="as loss= or as loss_fn="):
        fit(a, (x, y), loss=nn.CrossEntropyLoss(), loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(ArgumentTypeError, match="loss must be a loss module"):
        evaluate(a, (x, y), loss="mse")
    with pytest.raises(ArgumentTypeError, match="give the rest by name|Give the rest by name"):
        fit(a, (x, y), (x, y), 3)
    with pytest.raises(ArgumentTypeError, match="give the training data"):
        fit(a)
    with pytest.raises(ArgumentTypeError, match="give the data to score"):
        evaluate(a)


def test_predict_returns_classes_and_probabilities():
    x, _ = _toy()
    model = nn.Sequential(nn.Linear(2, 3, rng=0))
    result = predict(model, x[:4])
    assert isinstance(result, Prediction) and result.shape == (4, 3)
    assert type(result.probabilities) is np.ndarray
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(result.classes, result.probabilities.argmax(1))
    assert result.classes.dtype == np.int64 and result.labels is None
    model.classes = ["a", "b", "c"]
    assert predict(model, x[:4]).labels == [["a", "b", "c"][i] for i in result.classes]


def test_load_digits_gives_train_and_test_and_keeps_the_single_split_call():
    train, test = load_digits()
    assert (train.split, test.split, len(train), len(test)) == ("train", "test", 1437, 360)
    assert load_digits("test").labels.tolist() == test.labels.tolist()
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0  # not 0..16
    with pytest.warns(DeprecationWarning, match="load_digits\\('train'\\)"):
        assert load_digits().image_shape == (1, 8, 8)


# ------------------------------------------------------------------ small ones


def test_cross_entropy_of_perfect_scores_is_positive_zero():
    value = nn.CrossEntropyLoss()(np.array([[100.0, 0.0]], np.float32), np.array([0]))
    assert value == 0.0 and np.copysign(1.0, value) == 1.0
    soft = convscope.functional.cross_entropy(np.array([[100.0, 0.0]]), np.array([[1.0, 0.0]]))
    assert np.copysign(1.0, soft) == 1.0


@pytest.mark.parametrize("make, name", [(lambda: nn.ConvNd(2, 1), "ConvNd"),
                                        (lambda: nn.Conv2d(1), "Conv2d"),
                                        (lambda: nn.Conv1d(), "Conv1d")])
def test_a_wrong_conv_signature_names_the_public_class(make, name):
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value).startswith(f"{name}.__init__()") and "_ConvNd" not in str(info.value)


def test_one_epoch_is_singular_in_the_training_messages():
    from convscope.train import EarlyStopping

    x, y = _toy()
    model = nn.Sequential(nn.Linear(2, 2, rng=0))
    history = fit(model, (x, y), val=(x, y), epochs=5, progress=False, seed=0, loss=nn.CrossEntropyLoss(),
                  optimizer=optim.SGD(model.named_parameters(), lr=0.0),
                  callbacks=[EarlyStopping("val_loss", patience=1)])
    assert "for 1 epoch (patience 1)" in history.info["stop_reason"]
    assert repr(History([{"epoch": 1}])).startswith("History(1 epoch,")
    assert repr(history).startswith("History(2 epochs,")
