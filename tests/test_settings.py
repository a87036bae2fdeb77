"""convscope.settings: the one home of the process-wide settings.

One state even when the file is imported twice; the older entry points (convscope.*,
convscope.parallel, convscope.functional.windows) are the settings' own functions;
force_path validates and restores; caches clear; the array limit counts every array an op
allocates at once and refuses a 1e9-entry float32 input by default, before allocating.
"""

from __future__ import annotations

import importlib.util
import tracemalloc

import numpy as np
import pytest

import convscope
import convscope.functional as F
from convscope import nn, parallel, settings
from convscope.errors import ArgumentTypeError, ConfigError, ResourceError
from convscope.functional import windows


def test_a_second_import_of_the_file_shares_the_state():
    """pytest --doctest-modules in importlib mode can import a source file again under
    another name; that copy must read and write the same settings."""
    spec = importlib.util.spec_from_file_location("convscope._settings_copy", settings.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    assert copy is not settings and copy._STATE is settings._STATE
    old = copy.set_workspace_budget(12345)
    try:
        assert settings.get_workspace_budget() == 12345
    finally:
        settings.set_workspace_budget(old)


def test_older_entry_points_are_the_settings_functions():
    assert convscope.set_num_threads is settings.set_num_threads
    assert parallel.num_threads is settings.num_threads
    assert parallel._state is settings._STATE
    for name in ("get_workspace_budget", "set_workspace_budget", "get_array_limit", "set_array_limit",
                 "check_allocation"):
        assert getattr(windows, name) is getattr(settings, name)
    assert F.set_workspace_budget is settings.set_workspace_budget


def test_force_path_restores_and_refuses_unknown_switches():
    with settings.force_path(conv_layout="batch_last", transposed_dx=True):
        assert settings.forced("conv_layout") == "batch_last" and settings.forced("transposed_dx") is True
        with settings.force_path(conv_layout=None):
            assert settings.forced("conv_layout") is None
        assert settings.forced("conv_layout") == "batch_last"
    assert all(settings.forced(name) is None for name in settings.PATHS)
    with pytest.raises(ConfigError, match="unknown switch 'layout'"):
        with settings.force_path(layout="flat"):
            pass
    with pytest.raises(ConfigError, match="conv_layout"):
        with settings.force_path(conv_layout="diagonal"):
            pass
    with pytest.raises(ArgumentTypeError, match="transposed_dx"):
        with settings.force_path(transposed_dx=1):
            pass
    with pytest.raises(ArgumentTypeError, match="conv_layout"):
        with settings.force_path(conv_layout=True):
            pass


def test_force_path_fold_bias_takes_the_other_path_with_the_same_result():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 9, 8))
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4)
    folded = F.conv(x, w, b, padding=1)
    plan_cls = importlib.import_module("convscope.functional.conv_plan").Plan
    with settings.force_path(fold_bias=False):
        geo = importlib.import_module("convscope.functional.conv")._prepare(
            "conv", x, w, b, 1, 1, 1, 1, "zeros", False)[3]
        assert plan_cls(geo, 8).filter_matrix(w, b)[2] is False
        np.testing.assert_allclose(F.conv(x, w, b, padding=1), folded, rtol=1e-12, atol=1e-12)
    assert plan_cls(geo, 8).filter_matrix(w, b)[2] is True


def test_clear_caches_empties_every_cache():
    F.conv(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)))
    F.max_pool_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 4, 4)), 2)
    assert settings.cache("conv.plan") and settings.cache("pool")
    settings.clear_caches()
    assert not settings.cache("conv.plan") and not settings.cache("pool")


def test_cache_empties_itself_when_full():
    table = settings.cache("test.small", limit=2)
    table.put(1, "a")
    table.put(2, "b")
    table.put(3, "c")
    assert dict(table) == {3: "c"}
    assert settings.cache("test.small") is table


# ----------------------------------------------------------------------------------------
# The array limit (issue 16: count everything, refuse before allocating)
# ----------------------------------------------------------------------------------------
BILLION = (1, 1, 1000, 1000, 1000)  # 1e9 entries: 3.73 GiB of float32


def _billion(shape=BILLION):
    return np.broadcast_to(np.float32(0), shape)  # no memory behind it


HUGE_INPUT_OPS = [
    ("relu", lambda: F.relu(_billion())),
    ("sigmoid", lambda: F.sigmoid(_billion())),
    ("conv", lambda: F.conv(_billion(), np.ones((1, 1, 1, 1, 1), np.float32))),
    ("max_pool", lambda: F.max_pool(_billion(), 1)),
    ("max_pool_with_argmax", lambda: F.max_pool_with_argmax(_billion(), 1)),
    ("avg_pool", lambda: F.avg_pool(_billion(), 1)),
    ("blur_pool", lambda: F.blur_pool(_billion(), 1, 1)),
    ("batch_norm", lambda: F.batch_norm(_billion())),
    ("flatten", lambda: F.flatten(_billion())),
    ("linear", lambda: F.linear(_billion((1000000, 1000)), np.ones((1000, 1000), np.float32))),
    ("nn.ReLU", lambda: nn.ReLU()(_billion())),
    ("nn.MaxPool3d", lambda: nn.MaxPool3d(1)(_billion())),
    ("nn.BatchNorm2d", lambda: nn.BatchNorm2d(1000)(_billion((1, 1000, 1000, 1000)))),
]


@pytest.mark.parametrize("name", [n for n, _ in HUGE_INPUT_OPS])
def test_a_billion_entry_float32_input_is_refused_by_the_default_limit(name):
    assert settings.get_array_limit() == 2 * 2**30  # the default (the fuzz suite lowers it)
    call = dict(HUGE_INPUT_OPS)[name]
    tracemalloc.start()
    try:
        with pytest.raises(ResourceError) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "array limit of 2.00 GiB" in message and "convscope.settings.set_array_limit" in message
    assert peak < 64 * 2**20, f"{name} allocated {peak / 2**20:.0f} MiB before refusing"


def test_max_pool_counts_its_int64_indices_and_argmax():
    x = np.zeros((1, 1, 1000), np.float32)  # kernel 1: y is 4000 bytes
    old = settings.set_array_limit(10_000)
    try:
        F.max_pool(x, 1)
        with pytest.raises(ResourceError, match=r"indices \(int64\).*12000 bytes together"):
            F.max_pool(x, 1, return_indices=True)  # + 8000 bytes of int64 indices
        settings.set_array_limit(4500)
        with pytest.raises(ResourceError, match="argmax"):
            F.max_pool_with_argmax(x, 1)  # 4000 + 1000 bytes of uint8 tap numbers
        settings.set_array_limit(5000)
        F.max_pool_with_argmax(x, 1)
    finally:
        settings.set_array_limit(old)


def test_raising_the_limit_lets_the_work_through():
    x = np.zeros((4, 4), np.float32)
    old = settings.set_array_limit(32)
    try:
        with pytest.raises(ResourceError, match="set_array_limit"):
            F.relu(x)
        settings.set_array_limit(64)
        F.relu(x)
    finally:
        settings.set_array_limit(old)


_FAULTS = """
import resource, sys, numpy as np
from convscope import settings

def faults():  # minor page faults of ten rounds of a step's worth of 2-16 MiB arrays
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        arrays = [np.ones(n) for n in (1 << 18, 1 << 20, 3 << 19, 1 << 21, 1 << 19, 1 << 21)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

faults()
before = faults()
applied = settings.retain_freed_memory()
faults()
print(applied, before, faults())
"""


def _glibc() -> bool:
    import platform
    import sys

    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _glibc(), reason="retain_freed_memory needs glibc (Linux)")
def test_retain_freed_memory_ends_the_page_faults_of_repeated_large_arrays():
    """Run in a child process (it is process wide): before it, every round's arrays arrive
    as fresh pages; after it, the freed memory is reused."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    applied, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert applied and before > 5000 and after < before / 20, (applied, before, after)
    # the environment's own MALLOC_ settings are left alone
    env["MALLOC_TRIM_THRESHOLD_"] = str(128 << 10)
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.split()
    assert out[0] == "False"


def test_the_command_retains_freed_memory_unless_told_not_to(monkeypatch):
    from convscope.cli import main

    calls = []
    monkeypatch.setattr(settings, "retain_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.delenv("CONVSCOPE_MALLOC", raising=False)
    assert main(["summary", "--arch", "lenet"]) == 0
    monkeypatch.setenv("CONVSCOPE_MALLOC", "default")
    assert main(["summary", "--arch", "lenet"]) == 0
    assert calls == [1]
