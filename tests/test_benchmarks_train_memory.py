"""Smoke tests of the training-step and memory rows of the benchmarks (no timing asserted).

They run in-process with the machine's OPENBLAS_* settings untouched; the real numbers come
from ``python -m benchmarks``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_infer, bench_memory, bench_train  # noqa: E402

torch = pytest.importorskip("torch")


def test_training_step_twin_matches_convscope_and_rows_are_made():
    case = bench_train.TrainCase("digits b8", "digits", 8)
    cs_step, pt_step = bench_train.make_steps(case, torch)
    # Same model, same weights, same batch: the first losses agree.
    assert abs(cs_step() - pt_step()) < 1e-4
    results = bench_train.run_train(
        [case], threads=[1], min_repeats=1, target_s=0.0, rounds=1, max_wait_s=0.0, retries=0, clock="cpu"
    )
    (row,) = results["threads"]["1"]["rows"]
    assert row["convscope_images_s"] > 0 and row["torch_images_s"] > 0 and row["ratio"] > 0
    assert row["clock"] == "cpu"
    assert "| 1 | digits | 8 |" in bench_train.format_train(results)


@pytest.mark.parametrize("arch", ["digits", "resnet"])
def test_inference_forwards_agree_and_rows_are_made(arch):
    """evaluate's path (folded, sharded), the plain forward and PyTorch's twin give the same
    scores; a tiny run makes a row with both ratios and a table line."""
    case = bench_train.TrainCase(f"{arch} b8", arch, 8)
    fns = bench_infer.make_forwards(case, torch)
    outs = {name: fn() for name, fn in fns.items()}
    assert set(outs) == {"convscope", "plain", "torch"}
    for name in ("convscope", "plain"):
        np.testing.assert_allclose(outs[name], outs["torch"], rtol=1e-4, atol=1e-5)
    results = bench_infer.run_infer([case], threads=[1], min_repeats=1, target_s=0.0, rounds=1,
                                    max_wait_s=0.0, retries=0)
    (row,) = results["threads"]["1"]["rows"]
    assert row["ratio"] > 0 and row["plain_ratio"] > 0 and row["max_rel_difference"] < 1e-4
    assert f"| 1 | {arch} | 8 |" in bench_infer.format_infer(results)


def test_profile_step_lists_functions():
    text = bench_train.profile_step(bench_train.TrainCase("digits b4", "digits", 4), steps=1, top=5)
    assert "function calls" in text


def test_memory_table_says_whether_the_bound_holds():
    rows = [
        {"case": "conv", "library": "convscope", "peak_extra": 300 * 2**20, "budget": 256 * 2**20,
         "inputs_outputs": 100 * 2**20, "base_rss": 0, "peak_rss": 0},
        {"case": "conv", "library": "convscope", "peak_extra": 400 * 2**20, "budget": 256 * 2**20,
         "inputs_outputs": 100 * 2**20, "base_rss": 0, "peak_rss": 0},
        {"case": "conv", "library": "torch", "peak_extra": 500 * 2**20, "base_rss": 0, "peak_rss": 0},
        {"case": "cifar b256", "library": "torch", "error": ["ImportError: no torch"]},
    ]
    text = bench_memory.format_memory({"rows": rows})
    lines = text.splitlines()[2:]
    assert lines[0].endswith("| 300 | 356 | yes |")
    assert lines[1].endswith("| 400 | 356 | NO |")
    assert lines[2].endswith("| 500 | - | - |")
    assert "error: ImportError" in lines[3]


def test_memory_child_measures_peak_of_a_small_array(monkeypatch):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc")
    base = bench_memory._status("VmRSS")
    bench_memory._reset_peak()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    assert bench_memory._status("VmHWM") - base >= 60 * 2**20
    del block
