"""fit / evaluate / predict: learning, history, determinism, NaN/Inf diagnosis, arguments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from convscope import nn, optim
from convscope.data import Compose, DataLoader, Normalize, RandomShift
from convscope.errors import ArgumentTypeError, ConfigError, DTypeError, NumericalError
from convscope.train import History, blas_threads, evaluate, fit, predict

from ._helpers import TIME_KEYS, assert_same_weights, tiny_cnn, toy_images, without_times


def _sgd(model, lr=0.1, momentum=0.9):
    return optim.SGD(model.named_parameters(), lr=lr, momentum=momentum)


def test_fit_learns_the_toy_task_and_records_every_metric():
    x, y = toy_images(96, seed=0)
    xv, yv = toy_images(48, seed=1)
    model = tiny_cnn(seed=0)
    history = fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), (xv, yv), epochs=6,
                  batch_size=16, seed=0, progress=False)
    assert isinstance(history, History) and len(history) == 6
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", *TIME_KEYS):
        assert key in history.keys(), key
    # it learned: loss fell a lot, validation accuracy is high
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history.last["val_accuracy"] >= 0.9
    # the validation numbers are what evaluate reports for the final model
    scores = evaluate(model, nn.CrossEntropyLoss(), (xv, yv))
    assert scores["accuracy"] == history.last["val_accuracy"]
    assert math.isclose(scores["loss"], history.last["val_loss"], rel_tol=1e-12)
    assert scores["samples"] == 48
    # JSON round trip
    again = History.from_json(json.dumps(history.to_dict()))
    assert again.records == history.records


def test_train_accuracy_is_the_fraction_of_correct_training_predictions():
    # lr = 0: the model never changes, so the epoch's training accuracy is that of the
    # initial model (no dropout / batch norm so train and eval mode agree)
    x, y = toy_images(40, seed=3)
    model = tiny_cnn(seed=1, dropout=0.0, batch_norm=False)
    expected = float(np.mean(model(x).argmax(1) == y))
    history = fit(model, nn.CrossEntropyLoss(), _sgd(model, lr=0.0, momentum=0.0), (x, y), epochs=1,
                  batch_size=7, seed=0, progress=False)
    assert history.last["train_accuracy"] == pytest.approx(expected)
    assert history.last["images_per_second"] > 0


def test_same_seed_repeats_bit_for_bit_and_another_seed_does_not():
    x, y = toy_images(64, seed=0)
    transform = Compose([RandomShift(1), Normalize(0.1, 0.5)])

    def run(seed):
        model = tiny_cnn(seed=0)  # same initial weights; fit's seed drives data and dropout
        opt = optim.Adam(model.named_parameters(), lr=0.01)
        history = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=3, batch_size=8, seed=seed,
                      transform=transform, progress=False, threads=1)
        return model, history

    a, ha = run(7)
    b, hb = run(7)
    c, _ = run(8)
    assert_same_weights(a, b)
    assert without_times(ha.records) == without_times(hb.records)
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)


def test_fit_seed_reseeds_dropout_so_the_model_rng_does_not_matter():
    x, y = toy_images(32, seed=0)
    m1, m2 = tiny_cnn(seed=0), tiny_cnn(seed=0)
    m2[5].generator = np.random.default_rng(12345)  # a different dropout stream before fit
    for m in (m1, m2):
        fit(m, nn.CrossEntropyLoss(), _sgd(m), (x, y), epochs=2, batch_size=8, seed=3, progress=False)
    assert_same_weights(m1, m2)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_nan_loss_names_the_first_layer_with_a_non_finite_output():
    x, y = toy_images(16, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 8, rng=0), nn.ReLU(), nn.Linear(8, 3, rng=1))
    model[3].weight.data[:] = 3e38  # finite weights whose products overflow float32
    with pytest.raises(NumericalError) as info:
        fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), epochs=1, batch_size=8, progress=False)
    text = str(info.value)
    assert "epoch 1, batch 1" in text
    assert "layer '3'" in text and "Linear(in_features=8, out_features=3)" in text
    assert "input was finite" in text and "Lower the learning rate" in text


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_nan_diagnosis_leaves_batch_norm_statistics_untouched():
    x, y = toy_images(16, seed=0)
    model = tiny_cnn(seed=0, dropout=0.0)
    model[-1].weight.data[:] = np.inf
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(NumericalError, match="layer '5'"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), epochs=1, batch_size=16, progress=False)
    after = model.state_dict()
    # the failing step's own forward updated the running statistics once; the diagnosis
    # forward did not update them a second time
    bn = model[1]
    assert int(bn.num_batches_tracked) == 1
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_an_overflowing_loss_with_finite_layers_blames_the_loss():
    x = np.ones((4, 3), dtype=np.float32)
    t = np.zeros((4, 1), dtype=np.float32)
    model = nn.Sequential(nn.Linear(3, 1, rng=0))
    model[0].weight.data[:] = 1e20  # output 3e20 is finite; its square is not (float32)
    with pytest.raises(NumericalError, match="Every layer's output is finite, so the loss itself overflowed"):
        fit(model, nn.MSELoss(), _sgd(model), (x, t), epochs=1, batch_size=4, progress=False)


def test_nan_in_the_data_is_blamed_on_the_data():
    x, y = toy_images(16, seed=0)
    x[3, 0, 2, 2] = np.nan
    model = tiny_cnn(seed=0)
    with pytest.raises(NumericalError, match="input batch itself holds 1 NaN"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), epochs=1, batch_size=16, progress=False)


class _BadGradLinear(nn.Linear):
    """A Linear whose backward leaves an Inf in its weight gradient."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.weight.grad[0, 0] = np.inf
        return dx


def test_non_finite_gradient_names_the_parameter_and_layer():
    x, y = toy_images(16, seed=0)
    model = nn.Sequential(nn.Flatten(), _BadGradLinear(36, 8, rng=0), nn.ReLU(), nn.Linear(8, 3, rng=1))
    opt = _sgd(model)
    before = model[1].weight.data.copy()
    with pytest.raises(NumericalError) as info:
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=8, progress=False)
    text = str(info.value)
    assert "parameter '1.weight' of layer '1'" in text and "0 NaN and 1 Inf" in text
    assert "loss" in text and "is finite" in text
    # the step was not taken: the weights are unchanged
    np.testing.assert_array_equal(model[1].weight.data, before)


def test_check_finite_false_lets_the_step_happen():
    x, y = toy_images(8, seed=0)
    model = nn.Sequential(nn.Flatten(), _BadGradLinear(36, 3, rng=0))
    fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), epochs=1, batch_size=8, progress=False,
        check_finite=False)
    assert not np.isfinite(model[1].weight.data).all()


def test_per_batch_scheduler_follows_the_cosine_and_is_recorded():
    x, y = toy_images(32, seed=0)
    model = tiny_cnn(seed=0)
    opt = _sgd(model, lr=0.2)
    sched = optim.CosineAnnealingLR(opt, T_max=8)
    history = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8, seed=0,
                  scheduler=sched, scheduler_interval="batch", progress=False)
    assert sched.last_epoch == 8
    assert history["lr"] == [pytest.approx(0.2), pytest.approx(0.1)]  # lr at each epoch's start
    assert opt.lr == pytest.approx(0.0, abs=1e-12)


def test_clip_grad_norm_bounds_the_update():
    x, y = toy_images(8, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3, rng=0))
    before = model[1].weight.data.copy()
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0), (x, y), epochs=1,
        batch_size=8, progress=False, clip_grad_norm=1e-3)
    step = np.concatenate([(model[1].weight.data - before).ravel()])
    assert np.linalg.norm(step) <= 1e-3 * 1.0001


def test_float64_model_gets_float64_batches():
    x, y = toy_images(16, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3, rng=0, dtype=np.float64))
    fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), epochs=1, batch_size=8, progress=False)
    assert model[1].weight.data.dtype == np.float64


def test_a_dataloader_is_used_as_given():
    x, y = toy_images(20, seed=0)
    loader = DataLoader((x, y), batch_size=5, shuffle=True, seed=1)
    model = tiny_cnn(seed=0)
    fit(model, nn.CrossEntropyLoss(), _sgd(model), loader, epochs=2, progress=False)
    assert loader.epoch == 2
    with pytest.raises(ConfigError, match="batch_size 5"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), loader, batch_size=4, progress=False)
    with pytest.raises(ConfigError, match="its own transform"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), loader, transform=Normalize(0, 1), progress=False)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"epochs": 0}, ConfigError, "epochs must be a positive int"),
        ({"batch_size": -1}, ConfigError, "batch_size"),
        ({"seed": -3}, ConfigError, "seed"),
        ({"scheduler_interval": "step"}, ConfigError, "'epoch' or 'batch'"),
        ({"clip_grad_norm": 0.0}, ConfigError, "clip_grad_norm"),
        ({"progress": "fancy"}, ConfigError, "progress"),
        ({"callbacks": [print]}, ArgumentTypeError, "subclass convscope.train.Callback"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, error, words):
    x, y = toy_images(8, seed=0)
    model = tiny_cnn(seed=0)
    with pytest.raises(error, match=words):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), **kwargs)


def test_fit_rejects_wrong_objects():
    x, y = toy_images(8, seed=0)
    model = tiny_cnn(seed=0)
    with pytest.raises(ArgumentTypeError, match="model must be a convscope Module"):
        fit("model", nn.CrossEntropyLoss(), _sgd(model), (x, y))
    with pytest.raises(ArgumentTypeError, match="no step"):
        fit(model, nn.CrossEntropyLoss(), object(), (x, y))
    with pytest.raises(ArgumentTypeError, match="Dataset, a pair of arrays"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), x)
    with pytest.raises(ConfigError, match="no batches"):
        fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), batch_size=16, drop_last=True)


def test_evaluate_and_predict_use_eval_mode_and_restore_it():
    x, y = toy_images(20, seed=0)
    model = tiny_cnn(seed=0)  # dropout: predictions in eval mode are deterministic
    assert model.training
    p1 = predict(model, x, batch_size=7)
    p2 = predict(model, x, batch_size=20)
    assert model.training
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-7)
    assert p1.shape == (20, 3) and p1.dtype == np.float32
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-5)
    model.eval()
    np.testing.assert_allclose(predict(model, x, probabilities=False), model(x), rtol=1e-6)
    evaluate(model, nn.CrossEntropyLoss(), (x, y))
    assert not model.training


def test_predict_does_not_apply_softmax_twice_and_refuses_integer_pixels():
    x, _ = toy_images(4, seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3, rng=0), nn.Softmax())
    p = predict(model, x)
    model.eval()
    np.testing.assert_allclose(p, model(x), rtol=1e-6)
    with pytest.raises(DTypeError, match="Divide integer pixels"):
        predict(model, (x * 255).astype(np.uint8))


def test_evaluate_a_regression_has_loss_but_no_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3)).astype(np.float32)
    t = x @ np.array([[1.0], [2.0], [-1.0]], dtype=np.float32)
    model = nn.Sequential(nn.Linear(3, 1, rng=0))
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), (x, t), epochs=30,
                  batch_size=4, seed=0, progress=False)
    assert "train_accuracy" not in history.keys()
    scores = evaluate(model, nn.MSELoss(), (x, t))
    assert set(scores) == {"loss", "samples"} and scores["loss"] < 0.05


def test_plain_progress_prints_lines_on_stderr(capsys):
    x, y = toy_images(20, seed=0)
    model = tiny_cnn(seed=0)
    fit(model, nn.CrossEntropyLoss(), _sgd(model), (x, y), (x, y), epochs=2, batch_size=5,
        progress="epochs")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2 [4/4] loss ")
    assert "img/s" in lines[1] and "val_acc" in lines[1]


def test_blas_threads_limits_and_validates():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with blas_threads(1):
        infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in infos)
    with pytest.raises(ConfigError, match="positive int"):
        with blas_threads(0):
            pass
