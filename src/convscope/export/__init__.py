"""Carry a convscope model to other engines: ONNX files and PyTorch modules.

* :func:`to_onnx` writes an ONNX graph of standard operators (run it in ONNX Runtime or any
  serving stack); needs ``pip install "convscope[onnx]"``.
* :func:`to_torch` builds a ``torch.nn.Module`` with the same weights (a
  ``torch.fx.GraphModule`` for an ``nn.Graph``), and :func:`from_torch` turns a
  ``torch.nn.Sequential`` of supported layers, or any module torch.fx traces to supported
  operations (:mod:`convscope.export.fx`), into a convscope model; both need
  ``pip install "convscope[torch]"``.
* :func:`from_onnx` reads an ONNX file into an ``nn.Graph``
  (:mod:`convscope.export.onnx_import`).

Neither ``onnx`` nor ``torch`` is imported until one of these functions is called, so
``import convscope`` works without them; a missing one raises
:class:`~convscope.errors.MissingDependencyError` naming the extra to install.
"""

from .onnx import to_onnx
from .onnx_import import from_onnx
from .torch import from_torch, to_torch

__all__ = ["to_onnx", "from_onnx", "to_torch", "from_torch"]
