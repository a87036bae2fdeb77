"""parse_array: what the CLI accepts as --input and --filter."""

import numpy as np
import pytest

from convscope.errors import DataError, DTypeError
from convscope.explain import parse_array


@pytest.mark.parametrize("text, expected", [
    ("1 1 -1", [1, 1, -1]),
    ("1, 1, -1", [1, 1, -1]),
    (" 0.5  -2e1 ", [0.5, -20]),
    ("[1, 3, -9]", [1, 3, -9]),
    ("[[1,3],[4,5]]", [[1, 3], [4, 5]]),
    ("1 2; 3 4", [[1, 2], [3, 4]]),
    ("1 2\n3 4", [[1, 2], [3, 4]]),
])
def test_text_forms(text, expected):
    a = parse_array(text)
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, expected)


def test_npy_and_images(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(parse_array(str(tmp_path / "x.npy")), np.arange(6.).reshape(2, 3))
    np.testing.assert_array_equal(parse_array(tmp_path / "x.npy"), np.arange(6.).reshape(2, 3))
    Image = pytest.importorskip("PIL.Image")
    gray = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    np.testing.assert_allclose(parse_array(str(tmp_path / "g.png")), gray / 255.0)
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    a = parse_array(str(tmp_path / "c.png"))
    assert a.shape == (3, 2, 3) and a[0].min() == 1.0 and a[1:].max() == 0.0


def test_errors(tmp_path):
    with pytest.raises(DataError, match="could not read 'x'"):
        parse_array("1 x 3")
    with pytest.raises(DataError, match="same number of entries"):
        parse_array("1 2; 3")
    with pytest.raises(DataError, match="rectangular"):
        parse_array("[[1, 2], [3]]")
    with pytest.raises(DataError, match="does not exist"):
        parse_array(str(tmp_path / "missing.npy"))
    with pytest.raises(DataError, match="empty"):
        parse_array("  ")
    (tmp_path / "notes.txt").write_text("1 2")
    with pytest.raises(DataError, match="suffix"):
        parse_array(str(tmp_path / "notes.txt"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        parse_array(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "c.npy", np.array([1 + 2j]))
    with pytest.raises(DTypeError):
        parse_array(str(tmp_path / "c.npy"))
    with pytest.raises(DataError, match="could not read"):
        (tmp_path / "bad.png").write_bytes(b"not a png")
        parse_array(str(tmp_path / "bad.png"))
