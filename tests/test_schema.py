"""convscope.schema: the one checker for data read from files (type, range, depth)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from convscope import schema as sc
from convscope.errors import ArgumentTypeError, ConfigError


class Bad(ValueError):
    pass


def refused(value, schema, *words):
    with pytest.raises(Bad) as info:
        sc.validate(value, schema, "field", Bad)
    for word in words:
        assert word in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("value", ["abc", None, 2.5, True, -1, 2**70])
def test_int_refuses_other_types_and_ranges(value):
    refused(value, sc.Int(min=0, max=2**64), "field must be an int from 0 to")


def test_int_accepts_ints_and_numpy_ints():
    assert sc.validate(3, sc.Int(min=0), "f", Bad) == 3
    assert sc.validate(np.int64(3), sc.Int(min=0), "f", Bad) == 3


@pytest.mark.parametrize("value", ["1", None, True, float("nan"), float("inf"), -0.5, 0.0])
def test_float_refuses_non_numbers_non_finite_and_out_of_range(value):
    refused(value, sc.Float(positive=True), "must be a finite number > 0")


def test_float_options():
    assert sc.validate(float("nan"), sc.Float(finite=False), "f", Bad) != 0
    refused(1.0, sc.Float(min=0.0, below=1.0), "< 1.0")
    assert sc.validate(2, sc.Float(), "f", Bad) == 2


def test_str_list_map_object_nullable_oneof():
    refused("x" * 11, sc.Str(max_length=10))
    refused("rmsprop", sc.Str(choices=("sgd", "adam")), "one of 'sgd', 'adam'")
    refused("ABC", sc.Str(pattern="[0-9a-f]+"), "matching")
    refused([1, 2], sc.List(sc.Int(), min_items=3, max_items=3), "exactly 3")
    refused([1, "2", 3], sc.List(sc.Int()), "field[1] must be an int")
    refused({"a": 1, 2: 3}, sc.Map(sc.Int()), "non-str key")
    refused({"a": "x"}, sc.Map(sc.Int()), "field['a']")
    schema = sc.Object({"a": sc.Int(), "b": sc.Str()}, optional=("b",))
    assert sc.validate({"a": 1}, schema, "f", Bad) == {"a": 1}
    refused({"b": "x"}, schema, "lacks the entries ['a']")
    refused({"a": 1, "c": 2}, schema, "unexpected entry 'c'")
    refused([1], schema, "must be an object with the keys 'a', 'b'")
    loose = sc.Object({"a": sc.Int()}, extra=sc.Str())
    assert sc.validate({"a": 1, "z": "ok"}, loose, "f", Bad)
    refused({"a": 1, "z": 5}, loose, "field['z'] must be a str")
    assert sc.validate(None, sc.Nullable(sc.Int()), "f", Bad) is None
    refused("x", sc.Nullable(sc.Int()), "must be null or an int")
    refused({"a": "x"}, sc.Nullable(sc.Map(sc.Int())), "field['a'] must be an int")
    either = sc.OneOf(sc.Int(), sc.List(sc.Int()))
    assert sc.validate([1], either, "f", Bad) == [1]
    refused("x", either, "an int or a list")


def test_json_depth_counts_without_recursion_and_stops_at_the_limit():
    deep: list = []
    inner = deep
    for _ in range(100_000):  # far deeper than Python's recursion limit
        inner.append([])
        inner = inner[0]
    start = time.perf_counter()
    assert sc.json_depth(deep, limit=10**6) == 100_001
    assert sc.json_depth(deep) is None
    assert time.perf_counter() - start < 5
    cyclic: dict = {}
    cyclic["self"] = cyclic
    assert sc.json_depth(cyclic) is None
    assert sc.json_depth({"a": (1, 2)}) == 2
    assert sc.json_depth({"a": object()}) is None
    refused({"a": [[[]]]}, sc.Map(sc.JSON(max_depth=2)), "nested more than 2 levels")


def test_parse_json_refuses_deep_text_before_parsing():
    text = "[" * 5000 + "]" * 5000
    with pytest.raises(RecursionError):
        json.loads(text)  # what the check protects against
    with pytest.raises(Bad, match="nested 5000 levels deep; at most 100"):
        sc.parse_json(text, "spec.json", Bad)
    assert sc.text_depth('{"a": "[[[[", "b": "\\"[["}') == 1
    assert sc.parse_json("[" * 100 + "]" * 100, "ok", Bad) is not None


def test_parse_json_refuses_non_utf8_and_non_json():
    with pytest.raises(Bad, match="not UTF-8"):
        sc.parse_json(b'{"a": "\xff"}', "config.json", Bad)
    with pytest.raises(Bad, match="not valid JSON"):
        sc.parse_json(b"{nope", "config.json", Bad)


def test_read_json_reads_checks_and_bounds_the_size(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"epochs": 3}')
    schema = sc.Object({"epochs": sc.Int(min=1)})
    assert sc.read_json(path, schema, "c.json", Bad) == {"epochs": 3}
    path.write_text('[1, 2]')
    with pytest.raises(Bad, match="c.json must be an object"):
        sc.read_json(path, schema, "c.json", Bad)
    path.write_text('{"epochs": 3}' + " " * 100)
    with pytest.raises(Bad, match="larger than 50 bytes"):
        sc.read_json(path, schema, "c.json", Bad, max_bytes=50)
    with pytest.raises(Bad, match="could not be read"):
        sc.read_json(tmp_path, schema, "the folder", Bad)


def test_check_path_and_arguments():
    assert sc.check_path("a/b", "--out").name == "b"
    for bad in ("", "a\0b", None, b"a", 3):
        with pytest.raises(ArgumentTypeError, match="--out"):
            sc.check_path(bad, "--out")
    sc.check_arguments(["train", "--out", "x"], "convscope train")
    with pytest.raises(ArgumentTypeError, match="NUL"):
        sc.check_arguments(["--out", "x\0y"], "convscope train")
    assert issubclass(ArgumentTypeError, ConfigError)
