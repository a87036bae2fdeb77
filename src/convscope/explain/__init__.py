"""The notes made executable: every computation of the CNN chapter traced step by step.

Each feature is a function returning a result object; its fields hold the numbers and its
``text()`` (also ``str()``) is the printable report that ``convscope explain ...`` shows.

* :func:`trace_conv` - every window ``v_i``, ``f . v_i + f_0`` and ``y_i`` (Key Equation 15).
* :func:`trace_pool` - every receptive field with its max and one-hot derivative (or mean, blur).
* :func:`explain_shape`, :func:`explain_params` - output sizes (Key Equation 48, both forms)
  and parameter counts (weight sharing versus a fully-connected layer).
* :func:`parse_array` - ``"1 1 -1"``, ``"[[1,3],[4,5]]"``, ``.npy`` or image files as arrays.

Example:
    >>> from convscope.explain import parse_array, trace_conv
    >>> t = trace_conv(parse_array("1 1 -1 -1 -1 1 -1 1 1 1"), parse_array("1 -1 1"))
    >>> t.y
    array([-1.,  1., -1.,  1., -3.,  3., -1.,  1.])
"""

from .parse import parse_array
from .trace import ConvStep, ConvTrace, trace_conv
from .pool_trace import PoolStep, PoolTrace, trace_pool
from .derive import AxisSize, ParamsExplanation, ShapeExplanation, explain_params, explain_shape

__all__ = [
    "parse_array",
    "trace_conv",
    "ConvTrace",
    "ConvStep",
    "trace_pool",
    "PoolTrace",
    "PoolStep",
    "explain_shape",
    "ShapeExplanation",
    "AxisSize",
    "explain_params",
    "ParamsExplanation",
]
