"""Stateless forward and backward functions on NumPy arrays (channels first).

Each op is a pair ``op(...)`` / ``op_backward(dy, ...)``; the backward returns the
gradients of the forward's array inputs, in order.
"""

from .windows import get_workspace_budget, set_workspace_budget
from .conv import conv, conv_backward
