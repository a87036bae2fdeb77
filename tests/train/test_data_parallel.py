"""The data-parallel training step and sharded inference (convscope.train.data_parallel)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.errors import ShapeError
from convscope.models import build_model
from convscope.train import evaluate, fit, predict
from convscope.train.data_parallel import sharded_forward, shards_for, training_step

pytest.importorskip("threadpoolctl", reason="several threads need threadpoolctl")


def _bn_net(dtype=np.float64):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=0, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.Conv2d(4, 4, 3, rng=1, dtype=dtype), nn.BatchNorm2d(4, momentum=None, dtype=dtype),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3, rng=2, dtype=dtype),
        nn.BatchNorm1d(3, affine=False, dtype=dtype),
    )


def _step(model, x, y, threads):
    model.zero_grad()
    with convscope.num_threads(threads):
        value, out = training_step(model, nn.CrossEntropyLoss(), x, y)
    return value, out, [p.grad.copy() for p in model.parameters()], [b.copy() for b in model.buffers()]


@pytest.mark.parametrize("threads", [2, 3])
def test_sharded_step_equals_serial_in_float64_with_batch_norm_over_the_whole_batch(threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 2, 10, 10))  # 13: uneven shards
    y = rng.integers(0, 3, 13)
    serial, sharded = _bn_net(), _bn_net()
    with convscope.num_threads(threads):
        assert shards_for(sharded, nn.CrossEntropyLoss(), 13) == threads
    v1, out1, g1, b1 = _step(serial, x, y, 1)
    v2, out2, g2, b2 = _step(sharded, x, y, threads)
    assert v2 == pytest.approx(v1, rel=1e-13)
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=1e-13)
    for got, want in zip(g2, g1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    # running statistics (and the batch counter) from the whole batch, updated once
    for got, want in zip(b2, b1):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # a second step reuses the replicas and still agrees
    _, _, g1, b1 = _step(serial, x[::-1].copy(), y[::-1].copy(), 1)
    _, _, g2, b2 = _step(sharded, x[::-1].copy(), y[::-1].copy(), threads)
    for got, want in zip(g2 + b2, g1 + b1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_sharded_step_is_deterministic_and_batch_norm_differs_from_per_shard_statistics():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 2, 10, 10)) * np.linspace(0.5, 3, 16)[:, None, None, None]
    y = rng.integers(0, 3, 16)
    runs = [_step(_bn_net(), x, y, 2) for _ in range(3)]
    for other in runs[1:]:
        for got, want in zip(other[2], runs[0][2]):
            np.testing.assert_array_equal(got, want)  # bit for bit, every run
    # per-shard statistics (what a naive split would compute) give another result
    halves = _bn_net()
    halves.zero_grad()
    loss = nn.CrossEntropyLoss()
    for s in (slice(0, 8), slice(8, 16)):
        loss(halves(x[s]), y[s])
        halves.backward_params(loss.backward() * 0.5)
    naive = [p.grad for p in halves.parameters()]
    assert max(np.abs(a - b).max() for a, b in zip(naive, runs[0][2])) > 1e-6


def test_lenet_float32_sharded_step_and_inference_agree_with_serial():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    a, b = build_model("lenet", seed=0), build_model("lenet", seed=0)
    v1, out1, g1, _ = _step(a, x, y, 1)
    v2, out2, g2, _ = _step(b, x, y, 2)
    assert v2 == pytest.approx(v1, rel=1e-5)
    for got, want in zip(g2, g1):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    b.eval()
    with convscope.num_threads(2):
        p2 = sharded_forward(b, x)
    with convscope.num_threads(1):
        p1 = b(x)
    np.testing.assert_allclose(p2, p1, rtol=1e-5, atol=1e-6)


def test_dropout_masks_are_deterministic_per_seed_and_differ_between_shards():
    def net():
        return nn.Sequential(nn.Linear(5, 64, rng=0), nn.Dropout(0.5, rng=3), nn.Linear(64, 2, rng=1))

    x = np.ones((16, 5), dtype=np.float32)
    y = np.zeros(16, dtype=np.int64)
    outs = [_step(net(), x, y, 2)[1] for _ in range(2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0][:8], outs[0][8:])  # each shard has its own stream


def test_a_failing_shard_raises_its_error_and_the_step_can_run_again():
    model = _bn_net()
    x = np.zeros((8, 2, 10, 10))
    bad = np.array([0, 1, 2, 0, 1, 2, 0, 7])  # label 7 is out of range in the second shard
    with convscope.num_threads(2):
        with pytest.raises(Exception, match="7") as info:
            training_step(model, nn.CrossEntropyLoss(), x, bad)
        assert "Barrier" not in type(info.value).__name__
        value, _ = training_step(model, nn.CrossEntropyLoss(), x, bad % 3)
    assert np.isfinite(value)


def test_batch_norm_needs_two_values_per_channel_in_all_shards_together():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm1d(2))
    x = np.ones((8, 3), dtype=np.float32)
    with convscope.num_threads(2):
        training_step(model, nn.CrossEntropyLoss(), x, np.zeros(8, dtype=np.int64))  # fine: 8 in all
    with pytest.raises(ShapeError, match="more than one value"):
        with convscope.num_threads(1):
            training_step(model, nn.CrossEntropyLoss(), x[:1], np.zeros(1, dtype=np.int64))


def test_fit_evaluate_predict_run_sharded_and_match_serial_runs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((48, 2, 10, 10))
    y = rng.integers(0, 3, 48)
    results = []
    for threads in (1, 2):
        model = _bn_net()
        history = fit(model, (x, y), epochs=2, batch_size=16, seed=0, progress=False, threads=threads)
        with convscope.num_threads(threads):
            scores = evaluate(model, (x, y), batch_size=24)
            probs = predict(model, x, batch_size=24)
        results.append((history[-1]["train_loss"], scores["loss"], np.asarray(probs)))
    (l1, e1, p1), (l2, e2, p2) = results
    assert l2 == pytest.approx(l1, rel=1e-9)
    assert e2 == pytest.approx(e1, rel=1e-9)
    np.testing.assert_allclose(p2, p1, rtol=1e-9, atol=1e-12)


def test_models_outside_convscope_and_other_losses_run_serially():
    class Mine(nn.Module):
        def forward(self, x):
            return x

        def backward(self, dy):
            return dy

    with convscope.num_threads(2):
        assert shards_for(nn.Sequential(Mine()), nn.CrossEntropyLoss(), 64) == 1
        assert shards_for(nn.Sequential(nn.ReLU()), object(), 64) == 1
        assert shards_for(nn.Sequential(nn.ReLU()), nn.MSELoss(), 7) == 1  # < 4 per shard
        assert shards_for(nn.Sequential(nn.ReLU()), nn.MSELoss(), 8) == 2
