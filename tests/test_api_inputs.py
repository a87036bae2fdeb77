"""Inputs NumPy would take the wrong way, and paths the system refuses: each is a convscope
error saying what was expected."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from convscope import functional as F
from convscope import nn
from convscope.cli import main
from convscope.data import read_image_folder
from convscope.errors import ArgumentTypeError, ConfigError, DataError
from convscope.train import predict

X = np.ones((2, 3))
W = np.ones((4, 3))


def masked(a):
    return np.ma.masked_array(a, mask=np.zeros(a.shape, dtype=bool) | (np.arange(a.size) == 1).reshape(a.shape))


@pytest.mark.parametrize("call", [
    lambda: F.linear(masked(X), W),
    lambda: F.linear(X, masked(W)),
    lambda: F.relu(masked(X)),
    lambda: F.conv(masked(np.ones((1, 1, 4, 4))), np.ones((1, 1, 3, 3))),
    lambda: nn.Linear(3, 4, dtype=np.float64)(masked(X)),
    lambda: predict(nn.Linear(3, 4, dtype=np.float64), masked(X)),
], ids=["linear x", "linear w", "relu", "conv", "Linear", "predict"])
def test_a_masked_array_is_refused_rather_than_its_mask_ignored(call):
    with pytest.raises(ArgumentTypeError, match=r"MaskedArray; convscope ignores masks.*filled\(value\)"):
        call()


@pytest.mark.parametrize("call", [
    lambda t: F.linear(t, W),
    lambda t: F.relu(t),
    lambda t: nn.Linear(3, 4, dtype=np.float64, rng=0)(t),
    lambda t: predict(nn.Linear(3, 4, dtype=np.float64, rng=0), t),
], ids=["linear", "relu", "Linear", "predict"])
def test_a_torch_tensor_that_requires_grad_is_refused_naming_detach(call):
    torch = pytest.importorskip("torch")
    t = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ArgumentTypeError, match=r"requires grad.*x\.detach\(\)\.numpy\(\)"):
        call(t)
    assert np.array_equal(np.asarray(call(t.detach())), np.asarray(call(t.detach().numpy())))


def test_a_ragged_list_to_predict_is_an_argument_type_error():
    with pytest.raises(ArgumentTypeError, match="predict: x must be a float32 or float64 NumPy array; got a list"):
        predict(nn.Linear(3, 4), [[1.0, 2.0, 3.0], [1.0]])


def test_a_sequential_that_would_contain_itself_is_refused():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ConfigError, match="contains itself"):
        model.append(model)
    outer = nn.Sequential(nn.Residual(nn.Sequential(model)))
    with pytest.raises(ConfigError, match="is this Sequential or contains it"):
        model.append(outer)
    assert len(model) == 1
    model.append(nn.ReLU())  # other modules still append
    assert len(model) == 2


def _image_folder(root: Path) -> Path:
    from PIL import Image

    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("L", (3, 3), 0).save(root / name / "x.png")
    return root


def test_an_image_folder_root_that_is_a_file_is_a_data_error(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        read_image_folder(tmp_path / "file")


@pytest.mark.parametrize("which", ["root", "class folder"])
def test_an_unreadable_folder_is_a_data_error(tmp_path, monkeypatch, which):
    pytest.importorskip("PIL")
    root = _image_folder(tmp_path / "images")
    target = root if which == "root" else root / "b"
    real = Path.iterdir

    def iterdir(self):
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)  # running as root, chmod cannot refuse
    with pytest.raises(DataError,
                       match=f"cannot list the {'image folder' if which == 'root' else which}.*Permission denied"):
        read_image_folder(root)


def _cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's usage + error line, as for any bad option
            status = exc.code
    return status, err.getvalue()


def test_a_nul_byte_in_out_is_one_error_line(tmp_path):
    status, err = _cli(["train", "--epochs", "1", "--out", str(tmp_path / "a\0b"), "--progress", "none"])
    assert status == 2 and "NUL character" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("content, words", [
    (b"[1, 2]", "must be an object"),
    (b'{"epochs": "many"}', "['epochs'] must be null or an int >= 1"),
    (b'{"optimizer": "rmsprop"}', "['optimizer'] must be null or one of 'sgd', 'adam'"),
    (b'{"dataset": "\xff"}', "not UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "nested 5000 levels deep"),
], ids=["list", "epochs str", "optimizer", "not utf-8", "5000 deep"])
def test_a_hostile_run_config_is_one_error_line(tmp_path, content, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"not read: the config is checked first")
    (run / "config.json").write_bytes(content)
    status, err = _cli(["train", "--resume", str(run), "--progress", "none"])
    assert status == 2 and words in err and "Traceback" not in err, err


def test_a_valid_run_config_still_fills_the_options(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"garbage")
    (run / "config.json").write_text(json.dumps({"epochs": 2, "lr": 0.1, "recipe": {"x": 1}}))
    status, err = _cli(["train", "--resume", str(run), "--progress", "none"])
    assert status == 2 and "checkpoint.npz" in err and "not a valid convscope file" in err
