"""What a practitioner meets at the command line (issue 15): runs that end early, --limit,
--out guard, the layer table's width, progress with ETA, predict over many images, error
lines with the command's own usage and words, and ``convscope bench`` from an installed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convscope
from convscope import cli
from convscope.train import ModelCheckpoint

ROOT = Path(__file__).resolve().parents[1]


def _main(argv, capsys):
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse's usage + error line
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A 2-epoch run on 300 digits (quiet)."""
    out = tmp_path_factory.mktemp("small") / "run"
    status = cli.main(["train", "--epochs", "2", "--limit", "300", "--out", str(out), "--progress", "none"])
    assert status == 0
    return out


# ------------------------------------------------------------------ runs that end early


def test_ctrl_c_writes_the_model_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    original = ModelCheckpoint.on_epoch_end

    def interrupt_in_epoch_2(self, run, epoch, logs):
        original(self, run, epoch, logs)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", interrupt_in_epoch_2)
    out = tmp_path / "run"
    status, _, err = _main(["train", "--epochs", "3", "--limit", "200", "--out", str(out), "--progress", "none"],
                           capsys)
    assert status == 130
    assert "interrupted after 1 complete epoch of 3" in err
    assert f"convscope train --resume {out}" in err
    model, meta = convscope.load(out / "model.npz", return_metadata=True)
    assert meta["interrupted"] is True and meta["image_shape"] == [1, 8, 8] and meta["epochs_completed"] == 1
    monkeypatch.undo()

    # the run folder and the checkpoint both serve as MODEL
    np.save(tmp_path / "x.npy", convscope.data.load_dataset("digits", split="test").images[0])
    status, stdout, err = _main(["predict", str(out), str(tmp_path / "x.npy")], capsys)
    assert status == 0 and stdout.startswith(f"{tmp_path / 'x.npy'}: class ")
    assert "holds the weights of a run interrupted after 1 complete epoch" in err
    status, stdout, err = _main(["evaluate", str(out / "checkpoint.npz")], capsys)
    assert status == 0 and stdout.startswith("digits/test: accuracy"), err
    assert "training checkpoint; using its weights after epoch 1" in err
    status, stdout, _ = _main(["summary", str(out / "checkpoint.npz")], capsys)
    assert status == 0 and "Total parameters: 53,002" in stdout
    status, stdout, _ = _main(["explain", "shape", "--model", str(out)], capsys)
    assert status == 0 and "output (1, 10)" in stdout

    # and the hint works: the run finishes its 3 epochs
    status, stdout, err = _main(["train", "--resume", str(out), "--progress", "none"], capsys)
    assert status == 0, err
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


def test_interrupt_before_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    def stop(self, run, batch, logs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelCheckpoint, "on_batch_end", stop, raising=False)
    out = tmp_path / "run"
    status, _, err = _main(["train", "--epochs", "2", "--limit", "100", "--out", str(out), "--progress", "none"],
                           capsys)
    assert status == 130 and (out / "model.npz").is_file()
    assert "interrupted after 0 complete epochs" in err and "no checkpoint to resume from" in err


def test_a_folder_without_a_model_is_refused_in_words(tmp_path, capsys):
    status, _, err = _main(["predict", str(tmp_path), "x.png"], capsys)
    assert status == 2 and "is a folder without model.npz or checkpoint.npz" in err


# ------------------------------------------------------------------ training options


def test_limit_trains_on_part_of_the_dataset_and_one_epoch_is_singular(tmp_path, capsys):
    status, stdout, err = _main(["train", "--epochs", "1", "--limit", "120", "--out", str(tmp_path / "r"),
                                 "--progress", "none"], capsys)
    assert status == 0, err
    assert "digits (120 training, 120 test images" in stdout and "1 epoch," in stdout
    assert "1 epochs" not in stdout and "1 epoch in " in stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["test_samples"] == 120
    from convscope.cli.train import _limited

    part = _limited(convscope.data.load_dataset("digits", split="train"), 120, 0)
    assert len(part) == 120 and np.bincount(part.labels).min() >= 11  # stratified: 12 +- 1 per class
    assert json.loads((tmp_path / "r" / "config.json").read_text())["limit"] == 120


def test_messages_count_one_epoch_in_the_singular():
    from convscope.cli._common import plural

    assert (plural(1, "epoch"), plural(2, "epoch"), plural(0, "complete epoch")) == (
        "1 epoch", "2 epochs", "0 complete epochs")
    for module in ("train", "shift"):
        source = (ROOT / "src" / "convscope" / "cli" / f"{module}.py").read_text()
        assert "epochs} epochs" not in source and "} epochs," not in source


def test_out_holding_a_run_is_refused_unless_force(small_run, capsys):
    before = (small_run / "model.npz").read_bytes()
    status, _, err = _main(["train", "--epochs", "1", "--out", str(small_run), "--progress", "none"], capsys)
    assert status == 2 and "already holds a run" in err and "--force" in err and "--resume" in err
    assert (small_run / "model.npz").read_bytes() == before
    status, _, err = _main(["train", "--epochs", "1", "--limit", "100", "--out", str(small_run), "--force",
                            "--progress", "none"], capsys)
    assert status == 0, err
    assert convscope.load(small_run / "model.npz", return_metadata=True)[1]["metrics"]["epochs"] == 1


def _widest(text):
    return max(len(line) for line in text.splitlines())


def test_the_layer_table_fits_100_columns_and_is_wide_on_request(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    base = ["train", "--epochs", "1", "--limit", "60", "--progress", "none"]
    status, stdout, _ = _main([*base, "--out", str(tmp_path / "a")], capsys)
    assert status == 0
    table = stdout.split("Output (1, 10)")[0]
    assert _widest(table) <= 100 and "Conv2d(32, 64, kernel_size=3, padding=1)" in table
    status, stdout, _ = _main([*base, "--out", str(tmp_path / "b"), "--wide"], capsys)
    assert _widest(stdout.split("Output (1, 10)")[0]) > 150 and "FC equivalent" in stdout
    monkeypatch.setenv("COLUMNS", "200")
    status, stdout, _ = _main([*base, "--out", str(tmp_path / "c")], capsys)
    assert "FC equivalent" in stdout


def test_summary_to_text_fits_any_width():
    from convscope.models import build_model
    from convscope.nn.summary import summary

    table = summary(build_model("cifar", input_shape=(3, 32, 32), seed=0), (3, 32, 32))
    assert table.to_text() == str(table) == table.to_text(width=1000)
    for width in (100, 80):
        rows = table.to_text(width=width).split("Total parameters")[0]
        assert _widest(rows) <= width and "73,728" in rows


def test_progress_shows_validation_and_the_eta(tmp_path, capsys):
    status, _, err = _main(["train", "--epochs", "2", "--limit", "200", "--val-fraction", "0.2",
                            "--out", str(tmp_path / "r"), "--progress", "epochs"], capsys)
    assert status == 0
    first, second = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert "val_loss" in first and "val_acc" in first and "ETA " in first
    assert "val_acc" in second and "ETA" not in second  # nothing left to wait for


def test_threads_help_says_what_it_sets(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "convscope's own" in text and "BLAS" in text


# ------------------------------------------------------------------ predict over many images


def test_predict_keeps_going_past_unreadable_files(small_run, tmp_path, capsys):
    x = convscope.data.load_dataset("digits", split="test").images[:2]
    np.save(tmp_path / "a.npy", x[0])
    np.save(tmp_path / "b.npy", x[1])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    os.mkfifo(tmp_path / "pipe.png")  # must be refused, not waited on
    files = [tmp_path / n for n in ("a.npy", "pipe.png", "missing.png", "broken.png", "b.npy")]
    status, stdout, err = _main(["predict", str(small_run), *map(str, files), "--json"], capsys)
    assert status == 2
    assert [json.loads(line)["image"] for line in stdout.splitlines()] == [str(files[0]), str(files[4])]
    assert "FIFO" in err and "missing.png" in err and "broken.png" in err
    assert "3 of 5 images were skipped" in err and "Traceback" not in err


def test_predict_warns_about_images_unlike_the_training_data(small_run, tmp_path, capsys):
    from PIL import Image

    digit = convscope.data.load_dataset("digits", split="test").images[0, 0]
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = (digit * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    Image.fromarray(((1 - digit) * 255).astype(np.uint8)).save(tmp_path / "inverted.png")
    big = np.kron(digit, np.ones((64, 64)))
    Image.fromarray((big * 255).astype(np.uint8)).save(tmp_path / "big.png")
    np.save(tmp_path / "scale.npy", (digit * 255).astype(np.float32))
    np.save(tmp_path / "flat.npy", np.full((8, 8), 0.5, np.float32))
    np.save(tmp_path / "fine.npy", digit.astype(np.float32))
    names = ["colour.png", "inverted.png", "big.png", "scale.npy", "flat.npy", "fine.npy"]
    status, stdout, err = _main(["predict", str(small_run), *(str(tmp_path / n) for n in names)], capsys)
    assert status == 0 and len(stdout.splitlines()) == 6
    warnings = {n: line for n in names for line in err.splitlines() if n in line and "warning" in line}
    assert "colour image" in warnings["colour.png"]
    assert "looks inverted" in warnings["inverted.png"]
    assert "512x512" in warnings["big.png"] and "64 times" in warnings["big.png"]
    assert "values from 0 to 255" in warnings["scale.npy"]
    assert "values only from 0.50 to 0.50" in warnings["flat.npy"]
    assert "fine.npy" not in warnings


def test_nul_bytes_in_paths_are_an_error_line_not_a_traceback(small_run, capsys):
    status, _, err = _main(["predict", str(small_run), "a\0b.png"], capsys)
    assert status == 2 and "NUL" in err and err.startswith("usage: convscope predict")
    status, _, err = _main(["train", "--out", "runs/a\0b"], capsys)
    assert status == 2 and "NUL" in err and "usage: convscope train" in err
    status, _, err = _main(["explain", "conv", "--input", "x\0.npy", "--filter", "1"], capsys)
    assert status == 2 and "NUL" in err and err.startswith("convscope explain conv: error: ")
    assert "Traceback" not in err


# ------------------------------------------------------------------ error lines


def test_an_unknown_option_shows_the_usage_of_its_command(capsys):
    status, _, err = _main(["train", "--foo"], capsys)
    assert status == 2 and err.startswith("usage: convscope train") and "unrecognized arguments: --foo" in err
    status, _, err = _main(["summary", "--arch", "digits", "--nope"], capsys)
    assert status == 2 and err.startswith("usage: convscope summary")
    status, _, err = _main(["explain", "conv", "--foo"], capsys)
    assert status == 2 and err.startswith("convscope explain conv: error: unrecognized arguments: --foo")


@pytest.mark.parametrize("argv, name", [
    (["explain", "conv", "--input", "1 x", "--filter", "1"], "parse_array"),
    (["explain", "conv", "--input", "1 2", "--filter", "1 2 3"], "trace_conv"),
    (["explain", "shape", "--arch", "digits", "--input-shape", "8,8"], "build_model"),
])
def test_error_lines_do_not_name_library_functions(argv, name, capsys):
    status, _, err = _main(argv, capsys)
    assert status == 2 and err.startswith(f"convscope {argv[0]} {argv[1]}: error: ")
    assert f"{name}:" not in err


def test_explain_numbers_its_axes_one_way_in_results_and_errors(capsys):
    status, out, _ = _main(["explain", "shape", "--arch", "digits"], capsys)
    assert status == 0 and "axis 1: ceiling form" in out and "axis 0" not in out
    status, _, err = _main(["explain", "conv", "--input", "1 2", "--filter", "1 2 3"], capsys)
    assert status == 2 and "along axis 1 " in err and "axis 0" not in err


def test_a_batch_without_its_channel_axis_gets_the_hint(small_run):
    model = convscope.load(small_run / "model.npz")
    with pytest.raises(convscope.errors.ShapeError, match=r"x\[:, None\] has shape \(5, 1, 8, 8\)"):
        model(np.zeros((5, 8, 8), np.float32))


# ------------------------------------------------------------------ convscope bench


def test_bench_runs_from_an_installed_copy_in_another_folder(tmp_path):
    """Install convscope (with its benchmarks) into a folder and run ``convscope bench`` there."""
    if shutil.which("pip") is None and subprocess.run([sys.executable, "-m", "pip", "--version"],
                                                        capture_output=True).returncode != 0:
        pytest.skip("pip is not available")
    target = tmp_path / "site"
    build = tmp_path / "checkout"  # what the package is built from, nothing else of the tree
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "results")
    for folder in ("src", "benchmarks"):
        shutil.copytree(ROOT / folder, build / folder, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, build / name)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(build)], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.skip(f"could not install the package offline: {done.stderr[-300:]}")
    assert (target / "benchmarks" / "__main__.py").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def bench(*args):
        return subprocess.run([sys.executable, "-m", "convscope.cli", "bench", *args], capture_output=True,
                              text=True, cwd=work, env=env, timeout=300)

    shown = bench("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: convscope bench") and "--only" in shown.stdout
    ran = bench("--quick", "--only", "AP", "--threads", "1", "--no-torch", "--max-wait", "0", "--repeats", "1",
                "--target-seconds", "0")
    assert ran.returncode == 0, ran.stderr[-2000:]
    written = list(work.glob("bench_ops-*.json"))  # an installed copy writes into the current folder
    assert len(written) == 1 and not (target / "benchmarks" / "results").exists()
    result = json.loads(written[0].read_text())
    assert [r["case"] for r in result["threads"]["1"]["rows"]] == ["AP", "AP"]


# ------------------------------------------------------------------ README


def test_readme_commands_parse_and_the_readme_names_what_a_new_user_needs():
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/notebooks/" in text and "HTML explainer" in text
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    blocks = [block.split("```", 1)[0] for block in text.split("```bash\n")[1:]]
    commands = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
                if line.startswith("convscope")]
    parsed = 0
    for line in commands:
        if "|" in line or "..." in line:
            continue
        argv = shlex.split(line)[1:]
        if argv[0] == "bench":
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            from benchmarks import _env

            _env.build_parser("convscope bench").parse_args(argv[1:])
        else:
            args = cli.build_parser().parse_args(argv)
            assert callable(args.handler), line
        parsed += 1
    assert parsed >= 10
