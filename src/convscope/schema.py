"""Check data read from files before it is used: type, range, size and nesting depth.

Everything convscope reads back from disk that is not an array (the JSON header of a
model or checkpoint file, an architecture spec, a run's ``config.json``, a model's
metadata) is checked against a declared schema by :func:`validate` before any code
uses it. A valid digest proves nothing about intent (anyone can recompute SHA-256), so
a field of the wrong type, out of range or nested too deep must become one clean error
naming the field, never a ``TypeError`` or ``RecursionError`` deep inside the code that
reads it.

A schema is a tree of small nodes:

========================================  ==============================================
``Int(min=, max=)``                       an int (not a bool) in a range
``Float(min=, max=, below=, positive=)``  a finite real number (ints accepted)
``Bool()``                                true or false (not 0 or 1)
``Str(max_length=, choices=, pattern=)``  a str, optionally one of ``choices``
``List(item, min_items=, max_items=)``    a list whose items match ``item``
``Object(fields, optional=, extra=)``     a dict with these keys (``extra``: the schema
                                          of other keys' values, or None to refuse them)
``Map(value)``                            a dict with str keys and values of one schema
``Nullable(schema)``                      None or ``schema``
``OneOf(*schemas)``                       the first schema that matches
``JSON(max_depth=)``                      any JSON value nested at most ``max_depth``
========================================  ==============================================

Depth is counted without recursion, and :func:`parse_json` measures the nesting of JSON
text *before* :func:`json.loads` (which recurses in C and raises ``RecursionError``
around depth 1,000), so a file nested 5,000 deep is refused in linear time.

Example:
    >>> schema = Object({"epoch": Int(min=0), "note": Nullable(Str())}, optional=("note",))
    >>> validate({"epoch": 3}, schema, "header", ValueError)
    {'epoch': 3}
    >>> validate({"epoch": "abc"}, schema, "header", ValueError)
    Traceback (most recent call last):
    ...
    ValueError: header['epoch'] must be an int >= 0; got the str 'abc'.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentTypeError

__all__ = [
    "MAX_DEPTH",
    "Schema",
    "Invalid",
    "Int",
    "Float",
    "Bool",
    "Str",
    "List",
    "Object",
    "Map",
    "Nullable",
    "OneOf",
    "JSON",
    "validate",
    "json_depth",
    "text_depth",
    "parse_json",
    "read_json",
    "check_path",
    "check_arguments",
]

#: Deepest nesting of JSON data that convscope writes and reads (``save`` refuses more).
MAX_DEPTH = 100

ErrorFactory = Callable[[str], BaseException]


def _show(value: Any) -> str:
    """A short description of a received value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return f"a {'dict' if isinstance(value, dict) else 'list'} of {len(value)} entries"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"the {type(value).__name__} {text}"


class Invalid(Exception):
    """Raised inside a check: the value at ``where`` does not match (see :func:`validate`)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


class Schema:
    """Base node: :meth:`check` returns the value or raises :class:`Invalid`."""

    def describe(self) -> str:
        raise NotImplementedError

    def matches(self, value: Any) -> bool:
        """True when :meth:`check` would accept ``value`` (used by :class:`OneOf`)."""
        try:
            self.check(value, "value")
        except Invalid:
            return False
        return True

    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, where: str) -> Invalid:
        return Invalid(where, f"{where} must be {self.describe()}; got {_show(value)}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


class Int(Schema):
    """An int (bools refused) with optional bounds ``min <= value <= max``."""

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"an int from {self.min} to {self.max}"
        if self.min is not None:
            return f"an int >= {self.min}"
        if self.max is not None:
            return f"an int <= {self.max}"
        return "an int"

    def check(self, value: Any, where: str) -> Any:
        if not _is_int(value) or (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise self.fail(value, where)
        return value


class Float(Schema):
    """A real number (ints accepted) in ``[min, max]``; ``positive``: above 0.

    ``finite=False`` also accepts NaN and the infinities (a metric that was NaN).
    """

    def __init__(self, min: float | None = None, max: float | None = None, positive: bool = False,
                 finite: bool = True, below: float | None = None) -> None:
        self.min, self.max, self.positive, self.finite, self.below = min, max, positive, finite, below

    def describe(self) -> str:
        parts = ["a finite number" if self.finite else "a number"]
        if self.positive:
            parts.append("> 0")
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        if self.below is not None:
            parts.append(f"< {self.below}")
        return " and ".join(parts).replace("number and", "number", 1)

    def check(self, value: Any, where: str) -> Any:
        ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
        if ok:
            v = float(value)
            ok = (math.isfinite(v) or not self.finite) and not (self.positive and v <= 0) and not (
                self.min is not None and v < self.min) and not (self.max is not None and v > self.max) and not (
                self.below is not None and v >= self.below)
        if not ok:
            raise self.fail(value, where)
        return value


class Bool(Schema):
    """``True`` or ``False`` (not 0 or 1)."""

    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, bool):
            raise self.fail(value, where)
        return value


class Str(Schema):
    """A str of at most ``max_length`` characters, optionally one of ``choices``."""

    def __init__(self, max_length: int = 10_000, choices: Iterable[str] | None = None,
                 pattern: str | None = None) -> None:
        self.max_length = max_length
        self.choices = None if choices is None else tuple(choices)
        self.pattern = None if pattern is None else re.compile(pattern)

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.pattern is not None:
            return f"a str matching {self.pattern.pattern!r}"
        return f"a str of at most {self.max_length} characters"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or len(value) > self.max_length or (
            self.choices is not None and value not in self.choices) or (
            self.pattern is not None and not self.pattern.fullmatch(value)
        ):
            raise self.fail(value, where)
        return value


class List(Schema):
    """A list of items matching ``item``, with ``min_items <= len <= max_items``."""

    def __init__(self, item: Schema, min_items: int = 0, max_items: int = 1_000_000) -> None:
        self.item, self.min_items, self.max_items = item, min_items, max_items

    def describe(self) -> str:
        if self.min_items == self.max_items:
            count = f"exactly {self.min_items}"
        elif self.min_items:
            count = f"{self.min_items} to {self.max_items}"
        else:
            count = f"at most {self.max_items}"
        return f"a list of {count} items, each {self.item.describe()}"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, list) or not self.min_items <= len(value) <= self.max_items:
            raise self.fail(value, where)
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]")
        return value


class Object(Schema):
    """A dict with the keys of ``fields`` (those in ``optional`` may be absent).

    Other keys are refused, unless ``extra`` is a schema: then their values must match it.
    """

    def __init__(self, fields: Mapping[str, Schema], optional: Iterable[str] = (),
                 extra: Schema | None = None) -> None:
        self.fields, self.optional, self.extra = dict(fields), frozenset(optional), extra

    def describe(self) -> str:
        keys = ", ".join(repr(k) for k in self.fields)
        return f"an object with the keys {keys}" if keys else "an object"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise self.fail(value, where)
        missing = [k for k in self.fields if k not in value and k not in self.optional]
        if missing:
            raise Invalid(where, f"{where} lacks the entries {missing}; expected {self.describe()}.")
        for key, item in value.items():
            schema = self.fields.get(key, self.extra) if isinstance(key, str) else None
            if schema is None:
                raise Invalid(
                    where, f"{where} has the unexpected entry {str(key)[:60]!r}; expected {self.describe()}."
                )
            schema.check(item, f"{where}[{key!r}]")
        return value


class Map(Schema):
    """A dict with str keys (at most ``max_items``) whose values all match ``value``."""

    def __init__(self, value: Schema, max_items: int = 1_000_000) -> None:
        self.value, self.max_items = value, max_items

    def describe(self) -> str:
        return f"an object whose values are each {self.value.describe()}"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict) or len(value) > self.max_items:
            raise self.fail(value, where)
        for key, item in value.items():
            if not isinstance(key, str):
                raise Invalid(where, f"{where} has the non-str key {key!r}.")
            self.value.check(item, f"{where}[{key!r}]")
        return value


class Nullable(Schema):
    """None (JSON null) or a value matching ``schema``."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def describe(self) -> str:
        return f"null or {self.schema.describe()}"

    def check(self, value: Any, where: str) -> Any:
        if value is None:
            return value
        try:
            return self.schema.check(value, where)
        except Invalid as exc:
            if exc.where == where:  # the value itself, not one of its entries
                raise self.fail(value, where) from None
            raise


class OneOf(Schema):
    """A value matching one of ``schemas`` (tried in order)."""

    def __init__(self, *schemas: Schema) -> None:
        self.schemas = schemas

    def describe(self) -> str:
        return " or ".join(s.describe() for s in self.schemas)

    def check(self, value: Any, where: str) -> Any:
        for schema in self.schemas:
            if schema.matches(value):
                return value
        raise self.fail(value, where)


class JSON(Schema):
    """Any JSON value (dict, list, str, number, bool, null) nested at most ``max_depth``."""

    def __init__(self, max_depth: int = MAX_DEPTH) -> None:
        self.max_depth = max_depth

    def describe(self) -> str:
        return f"JSON data nested at most {self.max_depth} levels"

    def check(self, value: Any, where: str) -> Any:
        depth = json_depth(value, limit=self.max_depth)
        if depth is None:
            raise Invalid(where, f"{where} is not JSON data or is nested more than {self.max_depth} levels deep.")
        return value


def validate(value: Any, schema: Schema, where: str, error: ErrorFactory) -> Any:
    """``value`` checked against ``schema``; raises ``error(message)`` naming the field.

    Args:
        value: data parsed from a file.
        schema: what it must look like.
        where: how to name the value in the message (``"header"``, ``"config.json"``).
        error: the exception class (or factory) to raise, e.g. ``CheckpointError``.

    Returns:
        ``value`` itself, unchanged.
    """
    try:
        return schema.check(value, where)
    except Invalid as exc:
        raise error(str(exc)) from None


_SCALARS = (str, int, float, bool, type(None))


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int | None:
    """Nesting depth of JSON data (a scalar is 0, ``[]`` is 1), walked without recursion.

    Tuples count as lists (the json module writes them as arrays).

    Returns None when the value holds something that is not JSON data, contains itself,
    or is nested more than ``limit`` levels (the walk stops there).

    >>> json_depth({"a": [1, {"b": None}]}), json_depth(3), json_depth([[[]]], limit=2)
    (3, 0, None)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
            if not all(isinstance(k, str) for k in item):
                return None
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            return None
        depth += 1
        if depth > limit:
            return None
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (strings skipped), without parsing it.

    >>> text_depth('{"a": [1, "[[[", {"b": []}]}')
    4
    """
    skeleton = _JSON_STRING.sub("0", text).encode("ascii", errors="replace")
    if not skeleton:
        return 0
    codes = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(max(np.cumsum(steps).max(), 0))


def parse_json(data: bytes | str, where: str, error: ErrorFactory, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON from a file, refusing undecodable text and deep nesting first.

    Args:
        data: the file's bytes (decoded as UTF-8) or text.
        where: how to name the source in messages (``"config.json of the run"``).
        error: the exception class to raise.
        max_depth: the deepest nesting accepted, measured before parsing.

    Raises:
        ``error``: not UTF-8, not JSON, or nested more than ``max_depth`` levels.

    >>> parse_json(b'{"a": [1, 2]}', "example", ValueError)
    {'a': [1, 2]}
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where} is not UTF-8 text ({exc}).") from None
    else:
        text = data
    depth = text_depth(text)
    if depth > max_depth:
        raise error(
            f"{where} is nested {depth} levels deep; at most {max_depth} are allowed (convscope "
            f"never writes deeper data)."
        )
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{where} is nested too deeply to parse.") from None
    except ValueError as exc:
        raise error(f"{where} is not valid JSON ({exc}).") from None


def read_json(path: Path, schema: Schema, where: str, error: ErrorFactory, *,
              max_bytes: int = 64 * 2**20) -> Any:
    """Read a small JSON file, then check it with :func:`parse_json` and :func:`validate`.

    Args:
        path: the file.
        schema: what its content must look like.
        where: how to name it in messages.
        error: the exception class to raise.
        max_bytes: the largest file read (settings and metadata files are small).

    Raises:
        ``error``: unreadable, larger than ``max_bytes``, not UTF-8 JSON, too deeply
            nested, or not matching ``schema``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{where} could not be read ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:
        raise error(f"{where} is larger than {max_bytes} bytes; such files are small.")
    return validate(parse_json(data, where, error), schema, where, error)


def path_or_none(path: Any) -> Path | None:
    """``path`` as a Path when it is a non-empty str or ``os.PathLike`` without NUL characters, else None.

    >>> path_or_none("runs/a").name, path_or_none(b"runs/a"), path_or_none("a\\0b")
    ('a', None, None)
    """
    if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes):
        text = os.fspath(path)
        if isinstance(text, str) and text and "\0" not in text:
            return Path(text)
    return None


def check_path(path: Any, what: str) -> Path:
    """``path`` as a Path, or an :class:`~convscope.errors.ArgumentTypeError` naming ``what``.

    Accepts a non-empty str or ``os.PathLike`` without NUL characters (the operating
    system cannot look up a name containing one).

    >>> check_path("runs/a", "--out").name
    'a'
    """
    checked = path_or_none(path)
    if checked is not None:
        return checked
    raise ArgumentTypeError(
        f"{what}: a path must be a non-empty str or pathlib.Path without NUL characters; got "
        f"{str(path)[:200]!r}."
    )


def check_arguments(values: Sequence[str], what: str) -> None:
    """Refuse command-line arguments holding a NUL character (no file name can hold one)."""
    for value in values:
        if isinstance(value, str) and "\0" in value:
            raise ArgumentTypeError(
                f"{what}: the argument {value[:200]!r} contains a NUL character (\\0); no file "
                f"name or option value can hold one."
            )
