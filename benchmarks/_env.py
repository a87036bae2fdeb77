"""The benchmark process's environment: a clean OpenBLAS setting, thread control, machine facts.

Nothing here imports NumPy at module level, because the environment has to be decided
*before* NumPy (and the OpenBLAS it loads) starts:

- This machine may set ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE``; with them OpenBLAS
  runs an older, slower kernel (PERF-NOTES.md). The benchmark entry point therefore
  re-executes itself in a child process with exactly those two variables removed
  (:func:`child_environ`). Tests and CI never do this: they keep the machine's setting.
- Thread counts are set inside one child with ``threadpoolctl`` when it is installed; without
  it the launcher runs one child per thread count with the usual ``*_NUM_THREADS`` variables.

>>> env = child_environ({"OPENBLAS_CORETYPE": "Haswell", "PATH": "/bin"}, threads=1)
>>> "OPENBLAS_CORETYPE" in env, env["OMP_NUM_THREADS"], removed_variables(env)
(False, '1', {'OPENBLAS_CORETYPE': 'Haswell'})
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "SLOW_BLAS_VARS",
    "THREAD_VARS",
    "CHILD_MARKER",
    "REPO_ROOT",
    "child_environ",
    "is_child",
    "removed_variables",
    "have_threadpoolctl",
    "run_child",
    "machine_info",
    "allocator_settings",
    "git_revision",
    "blas_info",
    "build_parser",
    "default_json_path",
    "in_checkout",
    "launch",
]

#: Variables that make NumPy's OpenBLAS pick a slower kernel on this machine.
SLOW_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Variables that set thread pools when threadpoolctl is not available.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Set in the child; holds (as JSON) the values of the variables that were removed.
CHILD_MARKER = "CONVSCOPE_BENCH_CHILD"
#: Repository root (the folder holding ``benchmarks/`` and ``src/``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def child_environ(base: dict | None = None, threads: int | None = None) -> dict:
    """A copy of ``base`` (default ``os.environ``) fit for the benchmark's own process.

    Removes :data:`SLOW_BLAS_VARS`, records what was removed under :data:`CHILD_MARKER`,
    puts the repository root on ``PYTHONPATH`` (so ``-m benchmarks`` works from anywhere)
    and, when ``threads`` is given, sets every variable of :data:`THREAD_VARS` to it.
    """
    env = dict(os.environ if base is None else base)
    removed = {name: env.pop(name) for name in SLOW_BLAS_VARS if name in env}
    env[CHILD_MARKER] = json.dumps(removed, sort_keys=True)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    if threads is not None:
        for name in THREAD_VARS:
            env[name] = str(int(threads))
    return env


def is_child(env: dict | None = None) -> bool:
    """True inside the re-executed benchmark process."""
    return CHILD_MARKER in (os.environ if env is None else env)


def removed_variables(env: dict | None = None) -> dict:
    """The slow-BLAS variables (name -> value) the launcher removed for this process."""
    raw = (os.environ if env is None else env).get(CHILD_MARKER)
    return json.loads(raw) if raw else {}


def have_threadpoolctl() -> bool:
    """Whether threadpoolctl is importable (checked without importing NumPy)."""
    return importlib.util.find_spec("threadpoolctl") is not None


def run_child(module: str, argv: list[str], threads: int | None = None) -> int:
    """Run ``python -m module *argv`` with :func:`child_environ`; return its exit status."""
    cmd = [sys.executable, "-m", module, *argv]
    return subprocess.call(cmd, env=child_environ(threads=threads))


def _lscpu() -> dict:
    try:
        text = subprocess.run(
            ["lscpu"],
            capture_output=True,
            text=True,
            timeout=10,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def machine_info() -> dict:
    """CPU model, core counts, cache sizes and OS, from ``lscpu`` where available."""
    cpu = _lscpu()
    flags = cpu.get("Flags", "").split()
    return {
        "cpu_model": cpu.get("Model name") or platform.processor() or "unknown",
        "cpu_family": cpu.get("CPU family"),
        "cpus": os.cpu_count(),
        "cores_per_socket": cpu.get("Core(s) per socket"),
        "threads_per_core": cpu.get("Thread(s) per core"),
        "hypervisor": cpu.get("Hypervisor vendor"),
        "l2_cache": cpu.get("L2 cache"),
        "l3_cache": cpu.get("L3 cache"),
        "simd": [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def allocator_settings() -> dict:
    """glibc malloc variables (they change whether big buffers are recycled; PERF-NOTES)."""
    return {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k.startswith("GLIBC_TUNABLES")}


def git_revision() -> str | None:
    """``HEAD`` of the repository, with ``+dirty`` when tracked files are modified (None for an
    installed copy: the folder it lies in may belong to another repository)."""
    if not in_checkout():
        return None
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def blas_info() -> list[dict]:
    """What threadpoolctl sees (library, version, kernel ``architecture``, threads).

    Call after NumPy (and PyTorch, if used) are imported; empty without threadpoolctl.
    """
    if not have_threadpoolctl():
        return []
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads")
    return [{k: entry.get(k) for k in keep if k in entry} for entry in threadpool_info()]


def _thread_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1,2; got {text!r}")
    return values


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks`` / ``convscope bench`` (parsed before NumPy loads).

    >>> build_parser().parse_args(["--quick", "--threads", "1,2", "--only", "A,B"]).threads
    [1, 2]
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time convscope's conv and pooling (forward, forward+backward) next to PyTorch.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter matmul-peak run")
    parser.add_argument(
        "--threads", type=_thread_list, default=[1, os.cpu_count() or 1] if (os.cpu_count() or 1) > 1 else [1],
        help="comma-separated thread counts (default: 1 and all CPUs)",
    )
    parser.add_argument("--only", help="comma-separated case names, e.g. A,B,3D,MP (default: all)")
    parser.add_argument("--json", help="where to write the results (default: benchmarks/results/bench_ops-<time>.json "
                        "in a checkout, ./bench_ops-<time>.json elsewhere)")
    parser.add_argument("--markdown", help="also write the tables as Markdown to this path")
    parser.add_argument("--render", metavar="JSON", help="print the tables of an earlier run instead of running")
    parser.add_argument("--repeats", type=int, help="minimum timed calls per measurement (default 7, quick 3)")
    parser.add_argument("--target-seconds", type=float, help="time to spend per measurement (default 1.0, quick 0.25)")
    parser.add_argument(
        "--max-wait", type=float,
        help="seconds to wait for other processes to go quiet before each measurement (default 30, quick 10; 0: never)",
    )
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="time 1-thread settings by wall clock (default) or by process CPU time (for a busy machine)",
    )
    parser.add_argument("--no-torch", action="store_true", help="time convscope alone")
    parser.add_argument(
        "--no-train", action="store_true",
        help="skip the training-step rows (benchmarks.bench_train; run only without --only)",
    )
    parser.add_argument(
        "--no-memory", action="store_true",
        help="skip the peak-memory rows (benchmarks.bench_memory; run only without --only)",
    )
    parser.add_argument("--thread-control", choices=["threadpoolctl", "env"], help=argparse.SUPPRESS)
    return parser


def in_checkout() -> bool:
    """Whether this package runs from the repository (not from an installed copy)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "src" / "convscope").is_dir()


def default_json_path() -> Path:
    """``benchmarks/results/bench_ops-<YYYYmmdd-HHMMSS>.json`` in a checkout (git-ignored; the runs
    quoted in BENCHMARKS.md are tracked beside them); ``./bench_ops-<...>.json`` for an installed copy."""
    name = time.strftime("bench_ops-%Y%m%d-%H%M%S.json")
    return REPO_ROOT / "benchmarks" / "results" / name if in_checkout() else Path.cwd() / name


def launch(module: str, argv: list[str], prog: str = "python -m benchmarks") -> int:
    """Re-execute the benchmark in a clean child process; return its exit status.

    With threadpoolctl one child runs every thread count. Without it, one child per thread
    count runs with the ``*_NUM_THREADS`` variables set, and their JSON files are merged.
    """
    args = build_parser(prog).parse_args(argv)  # reject bad options (and answer --help) here
    if args.render or have_threadpoolctl():
        return run_child(module, argv)
    final = Path(args.json) if args.json else default_json_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    merged: dict | None = None
    for n in args.threads:
        part = final.with_name(f"{final.stem}.threads{n}.json")
        rc = run_child(module, [*argv, "--threads", str(n), "--json", str(part), "--thread-control", "env"], threads=n)
        if rc != 0:
            return rc
        data = json.loads(part.read_text())
        part.unlink()
        if merged is None:
            merged = data
        else:
            merged["threads"].update(data["threads"])
            for when, check in data.get("core_check", {}).items():
                merged["core_check"][f"{when} ({n} threads run)"] = check
    final.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"merged results of {len(args.threads)} runs into {final}")
    return 0
