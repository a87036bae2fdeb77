"""Smoke test of the benchmark machinery (benchmarks/): it runs and produces rows.

No timing assertions: speed is measured by ``python -m benchmarks``, never in tests. This
runs in-process, so the machine's OPENBLAS_* settings are left exactly as they are.
"""

import doctest
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (unlike `python -m pytest`) does not add the root
    sys.path.insert(0, str(ROOT))

from benchmarks import _env, _timing, bench_infer, bench_ops, bench_winograd, breakdown  # noqa: E402
from convscope import functional as F  # noqa: E402
from convscope.shapes import conv_output_size  # noqa: E402

try:
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

TINY = [
    bench_ops.Case("tiny2d", "conv", (2, 3, 8, 8), c_out=4, k=3, s=2, p=1),
    bench_ops.Case("tiny1d", "conv", (2, 2, 16), c_out=3, k=5, s=1, p=2),
    bench_ops.Case("tinypool", "max_pool", (2, 3, 8, 8), k=2, s=2),
]


def _run(cases, use_torch):
    return bench_ops.run_benchmarks(
        cases,
        threads=[1],
        min_repeats=1,
        target_s=0.0,
        max_repeats=1,
        rounds=1,
        use_torch=use_torch,
        peak_sizes=(64,),
        peak_repeats=1,
        core_loops=0,
        max_wait_s=0.0,
        retries=0,
    )


def test_tiny_run_produces_rows_tables_and_json():
    results = _run(TINY, use_torch=True)
    block = results["threads"]["1"]
    assert block["matmul_peak"]["gflops"] > 0
    timed = [r for r in block["rows"] if not r.get("skipped")]
    expected = [(c.name, m) for c in TINY if hasattr(F, c.op) for m in ("fwd", "fwd+bwd")]
    assert [(r["case"], r["mode"]) for r in timed] == expected
    for row in timed:
        assert row["convscope"]["n"] >= 1 and row["convscope"]["median_ms"] > 0
        if HAVE_TORCH:
            assert row["torch"]["n"] >= 1 and row["ratio"] > 0
            assert row["agrees"], f"convscope and PyTorch disagree on {row['label']}: {row['agreement']}"
    conv_rows = [r for r in timed if r["op"] == "conv"]
    assert all(r["convscope_gflops"] > 0 and r["peak_fraction"] > 0 for r in conv_rows)
    assert "conv_A-H fwd+bwd" not in block["geomean"]  # the tiny cases are not suite shapes
    assert block["geomean"]["all fwd+bwd"]["count"] == len(expected) // 2 or not HAVE_TORCH
    json.dumps(results)  # JSON-ready
    text = bench_ops.format_tables(results)
    assert "tiny2d" in text and "matmul peak" in text
    assert "| tiny1d |" in bench_ops.format_markdown(results)


def test_without_torch_the_table_shows_convscope_alone():
    results = _run(TINY[:1], use_torch=False)
    rows = results["threads"]["1"]["rows"]
    assert [r["torch"] for r in rows] == [None, None]
    assert [r["ratio"] for r in rows] == [None, None]
    assert results["libraries"]["torch"] is None
    assert "tiny2d" in bench_ops.format_tables(results)


def test_missing_op_is_skipped_not_faked():
    case = bench_ops.Case("bp", "blur_pool", (1, 1, 8, 8), k=4, s=2)
    assert bench_ops._make_workload(case, SimpleNamespace(), torch=None) is None


@pytest.mark.parametrize("case", [c for c in bench_ops.SUITE if c.op == "conv"], ids=lambda c: c.name)
def test_suite_geometry_matches_library_arithmetic(case):
    expected = tuple(conv_output_size(n, case.k, case.p, case.s) for n in case.x_shape[2:])
    assert case.out_spatial == expected


def test_child_environment_drops_only_the_slow_blas_variables():
    base = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "OPENBLAS_NUM_THREADS": "2"}
    env = _env.child_environ(base)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["OPENBLAS_NUM_THREADS"] == "2"
    assert _env.removed_variables(env) == {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    assert _env.is_child(env) and not _env.is_child(base)
    assert "OPENBLAS_CORETYPE" in base  # the caller's mapping is untouched


def test_unknown_case_name_is_rejected_with_the_valid_names():
    with pytest.raises(SystemExit, match="unknown case.*'A'"):
        bench_ops._select("A,Z")


def test_breakdown_parts_add_up_and_the_module_is_restored():
    import importlib

    mod = importlib.import_module("convscope.functional.conv")
    before = dict(vars(mod))
    methods = {k: dict(vars(v)) for k, v in before.items() if isinstance(v, type) and v.__module__ == mod.__name__}
    result = breakdown.breakdown(TINY[0], repeats=1)
    for part in ("fwd", "bwd"):
        parts = result[part]["parts_ms"]
        assert "np.matmul" in parts and result[part]["calls"]["np.matmul"] >= 1
        assert sum(parts.values()) <= result[part]["total_ms"] * 1.05
    assert {k: v for k, v in vars(mod).items() if k in before} == before
    assert {k: dict(vars(getattr(mod, k))) for k in methods} == methods


@pytest.mark.parametrize("module", [_env, _timing, bench_infer, bench_ops, bench_winograd, breakdown],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (1, 4, 8, 8), (3, 2, 1, 7), (2, 5, 2, 2)])
def test_the_winograd_benchmarks_convolution_equals_convscopes(shape):
    """bench_winograd's F(2x2, 3x3) is measured against conv: it must compute the same thing
    (odd and even sizes: the last tile row and column hang over the padding)."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal((3, shape[1], 3, 3)), rng.standard_normal(3)
    expected = F.conv(x, w, b, padding=1)
    np.testing.assert_allclose(bench_winograd.winograd_f2x3(x, w, b), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bench_winograd.winograd_f2x3(x, w, b, u=bench_winograd.winograd_filters(w)), expected,
                               rtol=1e-12, atol=1e-12)
