"""convscope.viz.image: colour maps and the NumPy PNG encoder (decoded back with Pillow)."""

import io
import zlib

import numpy as np
import pytest

from convscope.errors import ConfigError, ShapeError
from convscope.viz.image import colorize, data_uri, png_bytes, value_range

PIL = pytest.importorskip("PIL.Image", reason="Pillow (the test extra) decodes the PNGs")


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 2), (16, 16)])
@pytest.mark.parametrize("grey", [False, True])
def test_png_decodes_to_the_same_pixels(shape, grey):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, size=shape if grey else (*shape, 3), dtype=np.uint8)
    img = PIL.open(io.BytesIO(png_bytes(a)))
    img.load()
    assert img.mode == ("L" if grey else "RGB")
    assert img.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(img), a)


def test_png_chunks_carry_valid_crcs():
    data = png_bytes(np.zeros((2, 2, 3), np.uint8))
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        kinds.append(kind)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_data_uri_round_trip():
    a = colorize(np.arange(6.0).reshape(2, 3), "sequential")
    uri = data_uri(a)
    import base64
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png_bytes(a)


def test_diverging_is_white_at_zero_red_positive_blue_negative():
    rgb = colorize(np.array([[-2.0, 0.0, 2.0, 1.0]]), "diverging")
    neg, zero, pos, half = (rgb[0, i].astype(int) for i in range(4))
    assert zero.tolist() == [255, 255, 255]
    assert pos[0] > pos[2] + 100          # red
    assert neg[2] > neg[0] + 100          # blue
    # symmetric scale: +1 is lighter than +2 but still reddish
    assert half.sum() > pos.sum() and half[0] > half[2]


def test_gray_maps_ends_to_black_and_white_and_explicit_limits_clip():
    rgb = colorize(np.array([0.0, 0.5, 1.0]), "gray")
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 2].tolist() == [255, 255, 255]
    clipped = colorize(np.array([-5.0, 5.0]), "gray", vmin=0.0, vmax=1.0)
    assert clipped[0, 0].tolist() == [0, 0, 0] and clipped[0, 1].tolist() == [255, 255, 255]


def test_value_range_constant_and_nonfinite():
    assert value_range(np.full(4, 3.0), "sequential") == (2.5, 3.5)
    assert value_range(np.zeros(3), "diverging") == (-1.0, 1.0)
    assert value_range(np.array([np.nan, -4.0, np.inf]), "diverging") == (-4.0, 4.0)
    rgb = colorize(np.array([np.nan, np.inf, -np.inf, 1.0]), "sequential")
    assert rgb.dtype == np.uint8


def test_errors_name_what_was_expected():
    with pytest.raises(ConfigError, match="cmap must be one of"):
        colorize(np.zeros((2, 2)), "jet")
    with pytest.raises(ShapeError, match=r"1-D or 2-D.*\(2, 2, 2\)"):
        colorize(np.zeros((2, 2, 2)))
    with pytest.raises(ShapeError, match="uint8"):
        png_bytes(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ShapeError, match=r"\(H, W, 3\)"):
        png_bytes(np.zeros((2, 2, 4), np.uint8))
