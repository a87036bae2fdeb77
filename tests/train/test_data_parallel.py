"""The data-parallel training step and sharded inference (convscope.train.data_parallel)."""

from __future__ import annotations

import numpy as np
import pytest

import convscope
from convscope import nn, settings
from convscope.errors import ShapeError
from convscope.models import build_model
from convscope.train import evaluate, fit, predict, process_group
from convscope.train.data_parallel import plan, sharded_forward, shards_for, training_step, tuning

pytest.importorskip("threadpoolctl", reason="several threads need threadpoolctl")


@pytest.fixture(autouse=True, params=["threads", "processes"])
def backend(request):
    """Every test runs with the shards on threads and again on worker processes (forced:
    the rule would run these small models serially)."""
    if request.param == "processes" and not process_group.available():
        pytest.skip("worker processes need Linux with fork")
    with settings.force_path(data_parallel=request.param):
        yield request.param


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
def test_sharded_step_equals_serial_in_float64_with_batch_norm_over_the_whole_batch(threads, backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 2, 10, 10))  # 13: uneven shards
    y = rng.integers(0, 3, 13)
    serial, sharded = _bn_net(), _bn_net()
    with convscope.num_threads(threads):
        assert shards_for(sharded, nn.CrossEntropyLoss(), 13) == threads
        assert plan(sharded, nn.CrossEntropyLoss(), x) == (backend, threads)
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


def _sharded_and_serial_forward(model, x):
    """``model`` in eval mode: its sharded forward on two threads, and its serial one."""
    model.eval()
    with convscope.num_threads(2):
        sharded = sharded_forward(model, x)
    with convscope.num_threads(1):
        return sharded, model(x)


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
    p2, p1 = _sharded_and_serial_forward(b, x)
    np.testing.assert_allclose(p2, p1, rtol=1e-5, atol=1e-6)


def test_dropout_masks_are_deterministic_per_seed_and_differ_between_shards():
    def net():
        return nn.Sequential(nn.Linear(5, 64, rng=0), nn.Dropout(0.5, rng=3), nn.Linear(64, 2, rng=1))

    x = np.ones((16, 5), dtype=np.float32)
    y = np.zeros(16, dtype=np.int64)
    with convscope.num_threads(2):  # random layers share their draws: threads, never processes
        assert plan(net(), nn.CrossEntropyLoss(), x) == ("threads", 2)
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


def test_the_rule_runs_small_work_serially_and_large_work_sharded():
    with settings.force_path(data_parallel=None), convscope.num_threads(2):
        small = build_model("lenet", seed=0)
        assert plan(small, nn.CrossEntropyLoss(), np.zeros((8, 1, 28, 28), np.float32)) == ("serial", 1)
        want = "processes" if process_group.available() else "threads"
        assert plan(small, nn.CrossEntropyLoss(), np.zeros((256, 1, 28, 28), np.float32)) == (want, 2)
    with settings.force_path(data_parallel="serial"), convscope.num_threads(2):
        assert plan(small, nn.CrossEntropyLoss(), np.zeros((256, 1, 28, 28), np.float32)) == ("serial", 1)


def _workers(model):
    from convscope.train import data_parallel

    entry = data_parallel._GROUPS.get(model)
    return [] if entry is None else [p for p in entry[0].procs[1:]]


def _processes_only(backend, seed):
    """Skip unless the shards run on worker processes; a batch of 12 for ``_bn_net``."""
    if backend != "processes":
        pytest.skip("about worker processes")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((12, 2, 10, 10)), rng.integers(0, 3, 12)


def test_worker_processes_are_reused_and_renewed_when_the_thread_count_changes(backend):
    x, y = _processes_only(backend, 4)
    model = _bn_net()
    _step(model, x, y, 2)
    first = _workers(model)
    assert len(first) == 1 and first[0].is_alive()
    _step(model, x, y, 2)
    assert _workers(model) == first  # the same worker, no new fork per step
    _, _, g3, _ = _step(model, x, y, 3)
    assert len(_workers(model)) == 2 and not first[0].is_alive()
    _, _, g1, _ = _step(model, x, y, 1)
    for got, want in zip(g3, g1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_a_worker_that_dies_is_reported_and_the_next_step_starts_afresh(backend):
    x, y = _processes_only(backend, 5)
    import os
    import signal

    from convscope.train.process_group import WorkerError

    model = _bn_net()
    _step(model, x, y, 2)
    (worker,) = _workers(model)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(5)
    with pytest.raises(WorkerError, match="shard 1"):
        _step(model, x, y, 2)
    assert _workers(model) == []  # the broken group is gone
    _, _, g2, _ = _step(model, x, y, 2)
    _, _, g1, _ = _step(_bn_net(), x, y, 1)
    # (the failed step ran no update, but batch-norm's running statistics are not compared)
    for got, want in zip(g2, g1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


class _FakeClock:
    """A clock that makes every serial step take ``serial`` seconds and every sharded one
    ``sharded`` (the step under way is read from the trial record)."""

    def __init__(self, serial, sharded):
        self.t, self.cost = 0.0, {"serial": serial, "sharded": sharded}
        self.started = None

    def __call__(self):
        from convscope.train import data_parallel

        if self.started is None:
            entries = [e for table in data_parallel._TUNING.values() for e in table.values()]
            self.started = entries[-1].next()
            return self.t
        self.t += self.cost[self.started]
        self.started = None
        return self.t


@pytest.mark.parametrize("serial_s, sharded_s, want",
                         [(1.0, 0.6, "sharded"), (1.0, 0.97, "serial"), (1.0, 2.0, "serial")])
def test_the_measured_choice_keeps_the_faster_step(monkeypatch, serial_s, sharded_s, want):
    from convscope.train import data_parallel

    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    model = build_model("lenet", seed=0)
    data_parallel._TUNING.clear()
    monkeypatch.setattr(data_parallel, "_clock", _FakeClock(serial_s, sharded_s))
    kinds = []
    with settings.force_path(data_parallel=None), convscope.num_threads(2):
        backend, shards = plan(model, nn.CrossEntropyLoss(), x)
        assert shards == 2 and backend in ("processes", "threads")
        grads = []
        for step in range(len(data_parallel._TRIALS) + 2):
            model.zero_grad()
            entry = next(iter(data_parallel._TUNING[model].values())) if step else None
            kinds.append(entry.next() if entry else "serial")
            training_step(model, nn.CrossEntropyLoss(), x, y)
            grads.append([p.grad.copy() for p in model.parameters()])
        (report,) = tuning(model)
    n = len(data_parallel._TRIALS)
    assert kinds[:n] == list(data_parallel._TRIALS)
    assert kinds[n:] == [want, want]
    assert report["choice"] == want and report["shards"] == 2 and report["input"] == "(16, 1, 28, 28)"
    assert report["serial_ms"] == pytest.approx(serial_s * 1e3)
    assert report["sharded_ms"] == pytest.approx(sharded_s * 1e3)
    if want == "serial":
        assert _workers(model) == []  # no idle worker processes for a model that runs serially
    for g in grads[1:]:  # serial and sharded steps learn the same (no update between them)
        for got, ref in zip(g, grads[0]):
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


_ABRUPT_EXIT = """
import os, sys, numpy as np, convscope
from convscope import nn, settings
from convscope.train import data_parallel
sys.path.insert(0, {here!r})
from test_data_parallel import _bn_net
rng = np.random.default_rng(0)
x, y = rng.standard_normal((12, 2, 10, 10)), rng.integers(0, 3, 12)
models = [_bn_net(), _bn_net()]
with settings.force_path(data_parallel="processes"), convscope.num_threads(3):
    for m in models:  # two groups: the second's workers inherit the first's pipes
        data_parallel.training_step(m, nn.CrossEntropyLoss(), x, y)
pids = [p.pid for m in models for p in data_parallel._GROUPS[m][0].procs[1:]]
print(" ".join(map(str, pids)), flush=True)
os._exit(0)  # no exit handlers: the workers must notice by themselves
"""


def test_workers_end_when_the_calling_process_dies_without_cleaning_up(backend):
    _processes_only(backend, 0)
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    here = str(Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(convscope.__file__).parents[1]),
                                                                    os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", _ABRUPT_EXIT.format(here=here)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    pids = [int(v) for v in run.stdout.split()]
    assert len(pids) == 4

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it has ended
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, 9)
    assert not left, f"worker processes {left} outlived their parent"


@pytest.mark.parametrize("exchange_bytes", [1 << 20, 256])
def test_rows_and_outputs_travel_through_shared_memory_or_the_pipe_and_agree(monkeypatch, backend, exchange_bytes):
    """A worker's rows, targets and output pass through its exchange block when they fit
    and through the pipe when not (256 bytes: nothing fits); either way the step and
    inference equal the serial ones, and an output handed back is a copy the next step
    leaves alone."""
    x, y = _processes_only(backend, 6)
    monkeypatch.setattr(process_group, "_EXCHANGE_BYTES", exchange_bytes)
    model, serial = _bn_net(), _bn_net()
    v2, out2, g2, _ = _step(model, x, y, 2)
    kept = out2.copy()
    v1, out1, g1, _ = _step(serial, x, y, 1)
    assert v2 == pytest.approx(v1, rel=1e-13)
    np.testing.assert_allclose(out2, out1, rtol=1e-12, atol=1e-13)
    for got, want in zip(g2, g1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    _step(model, x[::-1].copy(), y[::-1].copy(), 2)  # the next step writes the same block
    np.testing.assert_array_equal(out2, kept)
    from convscope.train import data_parallel

    group = data_parallel._GROUPS[model][0]
    rows = group.exchanges[1].pack([x[6:], y[6:]])
    # (256 bytes: the 6 targets fit, the rows do not)
    assert [type(r).__name__ for r in rows] == ["_Slot" if exchange_bytes > 256 else "ndarray", "_Slot"]
    got, want = _sharded_and_serial_forward(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_worker_weights_and_gradients_are_the_shared_blocks(backend):
    """A worker reads the weights the calling process publishes and adds its gradients
    straight into its shared block: after an optimizer step the next sharded step sees the
    new weights (it equals a serial step at the new weights)."""
    x, y = _processes_only(backend, 7)
    from convscope.optim import SGD

    model, serial = _bn_net(), _bn_net()
    for net in (model, serial):
        opt = SGD(list(net.parameters()), lr=0.1)
        _step(net, x, y, 2 if net is model else 1)
        opt.step()
    _, _, g2, _ = _step(model, x, y, 2)
    _, _, g1, _ = _step(serial, x, y, 1)
    for got, want in zip(g2, g1):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
