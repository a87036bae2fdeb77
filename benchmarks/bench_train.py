"""Training-step speed of the built-in models next to the same models in PyTorch.

One training step is what :func:`convscope.train.fit` does per batch: zero the gradients,
forward, cross-entropy loss, backward, optimizer step. Both libraries run the same
architecture (the PyTorch twin is built layer by layer from the convscope model and starts
from the same weights) on the same random batch, with the optimizer of the dataset's recipe
(LeNet: Adam 1e-3; CIFAR net: SGD 0.05, momentum 0.9, weight decay 5e-4), interleaved in one
process at the same thread count. The rows report images per second and the ratio
convscope / PyTorch (>= 1.0: convscope is at least as fast).

Run from the repository root (same clean OpenBLAS environment as ``python -m benchmarks``)::

    python -m benchmarks.bench_train                 # LeNet b64, b256, CIFAR b128; 1 and 2 threads
    python -m benchmarks.bench_train --threads 1 --quick
    python -m benchmarks.bench_train --profile lenet:64   # cProfile of convscope's step
    python -m benchmarks.bench_train --profile cifar:128 --profiler pyinstrument --threads 1

>>> [c.name for c in TRAIN_CASES]
['lenet b64', 'lenet b256', 'cifar b128']
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _env
from ._timing import CLOCKS, core_check, measure_guarded, summarize, wait_quiet

__all__ = ["TrainCase", "TRAIN_CASES", "make_steps", "torch_twin", "optional_torch", "thread_blocks",
           "add_common_arguments", "common_options", "step_cell", "run_train", "format_train", "main"]


@dataclass(frozen=True)
class TrainCase:
    """A built-in architecture trained on random images of its input shape.

    >>> TrainCase("lenet b64", "lenet", 64).input_shape
    (1, 28, 28)
    """

    name: str
    arch: str
    batch: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return {"lenet": (1, 28, 28), "cifar": (3, 32, 32), "digits": (1, 8, 8)}[self.arch]


TRAIN_CASES: tuple[TrainCase, ...] = (
    TrainCase("lenet b64", "lenet", 64),
    TrainCase("lenet b256", "lenet", 256),
    TrainCase("cifar b128", "cifar", 128),
)


def torch_twin(model, torch):
    """The PyTorch ``nn.Sequential`` with the same layers and weights as a convscope model.

    Supports the layers of the built-in models: Conv2d, BatchNorm2d, ReLU, MaxPool2d,
    Flatten, Linear.
    """
    from convscope import nn as cnn

    tnn = torch.nn
    layers = []
    for m in model:
        if isinstance(m, cnn.Conv2d):
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                           tuple(p[0] for p in m.padding), m.dilation, m.groups, m.bias is not None)
        elif isinstance(m, cnn.BatchNorm2d):
            t = tnn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
        elif isinstance(m, cnn.ReLU):
            t = tnn.ReLU()
        elif isinstance(m, cnn.MaxPool2d):
            t = tnn.MaxPool2d(m.kernel_size, m.stride, tuple(p[0] for p in m.padding))
        elif isinstance(m, cnn.Flatten):
            t = tnn.Flatten()
        elif isinstance(m, cnn.Linear):
            t = tnn.Linear(m.in_features, m.out_features, m.bias is not None)
        else:
            raise TypeError(f"torch_twin: no PyTorch twin for {type(m).__name__}")
        with torch.no_grad():
            for name, p in m.named_parameters():
                getattr(t, name).copy_(torch.from_numpy(p.data))
        layers.append(t)
    return tnn.Sequential(*layers)


def _optimizers(arch: str, cs_params, pt_params, torch):
    import convscope.optim as optim

    if arch == "cifar":
        kw = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
        return optim.SGD(cs_params, **kw), (torch.optim.SGD(pt_params, **kw) if torch else None)
    return optim.Adam(cs_params, lr=1e-3), (torch.optim.Adam(pt_params, lr=1e-3) if torch else None)


def make_steps(case: TrainCase, torch=None, seed: int = 0) -> tuple[Callable[[], float], Callable[[], float] | None]:
    """``(convscope_step, pytorch_step)``: each runs one training step and returns the loss."""
    from convscope import nn as cnn
    from convscope.models import build_model
    from convscope.train.data_parallel import training_step

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.batch, *case.input_shape), dtype=np.float32)
    t = rng.integers(0, 10, case.batch)
    model = build_model(case.arch, seed=seed)
    model.train()
    loss = cnn.CrossEntropyLoss()
    twin = torch_twin(model, torch) if torch is not None else None
    opt, topt = _optimizers(case.arch, list(model.parameters()), twin.parameters() if twin else None, torch)

    def cs_step() -> float:
        model.zero_grad()
        # as fit: forward, loss, backward (no image gradient), one shard per thread
        value, _ = training_step(model, loss, x, t)
        opt.step()
        return value

    cs_step.model = model  # type: ignore[attr-defined]  (run_train reports its data-parallel choice)
    if twin is None:
        return cs_step, None
    twin.train()
    tx = torch.from_numpy(x.copy())
    tt = torch.from_numpy(t.astype(np.int64))
    tloss = torch.nn.CrossEntropyLoss()

    def pt_step() -> float:
        topt.zero_grad()
        value = tloss(twin(tx), tt)
        value.backward()
        topt.step()
        return float(value.detach())

    return cs_step, pt_step


def optional_torch(use_torch: bool):
    """PyTorch, or None when it is not wanted or not installed (convscope's rows alone)."""
    if not use_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def thread_blocks(threads: Sequence[int], torch, results: dict) -> Iterator[int]:
    """Each thread count in turn, with BLAS, convscope and PyTorch held to it while the caller's
    loop body runs; the two-core check before the first block and after the last goes into
    ``results["core_check"]``."""
    from threadpoolctl import threadpool_limits

    import convscope

    if max(threads) >= 2 and (os.cpu_count() or 1) >= 2:
        results["core_check"]["before"] = core_check()
    for n in threads:
        with threadpool_limits(limits=n), convscope.num_threads(n):
            if torch is not None:
                torch.set_num_threads(n)
            yield n
    if "before" in results["core_check"]:
        results["core_check"]["after"] = core_check()


def add_common_arguments(p: argparse.ArgumentParser, only_example: str) -> None:
    """The options every model benchmark takes (threads, cases, repeats, PyTorch, output)."""
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--only", help=f"comma-separated case names, e.g. '{only_example}'")
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--max-wait", type=float, default=None, help="seconds to wait for a quiet machine")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", help="write results here")


def common_options(args: argparse.Namespace, all_cases: Sequence[TrainCase]) -> tuple[list[int], list, dict]:
    """``(threads, cases, keyword arguments of the run)`` from :func:`add_common_arguments`."""
    threads = [int(v) for v in args.threads.split(",") if v.strip()]
    cases = list(all_cases)
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        cases = [c for c in all_cases if c.name in names]
    kwargs = dict(
        min_repeats=3 if args.quick else 7,
        target_s=0.5 if args.quick else 2.0,
        rounds=2 if args.quick else 3,
        use_torch=not args.no_torch,
        max_wait_s=args.max_wait if args.max_wait is not None else (5.0 if args.quick else 30.0),
        log=lambda m: print(m, flush=True),
    )
    return threads, cases, kwargs


def run_train(
    cases: Sequence[TrainCase] = TRAIN_CASES,
    threads: Sequence[int] = (1, 2),
    *,
    min_repeats: int = 7,
    target_s: float = 2.0,
    rounds: int = 3,
    use_torch: bool = True,
    quiet_threshold: float = 0.15,
    max_wait_s: float = 30.0,
    retries: int = 2,
    clock: str = "wall",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time a training step of every case at every thread count; JSON-ready dict.

    ``clock`` is "wall" or "cpu" (this process's CPU time, used for the one-thread rows
    only: meaningful at one thread on a machine that other processes keep busy).
    """
    from convscope.train.data_parallel import _TRIALS, tuning

    torch = optional_torch(use_torch)
    say = log or (lambda msg: None)
    results: dict = {"benchmark": "bench_train", "format": 1, "clock": clock, "threads": {}, "core_check": {}}
    for n in thread_blocks(threads, torch, results):
        rows = []
        for case in cases:
            cs_step, pt_step = make_steps(case, torch)
            # a run's first steps choose between the serial and the sharded step by timing
            # both (convscope.train.data_parallel.tuning); a training run does them once, so
            # they are warm-up here, as the fork of the worker processes is
            for _ in range(len(_TRIALS) + 2):
                cs_step()
            fns = {"convscope": cs_step}
            if pt_step is not None:
                fns["torch"] = pt_step
            if max_wait_s > 0:
                wait_quiet(quiet_threshold, max_wait_s)
            samples, load = measure_guarded(
                fns, min_repeats, target_s, 500, rounds,
                settle_s=0.1 if n > 1 and len(fns) > 1 else 0.0,
                quiet=quiet_threshold, max_wait_s=max_wait_s, retries=retries,
                clock=CLOCKS[clock if n == 1 else "wall"],
            )
            cs = summarize(samples["convscope"])
            pt = summarize(samples["torch"]) if "torch" in samples else None
            row = {
                "case": case.name, "arch": case.arch, "batch": case.batch, "threads": n,
                "clock": clock if n == 1 else "wall",
                "convscope": cs, "torch": pt,
                "convscope_images_s": case.batch / cs["median_ms"] * 1e3,
                "torch_images_s": case.batch / pt["median_ms"] * 1e3 if pt else None,
            }
            # images/s ratio convscope / PyTorch (>= 1: convscope is at least as fast)
            row["ratio"] = row["convscope_images_s"] / row["torch_images_s"] if pt else None
            row.update(load)
            choice = [t for t in tuning(cs_step.model) if t["task"] == "train"]  # type: ignore[attr-defined]
            row["data_parallel"] = choice[0] if choice else {"choice": "serial", "backend": "serial"}
            rows.append(row)
            say("  " + _row_text(row))
        results["threads"][str(n)] = {"rows": rows}
    return results


def _row_text(row: dict) -> str:
    pt = row["torch"]
    return (
        f"threads={row['threads']} {row['case']:<11} convscope {row['convscope']['median_ms']:8.2f} ms "
        f"({row['convscope_images_s']:7.0f} img/s)  PyTorch "
        + (f"{pt['median_ms']:8.2f} ms ({row['torch_images_s']:7.0f} img/s)  ratio {row['ratio']:.2f}" if pt else "-")
        + f"  other load {row.get('other_load') or 0:.2f}"
        + (f"  step: {_choice_text(row['data_parallel'])}" if row.get("data_parallel") else "")
    )


def step_cell(row: dict) -> str:
    dp = row.get("data_parallel") or {}
    return f"{dp['backend']} x{dp['shards']}" if dp.get("choice") == "sharded" else "serial"


def _choice_text(dp: dict) -> str:
    """Which step the measured choice kept, with its trial times."""
    if dp.get("choice") == "sharded":
        return f"{dp['backend']} x{dp['shards']} (trials {dp['sharded_ms']:.1f} vs serial {dp['serial_ms']:.1f} ms)"
    if dp.get("serial_ms") is not None:
        return f"serial (trials: sharded {dp['sharded_ms']:.1f} vs serial {dp['serial_ms']:.1f} ms)"
    return "serial"


def format_train(results: dict) -> str:
    """Markdown table of the training rows (images/s ratio: convscope / PyTorch)."""
    out = ["| threads | model | batch | convscope ms | PyTorch ms | convscope img/s | PyTorch img/s | ratio | clock "
           "| convscope step |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for n, block in results["threads"].items():
        for r in block["rows"]:
            pt = r["torch"]
            out.append(
                f"| {n} | {r['arch']} | {r['batch']} | {r['convscope']['median_ms']:.2f} | "
                f"{pt['median_ms']:.2f} | {r['convscope_images_s']:.0f} | {r['torch_images_s']:.0f} | "
                f"{r['ratio']:.2f} | {r.get('clock', 'wall')} | {step_cell(r)} |" if pt else
                f"| {n} | {r['arch']} | {r['batch']} | {r['convscope']['median_ms']:.2f} | - | "
                f"{r['convscope_images_s']:.0f} | - | - | {r.get('clock', 'wall')} | {step_cell(r)} |"
            )
    return "\n".join(out) + "\n"


def profile_step(case: TrainCase, steps: int = 20, top: int = 25, profiler: str = "cprofile") -> str:
    """A profile of ``steps`` convscope training steps (after one warm-up): cProfile's top
    functions by internal time, or pyinstrument's call tree (``profiler="pyinstrument"``,
    the sampling profiler the speed issue asks for; it must be installed)."""
    cs_step, _ = make_steps(case, None)
    cs_step()
    if profiler == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        for _ in range(steps):
            cs_step()
        prof.stop()
        return prof.output_text(unicode=False, color=False, show_all=False)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        cs_step()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__.split("\n")[0])
    add_common_arguments(p, "lenet b64,cifar b128")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall clock, or process CPU time (meaningful at 1 thread on a busy machine)")
    p.add_argument("--profile", metavar="ARCH:BATCH", help="print a profile of convscope's step instead")
    p.add_argument("--profiler", choices=["cprofile", "pyinstrument"], default="cprofile",
                   help="with --profile: cProfile (default) or pyinstrument's call tree")
    p.add_argument("--steps", type=int, default=20, help="with --profile: steps to profile (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    threads, cases, kwargs = common_options(args, TRAIN_CASES)
    if args.profile:
        arch, _, batch = args.profile.partition(":")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads[0]):
            print(profile_step(TrainCase(args.profile, arch, int(batch or 64)), steps=args.steps,
                               profiler=args.profiler))
        return 0
    results = run_train(cases, threads, clock=args.clock, **kwargs)
    results["removed_env"] = _env.removed_variables()
    print(format_train(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(_env.run_child("benchmarks.bench_train", sys.argv[1:]))
    sys.exit(main())
