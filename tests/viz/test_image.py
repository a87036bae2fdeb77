"""convscope.viz.image: colour maps and the NumPy PNG encoder (decoded back with Pillow)."""

import base64
import io
import zlib

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, ShapeError
from convscope.viz.image import colorize, colormap_png, data_uri, png_bytes, value_range

PIL = pytest.importorskip("PIL.Image", reason="Pillow (the test extra) decodes the PNGs")


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 2), (16, 16)])
@pytest.mark.parametrize("grey", [False, True])
def test_png_decodes_to_the_same_pixels(shape, grey):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, size=shape if grey else (*shape, 3), dtype=np.uint8)
    for palette in (True, False):
        img = PIL.open(io.BytesIO(png_bytes(a, palette=palette)))
        img.load()
        assert img.mode == ("L" if grey else "P" if palette and shape[0] * shape[1] > 64 else "RGB")
        assert img.size == (shape[1], shape[0])
        np.testing.assert_array_equal(np.asarray(img.convert("L" if grey else "RGB")), a)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks as (kind, body), each CRC checked."""
    pos, out = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        out.append((kind, body))
        pos += 12 + length
    return out


@pytest.mark.parametrize("cmap", ["diverging", "sequential", "gray"])
def test_a_colour_mapped_picture_is_a_palette_png_with_exactly_the_rgb_pixels(cmap):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 56)) * 3.0
    a[0, 0], a[1, 1], a[2, 2] = np.nan, np.inf, -np.inf
    a = a if cmap == "diverging" else np.abs(a)
    rgb = colorize(a, cmap)
    data = png_bytes(rgb)
    chunks = dict(_chunks(data))
    assert chunks[b"IHDR"][8:10] == bytes([8, 3])                   # 8 bits per pixel, colour type 3
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(chunks[b"PLTE"]) == 3 * len(colours) <= 3 * 256
    assert len(zlib.decompress(chunks[b"IDAT"])) == 40 * (1 + 56)   # one byte per pixel (+ a filter byte per row)
    img = PIL.open(io.BytesIO(data))
    img.load()
    assert img.mode == "P"
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), rgb)
    direct = PIL.open(io.BytesIO(png_bytes(rgb, palette=False)))
    assert direct.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img.convert("RGB")), np.asarray(direct))
    assert len(data) < len(png_bytes(rgb, palette=False))


def test_more_than_256_colours_stay_rgb_and_tiny_pictures_keep_the_shorter_file():
    many = np.arange(300 * 3, dtype=np.int64).reshape(20, 15, 3).astype(np.uint8)
    many[..., 2] = np.arange(300).reshape(20, 15) // 256         # 300 distinct colours
    img = PIL.open(io.BytesIO(png_bytes(many)))
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), many)
    tile = colorize(np.array([[-1.0, 0.5, 0.0], [0.25, 1.0, -0.5], [0.1, 0.2, 0.3]]), "diverging")
    data = png_bytes(tile)
    assert len(data) <= len(png_bytes(tile, palette=False))
    np.testing.assert_array_equal(np.asarray(PIL.open(io.BytesIO(data)).convert("RGB")), tile)


def test_png_chunks_carry_valid_crcs():
    direct = png_bytes(np.zeros((2, 2, 3), np.uint8), palette=False)
    assert [kind for kind, _ in _chunks(direct)] == [b"IHDR", b"IDAT", b"IEND"]
    indexed = png_bytes(np.zeros((16, 16, 3), np.uint8))
    assert [kind for kind, _ in _chunks(indexed)] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]


def test_data_uri_round_trip():
    a = colorize(np.arange(6.0).reshape(2, 3), "sequential")
    uri = data_uri(a)
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
    with pytest.raises(ArgumentTypeError, match="palette must be True or False"):
        png_bytes(np.zeros((2, 2, 3), np.uint8), palette="yes")


@pytest.mark.parametrize("cmap", ["diverging", "sequential", "gray"])
def test_colours_sit_on_255_steps_of_the_scale_within_half_a_step_of_the_continuous_map(cmap):
    from convscope._display import ANCHORS, LEVELS

    a = np.linspace(-1.0 if cmap == "diverging" else 0.0, 1.0, 5001)[None]
    rgb = colorize(a, cmap).reshape(-1, 3).astype(int)
    assert LEVELS == 255 and len(np.unique(rgb, axis=0)) <= LEVELS
    t = (a[0] - a[0, 0]) / (a[0, -1] - a[0, 0])
    anchors = ANCHORS[cmap]
    steps = np.linspace(0.0, 1.0, len(anchors))
    exact = np.stack([np.interp(t, steps, anchors[:, k]) for k in range(3)], axis=1)
    slope = np.abs(np.diff(anchors, axis=0)).max() * (len(anchors) - 1)    # colour units per unit of t
    assert np.abs(rgb - exact).max() <= slope / (2 * (LEVELS - 1)) + 0.5
    assert rgb[0].tolist() == anchors[0].tolist() and rgb[-1].tolist() == anchors[-1].tolist()
    if cmap == "diverging":
        assert rgb[2500].tolist() == [255, 255, 255]                          # 0 is still exactly white


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
@pytest.mark.parametrize("bpp", [1, 3])
def test_each_png_row_filter_decodes_to_the_raw_bytes(kind, bpp):
    from convscope.viz.image import _chunk, _residuals

    rng = np.random.default_rng(kind * 10 + bpp)
    h, w = 13, 17
    raw = rng.integers(0, 256, size=(h, w * bpp), dtype=np.uint8)
    raw[4:] = np.cumsum(raw[4:] // 32, axis=1, dtype=np.uint8)        # smooth rows too, with wrap-around
    body = np.concatenate([np.full((h, 1), kind, np.uint8), _residuals(raw.astype(np.int16), bpp, kind)], axis=1)
    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0 if bpp == 1 else 2, 0, 0, 0])
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(body.tobytes()))
            + _chunk(b"IEND", b""))
    img = PIL.open(io.BytesIO(data))
    img.load()
    np.testing.assert_array_equal(np.asarray(img).reshape(h, -1), raw)


@pytest.mark.parametrize("cmap", ["diverging", "sequential", "gray"])
def test_colormap_png_is_colorize_exactly_with_the_palette_in_the_scales_order(cmap):
    from convscope._display import scale_colours

    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.sin(xx / 9.0) + np.cos(yy / 7.0)                        # a smooth map: a row filter pays
    noise = np.random.default_rng(5).standard_normal((48, 64))
    for name, a in (("smooth", smooth), ("noise", noise), ("tiny", smooth[:3, :4])):
        a = a if cmap == "diverging" else a - a.min()
        lo, hi = (-1.5, 1.5) if cmap == "diverging" else (0.0, 3.0)    # values beyond clip to the ends
        data = colormap_png(a, cmap, lo, hi)
        img = PIL.open(io.BytesIO(data))
        img.load()
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), colorize(a, cmap, lo, hi))
        if name == "tiny":
            continue
        assert len(data) <= len(png_bytes(colorize(a, cmap, lo, hi)))   # a palette in colour order
        assert img.mode == "P"
        chunks = dict(_chunks(data))
        plte = np.frombuffer(chunks[b"PLTE"], np.uint8).reshape(-1, 3)
        scale = scale_colours(cmap)
        steps = [int(np.flatnonzero((scale == c).all(axis=1))[0]) for c in plte]
        assert steps == sorted(steps)                                    # the palette follows the scale
        filters = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(48, 65)[:, 0]
        if name == "smooth":
            assert filters.min() >= 1, filters                          # a smooth map is row-filtered


def test_data_uri_takes_png_bytes_and_refuses_other_bytes():
    png = colormap_png(np.arange(12.0).reshape(3, 4))
    assert data_uri(png) == "data:image/png;base64," + base64.b64encode(png).decode()
    with pytest.raises(ShapeError, match="bytes of a PNG file"):
        data_uri(b"GIF89a")
    with pytest.raises(ConfigError, match="colormap_png: cmap must be one of"):
        colormap_png(np.zeros((2, 2)), "jet")
