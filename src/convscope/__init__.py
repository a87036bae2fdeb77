"""convscope: convolutional neural networks you can see through.

Every op of the notes' CNN chapter (windows, filters, convolution, padding, stride,
pooling, activations, fully-connected layers, softmax) with its backward written out
explicitly, on a NumPy-only core.
"""

from . import data, errors, functional, io, nn, parallel, settings, shapes, train
from ._version import __version__
from .io import load, save
from .nn.summary import summary
from .parallel import get_num_threads, num_threads, set_num_threads

__all__ = ["errors", "settings", "shapes", "functional", "nn", "summary", "__version__"]
__all__ += ["io", "save", "load"]
__all__ += ["parallel", "set_num_threads", "get_num_threads", "num_threads"]

__all__ += ["data", "train"]

__all__ += ["export"]

#: Subpackages imported on first use (``convscope.export.to_onnx``, ``convscope.viz``), so
#: ``import convscope`` loads neither the exporters nor the drawing code.
_LAZY_SUBPACKAGES = ("export", "viz")


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
