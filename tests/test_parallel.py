"""convscope's own threads (convscope.parallel): settings, BLAS hand-back, errors, results."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import convscope
from convscope import parallel, settings
from convscope.errors import ConfigError
from convscope.functional import conv, conv_backward
from convscope.testing import assert_close

threadpoolctl = pytest.importorskip("threadpoolctl", reason="convscope threads need threadpoolctl")


@pytest.fixture(autouse=True)
def _serial_after():
    # These tests compare serial runs with threaded ones, so each starts serial (the
    # default is the machine's cores) and the count comes back after.
    # The shapes here are small: split them anyway (conv_split), as the tests are about it.
    before = convscope.get_num_threads()
    convscope.set_num_threads(1)
    with settings.force_path(conv_split=True):
        yield
    convscope.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="positive int"):
        convscope.set_num_threads(bad)
    with pytest.raises(ConfigError, match="positive int"):
        with convscope.num_threads(bad):
            pass


def test_context_restores_the_previous_count():
    convscope.set_num_threads(1)
    with convscope.num_threads(3):
        assert convscope.get_num_threads() == 3
    assert convscope.get_num_threads() == 1


def test_tasks_run_on_several_threads_with_blas_held_to_one():
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    before = [lib.get_num_threads() for lib in blas.lib_controllers]
    seen = []
    barrier = threading.Barrier(2, timeout=10)  # both tasks must be running at the same time

    def task():
        barrier.wait()
        seen.append((threading.get_ident(), [lib.get_num_threads() for lib in blas.lib_controllers]))
        return len(seen)

    with convscope.num_threads(2):
        results = parallel.run_parallel([task, task])
    assert sorted(results) == [1, 2]
    assert len({ident for ident, _ in seen}) == 2
    assert all(all(n == 1 for n in counts) for _, counts in seen)
    assert [lib.get_num_threads() for lib in blas.lib_controllers] == before


def test_a_blas_loaded_after_the_first_look_is_held_too():
    # Stand-in for a library loaded after convscope first listed the BLAS libraries (as
    # ``import torch`` does in the middle of a session): set_num_threads looks again.
    settings._STATE.blas = []
    test_tasks_run_on_several_threads_with_blas_held_to_one()


def test_an_error_in_a_task_is_raised_after_all_tasks_stop():
    finished = []

    def slow():
        threading.Event().wait(0.05)
        finished.append("slow")

    def boom():
        raise ConfigError("boom")

    with convscope.num_threads(2):
        with pytest.raises(ConfigError, match="boom"):
            parallel.run_parallel([boom, slow])
    assert finished == ["slow"]


def test_nested_regions_run_serially():
    def inner():
        return parallel.workers()

    with convscope.num_threads(2):
        assert parallel.run_parallel([inner, inner]) == [1, 1]
        assert parallel.workers() == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_conv_matches_serial(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 3, 11, 10)).astype(dtype)
    w = rng.standard_normal((5, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    y = conv(x, w, b, padding=1)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = conv_backward(dy, x, w, padding=1)
    with convscope.num_threads(2):
        y2 = conv(x, w, b, padding=1)
        grads2 = conv_backward(dy, x, w, padding=1)
    assert_close(y2, y, dtype=dtype)  # same sums, blocked differently by BLAS: rounding only
    for got, want in zip(grads2, grads):
        assert_close(got, want, dtype=dtype, kind="backward")


def test_threaded_relu_and_its_backward_match_serial_including_nan_and_inf():
    from convscope.functional import relu, relu_backward

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4, 128, 128)).astype(np.float32)  # above MIN_PARALLEL_BYTES
    assert x.nbytes >= parallel.MIN_PARALLEL_BYTES
    assert len(parallel.batch_slices(x)) == 1
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x[5, 0, 0, 0] = np.nan  # in the second thread's half
    dy[0, 0, 0, 0] = np.inf  # in the first half
    x[0, 0, 0, 0] = -1.0  # so its inf gradient must become 0
    want_y, want_dx = relu(x), relu_backward(dy, x)
    with convscope.num_threads(2):
        assert len(parallel.batch_slices(x)) == 2
        got_y, got_dx = relu(x), relu_backward(dy, x)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_dx, want_dx)
    assert want_dx[0, 0, 0, 0] == 0 and want_dx[5, 0, 0, 0] == dy[5, 0, 0, 0]  # NaN x passes dy (as PyTorch)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1)])
def test_threaded_max_pool_matches_serial(kernel, stride, padding):
    from convscope import nn

    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 16, 48, 48)).astype(np.float32)  # several row blocks
    x[3, 2, 5, 5] = np.nan
    pool = nn.MaxPool2d(kernel, stride, padding)
    want_y = pool(x)
    dy = rng.standard_normal(want_y.shape).astype(np.float32)
    want_dx = pool.backward(dy)
    with convscope.num_threads(2):
        got_y = pool(x)
        got_dx = pool.backward(dy)
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_array_equal(got_dx, want_dx)


def test_several_threads_without_threadpoolctl_say_what_is_missing(monkeypatch):
    import sys

    from convscope.errors import MissingDependencyError

    monkeypatch.setattr(parallel._state, "blas", None)  # forget the cached controllers
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import now fails
    with pytest.raises(MissingDependencyError, match="threadpoolctl"):
        convscope.set_num_threads(2)
    assert convscope.get_num_threads() == 1
    convscope.set_num_threads(1)  # serial needs nothing


def test_threads_share_the_workspace_budget():
    import importlib

    from convscope.functional.windows import set_workspace_budget

    conv_module = importlib.import_module("convscope.functional.conv")
    x = np.zeros((1, 3, 512, 512), np.float32)  # one sample: its row blocks are shared out
    w = np.zeros((8, 3, 3, 3), np.float32)
    budget = 1 << 20  # small enough to limit the blocks (the default is 256 MiB)
    old = set_workspace_budget(budget)
    try:
        geo = conv_module._prepare("conv", x, w, None, 1, 1, 1, 1, "zeros", False)[3]
        conv_plan = importlib.import_module("convscope.functional.conv_plan")
        one = conv_plan.Plan(geo, 4, threads=1)
        two = conv_plan.Plan(geo, 4, threads=2)
        column_bytes = (one.rows_k + geo.c_out) * 4
        assert budget // 2 < one.max_cols * column_bytes <= budget  # the budget is what limits
        assert 2 * two.max_cols * column_bytes <= budget  # two threads, two window matrices
        with convscope.num_threads(2):
            y = conv_module.conv(np.ones((1, 3, 64, 64), np.float32), np.ones((2, 3, 3, 3), np.float32), padding=1)
        assert y[0, 0, 1, 1] == 27
    finally:
        set_workspace_budget(old)


def test_one_sample_row_blocks_on_two_threads_match_serial():
    import importlib

    from convscope.functional.windows import set_workspace_budget

    conv_module = importlib.import_module("convscope.functional.conv")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 3, 40, 37))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    want = conv(x, w, b, padding=1)
    old = set_workspace_budget(1 << 13)  # a few rows per block
    try:
        with convscope.num_threads(2):
            geo = conv_module._prepare("conv", x, w, None, 1, 1, 1, 1, "zeros", False)[3]
            plan = importlib.import_module("convscope.functional.conv_plan").plan_for(geo, 8)
            assert len(list(plan.groups())) == 1 and len(list(plan.blocks())) > 2
            got = conv(x, w, b, padding=1)
    finally:
        set_workspace_budget(old)
    assert_close(got, want, dtype=np.float64)
