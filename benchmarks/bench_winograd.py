"""Winograd F(2x2, 3x3) against convscope's im2col convolution and PyTorch, forward only.

Issue 13 asks whether Winograd's minimal filtering (Lavin & Gray 2016) is worth a fast path
for 3x3, stride-1 layers. F(2x2, 3x3) computes each 2x2 output tile from a 4x4 input tile
with 16 multiplications per (input, output) channel pair instead of 36, so the GEMM work drops
2.25x; the price is three extra passes over memory (input, filter and output transforms) and
16 smaller GEMMs instead of one large one. This benchmark measures that trade on this CPU;
nothing in convscope uses it unless it wins by at least 10% (the issue's rule).

Run from the repository root (the clean OpenBLAS environment, one child process)::

    python -m benchmarks.bench_winograd --threads 1,2

Prints, per case and thread count, the medians of the forwards timed interleaved in the same
process (convscope's im2col ``conv``, Winograd, Winograd with the filter transform done once
as inference could, PyTorch) and their ratios, and the largest relative difference of the
Winograd output from convscope's (float32 and float64).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from . import _env

#: (name, N, C_in, H=W, C_out): the suite's 3x3 stride-1 shapes (C, D, F of bench_ops) and
#: the built-in CIFAR ResNet's three stages at batch 128.
CASES = (
    ("C", 64, 3, 32, 32),
    ("D", 64, 32, 32, 64),
    ("F", 16, 128, 8, 256),
    ("R16", 128, 16, 32, 16),
    ("R32", 128, 32, 16, 32),
    ("R64", 128, 64, 8, 64),
)


def winograd_filters(w):
    """``U = G g G^T`` for every filter ``g`` of ``w`` (K, C, 3, 3), as (16, K, C)."""
    import numpy as np

    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=w.dtype)
    return np.einsum("ai,kcij,bj->abkc", g, w, g, optimize=True).reshape(16, *w.shape[:2])


def winograd_f2x3(x, w, b=None, u=None):
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (K, C, 3, 3), stride 1, padding 1.

    ``Y = A^T [ U . (B^T d B) ] A`` per 4x4 input tile ``d`` (tiles at stride 2) with
    ``U = G g G^T`` (pass ``u`` from :func:`winograd_filters` to reuse it, as inference
    could). Each transform is one matrix product on the vectorised tiles
    (``vec(B^T d B) = (B^T kron B^T) vec(d)``), and the channel sum is 16 GEMMs of (K x C)
    by (C x tiles). (A first form wrote the transforms as sums of strided views, 16 small
    NumPy calls each way: it ran 1.5-7x slower than im2col, 2.4-5.5x on the larger shapes.)

    >>> import numpy as np
    >>> from convscope.functional import conv
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 3))
    >>> bool(np.allclose(winograd_f2x3(x, w), conv(x, w, padding=1)))
    True
    """
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    n, c, h, wd = x.shape
    k = w.shape[0]
    th, tw = -(-h // 2), -(-wd // 2)
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=x.dtype)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=x.dtype)
    xp = np.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    xp[:, :, 1:h + 1, 1:wd + 1] = x.transpose(1, 0, 2, 3)
    st = xp.strides  # tiles (4, 4, C, N, th, tw): the window copy of a 4x4 filter at stride 2
    tiles = as_strided(xp, (4, 4, c, n, th, tw), (st[2], st[3], st[0], st[1], 2 * st[2], 2 * st[3]))
    d = np.ascontiguousarray(tiles).reshape(16, -1)
    v = (np.kron(bt, bt) @ d).reshape(16, c, n * th * tw)
    m = np.matmul(winograd_filters(w) if u is None else u, v)  # (16, K, tiles)
    yt = (np.kron(at, at) @ m.reshape(16, -1)).reshape(2, 2, k, n, th, tw)
    y = np.empty((n, k, 2 * th, 2 * tw), dtype=x.dtype)
    y.reshape(n, k, th, 2, tw, 2)[...] = yt.transpose(3, 2, 4, 0, 5, 1)
    y = y[:, :, :h, :wd]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def _rel(a, b) -> float:
    import numpy as np

    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30))


def _forwards(x, w, b) -> dict:
    import torch

    from convscope.functional import conv

    u = winograd_filters(w)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    return {
        "im2col": lambda: conv(x, w, b, padding=1),
        "winograd": lambda: winograd_f2x3(x, w, b),
        "winograd_cached_u": lambda: winograd_f2x3(x, w, b, u),
        "torch": lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=1),
    }


def run(threads: list[int], repeats: int, rounds: int) -> dict:
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    import convscope
    from convscope.functional import conv

    from ._timing import geometric_mean, measure, summarize

    results: dict = {"machine": _env.machine_info(), "cases": {}}
    rng = np.random.default_rng(0)
    for name, n, c, hw, k in CASES:
        x64 = rng.standard_normal((n, c, hw, hw))
        w64 = rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)
        b64 = rng.standard_normal(k)
        errs = {}
        for dt in (np.float64, np.float32):
            x, w, b = x64.astype(dt), w64.astype(dt), b64.astype(dt)
            errs[np.dtype(dt).name] = _rel(winograd_f2x3(x, w, b), conv(x, w, b, padding=1))
        x, w, b = (a.astype(np.float32) for a in (x64, w64, b64))
        row = {"shape": f"({n},{c},{hw},{hw}) -> {k}", "rel_err": errs, "threads": {}}
        for t in threads:
            convscope.set_num_threads(t)
            torch.set_num_threads(t)
            with threadpool_limits(t):
                with torch.no_grad():
                    times = measure(_forwards(x, w, b), min_repeats=repeats, target_s=0.5,
                                    max_repeats=4 * repeats, rounds=rounds)
            med = {key: summarize(v)["median_ms"] for key, v in times.items()}
            row["threads"][t] = {"median_ms": med,
                                 "winograd/im2col": med["winograd"] / med["im2col"],
                                 "winograd_cached_u/im2col": med["winograd_cached_u"] / med["im2col"],
                                 "im2col/torch": med["im2col"] / med["torch"]}
            print(f"{name:4s} {row['shape']:24s} {t}t  im2col {med['im2col']:7.2f} ms  "
                  f"winograd {med['winograd']:7.2f} (U cached {med['winograd_cached_u']:7.2f}) ms  "
                  f"torch {med['torch']:7.2f} ms  wino/im2col {med['winograd'] / med['im2col']:5.2f} "
                  f"({med['winograd_cached_u'] / med['im2col']:5.2f})  "
                  f"im2col/torch {med['im2col'] / med['torch']:5.2f}  "
                  f"err f32 {errs['float32']:.1e} f64 {errs['float64']:.1e}", flush=True)
        results["cases"][name] = row
    for t in threads:
        for key in ("winograd/im2col", "winograd_cached_u/im2col"):
            g = geometric_mean(r["threads"][t][key] for r in results["cases"].values())
            print(f"geomean {key} at {t} thread(s): {g:.2f}")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_winograd", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per round (default 7)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    threads = [int(v) for v in args.threads.split(",")]
    if not _env.is_child():
        cmd = [sys.executable, "-m", "benchmarks.bench_winograd", *(argv or sys.argv[1:])]
        return subprocess.call(cmd, env=_env.child_environ(), cwd=str(_env.REPO_ROOT))
    print(f"CPU: {_env.machine_info().get('cpu_model', '?')}; removed {os.environ.get(_env.CHILD_MARKER)}")
    results = run(threads, args.repeats, args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
