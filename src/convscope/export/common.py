"""What the ONNX and PyTorch exporters share: the error for a layer they cannot carry over."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError

__all__ = ["no_mapping_error", "unique_name"]


def no_mapping_error(op: str, engine: str, path: str, module: Any, kinds: Iterable[str],
                     after: str = ".") -> ConfigError:
    """The ConfigError for ``module`` (at dotted ``path``) whose layer kind ``engine`` has no
    counterpart for, listing the supported ``kinds``; ``after`` ends the message."""
    where = f"at {path!r} " if path else ""
    return ConfigError(
        f"{op}: the module {where}of type {type(module).__name__} has no {engine} mapping. "
        f"Supported layer kinds (Module.layer_kind): {', '.join(sorted(kinds))}{after}"
    )


def unique_name(base: str, used: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2`` ... the first not in ``used`` (which it joins)."""
    name, i = base, 1
    while name in used:
        name = f"{base}_{i}"
        i += 1
    used.add(name)
    return name
