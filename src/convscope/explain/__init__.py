"""The notes made executable: every computation of the CNN chapter traced step by step.

Each feature is a function returning a result object; its fields hold the numbers and its
``text()`` (also ``str()``) is the printable report that ``convscope explain ...`` shows.

* :func:`trace_conv` - every window ``v_i``, ``f . v_i + f_0`` and ``y_i`` (Key Equation 15).
* :func:`trace_pool` - every receptive field with its max and one-hot derivative (or mean, blur).
* :func:`explain_shape`, :func:`explain_model_shapes`, :func:`explain_params` - output sizes
  (Key Equation 48, both forms), the shape walk through a model, parameter counts (weight
  sharing versus a fully-connected layer).
* :func:`conv_weight_jacobian`, :func:`relu_jacobian`, :func:`maxpool_jacobian`,
  :func:`chain_9_32` - the derivatives of section 9.4 as matrices, and the chain (9.32).
* :func:`conv_as_matrix`, :func:`compose`, :func:`filter_bank_demo` - convolution is linear
  (9.1.14) and the filter-bank story (9.1.11-9.1.12).
* :func:`receptive_field` - receptive field and jump per layer, the input region of a pixel.
* :func:`shift_consistency`, :func:`per_shift_probability` - Concept 59 measured (Zhang 2019).
* :func:`make_exercise`, :func:`check_answer`, :func:`exercise_sheet` - exercises with random
  small integers, solved by the traces above, marked entry by entry, as sheets (text, HTML, LaTeX).
* :func:`trace_filter_bank` - m filters in parallel, m output channels (9.11).
* :func:`never_read` / :func:`coverage_note` - entries no window reads (Key Equation 54).
* :func:`centred_indexing` - taps numbered from the centre (Clarification 16).
* :func:`route_max_pool` - the max-pool derivative as the routing of ``dy`` (9.35).
* :func:`parse_array` - ``"1 1 -1"``, ``"[[1,3],[4,5]]"``, ``.npy`` or image files as arrays.

Example:
    >>> from convscope.explain import parse_array, trace_conv
    >>> t = trace_conv(parse_array("1 1 -1 -1 -1 1 -1 1 1 1"), parse_array("1 -1 1"))
    >>> t.y
    array([-1.,  1., -1.,  1., -3.,  3., -1.,  1.])
"""

from .bank import FilterBankTrace, trace_filter_bank
from .coverage import coverage_note, never_read
from .derive import (
    AxisSize,
    ModelShapes,
    ParamsExplanation,
    ShapeExplanation,
    explain_model_shapes,
    explain_params,
    explain_shape,
)
from .exercise import Exercise, make_exercise
from .exercise_check import CheckResult, check_answer
from .exercise_sheet import ExerciseSheet, exercise_sheet
from .indexing import CentredIndexing, centred_indexing
from .jacobian import Chain932, Jacobian, chain_9_32, conv_weight_jacobian, maxpool_jacobian, relu_jacobian
from .linear_view import (
    Composition,
    ConvMatrix,
    FilterBankDemo,
    compose,
    conv_as_matrix,
    filter_bank_demo,
)
from .parse import parse_array
from .pool_trace import PoolStep, PoolTrace, trace_pool
from .receptive import ReceptiveField, ReceptiveRow, receptive_field
from .routing import PoolRouting, route_max_pool
from .shift import ShiftConsistency, ShiftCurve, per_shift_probability, shift_consistency, shift_images
from .trace import ConvStep, ConvTrace, trace_conv

__all__ = [
    "parse_array",
    "trace_conv", "ConvTrace", "ConvStep",
    "trace_pool", "PoolTrace", "PoolStep",
    "explain_shape", "ShapeExplanation", "AxisSize",
    "explain_model_shapes", "ModelShapes",
    "explain_params", "ParamsExplanation",
    "conv_weight_jacobian", "relu_jacobian", "maxpool_jacobian", "chain_9_32", "Jacobian", "Chain932",
    "conv_as_matrix", "ConvMatrix", "compose", "Composition", "filter_bank_demo", "FilterBankDemo",
    "receptive_field", "ReceptiveField", "ReceptiveRow",
    "make_exercise", "Exercise", "check_answer", "CheckResult", "exercise_sheet", "ExerciseSheet",
    "shift_consistency", "ShiftConsistency", "per_shift_probability", "ShiftCurve", "shift_images",
    "trace_filter_bank", "FilterBankTrace", "never_read", "coverage_note", "centred_indexing",
    "CentredIndexing", "route_max_pool", "PoolRouting",
]
