"""``python -m benchmarks``: re-execute without the slow OpenBLAS settings, then run the suite.

The first process only parses the options and starts a child whose environment lacks
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (NumPy is never imported before that); the
child, marked by ``CONVSCOPE_BENCH_CHILD``, imports NumPy and times the suite.
"""

import sys

from benchmarks import _env

if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(_env.launch("benchmarks", sys.argv[1:]))
    from benchmarks.bench_ops import main

    sys.exit(main())
