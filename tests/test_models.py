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

RESNET = (
    16 * 3 * 9 + 2 * 16                                                     # stem conv1-bn1
    + 2 * (16 * 16 * 9 + 2 * 16)                                            # layer1.0 (identity shortcut)
    + 32 * 16 * 9 + 32 * 32 * 9 + 2 * 2 * 32 + 32 * 16 + 2 * 32             # layer2.0 + 1x1 projection
    + 64 * 32 * 9 + 64 * 64 * 9 + 2 * 2 * 64 + 64 * 32 + 2 * 64             # layer3.0 + 1x1 projection
    + 10 * 64 + 10                                                          # fc after global avg pool
)


@pytest.mark.parametrize("name, count", [("digits", DIGITS), ("lenet", LENET), ("cifar", CIFAR),
                                         ("resnet", RESNET)])
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


# ------------------------------------------------------------------------ training setup


def _stripes(n: int = 40, channels: int = 1):
    from convscope.data import Dataset

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, channels, 8, 8), dtype=np.uint8)
    pixels[:, 0] = 7  # channel 0 without spread: divided by 1, not by 0
    return Dataset(pixels, rng.integers(0, 2, n), ["a", "b"], "stripes", split="train")


def test_build_training_follows_the_recipe():
    from dataclasses import replace

    from convscope import optim
    from convscope.data import Compose, RandomCrop, RandomHorizontalFlip, RandomShift
    from convscope.models import build_training

    train = _stripes(channels=2)
    mean, std = train.channel_stats()
    model = build_model("digits", input_shape=(2, 8, 8), num_classes=2, seed=0)
    recipe = replace(RECIPES["cifar10"], epochs=3, batch_size=16)
    setup = build_training(recipe, model, train)
    assert setup.steps == 3 * 3  # ceil(40 / 16) batches per epoch
    assert isinstance(setup.optimizer, optim.SGD)
    assert (setup.optimizer.lr, setup.optimizer.weight_decay) == pytest.approx(
        (0.05 / 25, 5e-4), rel=1e-6)  # one-cycle starts at max_lr / 25
    assert isinstance(setup.scheduler, optim.OneCycleLR)
    assert setup.optimizer.param_names == [name for name, _ in model.named_parameters()]
    assert setup.eval_transform.mean.tolist() == pytest.approx(list(mean))
    assert setup.eval_transform.std.tolist() == pytest.approx([1.0, std[1]])
    assert isinstance(setup.transform, Compose)
    kinds = [type(t) for t in setup.transform.transforms]
    assert kinds == [RandomCrop, RandomHorizontalFlip, type(setup.eval_transform)]
    setup = build_training(replace(RECIPES["mnist"], epochs=2, batch_size=40), model, train)
    assert isinstance(setup.optimizer, optim.Adam) and setup.optimizer.lr == pytest.approx(2e-3)
    assert isinstance(setup.scheduler, optim.CosineAnnealingLR) and setup.steps == 2
    assert [type(t) for t in setup.transform.transforms] == [RandomShift, type(setup.eval_transform)]
    setup = build_training(replace(RECIPES["folder"], schedule="constant"), model, train)
    assert setup.scheduler is None and setup.transform is setup.eval_transform
    setup = build_training(replace(RECIPES["cifar10"], schedule="constant"), model, train)
    assert setup.scheduler is None and setup.optimizer.momentum == 0.9


def test_build_training_refuses_unknown_names():
    from dataclasses import replace

    from convscope.models import build_training

    model = build_model("digits", input_shape=(1, 8, 8), num_classes=2, seed=0)
    with pytest.raises(ConfigError, match="Recipe.optimizer must be 'sgd' or 'adam'; got 'rmsprop'"):
        build_training(replace(RECIPES["digits"], optimizer="rmsprop"), model, _stripes())
    with pytest.raises(ConfigError, match="Recipe.schedule must be .*; got 'step'"):
        build_training(replace(RECIPES["digits"], schedule="step"), model, _stripes())


def test_build_training_trains_as_the_cli_does(tmp_path, capsys):
    """``convscope train`` builds its run with build_training: the same weights come out."""
    from dataclasses import replace

    from convscope import load
    from convscope.cli import main
    from convscope.data import load_dataset
    from convscope.models import build_training
    from convscope.train import fit

    assert main(["train", "--epochs", "1", "--progress", "none", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    train = load_dataset("digits", split="train")
    model = build_model("digits", seed=0)
    setup = build_training(replace(RECIPES["digits"], epochs=1), model, train)
    fit(model, nn.CrossEntropyLoss(), setup.optimizer, train, epochs=1, batch_size=32, seed=0,
        scheduler=setup.scheduler, scheduler_interval="batch", progress=False, transform=setup.transform,
        eval_transform=setup.eval_transform, threads=1)
    saved = load(tmp_path / "model.npz")
    for (name, a), (_, b) in zip(model.named_parameters(), saved.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


def test_antialias_keeps_every_other_layer_and_the_output_shape():
    from convscope.models import antialias, describe_pooling

    model = build_model("digits", seed=0)
    twin = antialias(model, (1, 8, 8))
    assert twin[0] is model[0] and twin[3] is model[3]  # conv layers shared, not copied
    assert describe_pooling(model) == "MaxPool2d(stride 2,2), MaxPool2d(stride 2,2)"
    assert describe_pooling(twin) == "MaxPool2d(stride 1,1), MaxPool2d(stride 1,1); 2 BlurPool"
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    assert twin(x).shape == model(x).shape == (2, 10)
    with pytest.raises(ConfigError, match="no max pooling or convolution with stride > 1"):
        antialias(nn.Sequential(nn.Conv2d(1, 2, 3, rng=0)), (1, 8, 8))


def _block_by_hand(model, prefix, x, skip):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + skip), from the graph's own layers (eval mode)."""
    def layer(name, h):
        return model.node(prefix + name).module(h)
    h = layer("bn1", layer("conv1", x))
    h = layer("bn2", layer("conv2", np.maximum(h, 0)))
    return np.maximum(h + skip, 0)


def test_the_small_resnet_is_a_graph_of_basic_blocks_with_projection_shortcuts():
    model = build_model("resnet", seed=0, dtype=np.float64)
    assert isinstance(model, nn.Graph)
    nodes = {n.name: n for n in model.nodes}
    assert [n.module.layer_kind for n in model.nodes[-3:]] == ["adaptive_avg_pool", "flatten", "linear"]
    assert nodes["avgpool"].module.output_size == (1, 1)
    assert nodes["layer1.0.add"].inputs == ("layer1.0.bn2", "relu")                     # identity shortcut
    for stage, (c_in, c_out) in ((2, (16, 32)), (3, (32, 64))):
        p = f"layer{stage}.0."
        proj = nodes[p + "downsample.0"].module
        assert (proj.kernel_size, proj.stride, proj.in_channels, proj.out_channels) == ((1, 1), (2, 2), c_in, c_out)
        assert nodes[p + "conv1"].module.stride == (2, 2)
        assert nodes[p + "add"].inputs == (p + "bn2", p + "downsample.1")
        assert nodes[p + "relu"].inputs == (p + "add",)                                  # relu after the add
    for bn in (m for m in model.modules() if m.layer_kind == "batch_norm"):
        rng = np.random.default_rng(bn.num_features)
        bn.running_mean[...] = rng.normal(0, 0.3, bn.num_features)
        bn.running_var[...] = rng.uniform(0.5, 2, bn.num_features)
    model.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    h = np.maximum(nodes["bn1"].module(nodes["conv1"].module(x)), 0)
    h = _block_by_hand(model, "layer1.0.", h, h)
    for p in ("layer2.0.", "layer3.0."):
        skip = nodes[p + "downsample.1"].module(nodes[p + "downsample.0"].module(h))
        h = _block_by_hand(model, p, h, skip)
    logits = nodes["fc"].module(h.mean(axis=(2, 3)))
    np.testing.assert_allclose(model(x), logits, rtol=1e-12, atol=1e-12)


def test_the_small_resnet_trains_a_few_steps():
    from convscope import optim

    model = build_model("resnet", seed=0)
    images = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(3):
        value = loss(model(images), labels)
        first = value if first is None else first
        model.zero_grad()
        model.backward(loss.backward())
        assert all(np.isfinite(p.grad).all() and np.abs(p.grad).sum() > 0 for p in model.parameters())
        opt.step()
    assert np.isfinite(first) and loss(model(images), labels) < first


def test_the_small_resnet_saves_loads_and_summarises(tmp_path):
    import convscope

    model = build_model("resnet", seed=0)
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.train()
    model(x)                                    # move the BatchNorm running statistics
    model.eval()
    path = convscope.save(model, tmp_path / "resnet.npz")
    back = convscope.load(path)
    assert isinstance(back, nn.Graph) and [n.name for n in back.nodes] == [n.name for n in model.nodes]
    back.eval()
    np.testing.assert_array_equal(back(x), model(x))
    text = str(nn.summary(model, (3, 32, 32)))
    assert "layer3.0.downsample.0" in text and "78,042" in text


def test_antialias_rewrites_the_strided_convolutions_of_the_resnet_graph():
    from convscope import functional as F
    from convscope.models import antialias

    model = build_model("resnet", seed=0, dtype=np.float64)
    twin = antialias(model, (3, 32, 32))
    assert twin.output_shape((2, 3, 32, 32)) == (2, 10)
    nodes = {n.name: n for n in twin.nodes}
    strided = ("layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv1", "layer3.0.downsample.0")
    assert sorted(n for n in nodes if n.endswith(".dense")) == sorted(f"{s}.dense" for s in strided)
    for name in strided:
        conv, dense, blur = model.node(name).module, nodes[f"{name}.dense"].module, nodes[name].module
        assert nodes[name].inputs == (f"{name}.dense",) and nodes[f"{name}.dense"].inputs == model.node(name).inputs
        assert conv.stride == (2, 2) and dense.stride == (1, 1) and dense is not conv
        assert blur.layer_kind == "blur_pool" and blur.window.stride == (2, 2)
        np.testing.assert_array_equal(dense.weight.data, conv.weight.data)
        x = np.random.default_rng(len(name)).standard_normal((1, conv.in_channels, 12, 12))
        pad = conv.kernel_size[0] // 2
        by_hand = F.blur_pool(F.conv(x, conv.weight.data, stride=1, padding=pad), 4, stride=2)
        np.testing.assert_allclose(blur(dense(x)), by_hand, rtol=1e-12)
    assert nodes["layer2.0.conv2"].module is model.node("layer2.0.conv2").module   # stride-1 layers shared
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    assert twin(x).shape == (2, 10)


def test_antialias_on_a_graph_splits_each_strided_node_in_two_and_keeps_its_references():
    from convscope.models import antialias

    g = nn.GraphBuilder()
    stem = g.add("stem", nn.Conv2d(1, 2, 3, stride=2, padding=1, rng=0), g.input)
    pool = g.add("pool", nn.MaxPool2d(2), stem)
    skip = g.add("skip", nn.Conv2d(2, 2, 1, stride=2, rng=1), stem)
    add = g.add("add", nn.Add(), pool, skip)
    model = g.build(outputs=g.add("fc", nn.Linear(2 * 4 * 4, 3, rng=2), g.add("flat", nn.Flatten(), add)))
    twin = antialias(model, (1, 16, 16))
    got = [(n.name, n.module.layer_kind, n.inputs) for n in twin.nodes]
    assert got == [("stem.dense", "conv", ("input",)), ("stem", "blur_pool", ("stem.dense",)),
                   ("pool.dense", "max_pool", ("stem",)), ("pool", "blur_pool", ("pool.dense",)),
                   ("skip.dense", "conv", ("stem",)), ("skip", "blur_pool", ("skip.dense",)),
                   ("add", "add", ("pool", "skip")), ("flat", "flatten", ("add",)), ("fc", "linear", ("flat",))]
    nodes = {n.name: n.module for n in twin.nodes}
    assert nodes["stem.dense"].stride == (1, 1) and nodes["pool.dense"].window.stride == (1, 1)
    assert [nodes[k].window.stride for k in ("stem", "pool", "skip")] == [(2, 2)] * 3
    assert nodes["fc"] is model.nodes[-1].module                       # layers without a stride shared
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 16)).astype(np.float32)
    assert twin(x).shape == model(x).shape == (2, 3)
