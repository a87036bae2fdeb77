"""The command line on graph models imported from PyTorch (issue 14): the reference
architectures' building blocks, small, saved as a user would with ``convscope.save``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convscope  # noqa: E402
from convscope.cli import main  # noqa: E402
from convscope.export import from_torch  # noqa: E402

from . import reference_models as R  # noqa: E402

pytest.importorskip("matplotlib", reason="the pictures need matplotlib (convscope[train])")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """A narrow ResNet-18 on 32x32: its last stage's BatchNorms see 1x1 maps."""
    torch.manual_seed(0)
    net = R.randomize(R.resnet18(num_classes=4, width=0.125)).eval()
    folder = tmp_path_factory.mktemp("resnet")
    path = convscope.save(from_torch(net, input_shape=(3, 32, 32)), folder / "resnet.npz",
                          input_shape=(3, 32, 32), classes=["a", "b", "c", "d"])
    image = folder / "image.npy"
    np.save(image, np.random.default_rng(0).random((3, 32, 32)))
    return net, path, image


def test_explain_gradients_uses_the_saved_model_in_evaluation_mode(resnet, tmp_path, capsys):
    # a freshly loaded model is in training mode: BatchNorm on one image's 1x1 maps cannot
    # estimate a variance, and the gradients would be those of batch statistics, not the model's
    _, path, image = resnet
    out = tmp_path / "g.png"
    status = main(["explain", "gradients", str(path), "--input", str(image), "--label", "1", "--out", str(out)])
    _, err = capsys.readouterr()
    assert status == 0, err
    assert out.stat().st_size > 10_000


def test_explain_features_names_the_classes_of_the_model(resnet, tmp_path, capsys, monkeypatch):
    import convscope.viz as viz

    seen = {}
    real = viz.plot_feature_maps

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(viz, "plot_feature_maps", spy)
    _, path, image = resnet
    out = tmp_path / "f.png"
    status = main(["explain", "features", str(path), str(image), "--out", str(out), "--max-channels", "4"])
    _, err = capsys.readouterr()
    assert status == 0, err
    assert seen["class_names"] == ["a", "b", "c", "d"]         # the output strip's labels, not "class 0"
    assert out.stat().st_size > 10_000


def test_explain_shift_names_the_strided_convolutions_of_a_graph(tmp_path, capsys):
    # ResNet-18 on the digits: one max pooling, and stride-2 convolutions (the stem, three
    # stages, their projections); the header said only "pooling MaxPool2d(stride 2,2)"
    torch.manual_seed(0)
    net = R.randomize(R.resnet18(num_classes=10, width=0.125)).eval()
    net.conv1 = torch.nn.Conv2d(1, net.conv1.out_channels, 7, 2, 3, bias=False)
    path = convscope.save(from_torch(net, input_shape=(1, 8, 8)), tmp_path / "digits.npz",
                          {"dataset": "digits"}, input_shape=(1, 8, 8), classes=[str(d) for d in range(10)])
    status = main(["explain", "shift", str(path), "--images", "4", "--mode", "crop", "--curve-images", "2"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert f"{path}: pooling MaxPool2d(stride 2,2); downsampling strided conv and MaxPool" in out


def test_predict_says_an_image_is_smaller_not_larger_than_the_training_images(resnet, tmp_path, capsys):
    from PIL import Image

    _, path, _ = resnet
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(small)
    Image.new("RGB", (128, 128), (200, 30, 30)).save(big)
    assert main(["predict", str(path), str(small), str(big)]) == 0
    _, err = capsys.readouterr()
    assert "small.png is 8x8 pixels, 4 times smaller than the 32x32 training images" in err
    assert "big.png is 128x128 pixels, 4 times the size of the 32x32 training images" in err
