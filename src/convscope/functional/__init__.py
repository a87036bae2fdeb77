"""Stateless forward and backward functions on NumPy arrays (channels first).

Each op is a pair ``op(...)`` / ``op_backward(dy, ...)``; the backward returns the
gradients of the forward's array inputs, in order. Where the forward finds something the
backward needs, a second public pair keeps it: ``max_pool_with_argmax`` /
``max_pool_with_argmax_backward`` (each window's chosen entry) and ``batch_norm(...,
return_stats=True)`` / ``batch_norm_backward(..., stats=...)`` (the statistics used).

Files: ``conv`` (the math) and ``conv_plan`` (its layout, chunks and threads), ``pool``
(max and average), ``blur_pool``, ``norm`` (batch normalisation), ``activation``,
``linear``, ``flatten``, ``loss``, ``windows`` (padding and window views) and ``reference``
(the same math as plain loops, the tests' oracle). Process-wide settings (threads, the
workspace budget, the array limit, caches, forced paths) are :mod:`convscope.settings`.
"""

from .activation import (
    erf,
    gelu,
    gelu_backward,
    hardsigmoid,
    hardsigmoid_backward,
    hardswish,
    hardswish_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu6,
    relu6_backward,
    relu_backward,
    relu_jacobian,
    sigmoid,
    sigmoid_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from .adaptive_pool import (
    adaptive_avg_pool,
    adaptive_avg_pool_backward,
    adaptive_max_pool,
    adaptive_max_pool_backward,
    adaptive_max_pool_with_argmax,
    adaptive_max_pool_with_argmax_backward,
)
from .blur_pool import binomial_filter, blur_pool, blur_pool_backward
from .conv import conv, conv_backward
from .flatten import flatten, flatten_backward
from .linear import linear, linear_backward
from .loss import cross_entropy, cross_entropy_backward, squared_loss, squared_loss_backward
from .norm import batch_norm, batch_norm_backward, batch_norm_relu, batch_norm_relu_backward
from .pool import (
    avg_pool,
    avg_pool_backward,
    max_pool,
    max_pool_backward,
    max_pool_with_argmax,
    max_pool_with_argmax_backward,
)
from .windows import get_workspace_budget, set_workspace_budget

__all__ = [
    "leaky_relu",
    "leaky_relu_backward",
    "log_softmax",
    "log_softmax_backward",
    "relu",
    "relu_backward",
    "relu_jacobian",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
    "binomial_filter",
    "blur_pool",
    "blur_pool_backward",
    "conv",
    "conv_backward",
    "flatten",
    "flatten_backward",
    "linear",
    "linear_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "squared_loss",
    "squared_loss_backward",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_relu",
    "batch_norm_relu_backward",
    "avg_pool",
    "avg_pool_backward",
    "max_pool",
    "max_pool_backward",
    "max_pool_with_argmax",
    "max_pool_with_argmax_backward",
    "get_workspace_budget",
    "set_workspace_budget",
    "erf", "gelu", "gelu_backward", "hardsigmoid", "hardsigmoid_backward", "hardswish",
    "hardswish_backward", "relu6", "relu6_backward", "silu", "silu_backward",
    "adaptive_avg_pool", "adaptive_avg_pool_backward", "adaptive_max_pool",
    "adaptive_max_pool_backward", "adaptive_max_pool_with_argmax",
    "adaptive_max_pool_with_argmax_backward",
]
