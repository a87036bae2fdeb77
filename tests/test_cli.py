"""The ``convscope`` command: the default train run, evaluate, predict, summary, errors, resume.

The default run (``convscope train`` with no arguments, 12 epochs on the built-in digits)
runs once per module (about 10 s) and is checked against the product target: test
accuracy >= 0.97. The other commands reuse its model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import convscope
from convscope import cli
from convscope.data import load_dataset
from convscope.errors import DataError
from convscope.train import History, predict


def _main(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``convscope train`` with no arguments, run in an empty folder."""
    folder = tmp_path_factory.mktemp("default")
    here = os.getcwd()
    os.chdir(folder)
    try:
        from contextlib import redirect_stderr, redirect_stdout
        from io import StringIO

        out, err = StringIO(), StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = cli.main(["train"])
    finally:
        os.chdir(here)
    runs = list((folder / "runs").iterdir())
    assert status == 0, err.getvalue()
    assert len(runs) == 1
    return runs[0], out.getvalue(), err.getvalue()


def test_default_train_reaches_the_target_and_writes_every_file(default_run):
    out_dir, stdout, stderr = default_run
    assert {"model.npz", "history.json", "metrics.json", "curves.png", "checkpoint.npz", "config.json"} <= {
        p.name for p in out_dir.iterdir()
    }
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "epochs", "train_seconds", "images_per_second"):
        assert key in metrics, key
    assert metrics["epochs"] == 12 and metrics["test_samples"] == 360
    assert metrics["test_accuracy"] >= 0.97, metrics
    assert metrics["images_per_second"] > 0 and metrics["train_seconds"] > 0
    history = History.load(out_dir / "history.json")
    assert history["epoch"] == list(range(1, 13))
    assert (out_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the summary, the progress bar and the result were shown
    assert "Total parameters: 53,002" in stdout
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in stdout
    assert "epoch 12/12" in stderr and "img/s" in stderr


def test_the_saved_model_reloads_with_its_metadata(default_run):
    out_dir, _, _ = default_run
    model, meta = convscope.load(out_dir / "model.npz", return_metadata=True)
    assert meta["dataset"] == "digits" and meta["image_shape"] == [1, 8, 8]
    assert meta["classes"] == [str(d) for d in range(10)]
    test = load_dataset("digits", split="test")
    # the model standardises its inputs itself (its first layer): raw [0, 1] pixels go in
    assert model[0].layer_kind == "normalize" and "normalize" not in meta
    probs = predict(model, test.images)
    assert float(np.mean(probs.argmax(1) == test.labels)) == pytest.approx(meta["metrics"]["test_accuracy"])


def test_evaluate_reports_the_test_accuracy(default_run, capsys):
    out_dir, _, _ = default_run
    metrics = json.loads((out_dir / "metrics.json").read_text())
    status, out, _ = _main(["evaluate", str(out_dir / "model.npz")], capsys)
    assert status == 0 and out.startswith(f"digits/test: accuracy {metrics['test_accuracy']:.4f}")
    status, out, _ = _main(["evaluate", str(out_dir / "model.npz"), "--json", "--split", "train"], capsys)
    result = json.loads(out)
    assert result["split"] == "train" and result["samples"] == 1437 and result["accuracy"] > 0.97


def test_predict_images_and_arrays(default_run, tmp_path, capsys):
    from PIL import Image

    out_dir, _, _ = default_run
    test = load_dataset("digits", split="test")
    x, _ = test.batch([1, 2])
    np.save(tmp_path / "a.npy", x[0])                       # float (1, 8, 8) in [0, 1]
    np.save(tmp_path / "b.npy", (x[1, 0] * 255).astype(np.uint8))  # uint8 (8, 8)
    Image.fromarray((x[1, 0] * 255).astype(np.uint8)).save(tmp_path / "b.png")
    model, meta = convscope.load(out_dir / "model.npz", return_metadata=True)
    expected = predict(model, x)
    files = [str(tmp_path / n) for n in ("a.npy", "b.npy", "b.png")]
    status, out, _ = _main(["predict", str(out_dir / "model.npz"), *files, "--json", "--top", "2"], capsys)
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    first, second = int(expected[0].argmax()), int(expected[1].argmax())
    assert [r["class"] for r in rows] == [first, second, second]
    assert rows[0]["probability"] == pytest.approx(float(expected[0].max()), rel=1e-5)
    assert len(rows[2]["top"]) == 2
    status, out, _ = _main(["predict", str(out_dir / "model.npz"), files[0]], capsys)
    assert out.startswith(f"{files[0]}: class {int(expected[0].argmax())} ") and "top-3:" in out


def test_predict_refuses_an_image_of_the_wrong_shape(default_run, tmp_path, capsys):
    out_dir, _, _ = default_run
    np.save(tmp_path / "c.npy", np.zeros((3, 8, 8), np.float32))
    status, _, err = _main(["predict", str(out_dir / "model.npz"), str(tmp_path / "c.npy")], capsys)
    assert status == 2
    assert "takes images of shape (1, 8, 8)" in err and "Traceback" not in err


def test_summary_of_an_architecture_and_of_a_model(default_run, capsys):
    status, out, _ = _main(["summary", "--arch", "lenet"], capsys)
    assert status == 0 and "Total parameters: 61,706" in out and "Input (1, 1, 28, 28)" in out
    status, out, _ = _main(["summary", "--arch", "cifar", "--input-shape", "3,64,64"], capsys)
    assert status == 0 and "Input (1, 3, 64, 64)" in out
    status, out, _ = _main(["summary", str(default_run[0] / "model.npz")], capsys)
    assert status == 0 and "Total parameters: 53,002" in out
    status, _, err = _main(["summary"], capsys)
    assert status == 2 and "give a MODEL file or --arch NAME" in err


def test_an_architecture_that_does_not_fit_is_one_line_and_status_2(tmp_path, capsys):
    status, out, err = _main(["train", "--arch", "lenet", "--out", str(tmp_path), "--progress", "none"], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convscope train: error: ")
    assert "'lenet' does not fit images of shape (1, 8, 8)" in lines[0]


def test_train_on_an_image_folder(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for cls, col in (("left", 1), ("right", 6)):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 40, size=(8, 8)).astype(np.uint8)
            img[:, col] = 255
            Image.fromarray(img).save(root / cls / f"{i}.png")
    out = tmp_path / "run"
    status, stdout, err = _main(["train", "--dataset", str(root), "--epochs", "3", "--batch-size", "4",
                                 "--out", str(out), "--progress", "epochs"], capsys)
    assert status == 0, err
    assert "arch digits" in stdout and "2 classes" in stdout
    meta = convscope.load(out / "model.npz", return_metadata=True)[1]
    assert meta["classes"] == ["left", "right"] and meta["dataset"] == str(root.resolve())
    assert err.count("epoch ") == 3
    status, stdout, _ = _main(["evaluate", str(out / "model.npz")], capsys)
    assert status == 0 and stdout.startswith("shapes/test: accuracy")


def test_resume_finishes_the_planned_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--epochs", "2", "--out", str(out), "--progress", "none", "--seed", "4"]
    assert _main(args, capsys)[0] == 0
    first = json.loads((out / "metrics.json").read_text())
    status, _, err = _main(["train", "--resume", str(out), "--epochs", "3"], capsys)
    assert status == 2 and "planned for 2 epochs" in err
    status, stdout, _ = _main(["train", "--resume", str(out), "--progress", "none"], capsys)
    assert status == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["epochs"] == 2 and again["seed"] == 4
    assert again["test_accuracy"] == first["test_accuracy"]  # nothing left to train: same model
    status, _, err = _main(["train", "--resume", str(tmp_path / "nowhere")], capsys)
    assert status == 2 and "no checkpoint at" in err


def test_subcommands_can_be_added(capsys):
    @cli.subcommand
    def add_hello(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--fail", action="store_true")
        p.set_defaults(handler=run_hello)

    def run_hello(args):
        if args.fail:
            raise DataError("no greeting\nfor you")
        print("hello")
        return 0

    try:
        assert _main(["hello"], capsys)[:2] == (0, "hello\n")
        status, _, err = _main(["hello", "--fail"], capsys)
        assert status == 2 and err == "convscope hello: error: no greeting for you (--debug shows the traceback)\n"
        assert "hello" in cli.build_parser().format_help()
    finally:
        cli.SUBCOMMANDS.remove(add_hello)


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "convscope.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_errors_exit_2_with_one_line_and_debug_shows_the_traceback(tmp_path):
    result = _run("evaluate", str(tmp_path / "missing.npz"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("convscope evaluate: error: ") and "missing.npz" in result.stderr
    result = _run("evaluate", str(tmp_path / "missing.npz"), "--debug")
    assert result.returncode == 2 and "Traceback (most recent call last)" in result.stderr
    result = _run("train", "--epochs", "0")
    assert result.returncode == 2 and "expected a positive integer" in result.stderr


def test_the_installed_entry_point():
    exe = shutil.which("convscope")
    if exe is None:
        pytest.skip("the convscope script is not on PATH (package not installed)")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"convscope {convscope.__version__}"
    result = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "train" in result.stderr
