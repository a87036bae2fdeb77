"""The convscope error hierarchy.

Every error convscope raises for bad input is a :class:`ConvscopeError`. Each class also
subclasses the matching built-in exception, so generic handlers (``except ValueError``)
keep working. Messages follow one pattern: what was expected, what was received, and why
it matters (in the notes' vocabulary when arithmetic is involved). Warnings (training that
runs but goes nowhere) are :class:`ConvscopeWarning` subclasses.

Example:
    >>> from convscope.errors import ShapeError, ConvscopeError
    >>> issubclass(ShapeError, ValueError) and issubclass(ShapeError, ConvscopeError)
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "ConvscopeError",
    "ShapeError",
    "ConfigError",
    "ArgumentTypeError",
    "DTypeError",
    "StateError",
    "DataError",
    "CheckpointError",
    "NumericalError",
    "ResourceError",
    "MissingDependencyError",
    "ConvscopeWarning",
    "TrainingWarning",
    "import_optional",
]


class ConvscopeError(Exception):
    """Base class of every error convscope raises on purpose."""


class ShapeError(ConvscopeError, ValueError):
    """An array has the wrong number of axes, or sizes that do not fit together
    (channel mismatch, kernel larger than the padded input, ...)."""


class ConfigError(ConvscopeError, ValueError):
    """A hyperparameter has an invalid value (stride 0, negative padding, groups that
    do not divide the channels, unknown padding mode, ...)."""


class ArgumentTypeError(ConfigError, TypeError):
    """An argument has the wrong Python type (a string or float where an int belongs)."""


class DTypeError(ConvscopeError, TypeError):
    """An array has an unsupported dtype (integer, boolean, complex, object) or two
    arrays that must agree have different dtypes."""


class StateError(ConvscopeError, RuntimeError):
    """An object is used in the wrong order, e.g. backward before forward."""


class DataError(ConvscopeError, ValueError):
    """A dataset or image file is missing, truncated, corrupt or malformed."""


class CheckpointError(ConvscopeError, ValueError):
    """A model file is truncated, corrupt, of an unknown format version, or foreign."""


class NumericalError(ConvscopeError, FloatingPointError):
    """Training produced NaN or Inf in the loss or a gradient."""


class ResourceError(ConvscopeError, MemoryError):
    """The requested work would need more memory than the stated limit."""


class MissingDependencyError(ConvscopeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ConvscopeWarning(UserWarning):
    """Base class of every warning convscope gives (filter them with this class)."""


class TrainingWarning(ConvscopeWarning, RuntimeWarning):
    """Training runs but goes nowhere: the loss diverged or stalled far above its start,
    or the validation loss is not finite. The message names the likely cause."""


def import_optional(name: str, what: str, install: str, submodules: tuple[str, ...] = ()) -> ModuleType:
    """The optional package ``name`` (with its ``submodules`` imported), or a
    :class:`MissingDependencyError` saying that ``what`` needs it and how to ``install`` it.

    >>> import_optional("math", "demo", "pip install math").sqrt(4.0)
    2.0
    """
    try:
        module = importlib.import_module(name)
        for sub in submodules:
            importlib.import_module(f"{name}.{sub}")
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what} needs the optional package {name!r}, which could not be imported ({exc}). "
            f"Install the extra with: {install}"
        ) from None
    return module
