"""convscope explain filters | features | model (convscope.cli.pictures) through convscope.cli.main."""

import json
import re

import numpy as np
import pytest

import convscope
from convscope import nn
from convscope.cli import main

pytest.importorskip("matplotlib", reason="the PNG subcommands need matplotlib (convscope[train])")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 3 * 3, 2, rng=1))
    path = convscope.save(model, folder / "model.npz", metadata={
        "image_shape": [1, 6, 6], "classes": ["left", "right"], "normalize": {"mean": [0.5], "std": [0.25]}})
    image = np.random.default_rng(0).random((6, 6)).astype(np.float32)
    np.save(folder / "image.npy", image)
    return folder, path, model, image


def test_explain_model_writes_the_page_of_the_normalised_image(saved, capsys):
    folder, path, model, image = saved
    out = folder / "report.html"
    assert main(["explain", "model", str(path), "--input", str(folder / "image.npy"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert "normalised as in training (mean [0.5], std [0.25])" in text
    assert ">left<" in text and ">right<" in text
    blob = re.search(r'id="convscope-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(blob.replace("<\\/", "</"))
    assert data["input_shape"] == [1, 1, 6, 6]
    # the page walks the normalised input: its prediction is the model's on (x - 0.5) / 0.25
    scores = model.eval()(((image - 0.5) / 0.25)[None, None].astype(np.float32))
    assert re.search(r'id="prediction" data-class="(\d)"', text).group(1) == str(int(np.argmax(scores)))


def test_explain_filters_and_features(saved, capsys):
    folder, path, _, _ = saved
    assert main(["explain", "filters", str(path), "--layer", "1", "--out", str(folder / "f.png")]) == 0
    assert main(["explain", "features", str(path), str(folder / "image.npy"), "--out", str(folder / "m.png")]) == 0
    assert (folder / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["explain", "filters", "digits", "--out", str(folder / "arch.png")]) == 0
    assert "untrained" in capsys.readouterr().err


def test_errors_are_one_line_with_exit_status_2(saved, capsys):
    folder, path, _, _ = saved
    assert main(["explain", "filters", str(path), "--layer", "2", "--out", str(folder / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "layer 2 is ReLU" in err and err.count("\n") == 1
    assert main(["explain", "model", "no_such_model", "--input", str(folder / "image.npy")]) == 2
    assert "MODEL must be a model file" in capsys.readouterr().err
    assert not (folder / "x.png").exists()


def test_explain_model_label_starts_the_backward_view_and_no_backward_drops_it(saved, capsys):
    folder, path, _, _ = saved
    out = folder / "label.html"
    argv = ["explain", "model", str(path), "--input", str(folder / "image.npy"), "--out", str(out)]
    assert main(argv + ["--label", "1"]) == 0
    data = json.loads(re.search(r'id="convscope-data">(.*?)</script>', out.read_text(), re.S).group(1)
                      .replace("<\\/", "</"))
    assert data["backward"]["default"] == 1 and data["backward"]["label"] == 1
    assert main(argv + ["--no-backward"]) == 0
    data = json.loads(re.search(r'id="convscope-data">(.*?)</script>', out.read_text(), re.S).group(1)
                      .replace("<\\/", "</"))
    assert data["backward"] is None
    capsys.readouterr()
    assert main(argv + ["--label", "5"]) == 2
    assert "label must be a class index from 0 to 1" in capsys.readouterr().err
