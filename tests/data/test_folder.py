"""Image folders: generated PNGs, splits, resizing, corrupt files, oversized images."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from convscope.data import load_dataset, load_image_folder, read_image_folder
from convscope.errors import ConfigError, DataError, MissingDependencyError

Image = pytest.importorskip("PIL.Image")


def _folder(root, classes=("cat", "dog"), per_class=5, size=(4, 6), mode="L", seed=0):
    """Write per_class PNGs per class; return {path: array} of what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = size if mode == "L" else size + (3,)
            array = rng.integers(0, 256, size=shape, dtype=np.uint8)
            path = root / cls / f"{i:02d}.png"
            Image.fromarray(array, mode=mode).save(path)
            written[path] = array
    return written


def test_gray_folder_pixels_labels_and_order(tmp_path):
    written = _folder(tmp_path)
    pixels, labels, classes = read_image_folder(tmp_path)
    assert classes == ("cat", "dog") and pixels.shape == (10, 1, 4, 6)
    assert labels.tolist() == [0] * 5 + [1] * 5
    for i, array in enumerate(written.values()):  # written in sorted order
        np.testing.assert_array_equal(pixels[i, 0], array)


def test_rgb_and_mixed_folders(tmp_path):
    written = _folder(tmp_path / "rgb", mode="RGB", per_class=2)
    pixels, _, _ = read_image_folder(tmp_path / "rgb")
    assert pixels.shape == (4, 3, 4, 6)
    np.testing.assert_array_equal(pixels[0], next(iter(written.values())).transpose(2, 0, 1))
    # A gray image among color ones is repeated into three channels.
    _folder(tmp_path / "mixed", classes=("a",), per_class=1, mode="RGB")
    gray = np.full((4, 6), 77, np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "mixed" / "a" / "zz.png")
    pixels, _, _ = read_image_folder(tmp_path / "mixed")
    assert pixels.shape == (2, 3, 4, 6) and (pixels[1] == 77).all()


def test_hidden_and_non_image_files_are_skipped(tmp_path):
    _folder(tmp_path, per_class=1)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"junk")
    (tmp_path / ".cache").mkdir()
    pixels, labels, classes = read_image_folder(tmp_path)
    assert len(pixels) == 2 and classes == ("cat", "dog")


def test_split_without_and_with_train_test_folders(tmp_path):
    _folder(tmp_path / "flat", per_class=5)
    train = load_dataset(tmp_path / "flat", split="train")
    test = load_dataset(str(tmp_path / "flat"), split="test")
    assert (len(train), len(test)) == (8, 2) and test.class_counts().tolist() == [1, 1]
    np.testing.assert_array_equal(load_image_folder(tmp_path / "flat", "test").pixels, test.pixels)
    whole = load_image_folder(tmp_path / "flat")
    assert len(whole) == 10 and whole.split is None
    _folder(tmp_path / "split" / "train", per_class=3, seed=1)
    _folder(tmp_path / "split" / "test", per_class=2, seed=2)
    assert len(load_dataset(tmp_path / "split", split="train")) == 6
    assert len(load_dataset(tmp_path / "split", split="test")) == 4


def test_different_sizes_need_image_size(tmp_path):
    _folder(tmp_path, classes=("a",), per_class=1, size=(4, 6))
    Image.new("L", (5, 5)).save(tmp_path / "a" / "z.png")
    with pytest.raises(DataError, match=r"4x6 \(height x width\).*5x5.*image_size"):
        read_image_folder(tmp_path)
    pixels, _, _ = read_image_folder(tmp_path, image_size=(3, 2))
    assert pixels.shape == (2, 1, 3, 2)
    assert read_image_folder(tmp_path, image_size=4)[0].shape == (2, 1, 4, 4)
    with pytest.raises(ConfigError, match="image_size"):
        read_image_folder(tmp_path, image_size=(0, 3))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "text"])
def test_corrupt_image_names_the_file(tmp_path, damage):
    _folder(tmp_path, classes=("a",), per_class=2, size=(16, 16))
    bad = tmp_path / "a" / "01.png"
    blob = bad.read_bytes()
    if damage == "truncated":
        bad.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        bad.write_bytes(blob[:40] + bytes(range(256)) * 2)
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_text("hello")
    with pytest.raises(DataError, match=r"could not read image .*01\.png"):
        read_image_folder(tmp_path)


def test_oversized_image_is_refused_before_decoding(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (300, 200)).save(tmp_path / "a" / "big.png")  # compresses to a few hundred bytes
    with pytest.raises(DataError, match=r"300x200 = 60000 pixels, more than max_pixels=1000"):
        read_image_folder(tmp_path, max_pixels=1000)


def test_unsupported_mode(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint16) + 1000).save(tmp_path / "a" / "deep.png")
    with pytest.raises(DataError, match="mode 'I;16'"):
        read_image_folder(tmp_path)


def test_folder_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no sub-folders"):
        read_image_folder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        read_image_folder(tmp_path)


def test_without_pillow_names_the_extra(tmp_path, monkeypatch):
    _folder(tmp_path, per_class=1)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[train\]"'):
        read_image_folder(tmp_path)
