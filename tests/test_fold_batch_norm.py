"""fold_batch_norm: conv -> batch norm pairs become one convolution for inference; the folded
copy computes what the model computes (float64 to rounding), the model itself is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ArgumentTypeError, StateError
from convscope.models import build_model, fold_batch_norm


def _randomize(model, seed=0):
    """Batch norms with statistics and affine parameters far from 0/1, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for record in nn.walk(model):
        m = record.module
        if m.layer_kind == "batch_norm":
            c = m.num_features
            m.running_mean[...] = rng.standard_normal(c)
            m.running_var[...] = rng.random(c) + 0.5
            m.weight.data[...] = rng.standard_normal(c)
            m.bias.data[...] = rng.standard_normal(c)
    return model.eval()


def _kinds(model):
    return [r.module.layer_kind for r in nn.walk(model)]


def _state(model):
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def test_the_builtin_resnet_graph_folds_every_pair_and_computes_the_same():
    model = _randomize(build_model("resnet"))
    before = _state(model)
    folded = fold_batch_norm(model)
    assert _kinds(model).count("batch_norm") == 9 and _kinds(folded).count("batch_norm") == 0
    assert _kinds(folded).count("identity") == 9 and len(_kinds(folded)) == len(_kinds(model))
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    y, z = model(x), folded(x)
    assert np.abs(z - y).max() <= 1e-5 * np.abs(y).max()
    assert _state(model).keys() == before.keys()
    for key, value in _state(model).items():            # the model itself is not changed
        np.testing.assert_array_equal(value, before[key])


def test_float64_sequential_with_and_without_conv_bias_folds_to_rounding():
    model = _randomize(nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False, rng=0, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, groups=2, padding=1, padding_mode="reflect", rng=1, dtype=np.float64),
        nn.BatchNorm2d(4, dtype=np.float64),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 1, rng=2, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64))),
        nn.Flatten(), nn.Linear(4 * 5 * 5, 3, rng=3, dtype=np.float64), nn.BatchNorm1d(3, dtype=np.float64)))
    folded = fold_batch_norm(model)
    assert _kinds(folded).count("batch_norm") == 1                 # after the Linear: not a convolution
    assert folded[0].bias is not None and model[0].bias is None
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-12, atol=1e-12)


def test_a_convolution_read_by_another_layer_too_is_not_folded():
    g = nn.GraphBuilder()
    conv = g.add("conv", nn.Conv2d(1, 2, 3, padding=1, rng=0, dtype=np.float64), g.input)
    bn = g.add("bn", nn.BatchNorm2d(2, dtype=np.float64), conv)
    model = _randomize(g.build(g.add("add", nn.Add(), bn, conv)))   # conv fans out to bn and add
    assert fold_batch_norm(model) is model                          # nothing to fold: the model itself
    g = nn.GraphBuilder()
    conv = g.add("conv", nn.Conv2d(1, 2, 3, padding=1, rng=0, dtype=np.float64), g.input)
    bn = g.add("bn", nn.BatchNorm2d(2, dtype=np.float64), conv)
    model = _randomize(g.build(g.add("relu", nn.ReLU(), bn)))
    folded = fold_batch_norm(model)
    assert [(n.name, n.module.layer_kind) for n in folded.nodes] == [("conv", "conv"), ("bn", "identity"),
                                                                     ("relu", "relu")]
    x = np.random.default_rng(3).standard_normal((2, 1, 6, 6))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-12, atol=1e-12)


def test_torch_reference_resnet18_folds_and_matches_torch():
    torch = pytest.importorskip("torch")
    from convscope.export import from_torch

    from .export import reference_models as R

    torch.manual_seed(0)
    net = R.randomize(R.resnet18(10, width=0.125)).double().eval()
    model = from_torch(net, input_shape=(3, 32, 32))
    folded = fold_batch_norm(model.eval())
    assert _kinds(folded).count("batch_norm") == 0 and _kinds(model).count("batch_norm") == 20
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(folded(x), expected, rtol=1e-10, atol=1e-10)


def test_training_mode_and_non_modules_are_refused():
    with pytest.raises(StateError, match="training mode.*call model.eval"):
        fold_batch_norm(nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)))
    with pytest.raises(ArgumentTypeError, match="must be a convscope nn.Module; got str"):
        fold_batch_norm("model.npz")


def test_convscope_evaluate_folds_and_both_it_and_predict_answer_as_the_model(tmp_path, capsys):
    import json

    import convscope
    from convscope import cli
    from convscope.data import load_dataset
    from convscope.train import evaluate, predict

    model = _randomize(nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False, rng=0), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 10, rng=1)))
    path = convscope.save(model, tmp_path / "bn.npz", {"dataset": "digits"}, input_shape=(1, 8, 8),
                          classes=[str(d) for d in range(10)])
    test = load_dataset("digits", split="test")
    expected = evaluate(model, test)
    assert cli.main(["evaluate", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["accuracy"] == expected["accuracy"] and got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    np.save(tmp_path / "a.npy", test.images[0])
    assert cli.main(["predict", str(path), str(tmp_path / "a.npy"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    probs = predict(model, test.images[:1])[0]
    assert row["class"] == int(probs.argmax()) and row["probability"] == pytest.approx(float(probs.max()), rel=1e-5)


def _bn_lenet(dtype=np.float32):
    return _randomize(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False, rng=0, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3, rng=1, dtype=dtype)))


def _direct_loss(model, x, y):
    return float(nn.CrossEntropyLoss()(model(x), y))


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_evaluate_runs_the_folded_twin_and_follows_the_models_weights(backend):
    import convscope
    from convscope import settings
    from convscope.models import inference_twin
    from convscope.train import evaluate

    model = _bn_lenet()
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 40)
    twin = inference_twin(model)
    assert twin is not model and twin is inference_twin(model) and _kinds(twin).count("batch_norm") == 0
    with settings.force_path(data_parallel=backend), convscope.num_threads(2 if backend != "serial" else 1):
        for step in range(3):
            got = evaluate(model, (x, y), batch_size=16)
            assert got["loss"] == pytest.approx(_direct_loss(model, x, y), rel=1e-5), step
            model[0].weight.data *= 1.5                      # training moves the weights and statistics ...
            model[1].running_mean += 0.25
            model[1].bias.data -= 0.5                        # ... evaluate must see them on its next call
    assert inference_twin(model) is twin                     # refreshed in place, not copied again


def test_the_twin_is_refolded_when_the_model_changes_and_skipped_in_training_mode():
    from convscope.models import inference_twin

    model = _bn_lenet()
    first = inference_twin(model)
    model.to(np.float64)                                     # new arrays of another dtype: fold anew
    second = inference_twin(model)
    assert second is not first and second[0].weight.data.dtype == np.float64
    x = np.random.default_rng(8).standard_normal((2, 1, 8, 8))
    np.testing.assert_allclose(second(x), model(x), rtol=1e-12, atol=1e-12)
    model.train()
    assert inference_twin(model) is model
    plain = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU()).eval()
    assert inference_twin(plain) is plain                    # nothing to fold
