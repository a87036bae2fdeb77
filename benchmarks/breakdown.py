"""Where convscope's convolution spends its time: exclusive time per helper, per suite case.

Run from the repository root (same clean OpenBLAS environment as the benchmark)::

    python -m benchmarks.breakdown --only B,D,H --threads 1

Every function and class method of ``convscope.functional.conv`` and its machinery
``convscope.functional.conv_plan`` (window copy, col2im, padding, ...) and a few NumPy entry
points it calls (``matmul``, ``zeros``, ``empty``, ``add``, ``ascontiguousarray``) are wrapped
with a timer while the case runs; each gets its *exclusive* time (its own time minus that of
wrapped calls inside it), so the parts add up to the whole. Time spent in array methods
(``.sum``, ``.reshape``, slicing) counts towards the function that calls them. The wrapping
adds a few microseconds per call, so the total is a little above the benchmark's figure. The
modules are restored afterwards.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from types import FunctionType

from . import _env

__all__ = ["Tracer", "traced_conv_module", "breakdown", "main"]

_NUMPY_NAMES = ("matmul", "zeros", "empty", "add", "ascontiguousarray", "einsum", "copyto")


class Tracer:
    """Exclusive wall time and call counts of wrapped callables.

    >>> tr = Tracer()
    >>> outer = tr.wrap("outer", lambda f: f() + 1)
    >>> inner = tr.wrap("inner", lambda: 1)
    >>> outer(inner), sorted(tr.calls.items())
    (2, [('inner', 1), ('outer', 1)])
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self._stack: list[float] = []
        self.exclusive: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t0 = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = self.clock() - t0
                children = self._stack.pop()
                self.exclusive[name] += elapsed - children
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1] += elapsed

        timed.__wrapped__ = fn
        return timed

    def reset(self) -> None:
        self.exclusive.clear()
        self.calls.clear()


class _NumpyProxy:
    """Stands in for ``np`` inside the traced module: selected functions timed, rest passed."""

    def __init__(self, np_module, tracer: Tracer) -> None:
        self._np = np_module
        for name in _NUMPY_NAMES:
            if hasattr(np_module, name):
                setattr(self, name, tracer.wrap(f"np.{name}", getattr(np_module, name)))

    def __getattr__(self, name):
        return getattr(self._np, name)


#: The modules whose functions and class methods are timed: the math and its machinery.
MODULES = ("convscope.functional.conv", "convscope.functional.conv_plan")


@contextmanager
def traced_conv_module(tracer: Tracer):
    """Temporarily wrap the functions, class methods and ``np`` of ``functional.conv`` and
    ``functional.conv_plan``; yields the ``conv`` module."""
    import importlib

    # Not `import convscope.functional.conv as mod`: the package re-exports a function of
    # that name, which shadows the submodule in attribute lookup.
    mods = [importlib.import_module(name) for name in MODULES]

    saved_globals, saved_methods = [], []
    for mod in mods:
        for name, value in list(vars(mod).items()):
            if isinstance(value, FunctionType):  # its own helpers and imported ones (pad, ...)
                saved_globals.append((mod, name, value))
            elif isinstance(value, type) and value.__module__ == mod.__name__:
                for attr, member in list(vars(value).items()):
                    if isinstance(member, FunctionType):
                        saved_methods.append((value, attr, member))
    try:
        for mod, name, fn in saved_globals:
            setattr(mod, name, tracer.wrap(name, fn))
        for cls, attr, fn in saved_methods:
            setattr(cls, attr, tracer.wrap(f"{cls.__name__}.{attr}", fn))
        for mod in mods:
            mod.np = _NumpyProxy(sys.modules["numpy"], tracer)
        yield mods[0]
    finally:
        for mod in mods:
            mod.np = sys.modules["numpy"]
        for mod, name, fn in saved_globals:
            setattr(mod, name, fn)
        for cls, attr, fn in saved_methods:
            setattr(cls, attr, fn)


def breakdown(case, repeats: int = 5, clock=time.perf_counter) -> dict:
    """Exclusive time per part (ms per call, averaged over ``repeats``) of conv and conv_backward."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.x_shape, dtype=np.float32)
    w = rng.standard_normal(case.w_shape, dtype=np.float32)
    b = rng.standard_normal(case.c_out, dtype=np.float32)
    dy = rng.standard_normal(case.y_shape, dtype=np.float32)
    tracer = Tracer(clock)
    out = {}
    with traced_conv_module(tracer) as mod:
        conv, conv_backward = mod.conv, mod.conv_backward
        for label, call in (
            ("fwd", lambda: conv(x, w, b, stride=case.s, padding=case.p)),
            ("bwd", lambda: conv_backward(dy, x, w, stride=case.s, padding=case.p)),
        ):
            call()  # warm-up: first-touch of buffers
            tracer.reset()
            t0 = clock()
            for _ in range(repeats):
                call()
            total = (clock() - t0) / repeats * 1e3
            parts = {k: v / repeats * 1e3 for k, v in sorted(tracer.exclusive.items(), key=lambda kv: -kv[1])}
            calls = {k: tracer.calls[k] // repeats for k in parts}
            out[label] = {"total_ms": total, "parts_ms": parts, "calls": calls}
    return out


def _print(case, result: dict) -> None:
    print(f"{case.name}  {case.label}")
    for label, res in result.items():
        total = res["total_ms"]
        print(f"  {label}: {total:.2f} ms per call")
        for name, ms in res["parts_ms"].items():
            if ms >= 0.01 * total:
                print(f"    {name:<28} {ms:8.2f} ms  {100 * ms / total:5.1f}%  ({res['calls'][name]} calls)")


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated conv case names (default: every conv case)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall clock, or process CPU time (meaningful at 1 thread on a busy machine)",
    )
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from ._timing import CLOCKS
    from .bench_ops import SUITE, SUITE_BY_NAME

    names = args.only.split(",") if args.only else [c.name for c in SUITE if c.op == "conv"]
    print(f"removed env: {_env.removed_variables() or 'none'}; blas: {_env.blas_info()}")
    with threadpool_limits(limits=args.threads):
        for name in names:
            case = SUITE_BY_NAME[name.strip()]
            _print(case, breakdown(case, args.repeats, CLOCKS[args.clock]))
    return 0


if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(_env.run_child("benchmarks.breakdown", sys.argv[1:]))
    sys.exit(main())
