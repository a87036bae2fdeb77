"""Built-in architectures: shapes and parameter counts by hand, other inputs, specs, recipes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convscope import nn
from convscope.errors import ConfigError, DataError, ShapeError
from convscope.models import ARCHITECTURES, RECIPES, build_model, check_fits, default_arch, recipe_for

# Parameter counts by hand: conv c_out*(c_in*k*k)+c_out, linear out*in+out, BN 2*c.
DIGITS = (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 256 + 128) + (10 * 128 + 10)
LENET = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 400 + 120) + (84 * 120 + 84) + (10 * 84 + 10)
CIFAR = (
    32 * 3 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32      # block 1: two convs without bias + BN
    + 64 * 32 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64   # block 2
    + 128 * 64 * 9 + 2 * 128                        # block 3
    + 10 * (128 * 4 * 4) + 10                       # fc
)


@pytest.mark.parametrize("name, count", [("digits", DIGITS), ("lenet", LENET), ("cifar", CIFAR)])
def test_parameter_counts_and_output_shapes(name, count):
    model = build_model(name, seed=0)
    shape = ARCHITECTURES[name].input_shape
    assert model.num_parameters() == count
    assert model.output_shape((5, *shape)) == (5, 10)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    assert model(x).shape == (2, 10)


def test_lenet_is_lenet_5_with_61706_parameters():
    assert LENET == 61_706


def test_same_seed_same_weights_and_num_classes():
    a, b = build_model("digits", seed=3), build_model("digits", seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)
    c = build_model("digits", seed=4)
    assert not np.array_equal(a[0].weight.data, c[0].weight.data)
    assert build_model("digits", num_classes=4).output_shape((1, 1, 8, 8)) == (1, 4)


def test_architectures_adapt_to_other_image_sizes():
    assert build_model("lenet", input_shape=(1, 32, 32)).output_shape((1, 1, 32, 32)) == (1, 10)
    assert build_model("cifar", input_shape=(1, 28, 28)).output_shape((1, 1, 28, 28)) == (1, 10)
    assert build_model("digits", input_shape=(3, 16, 16), dtype=np.float64)[0].weight.dtype == np.float64


def test_an_image_too_small_for_the_blocks_shows_the_arithmetic():
    with pytest.raises(ShapeError, match="'lenet' does not fit images of shape \\(1, 8, 8\\)"):
        build_model("lenet", input_shape=(1, 8, 8))


def test_bad_names_and_arguments():
    with pytest.raises(ConfigError, match="unknown architecture 'vgg'"):
        build_model("vgg")
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("digits", input_shape=(8, 8))
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("digits", num_classes=0)
    with pytest.raises(ConfigError, match="seed"):
        build_model("digits", seed=-1)


def test_build_from_a_spec_file(tmp_path):
    spec = nn.to_spec(build_model("lenet", seed=0))
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(spec))
    a, b = build_model(path, seed=5), build_model(str(path), seed=5)
    assert nn.to_spec(a) == spec
    assert np.array_equal(a[0].weight.data, b[0].weight.data)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="could not read the architecture spec"):
        build_model(bad)
    bad.write_text(json.dumps({"type": "Nope"}))
    with pytest.raises(ConfigError, match="is not valid.*unknown type 'Nope'"):
        build_model(bad)


def test_default_arch_and_recipes():
    assert default_arch((1, 8, 8)) == "digits"
    assert default_arch((1, 28, 28)) == "lenet"
    assert default_arch((3, 32, 32)) == "cifar"
    assert default_arch((3, 64, 48)) == "cifar"
    assert recipe_for("digits") is RECIPES["digits"]
    assert recipe_for("CIFAR-10") is RECIPES["cifar10"] and recipe_for("fashion_mnist") is RECIPES["fashion-mnist"]
    assert recipe_for("some/folder") is RECIPES["folder"]
    for name, recipe in RECIPES.items():
        assert recipe.arch is None or recipe.arch in ARCHITECTURES, name
        assert recipe.optimizer in ("adam", "sgd") and recipe.schedule in ("cosine", "onecycle", "constant")
        json.dumps(recipe.to_dict())


def test_check_fits():
    model = build_model("digits")
    check_fits(model, (1, 8, 8), 10, "digits")
    with pytest.raises(DataError, match="has 3 classes"):
        check_fits(model, (1, 8, 8), 3, "a folder")
    with pytest.raises(ShapeError, match="does not fit"):
        check_fits(build_model("lenet"), (3, 28, 28), 10, "a folder")
