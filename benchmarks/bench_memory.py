"""Peak memory of one convolution forward+backward and of one training step, in subprocesses.

Each measurement runs in a fresh Python process (so nothing from earlier work is cached),
which imports the libraries and builds its inputs, then resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), runs the work once and reads the peak (``VmHWM``). The row
reports the peak *extra* memory over the resident size just before the work, next to the
bound of issue 4: the workspace budget plus the bytes of the op's inputs and outputs.

Cases (both libraries, float32, same thread count as the parent):

* ``conv 1x3x1024x1024 -> 64, k3 p1``: ``conv`` then ``conv_backward`` (PyTorch:
  ``conv2d`` on tensors that require grad, then ``backward``). Inputs and outputs are
  x, w, b, y, dy, dx, dw, db.
* ``cifar b256``: one training step of the built-in CIFAR net on a batch of 256 (the
  optimizer's state already allocated by a first step).

Linux only (``/proc``). Run from the repository root::

    python -m benchmarks.bench_memory            # both cases, both libraries
    python -m benchmarks.bench_memory --json out.json

>>> [c for c in MEMORY_CASES]
['conv', 'cifar b256']
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import _env

__all__ = ["MEMORY_CASES", "measure_case", "run_memory", "format_memory", "main"]

MEMORY_CASES = ("conv", "cifar b256")


def _status(field: str) -> int:
    """A field of /proc/self/status (kB) in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


def _child(case: str, library: str) -> dict:
    """Runs in the subprocess: build inputs, reset the peak, work once, report."""
    import numpy as np

    result: dict = {"case": case, "library": library}
    if case == "conv":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 3, 1024, 1024), dtype=np.float32)
        w = rng.standard_normal((64, 3, 3, 3), dtype=np.float32) / np.float32(27**0.5)
        b = np.zeros(64, dtype=np.float32)
        dy = rng.standard_normal((1, 64, 1024, 1024), dtype=np.float32)
        io = x.nbytes + w.nbytes + b.nbytes + 2 * dy.nbytes + x.nbytes + w.nbytes + b.nbytes
        if library == "convscope":
            import convscope.functional as F
            from convscope.functional.windows import get_workspace_budget

            result["budget"] = get_workspace_budget()

            def work():
                y = F.conv(x, w, b, padding=1)
                grads = F.conv_backward(dy, x, w, padding=1)
                return y, grads
        else:
            import torch

            tx = torch.from_numpy(x).requires_grad_(True)
            tw = torch.from_numpy(w).requires_grad_(True)
            tb = torch.from_numpy(b).requires_grad_(True)
            tdy = torch.from_numpy(dy)

            def work():
                y = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
                y.backward(tdy)
                return y, tx.grad, tw.grad, tb.grad
        result["inputs_outputs"] = io
    else:
        from .bench_train import TrainCase, make_steps

        torch = None
        if library == "torch":
            import torch
        cs_step, pt_step = make_steps(TrainCase(case, "cifar", 256), torch)
        step = cs_step if library == "convscope" else pt_step
        step()  # optimizer state, lazily built buffers

        def work():
            return step()

        if library == "convscope":
            from convscope.functional.windows import get_workspace_budget

            result["budget"] = get_workspace_budget()
    base = _status("VmRSS")
    _reset_peak()
    keep = work()
    peak = _status("VmHWM")
    del keep
    result.update({"base_rss": base, "peak_rss": peak, "peak_extra": peak - base})
    return result


def measure_case(case: str, library: str, threads: int = 1) -> dict:
    """Run one case in a fresh subprocess (clean OpenBLAS environment); its result dict."""
    env = _env.child_environ(threads=threads)
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", case, library]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=_env.REPO_ROOT)
    if proc.returncode != 0:
        return {"case": case, "library": library, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_memory(cases: Sequence[str] = MEMORY_CASES, libraries: Sequence[str] = ("convscope", "torch"),
               threads: int = 1) -> dict:
    """Every case in every library; JSON-ready."""
    rows = [measure_case(c, lib, threads) for c in cases for lib in libraries]
    return {"benchmark": "bench_memory", "threads": threads, "rows": rows}


def _mib(v) -> str:
    return "-" if v is None else f"{v / 2**20:.0f}"


def format_memory(results: dict) -> str:
    """Markdown table: peak extra RSS per case and library, with the issue's bound."""
    out = [
        "| case | library | peak extra MiB | bound MiB (budget + inputs/outputs) | within |",
        "|---|---|---:|---:|---|",
    ]
    for r in results["rows"]:
        if "error" in r:
            out.append(f"| {r['case']} | {r['library']} | error: {' '.join(r['error'])} | | |")
            continue
        bound = None
        if "budget" in r and "inputs_outputs" in r:
            bound = r["budget"] + r["inputs_outputs"]
        within = "-" if bound is None else ("yes" if r["peak_extra"] <= bound else "NO")
        out.append(f"| {r['case']} | {r['library']} | {_mib(r['peak_extra'])} | {_mib(bound)} | {within} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CASE", "LIBRARY"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    if not os.path.exists("/proc/self/clear_refs"):
        print("bench_memory needs Linux /proc (peak RSS); skipped.")
        return 0
    libraries = ("convscope",) if args.no_torch else ("convscope", "torch")
    results = run_memory(MEMORY_CASES, libraries, args.threads)
    print(format_memory(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
