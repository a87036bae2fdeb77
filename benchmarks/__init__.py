"""convscope's benchmarks: speed measured side by side with PyTorch, never in tests.

``python -m benchmarks`` (from the repository root) runs :mod:`benchmarks.bench_ops`:
convolution and pooling, forward and forward+backward, on the suite of issues 2 and 4, at
one thread and at all threads. This package imports nothing heavy: the entry point must
prepare the process environment before NumPy loads (see :mod:`benchmarks._env`).
"""
