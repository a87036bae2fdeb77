"""Architecture specs: a model as a JSON-safe dict, and back, with no user code.

``to_spec(model)`` describes every module by its registered type name and its constructor
arguments (``module.config()``); containers add their children, in order::

    {"type": "Sequential", "config": {}, "children": {"0": {...}, "1": {...}}}

``from_spec(spec)`` rebuilds the same architecture (fresh weights; load a state dict to
restore them). Every convscope module class is registered under its class name; your own
modules can join with :func:`register`.

Example:
    >>> from convscope.nn import Sequential, Conv2d, ReLU
    >>> spec = to_spec(Sequential(Conv2d(1, 4, 3, padding=1, rng=0), ReLU()))
    >>> spec["children"]["0"]["type"], spec["children"]["0"]["config"]["padding"]
    ('Conv2d', [1, 1])
    >>> from_spec(spec)
    Sequential(
      (0): Conv2d(1, 4, kernel_size=(3, 3), padding=(1, 1))
      (1): ReLU()
    )
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ConvscopeError
from ..schema import MAX_DEPTH, json_depth
from . import init
from .module import Module

__all__ = ["register", "registered", "to_spec", "from_spec", "state_shapes"]

_REGISTRY: dict[str, type] = {}
M = TypeVar("M", bound=type)


def register(cls: M) -> M:
    """Class decorator: make ``cls`` rebuildable by :func:`from_spec` under its class name.

    The class needs ``config()`` (JSON-safe constructor arguments). A container also needs a
    classmethod ``from_config(config, children)`` taking the rebuilt children as a dict.

    Raises:
        ConfigError: another class is already registered under the same name.
    """
    name = cls.__name__
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls and (
        existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError(
            f"register: the type name {name!r} is already taken by "
            f"{existing.__module__}.{existing.__qualname__}; rename {cls.__module__}."
            f"{cls.__qualname__} so specs stay unambiguous."
        )
    _REGISTRY[name] = cls
    return cls


def registered() -> dict[str, type]:
    """A copy of the registry: type name -> class."""
    return dict(_REGISTRY)


def _check_json_safe(value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"to_spec: the config of {where} is not JSON-safe ({exc}).") from None


def to_spec(model: Module) -> dict[str, Any]:
    """The architecture of ``model`` as a nested, JSON-safe dict (no weights).

    Raises:
        ArgumentTypeError: ``model`` is not a Module.
        ConfigError: a module's class is not registered or its config is not JSON-safe.
    """
    return _to_spec(model, "model")


def _to_spec(module: Module, where: str) -> dict[str, Any]:
    if not isinstance(module, Module):
        raise ArgumentTypeError(
            f"to_spec: {where} must be a convscope Module; got {type(module).__name__}."
        )
    name = type(module).__name__
    if _REGISTRY.get(name) is not type(module):
        raise ConfigError(
            f"to_spec: {where} is a {name}, which is not registered, so a spec could not rebuild "
            f"it. Decorate the class with convscope.nn.spec.register."
        )
    config = module.config()
    _check_json_safe(config, f"{where} ({name})")
    spec: dict[str, Any] = {"type": name, "config": config}
    children = list(module.named_children())
    if children:
        spec["children"] = {
            child_name: _to_spec(child, f"{where}.{child_name}") for child_name, child in children
        }
    return spec


def from_spec(spec: dict[str, Any]) -> Module:
    """Rebuild a model from :func:`to_spec` output (fresh weights, default generator).

    Before anything is allocated the spec is checked for depth (at most
    :data:`convscope.schema.MAX_DEPTH` levels of JSON, what ``save`` writes) and built
    once as a dry run (:func:`convscope.nn.init.dry_run`): the parameters, gradients and
    buffers of the whole model together must fit in the array limit, so a small file
    describing gigabytes of layers is refused at once.

    Raises:
        ConfigError: unknown type name, malformed or too deeply nested spec, or
            constructor arguments the type does not accept (the message names the path
            in the spec).
        ResourceError: the model would take more memory than the array limit.
    """
    state_shapes(spec)
    return _from_spec(spec, "spec")


def state_shapes(spec: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """Shape and dtype of every entry of the state dict ``from_spec(spec)`` would have.

    Allocates none of the arrays (a dry run, see :func:`convscope.nn.init.dry_run`), so a
    loader can compare them with the arrays of a file before building anything. Returns
    None when a registered custom module cannot be built dry (its constructor writes into
    its initial weights, which are read-only placeholders in a dry run); such a model is
    then only checked when it is built.

    Raises:
        ConfigError, ResourceError: as :func:`from_spec`.

    Example:
        >>> from convscope.nn import Sequential, Linear
        >>> state_shapes(to_spec(Sequential(Linear(3, 2, rng=0))))
        {'0.weight': ((2, 3), dtype('float32')), '0.bias': ((2,), dtype('float32'))}
    """
    if json_depth(spec, limit=MAX_DEPTH) is None:
        raise ConfigError(
            f"from_spec: the spec is nested more than {MAX_DEPTH} levels deep (about "
            f"{MAX_DEPTH // 2} modules inside each other), contains itself, or holds values that "
            f"are not JSON data; convscope.save never writes such a spec."
        )
    with init.dry_run("") as _:
        try:
            model = _from_spec(spec, "spec")
        except ConvscopeError:
            raise
        except Exception:  # noqa: BLE001 - a custom constructor; the real build reports it
            return None
        shapes = {name: (p.data.shape, p.data.dtype) for name, p in model.named_parameters()}
        shapes.update({name: (np.shape(v), np.asarray(v).dtype) for name, v in model.named_buffers()})
    return shapes


def _from_spec(spec: Any, where: str) -> Module:
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ConfigError(
            f"from_spec: {where} must be a dict with a string 'type' (and 'config', "
            f"'children'); got {type(spec).__name__}"
            + (f" with keys {sorted(spec)}" if isinstance(spec, dict) else "") + "."
        )
    name = spec["type"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(
            f"from_spec: {where} has unknown type {name!r}. Known types: "
            f"{', '.join(sorted(_REGISTRY))}. A custom module must be registered with "
            f"convscope.nn.spec.register before loading."
        )
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"from_spec: {where}.config must be a dict; got {type(config).__name__}.")
    raw_children = spec.get("children", {})
    if not isinstance(raw_children, dict):
        raise ConfigError(
            f"from_spec: {where}.children must be a dict name -> spec; got "
            f"{type(raw_children).__name__}."
        )
    children = {
        str(k): _from_spec(v, f"{where}.children.{k}") for k, v in raw_children.items()
    }
    factory: Callable[..., Module] | None = getattr(cls, "from_config", None)
    if factory is None and children:
        raise ConfigError(f"from_spec: {where} ({name}) takes no children; got {sorted(children)}.")
    try:
        if factory is not None:
            return factory(config, children)
        return cls(**config)
    except ConvscopeError as exc:
        raise type(exc)(f"from_spec: {where} ({name}): {exc}") from None
    except TypeError as exc:
        raise ConfigError(
            f"from_spec: {where} ({name}) has arguments its constructor does not accept: "
            f"{exc}. Config was {config!r}."
        ) from None
