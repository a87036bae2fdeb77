"""Which input entries the windows read, and which they never read (Key Equation 54).

A window layer with kernel ``k``, stride ``s``, dilation ``d`` and padding ``p`` reads, along
one axis, the padded entries ``i*s + j*d`` for output ``i`` and tap ``j``. When ``s > k`` the
windows leave gaps (the notes: "we don't want our stride s to be larger than our filter of
size k", Key Equation 54); with dilation the taps themselves leave gaps; and when the last
window stops before the end (the floor of Key Equation 48) the last entries are never read
either. :func:`never_read` lists those entries and :func:`coverage_note` says it in a sentence.

Example:
    >>> never_read(11, 3, s=4)          # windows x[0:3], x[4:7], x[8:11]
    (3, 7)
    >>> print(coverage_note(11, 3, s=4))
    never read: x_4, x_8 (2 of 11 entries): the stride s = 4 is larger than the window k = 3, so the windows leave gaps (Key Equation 54 asks k >= s)
    >>> never_read(10, 3, s=2), never_read(64, 2, s=2)
    ((9,), ())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

__all__ = ["read_counts", "never_read", "coverage_note"]


def _pair(p: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(p, (tuple, list)):
        return int(p[0]), int(p[1])
    return int(cast(int, p)), int(cast(int, p))


def read_counts(n: int, k: int, p: int | Sequence[int] = 0, s: int = 1, d: int = 1) -> np.ndarray:
    """How many windows read each entry of the padded axis (length ``n + p_before + p_after``).

    >>> read_counts(5, 3).tolist()
    [1, 2, 3, 2, 1]
    """
    before, after = _pair(p)
    length = n + before + after
    span = d * (k - 1) + 1
    counts = np.zeros(max(length, 0), dtype=np.int64)
    if span > length:
        return counts
    outputs = (length - span) // s + 1
    for i in range(outputs):
        counts[i * s: i * s + span: d] += 1
    return counts


def never_read(n: int, k: int, p: int | Sequence[int] = 0, s: int = 1, d: int = 1) -> tuple[int, ...]:
    """0-based indices of the input entries (padding excluded) that no window reads.

    Args:
        n, k, s, d: input size, window size, stride, dilation along one axis.
        p: padding, int or ``(before, after)``.
    """
    before, _ = _pair(p)
    counts = read_counts(n, k, p, s, d)
    if counts.size == 0 or not counts.any():
        return tuple(range(n))
    inside = counts[before: before + n]
    return tuple(int(i) for i in np.flatnonzero(inside == 0))


def coverage_note(n: int, k: int, p: int | Sequence[int] = 0, s: int = 1, d: int = 1,
                  name: str = "x") -> str | None:
    """One sentence on the entries no window reads, with the reason; None when all are read."""
    missing = never_read(n, k, p, s, d)
    if not missing:
        return None
    shown = ", ".join(f"{name}_{i + 1}" for i in missing[:12]) + (", ..." if len(missing) > 12 else "")
    head = f"never read: {shown} ({len(missing)} of {n} entries)"
    before, _ = _pair(p)
    span = d * (k - 1) + 1
    reasons = []
    if s > span:
        reasons.append(f"the stride s = {s} is larger than the window k = {k}, so the windows leave "
                       f"gaps (Key Equation 54 asks k >= s)")
    elif d > 1 and s % d == 0 and s != 1:
        reasons.append(f"the dilated taps (d = {d}) and the stride s = {s} land on the same entries")
    counts = read_counts(n, k, p, s, d)
    last = int(np.flatnonzero(counts)[-1]) if counts.any() else -1
    if any(i + before > last for i in missing):
        reasons.append("the last window ends before the input does (the floor of Key Equation 48 "
                       "drops what is left)")
    if not reasons and d > 1:
        reasons.append(f"the dilated taps (d = {d}) skip entries")
    return head + ": " + "; ".join(reasons)
