"""Inference speed of the built-in models next to the same models in PyTorch.

Inference is what :func:`convscope.train.evaluate` (hence ``convscope evaluate`` and ``fit``'s
validation) runs per batch: the model in evaluation mode, its conv -> batch-norm pairs folded
into one convolution (:func:`convscope.models.inference_twin`), the batch cut into one shard per
thread (:func:`convscope.train.data_parallel.sharded_forward`). PyTorch runs the same
architecture with the same weights (made by :func:`convscope.export.to_torch`) in evaluation
mode under ``torch.inference_mode()``, its eager path. Both are interleaved in one process at
the same thread count; a third column times convscope's plain ``model(x)`` (no folding, no
shards), the path of ``predict`` and the explainer. The ratio is convscope time / PyTorch time
(lower is better; <= 1.0: convscope at least as fast).

Run from the repository root (same clean OpenBLAS environment as ``python -m benchmarks``)::

    python -m benchmarks.bench_infer                       # lenet, cifar, resnet at b256; 1 and 2 threads
    python -m benchmarks.bench_infer --threads 1 --quick --only "lenet b256"

>>> [c.name for c in INFER_CASES]
['lenet b256', 'cifar b256', 'resnet b256']
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import _env
from ._timing import CLOCKS, geometric_mean, measure_guarded, summarize, wait_quiet
from .bench_train import TrainCase, add_common_arguments, common_options, optional_torch, step_cell, thread_blocks

__all__ = ["INFER_CASES", "make_forwards", "run_infer", "format_infer", "main"]

INFER_CASES: tuple[TrainCase, ...] = (
    TrainCase("lenet b256", "lenet", 256),
    TrainCase("cifar b256", "cifar", 256),
    TrainCase("resnet b256", "resnet", 256),
)


def _input_shape(case: TrainCase) -> tuple[int, ...]:
    return {"resnet": (3, 32, 32)}.get(case.arch) or case.input_shape


def make_forwards(case: TrainCase, torch=None, seed: int = 0) -> dict[str, Callable[[], np.ndarray]]:
    """``{"convscope": evaluate's forward, "plain": model(x), "torch": PyTorch's}``; each
    returns the batch's scores as a NumPy array. The model's batch-norm statistics are
    moved off their initial values (a few training-mode forwards) so folding them matters."""
    from convscope.models import build_model, inference_twin
    from convscope.train.data_parallel import sharded_forward

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch, *_input_shape(case)), dtype=np.float32)
    model = build_model(case.arch, seed=seed)
    model.train()
    for _ in range(2):
        model(x[:32])
    model.eval()
    runner = inference_twin(model)
    fns: dict[str, Callable[[], np.ndarray]] = {
        "convscope": lambda: sharded_forward(runner, x),
        "plain": lambda: model(x),
    }
    if torch is not None:
        from convscope.export import to_torch

        twin = to_torch(model).eval()
        tx = torch.from_numpy(x.copy())

        def pt() -> np.ndarray:
            with torch.inference_mode():
                return twin(tx).numpy()

        fns["torch"] = pt
    fns["convscope"].model = runner  # type: ignore[attr-defined]  (its data-parallel choice)
    return fns


def run_infer(
    cases: Sequence[TrainCase] = INFER_CASES,
    threads: Sequence[int] = (1, 2),
    *,
    min_repeats: int = 7,
    target_s: float = 2.0,
    rounds: int = 3,
    use_torch: bool = True,
    quiet_threshold: float = 0.15,
    max_wait_s: float = 30.0,
    retries: int = 2,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time every case's forwards at every thread count; JSON-ready dict."""
    from convscope.train.data_parallel import _TRIALS, tuning

    torch = optional_torch(use_torch)
    say = log or (lambda msg: None)
    results: dict = {"benchmark": "bench_infer", "format": 1, "threads": {}, "core_check": {}}
    for n in thread_blocks(threads, torch, results):
        rows = []
        for case in cases:
            fns = make_forwards(case, torch)
            for _ in range(len(_TRIALS) + 2):  # the measured choice's trials: warm-up
                fns["convscope"]()
            outs = {name: np.asarray(fn()) for name, fn in fns.items()}
            ref = outs.get("torch", outs["plain"])
            scale = float(np.abs(ref).max()) or 1.0
            agree = max(float(np.abs(o - ref).max()) for o in outs.values()) / scale
            if max_wait_s > 0:
                wait_quiet(quiet_threshold, max_wait_s)
            samples, load = measure_guarded(
                fns, min_repeats, target_s, 500, rounds,
                settle_s=0.1 if n > 1 and len(fns) > 1 else 0.0,
                quiet=quiet_threshold, max_wait_s=max_wait_s, retries=retries, clock=CLOCKS["wall"],
            )
            row = {"case": case.name, "arch": case.arch, "batch": case.batch, "threads": n,
                   "max_rel_difference": agree}
            for name in fns:
                row[name] = summarize(samples[name])
            if "torch" in row:
                row["ratio"] = row["convscope"]["median_ms"] / row["torch"]["median_ms"]
                row["plain_ratio"] = row["plain"]["median_ms"] / row["torch"]["median_ms"]
            row.update(load)
            choice = [t for t in tuning(fns["convscope"].model) if t["task"] == "infer"]  # type: ignore[attr-defined]
            row["data_parallel"] = choice[0] if choice else {"choice": "serial"}
            rows.append(row)
            say("  " + _row_text(row))
        block = {"rows": rows}
        if rows and "ratio" in rows[0]:
            block["geomean_ratio"] = geometric_mean(r["ratio"] for r in rows)
            block["geomean_plain_ratio"] = geometric_mean(r["plain_ratio"] for r in rows)
        results["threads"][str(n)] = block
    return results


def _row_text(row: dict) -> str:
    text = (f"threads={row['threads']} {row['case']:<12} convscope {row['convscope']['median_ms']:8.2f} ms "
            f"(plain {row['plain']['median_ms']:8.2f})")
    if "torch" in row:
        text += (f"  PyTorch {row['torch']['median_ms']:8.2f} ms  ratio {row['ratio']:.2f} "
                 f"(plain {row['plain_ratio']:.2f})")
    return (text + f"  max rel diff {row['max_rel_difference']:.1e}  other load {row.get('other_load') or 0:.2f}  "
            f"{step_cell(row)}")


def format_infer(results: dict) -> str:
    """Markdown table: median ms per library and the time ratios convscope / PyTorch."""
    out = ["| threads | model | batch | convscope ms (evaluate's path) | plain model(x) ms | PyTorch ms "
           "| ratio | plain ratio | convscope shards |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for n, block in results["threads"].items():
        for r in block["rows"]:
            pt = r.get("torch")
            out.append(
                f"| {n} | {r['arch']} | {r['batch']} | {r['convscope']['median_ms']:.2f} | "
                f"{r['plain']['median_ms']:.2f} | " + (f"{pt['median_ms']:.2f} | {r['ratio']:.2f} | "
                                                       f"{r['plain_ratio']:.2f}" if pt else "- | - | -")
                + f" | {step_cell(r)} |")
        if block.get("geomean_ratio") is not None:
            out.append(f"| {n} | geomean | | | | | **{block['geomean_ratio']:.2f}** | "
                       f"{block['geomean_plain_ratio']:.2f} | |")
    return "\n".join(out) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_infer", description=__doc__.split("\n")[0])
    add_common_arguments(p, "lenet b256,resnet b256")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    threads, cases, kwargs = common_options(args, INFER_CASES)
    results = run_infer(cases, threads, **kwargs)
    results["machine"] = _env.machine_info()
    results["removed_env"] = _env.removed_variables()
    print(f"CPU: {results['machine'].get('cpu_model')}; removed {results['removed_env']}")
    print(format_infer(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(_env.run_child("benchmarks.bench_infer", sys.argv[1:]))
    sys.exit(main())
