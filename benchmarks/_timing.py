"""Timing machinery for the benchmarks: repeats and statistics, machine load, matmul peak.

Everything here measures wall-clock time with ``time.perf_counter`` (or, on request, this
process's CPU time, see :data:`CLOCKS`) and knows nothing about convscope or PyTorch;
:mod:`benchmarks.bench_ops` feeds it callables.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "geometric_mean",
    "summarize",
    "CLOCKS",
    "time_once",
    "CpuMonitor",
    "wait_quiet",
    "measure",
    "measure_guarded",
    "matmul_peak",
    "core_check",
]


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def geometric_mean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive numbers; None for an empty input.

    >>> geometric_mean([0.5, 2.0]), geometric_mean([])
    (1.0, None)
    """
    vals = [float(v) for v in values]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def summarize(seconds: Sequence[float]) -> dict:
    """Median, quartiles, minimum (all in ms), count, and spread = IQR / median.

    >>> s = summarize([0.001, 0.002, 0.003, 0.004, 0.005])
    >>> s["median_ms"], s["p25_ms"], s["p75_ms"], s["n"], round(s["spread"], 3)
    (3.0, 2.0, 4.0, 5, 0.667)
    """
    ms = np.sort(np.asarray(seconds, dtype=np.float64)) * 1e3
    median = float(np.median(ms))
    p25, p75 = (float(v) for v in np.percentile(ms, [25, 75]))
    return {
        "median_ms": median,
        "p25_ms": p25,
        "p75_ms": p75,
        "min_ms": float(ms[0]),
        "n": int(ms.size),
        "spread": (p75 - p25) / median if median > 0 else 0.0,
    }


#: ``wall``: elapsed time (the measurement). ``cpu``: CPU time of the whole process (all its
#: threads). At one thread on a machine shared with other work, CPU time leaves out the time
#: the process waited for a core, so it still estimates the single-thread cost; it is
#: meaningless at several threads, where idle pool threads spin.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_once(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds one call of ``fn`` takes on ``clock``."""
    t0 = clock()
    fn()  # the result is dropped (and freed) inside the timed region, for both libraries
    return clock() - t0


class CpuMonitor:
    """How much CPU other processes (and the hypervisor, as steal time) used meanwhile.

    Reads the machine-wide counters of ``/proc/stat`` and subtracts this process's own CPU
    time (all its threads, from ``os.times``). The result is in CPUs: 0.0 means nobody else
    ran, 1.0 means one core's worth of foreign work competed with the benchmark. None where
    ``/proc/stat`` is unavailable.
    """

    _tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def snapshot() -> tuple | None:
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
        steal = fields[7] if len(fields) > 7 else 0
        own = os.times()
        return time.perf_counter(), user + nice + system + irq + softirq, steal, own.user + own.system

    @classmethod
    def other_load(cls, start: tuple | None, stop: tuple | None) -> float | None:
        if start is None or stop is None or stop[0] <= start[0]:
            return None
        wall = stop[0] - start[0]
        busy = (stop[1] - start[1]) / cls._tick - (stop[3] - start[3])
        steal = (stop[2] - start[2]) / cls._tick
        return max(0.0, (busy + steal) / wall)


def wait_quiet(threshold: float, max_wait_s: float, probe_s: float = 0.3) -> float:
    """Sleep until other processes use under ``threshold`` CPUs (at most ``max_wait_s``).

    Returns the seconds waited.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        start = CpuMonitor.snapshot()
        time.sleep(probe_s)
        load = CpuMonitor.other_load(start, CpuMonitor.snapshot())
        if load is None or load < threshold:
            break
    return time.perf_counter() - t0


def measure(
    fns: dict[str, Callable[[], object]],
    min_repeats: int,
    target_s: float,
    max_repeats: int,
    rounds: int,
    settle_s: float = 0.0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time each callable, interleaving them in ``rounds`` blocks (order alternating).

    Each callable first runs once untimed (first-touch page faults, lazy initialisation);
    then ``max(min_repeats, target_s / estimate)`` timed calls (capped at ``max_repeats``)
    are spread over the rounds, so slow drifts of the machine hit both libraries alike.
    ``settle_s`` of sleep before each block lets the other library's idle worker threads
    stop spinning (OpenBLAS and OpenMP busy-wait for a while after their last task).
    """
    counts = {}
    for name, fn in fns.items():
        fn()
        estimate = time_once(fn, clock)
        wanted = math.ceil(target_s / max(estimate, 1e-7))
        counts[name] = max(min_repeats, min(max_repeats, wanted))
    rounds = max(1, min(rounds, min(counts.values())))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            order = list(fns) if r % 2 == 0 else list(fns)[::-1]
            for name in order:
                if settle_s > 0:
                    time.sleep(settle_s)
                share = counts[name] // rounds + (1 if r < counts[name] % rounds else 0)
                for _ in range(share):
                    samples[name].append(time_once(fns[name], clock))
    finally:
        if enabled:
            gc.enable()
    return samples


def measure_guarded(
    fns, min_repeats, target_s, max_repeats, rounds, settle_s, quiet, max_wait_s, retries, clock=time.perf_counter
):
    """:func:`measure`, waiting for a quiet machine first and retrying when others ran.

    Returns the samples of the attempt with the least foreign CPU load, and a dict with
    that load (in CPUs), the number of attempts and the seconds spent waiting.
    """
    best = None
    waited = 0.0
    attempts = 0
    for _ in range(retries + 1):
        attempts += 1
        if max_wait_s > 0:
            waited += wait_quiet(quiet, max_wait_s)
        start = CpuMonitor.snapshot()
        samples = measure(fns, min_repeats, target_s, max_repeats, rounds, settle_s, clock)
        load = CpuMonitor.other_load(start, CpuMonitor.snapshot())
        if best is None or (load is not None and best[1] is not None and load < best[1]):
            best = (samples, load)
        if load is None or load < quiet:
            break
    quiet_enough = bool(best[1] is None or best[1] < quiet)
    return best[0], {"other_load": best[1], "attempts": attempts, "waited_s": waited, "quiet": quiet_enough}


# --------------------------------------------------------------------------------------
# Machine checks
# --------------------------------------------------------------------------------------


def matmul_peak(
    sizes: Sequence[int] = (1024, 2048, 3072),
    repeats: int = 5,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Measured float32 ``np.matmul`` rate on square matrices, best size's median (GFLOP/s).

    Runs under whatever thread limit is active.
    """
    rng = np.random.default_rng(seed)
    by_size = {}
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=out)
        times = [time_once(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), clock) for _ in range(max(1, repeats))]
        by_size[str(n)] = 2.0 * n**3 / float(np.median(times)) / 1e9
    best = max(by_size, key=by_size.get)
    return {"gflops": by_size[best], "size": int(best), "by_size": by_size}


def core_check(loops: int = 640, size: int = 1 << 16, repeats: int = 7) -> dict:
    """Are two cores free? Time a GIL-free NumPy loop on one Python thread, then on two.

    Each thread runs the same ``np.exp`` loop (ufuncs release the GIL), so with two free
    cores two threads take as long as one: ``speedup = 2 * t_one / t_two`` is near 2.
    It drops towards 1 when the host takes the second vCPU (PERF-NOTES.md). The arrays are
    small enough (256 KiB each) to stay in each core's L2 cache: with 4 MiB arrays the loop
    is bound by shared memory bandwidth and two threads look slow on an idle 16-core machine.
    """
    rng = np.random.default_rng(1)
    a = rng.standard_normal(size, dtype=np.float32)
    outs = [np.empty_like(a), np.empty_like(a)]

    def work(out: np.ndarray) -> None:
        for _ in range(loops):
            np.exp(a, out=out)

    def one() -> float:
        return time_once(lambda: work(outs[0]))

    def two() -> float:
        threads = [threading.Thread(target=work, args=(out,)) for out in outs]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    one(), two()  # warm-up: page faults, thread creation, clock ramp-up
    t_one = float(np.median([one() for _ in range(repeats)]))
    t_two = float(np.median([two() for _ in range(repeats)]))
    speedup = 2.0 * t_one / t_two
    return {
        "one_thread_ms": t_one * 1e3,
        "two_threads_ms": t_two * 1e3,
        "speedup": speedup,
        "both_free": bool(speedup >= 1.7),
    }
