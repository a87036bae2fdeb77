"""Process-wide settings of convscope that several modules read (no doctests here).

Kept in its own module so that the state is one object even when a module that uses it is
imported twice (pytest's ``--doctest-modules`` in importlib mode imports each source file
again under its own name).
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any


class ThreadState:
    """convscope's own thread count, its worker pool and the BLAS controllers."""

    def __init__(self) -> None:
        self.threads = 1
        self.pool: Any = None
        self.blas: list | None = None
        self.lock = threading.Lock()
        self.active = threading.local()  # .on inside a parallel region


THREADS = ThreadState()


#: The allocation plan of the innermost ``convscope.nn.init.dry_run`` block (None outside).
ALLOCATION_PLAN: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "convscope_allocation_plan", default=None
)
