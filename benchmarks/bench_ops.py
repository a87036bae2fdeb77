"""Speed of convscope's convolution and pooling next to PyTorch, in one process, same threads.

Run from the repository root (the entry point re-executes itself without the machine's
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, see :mod:`benchmarks._env`)::

    python -m benchmarks                       # whole suite, 1 and all threads
    python -m benchmarks --quick --only A,D    # fewer repeats, two shapes

For every case and thread count it times the forward pass and the forward+backward pass
(``conv`` then ``conv_backward`` with a fixed random ``dy``; PyTorch: the same op on
``requires_grad`` tensors then ``.backward(dy)``), interleaving the two libraries in rounds,
and reports medians with their spread (interquartile range / median). Conv rows also show
GFLOP/s and the fraction of the machine's float32 matmul rate (``np.matmul`` on large square
matrices, measured here at the same thread count). Before timing, each case checks that the
two libraries agree, so a fast wrong answer is flagged rather than celebrated. Because a
two-thread figure is only meaningful when both cores are free, a GIL-free NumPy loop is timed
on one and two Python threads before and after the suite.

Writes the results as JSON (default ``benchmarks/results/bench_ops-<time>.json``) and,
with ``--markdown PATH``, the tables as Markdown (used for BENCHMARKS.md).

>>> SUITE_BY_NAME["E"].label
'32x64x16x16 -> 128, k3 s2 p1'
>>> SUITE_BY_NAME["E"].out_spatial, round(SUITE_BY_NAME["E"].flops() / 1e9, 4)
((8, 8), 0.302)
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _env
from ._timing import CLOCKS, CpuMonitor, core_check, geometric_mean, matmul_peak, measure_guarded, summarize, wait_quiet

__all__ = [
    "Case",
    "SUITE",
    "SUITE_BY_NAME",
    "ISSUE2_CONV",
    "ISSUE4_CONV",
    "POOL_CASES",
    "run_benchmarks",
    "format_tables",
    "format_markdown",
    "main",
]


# --------------------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark case: a convolution or pooling op on a fixed float32 input.

    ``op`` is "conv", "max_pool", "avg_pool" or "blur_pool". For conv, ``c_out``/``k``/``s``/
    ``p`` are the filter count, kernel size, stride and zero padding (same on every spatial
    axis). For pooling, ``k``/``s``/``p`` are kernel, stride and padding; for blur pooling
    ``k`` is the binomial filter size and the padding is the op's reflect padding.

    >>> c = Case("t", "conv", (2, 3, 8, 8), c_out=4, k=3, s=1, p=1)
    >>> c.w_shape, c.y_shape, c.flops()
    ((4, 3, 3, 3), (2, 4, 8, 8), 27648)
    >>> Case("m", "max_pool", (1, 2, 6, 6), k=3, s=2, p=1).y_shape
    (1, 2, 3, 3)
    """

    name: str
    op: str
    x_shape: tuple[int, ...]
    c_out: int = 0
    k: int = 1
    s: int = 1
    p: int = 0

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.x_shape) - 2

    @property
    def w_shape(self) -> tuple[int, ...]:
        """Filter bank shape ``(C_out, C_in, *kernel)`` (conv only)."""
        return (self.c_out, self.x_shape[1]) + (self.k,) * self.ndim

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """Output size per spatial axis (dilation 1, floor mode)."""
        if self.op == "blur_pool":
            # padding floor((f-1)/2) before and ceil((f-1)/2) after keeps n, then stride.
            return tuple((n - 1) // self.s + 1 for n in self.x_shape[2:])
        return tuple((n + 2 * self.p - self.k) // self.s + 1 for n in self.x_shape[2:])

    @property
    def y_shape(self) -> tuple[int, ...]:
        """Output shape ``(N, C_out or C, *out)``."""
        c = self.c_out if self.op == "conv" else self.x_shape[1]
        return (self.x_shape[0], c) + self.out_spatial

    def flops(self) -> int:
        """Floating-point operations of one forward pass (multiply + add; conv only, else 0).

        The forward+backward pass counts three times this: the filter gradient and the
        input gradient are each a product of the same size as the forward's.
        """
        if self.op != "conv":
            return 0
        n, c_in = self.x_shape[:2]
        return 2 * n * self.c_out * math.prod(self.out_spatial) * c_in * self.k**self.ndim

    @property
    def label(self) -> str:
        """Short human description, e.g. ``64x1x28x28 -> 8, k5 s1 p2``."""
        shape = "x".join(map(str, self.x_shape))
        if self.op == "conv":
            return f"{shape} -> {self.c_out}, k{self.k} s{self.s} p{self.p}"
        kern = "x".join([str(self.k)] * self.ndim)
        kind = self.op.replace("_pool", "")
        if self.op == "blur_pool":
            return f"{kind} f{self.k}/{self.s} {shape}"
        pad = f" p{self.p}" if self.p else ""
        return f"{kind} {kern}/{self.s}{pad} {shape}"


def _conv(name: str, n: int, c_in: int, spatial: tuple[int, ...], c_out: int, k: int, s: int, p: int) -> Case:
    return Case(name, "conv", (n, c_in, *spatial), c_out=c_out, k=k, s=s, p=p)


#: The suite of issues 2 and 4: (N, C_in, *spatial, C_out, k, stride, pad).
SUITE: tuple[Case, ...] = (
    _conv("A", 64, 1, (28, 28), 8, 5, 1, 2),
    _conv("B", 64, 8, (14, 14), 16, 5, 1, 2),
    _conv("C", 64, 3, (32, 32), 32, 3, 1, 1),
    _conv("D", 64, 32, (32, 32), 64, 3, 1, 1),
    _conv("E", 32, 64, (16, 16), 128, 3, 2, 1),
    _conv("F", 16, 128, (8, 8), 256, 3, 1, 1),
    _conv("G", 64, 1, (1000,), 16, 9, 1, 4),
    _conv("H", 64, 16, (500,), 32, 9, 2, 4),
    _conv("3D", 8, 4, (16, 16, 16), 8, 3, 1, 1),
    Case("MP", "max_pool", (64, 32, 32, 32), k=2, s=2),
    Case("MP3", "max_pool", (64, 32, 32, 32), k=3, s=2, p=1),
    Case("AP", "avg_pool", (64, 32, 32, 32), k=2, s=2),
    Case("BP", "blur_pool", (64, 32, 32, 32), k=4, s=2),
)
SUITE_BY_NAME = {case.name: case for case in SUITE}
#: The conv shapes of issue 2's target (geometric mean <= 2.0 at one thread).
ISSUE2_CONV = ("A", "B", "C", "D", "E", "F", "G", "H")
#: The conv shapes of issue 4's target (geometric mean <= 1.0, none worse than 1.5).
ISSUE4_CONV = ISSUE2_CONV + ("3D",)
POOL_CASES = ("MP", "MP3", "AP", "BP")

_FUNCTIONS = {
    "conv": ("conv", "conv_backward"),
    "max_pool": ("max_pool", "max_pool_backward"),
    "avg_pool": ("avg_pool", "avg_pool_backward"),
    "blur_pool": ("blur_pool", "blur_pool_backward"),
}


# --------------------------------------------------------------------------------------
# Workloads: the two libraries' versions of one case
# --------------------------------------------------------------------------------------


def _binomial(f: int, ndim: int) -> np.ndarray:
    row = np.array([math.comb(f - 1, i) for i in range(f)], dtype=np.float64)
    filt = row
    for _ in range(ndim - 1):
        filt = np.multiply.outer(filt, row)
    return (filt / filt.sum()).astype(np.float32)


def _max_relative_error(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


@dataclass
class _Workload:
    cs_fwd: Callable[[], object]
    cs_fwdbwd: Callable[[], tuple]  # returns (y, grads...)
    pt_fwd: Callable[[], object] | None = None
    pt_fwdbwd: Callable[[], tuple] | None = None


def _make_workload(case: Case, F, torch, seed: int = 0) -> _Workload | None:
    """Both libraries' forward and forward+backward callables; None if convscope lacks the op."""
    fwd_name, bwd_name = _FUNCTIONS[case.op]
    fwd, bwd = getattr(F, fwd_name, None), getattr(F, bwd_name, None)
    if fwd is None or bwd is None:
        return None
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape, dtype=np.float32)
    dy = rng.standard_normal(case.y_shape, dtype=np.float32)
    k, s, p = case.k, case.s, case.p
    if case.op == "conv":
        fan_in = case.x_shape[1] * case.k**case.ndim
        w = (rng.standard_normal(case.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in))).astype(np.float32)
        b = rng.standard_normal(case.c_out, dtype=np.float32)

        def cs_fwd():
            return fwd(x, w, b, stride=s, padding=p)

        def cs_fwdbwd():
            y = fwd(x, w, b, stride=s, padding=p)
            return (y, *bwd(dy, x, w, stride=s, padding=p))

    elif case.op == "blur_pool":

        def cs_fwd():
            return fwd(x, filter_size=k, stride=s)

        def cs_fwdbwd():
            return fwd(x, filter_size=k, stride=s), bwd(dy, x, filter_size=k, stride=s)

    else:

        def cs_fwd():
            return fwd(x, k, s, p)

        def cs_fwdbwd():
            return fwd(x, k, s, p), bwd(dy, x, k, s, p)

    work = _Workload(cs_fwd, cs_fwdbwd)
    if torch is None or case.ndim > 3:
        return work

    tF = torch.nn.functional
    tx = torch.from_numpy(x.copy())
    tdy = torch.from_numpy(dy.copy())
    txg = tx.clone().requires_grad_(True)
    leaves = [txg]
    if case.op == "conv":
        op = {1: tF.conv1d, 2: tF.conv2d, 3: tF.conv3d}[case.ndim]
        tw, tb = torch.from_numpy(w.copy()), torch.from_numpy(b.copy())
        twg, tbg = tw.clone().requires_grad_(True), tb.clone().requires_grad_(True)
        leaves += [twg, tbg]

        def pt_apply(xx, grad):
            return op(xx, twg, tbg, stride=s, padding=p) if grad else op(xx, tw, tb, stride=s, padding=p)

    elif case.op == "blur_pool":
        c = case.x_shape[1]
        op = {1: tF.conv1d, 2: tF.conv2d, 3: tF.conv3d}[case.ndim]
        filt = torch.from_numpy(_binomial(k, case.ndim)).expand(c, 1, *(k,) * case.ndim).contiguous()
        before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
        pads = (before, after) * case.ndim  # F.pad lists the last axis first; all axes alike

        def pt_apply(xx, grad):
            return op(tF.pad(xx, pads, mode="reflect"), filt, stride=s, groups=c)

    else:
        name = {"max_pool": "max_pool", "avg_pool": "avg_pool"}[case.op] + f"{case.ndim}d"
        op = getattr(tF, name)

        def pt_apply(xx, grad):
            return op(xx, k, s, p)

    def pt_fwd():
        with torch.no_grad():
            return pt_apply(tx, False)

    def pt_fwdbwd():
        for leaf in leaves:
            leaf.grad = None
        y = pt_apply(txg, True)
        y.backward(tdy)
        return (y, *(leaf.grad for leaf in leaves))

    work.pt_fwd, work.pt_fwdbwd = pt_fwd, pt_fwdbwd
    return work


def _agreement(work: _Workload) -> float | None:
    """Largest relative difference between the libraries over the output and all gradients."""
    if work.pt_fwdbwd is None:
        return None
    ours = work.cs_fwdbwd()
    theirs = work.pt_fwdbwd()
    errors = [_max_relative_error(a, t.detach().numpy()) for a, t in zip(ours, theirs)]
    return max(errors) if len(ours) == len(theirs) else math.inf


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


@contextmanager
def _threads(n: int, torch, control: str):
    """Limit NumPy's BLAS (and every other pool threadpoolctl sees) and PyTorch to n threads."""
    if control == "threadpoolctl":
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    else:  # the launcher already set *_NUM_THREADS for this process
        limiter = nullcontext()
    import convscope

    old = torch.get_num_threads() if torch is not None else None
    old_cs = convscope.get_num_threads()
    with limiter:
        if torch is not None:
            torch.set_num_threads(n)
        # convscope's own threads (batch chunks side by side, BLAS at 1 thread each); needs
        # threadpoolctl, so without it convscope runs serially next to BLAS's n threads.
        if n > 1 and control == "threadpoolctl":
            convscope.set_num_threads(n)
        try:
            yield
        finally:
            convscope.set_num_threads(old_cs)
            if torch is not None:
                torch.set_num_threads(old)


def _import_torch(wanted: bool):
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def run_benchmarks(
    cases: Sequence[Case],
    threads: Sequence[int] = (1, 2),
    *,
    min_repeats: int = 7,
    target_s: float = 1.0,
    max_repeats: int = 200,
    rounds: int = 3,
    use_torch: bool = True,
    peak_sizes: Sequence[int] = (1024, 2048, 3072),
    peak_repeats: int = 5,
    core_loops: int = 640,
    quiet_threshold: float = 0.15,
    max_wait_s: float = 30.0,
    retries: int = 2,
    clock: str = "wall",
    thread_control: str | None = None,
    log: Callable[[str], None] | None = None,
    on_block: Callable[[dict], None] | None = None,
) -> dict:
    """Time every case at every thread count; return a JSON-ready results dict.

    ``thread_control`` is "threadpoolctl" (default when installed) or "env" (the process's
    ``*_NUM_THREADS`` variables were set by the launcher; then ``threads`` must be one value).

    Other processes on a small machine distort timings, so before each measurement it waits
    (up to ``max_wait_s``) until they use less than ``quiet_threshold`` CPUs beyond the cores
    this thread count leaves idle, and repeats a measurement (up to ``retries`` times) during
    which they did not; every row records the foreign load it ran under (``other_load``, in
    CPUs). ``clock="cpu"`` times one-thread settings by process CPU time instead of wall
    time (a fallback for a machine that never goes quiet; settings with more threads always
    use wall time). On a shared machine, ``nice -n -20 python -m benchmarks`` keeps others off the
    benchmark's cores (the niceness is recorded).
    """
    import convscope
    import convscope.functional as F

    torch = _import_torch(use_torch)
    if thread_control is None:
        thread_control = "threadpoolctl" if _env.have_threadpoolctl() else "env"
    say = log or (lambda msg: None)

    results: dict = {
        "benchmark": "bench_ops",
        "format": 1,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]) if _env.is_child() else None,
        "git": _env.git_revision(),
        "machine": _env.machine_info(),
        "libraries": {
            "convscope": convscope.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__ if torch is not None else None,
        },
        "blas": _env.blas_info(),
        "removed_env": _env.removed_variables(),
        "env": {name: os.environ.get(name) for name in (*_env.SLOW_BLAS_VARS, *_env.THREAD_VARS)},
        "nice": os.nice(0) if hasattr(os, "nice") else None,
        "allocator": _env.allocator_settings(),
        "thread_control": thread_control,
        "settings": {
            "dtype": "float32",
            "min_repeats": min_repeats,
            "target_s": target_s,
            "max_repeats": max_repeats,
            "rounds": rounds,
            "peak_sizes": list(peak_sizes),
            "quiet_threshold": quiet_threshold,
            "max_wait_s": max_wait_s,
            "retries": retries,
            "clock": clock,
        },
        "core_check": {},
        "threads": {},
    }
    check_cores = core_loops > 0 and (os.cpu_count() or 1) >= 2 and max(threads) >= 2
    if check_cores:
        results["core_check"]["before"] = core_check(loops=core_loops)
        say(_core_line("before", results["core_check"]["before"]))

    workloads = {case.name: _make_workload(case, F, torch) for case in cases}
    for n_threads in threads:
        with _threads(n_threads, torch, thread_control):
            # Other processes may use the cores this setting leaves idle (one of two at 1 thread).
            allowed = quiet_threshold + max(0, (os.cpu_count() or 1) - n_threads)
            if max_wait_s > 0:
                wait_quiet(allowed, max_wait_s)
            block_clock = clock if n_threads == 1 else "wall"
            start = CpuMonitor.snapshot()
            peak = matmul_peak(peak_sizes, peak_repeats, clock=CLOCKS[block_clock])
            peak["other_load"] = CpuMonitor.other_load(start, CpuMonitor.snapshot())
            say(f"threads={n_threads}: float32 matmul peak {peak['gflops']:.1f} GFLOP/s (n={peak['size']})")
            rows = []
            for case in cases:
                work = workloads[case.name]
                if work is None:
                    skipped = "op not in convscope.functional yet"
                    rows.append({"case": case.name, "label": case.label, "op": case.op, "skipped": skipped})
                    say(f"  {case.name}: skipped (convscope.functional lacks {case.op})")
                    continue
                agreement = _agreement(work)
                for mode in ("fwd", "fwd+bwd"):
                    fns = {"convscope": work.cs_fwd if mode == "fwd" else work.cs_fwdbwd}
                    pt = work.pt_fwd if mode == "fwd" else work.pt_fwdbwd
                    if pt is not None:
                        fns["torch"] = pt
                    samples, load = measure_guarded(
                        fns, min_repeats, target_s, max_repeats, rounds,
                        settle_s=0.1 if n_threads > 1 and len(fns) > 1 else 0.0,
                        quiet=allowed, max_wait_s=max_wait_s, retries=retries, clock=CLOCKS[block_clock],
                    )
                    row = _row(case, mode, n_threads, samples, peak["gflops"], agreement)
                    row.update(load, allowed_other_load=allowed)
                    rows.append(row)
                    say("  " + _row_text(row))
            results["threads"][str(n_threads)] = {
                "clock": block_clock,
                "matmul_peak": peak,
                "blas": _env.blas_info(),
                "torch_threads": torch.get_num_threads() if torch is not None else None,
                "rows": rows,
                "geomean": _geomeans(rows),
            }
            if on_block is not None:  # e.g. save what is done, in case a later block is cut short
                on_block(results)
    if check_cores:
        results["core_check"]["after"] = core_check(loops=core_loops)
        say(_core_line("after", results["core_check"]["after"]))
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return results


def _row(case: Case, mode: str, n_threads: int, samples: dict, peak_gflops: float, agreement) -> dict:
    flops = case.flops() * (1 if mode == "fwd" else 3)
    cs = summarize(samples["convscope"])
    pt = summarize(samples["torch"]) if "torch" in samples else None
    row = {
        "case": case.name,
        "op": case.op,
        "label": case.label,
        "x_shape": list(case.x_shape),
        "params": {"c_out": case.c_out, "k": case.k, "s": case.s, "p": case.p},
        "mode": mode,
        "threads": n_threads,
        "gflop": flops / 1e9,
        "convscope": cs,
        "torch": pt,
        "ratio": cs["median_ms"] / pt["median_ms"] if pt else None,
        "convscope_gflops": flops / cs["median_ms"] / 1e6 if flops else None,
        "torch_gflops": flops / pt["median_ms"] / 1e6 if (flops and pt) else None,
        "agreement": agreement,
        "agrees": None if agreement is None else bool(agreement < 1e-3),
    }
    row["peak_fraction"] = row["convscope_gflops"] / peak_gflops if row["convscope_gflops"] else None
    return row


def _geomeans(rows: list[dict]) -> dict:
    out = {}
    timed = [r for r in rows if r.get("ratio") is not None]
    groups = {"conv_A-H": ISSUE2_CONV, "conv_A-H+3D": ISSUE4_CONV, "pool": POOL_CASES}
    for mode in ("fwd", "fwd+bwd"):
        for group, names in groups.items():
            ratios = [r["ratio"] for r in timed if r["mode"] == mode and r["case"] in names]
            if ratios:
                out[f"{group} {mode}"] = {"geomean": geometric_mean(ratios), "max": max(ratios), "count": len(ratios)}
        ratios = [r["ratio"] for r in timed if r["mode"] == mode]
        if ratios:
            out[f"all {mode}"] = {"geomean": geometric_mean(ratios), "max": max(ratios), "count": len(ratios)}
    return out


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


_CLOCK_NAMES = {"wall": "wall-clock", "cpu": "process CPU time (machine busy)"}


def _ms(stats: dict | None) -> str:
    if not stats:
        return "-"
    return f"{stats['median_ms']:.3g} ±{100 * stats['spread']:.0f}%"


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _core_line(when: str, check: dict) -> str:
    verdict = "both cores looked free" if check["both_free"] else "second core looked BUSY: 2-thread numbers unreliable"
    return (
        f"core check {when}: GIL-free np.exp loop 1 thread {check['one_thread_ms']:.1f} ms, "
        f"2 threads {check['two_threads_ms']:.1f} ms, speedup {check['speedup']:.2f} -> {verdict}"
    )


_COLUMNS = (
    "case", "shape", "pass", "convscope ms", "PyTorch ms", "ratio",
    "GFLOP/s", "% peak", "PyTorch GFLOP/s", "agree", "other load",
)


def _cells(row: dict) -> list[str]:
    if row.get("skipped"):
        return [row["case"], row["label"], "-", "skipped"] + ["-"] * (len(_COLUMNS) - 4)
    agree = "-" if row["agrees"] is None else ("yes" if row["agrees"] else f"NO {row['agreement']:.1e}")
    return [
        row["case"],
        row["label"],
        row["mode"],
        _ms(row["convscope"]),
        _ms(row["torch"]),
        _num(row["ratio"], ".2f"),
        _num(row["convscope_gflops"], ".1f"),
        "-" if row["peak_fraction"] is None else f"{100 * row['peak_fraction']:.0f}%",
        _num(row["torch_gflops"], ".1f"),
        agree,
        _load(row),
    ]


def _load(row: dict) -> str:
    load = row.get("other_load")
    if load is None:
        return "-"
    return f"{load:.2f}" + ("" if row.get("quiet", True) else " BUSY")


def _row_text(row: dict) -> str:
    return "  ".join(_cells(row))


def _geomean_lines(block: dict) -> list[str]:
    lines = []
    for key, g in block["geomean"].items():
        lines.append(f"geometric-mean ratio {key}: {g['geomean']:.2f} (worst {g['max']:.2f}, {g['count']} rows)")
    return lines


def format_tables(results: dict) -> str:
    """Plain-text tables, one per thread count, with geometric means and the core check."""
    out = []
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture', '?')})"
        for b in results["blas"]
        if b.get("user_api") == "blas"
    )
    out.append(
        f"{results['machine']['cpu_model']}, {results['machine']['cpus']} CPUs; numpy {results['libraries']['numpy']}"
        f" [{blas or 'BLAS unknown'}], torch {results['libraries']['torch'] or 'not installed'};"
        f" removed env {results['removed_env'] or 'none'}; nice {results.get('nice')}"
    )
    for when, check in results["core_check"].items():
        out.append(_core_line(when, check))
    for n_threads, block in results["threads"].items():
        peak = block["matmul_peak"]
        out.append("")
        out.append(
            f"threads = {n_threads}   float32 matmul peak {peak['gflops']:.1f} GFLOP/s (np.matmul, n={peak['size']})"
            f"   clock: {_CLOCK_NAMES[block.get('clock', 'wall')]}"
        )
        table = [list(_COLUMNS)] + [_cells(r) for r in block["rows"]]
        widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
        for line in table:
            cells = (cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            out.append("  ".join(cells))
        out.extend(_geomean_lines(block))
    return "\n".join(out)


def format_markdown(results: dict) -> str:
    """The same tables as Markdown (for BENCHMARKS.md)."""
    out = []
    for n_threads, block in results["threads"].items():
        peak = block["matmul_peak"]
        out.append(f"### {n_threads} thread{'s' if n_threads != '1' else ''}")
        out.append("")
        out.append(
            f"float32 matmul peak (np.matmul, n={peak['size']}): **{peak['gflops']:.1f} GFLOP/s**;"
            f" times are {_CLOCK_NAMES[block.get('clock', 'wall')]}"
        )
        out.append("")
        out.append("| " + " | ".join(_COLUMNS) + " |")
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(_COLUMNS))) + "|")
        for row in block["rows"]:
            out.append("| " + " | ".join(_cells(row)) + " |")
        out.append("")
        for line in _geomean_lines(block):
            out.append(f"- {line}")
        out.append("")
    for when, check in results["core_check"].items():
        out.append(f"- {_core_line(when, check)}")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _select(only: str | None) -> list[Case]:
    if not only:
        return list(SUITE)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE_BY_NAME]
    if unknown:
        raise SystemExit(f"--only: unknown case(s) {unknown}; expected names from {list(SUITE_BY_NAME)}.")
    return [SUITE_BY_NAME[n] for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite in this process (the launcher in ``_env`` has prepared the environment)."""
    args = _env.build_parser().parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        cases = _select(args.only)
        quick = args.quick
        path = Path(args.json) if args.json else _env.default_json_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        results = run_benchmarks(
            cases,
            args.threads,
            min_repeats=args.repeats or (3 if quick else 7),
            target_s=args.target_seconds if args.target_seconds is not None else (0.25 if quick else 1.0),
            max_repeats=50 if quick else 200,
            rounds=2 if quick else 3,
            use_torch=not args.no_torch,
            peak_sizes=(2048,) if quick else (1024, 2048, 3072),
            peak_repeats=3 if quick else 5,
            max_wait_s=args.max_wait if args.max_wait is not None else (10.0 if quick else 30.0),
            retries=1 if quick else 2,
            clock=args.clock,
            thread_control=args.thread_control,
            log=lambda msg: print(msg, flush=True),
            on_block=lambda partial: path.write_text(json.dumps(partial, indent=1) + "\n"),
        )
        results["settings"]["quick"] = bool(quick)
        if not args.only and not args.no_train:  # the whole suite: training-step rows too
            from .bench_train import run_train

            results["train"] = run_train(
                threads=args.threads,
                min_repeats=3 if quick else 7,
                target_s=0.5 if quick else 2.0,
                rounds=2 if quick else 3,
                use_torch=not args.no_torch,
                clock=args.clock,
                max_wait_s=args.max_wait if args.max_wait is not None else (5.0 if quick else 30.0),
                log=lambda msg: print(msg, flush=True),
            )
        if not args.only and not args.no_memory:  # and the peak-memory rows
            from .bench_memory import run_memory

            results["memory"] = run_memory(libraries=("convscope",) if args.no_torch else ("convscope", "torch"))
        path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
        print(f"\nwrote {path}")
    print()
    print(format_tables(results))
    extra = _extra_markdown(results)
    if extra:
        print()
        print(extra)
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(results) + ("\n" + extra if extra else ""))
        print(f"wrote {args.markdown}")
    return 0


def _extra_markdown(results: dict) -> str:
    """The training-step and memory tables (benchmarks.bench_train / bench_memory), if run."""
    parts = []
    if "train" in results:
        from .bench_train import format_train

        parts.append("### Training step (images/s ratio convscope / PyTorch; >= 1: convscope faster)\n")
        parts.append(format_train(results["train"]))
    if "memory" in results:
        from .bench_memory import format_memory

        parts.append("### Peak memory (extra RSS over the process before the work, fresh subprocess)\n")
        parts.append(format_memory(results["memory"]))
    return "\n".join(parts)


if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(_env.launch("benchmarks", sys.argv[1:]))
    sys.exit(main())
