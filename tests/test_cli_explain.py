"""``convscope explain ...`` on the notes' examples: the notes' numbers appear in the output.

Each test runs :func:`convscope.cli.main` in-process. Expected values that are not printed
in the notes are computed with the library (``functional`` and ``explain``), never typed in.
"""

from __future__ import annotations

import numpy as np
import pytest

from convscope import functional as F
from convscope import nn
from convscope.cli import main
from convscope.errors import ConfigError
from convscope.explain import trace_conv
from convscope.models import antialias

NOTES_X = "1 1 -1 -1 -1 1 -1 1 1 1"
NOTES_F = "1 -1 1"
NOTES_POOL = "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["explain", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def listed(values) -> str:
    """``[-1, 1, -3]``: how explain prints a vector of whole numbers."""
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(values, dtype=float).ravel()) + "]"


EXPLAIN_COMMANDS = ("conv", "pool", "shape", "params", "jacobian", "demo", "shift", "filters", "features",
                    "model")


@pytest.mark.parametrize("argv", [[name] for name in ("train", "evaluate", "predict", "summary", "export")]
                         + [["explain", name] for name in EXPLAIN_COMMANDS])
def test_every_subcommand_is_registered(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: convscope {' '.join(argv)} [-h] [--debug]")


def test_the_help_lists_every_subcommand_in_order(capsys):
    for argv, names in (([], ("train", "evaluate", "predict", "summary", "explain", "export")),
                        (["explain"], EXPLAIN_COMMANDS)):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        positions = [out.index(f"\n    {name} ") for name in names]
        assert positions == sorted(positions), out


def test_no_subcommand_prints_help_and_exits_2(capsys):
    status, out, err = run(capsys)
    assert status == 2 and out == ""
    for name in ("conv", "pool", "shape", "params", "jacobian", "demo", "shift"):
        assert name in err


# ------------------------------------------------------------------------------- conv


def test_notes_9_1_4_conv_prints_every_window_and_the_bright_spot(capsys):
    status, out, err = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert "v_1 = x[0:3] = [1, 1, -1]" in out
    assert "y_1 = f . v_1 = 1*1 + (-1)*1 + 1*(-1) = -1" in out
    assert sum(line.startswith("v_") for line in lines) == 8
    assert lines[-3] == "y = x * f = [-1, 1, -1, 1, -3, 3, -1, 1]"          # (9.4)
    assert lines[-2].strip() == "^ y_6"
    assert lines[-1] == "bright spot (strongest match): y_6 = 3 from v_6 = x[5:8] = [1, -1, 1]"


@pytest.mark.parametrize("options, kwargs", [
    (["--stride", "2"], {"stride": 2}),
    (["--padding", "1"], {"padding": 1}),
    (["--dilation", "2"], {"dilation": 2}),
    (["--bias", "-2"], {"b": -2.0}),
    (["--padding", "same"], {"padding": "same"}),
    (["--padding", "2", "--padding-mode", "circular"], {"padding": 2, "padding_mode": "circular"}),
])
def test_conv_options_match_the_library(capsys, options, kwargs):
    status, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, *options)
    assert status == 0
    x = np.array(NOTES_X.split(), dtype=float)[None, None]
    f = np.array(NOTES_F.split(), dtype=float)[None, None]
    b = np.array([kwargs.pop("b")]) if "b" in kwargs else None
    y = F.conv(x, f, b, **kwargs)[0, 0]
    assert f"y = x * f = {listed(y)}" in out


def test_conv_stride_2_keeps_every_other_output_of_9_4(capsys):
    _, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--stride", "2")
    assert "y = x * f = [-1, -1, -3, -1]" in out
    assert "ceil((10 - 2 + 0) / 2) = ceil(4) = 4" in out


def test_conv_2d_from_a_nested_list_an_npy_and_an_image_file(capsys, tmp_path):
    cross = [[-1, 1, -1], [1, 1, 1], [-1, 1, -1]]
    status, out, _ = run(capsys, "conv", "--input", str(cross), "--filter", str(cross), "--padding", "1")
    assert status == 0
    assert "bright spot (strongest match): y_{2,2} = 9" in out
    image = np.zeros((5, 5))
    image[2, 1:4] = 1
    np.save(tmp_path / "bar.npy", image)
    status, out, _ = run(capsys, "conv", "--input", str(tmp_path / "bar.npy"), "--filter", "1 1 1; -1 -1 -1")
    assert status == 0
    expected = trace_conv(image, [[1, 1, 1], [-1, -1, -1]])
    assert out.strip().endswith(expected.text().splitlines()[-1])
    from PIL import Image

    Image.fromarray((image * 255).astype(np.uint8)).save(tmp_path / "bar.png")
    status, out2, _ = run(capsys, "conv", "--input", str(tmp_path / "bar.png"), "--filter", "1 1 1; -1 -1 -1")
    assert status == 0 and out2.splitlines()[-1] == out.splitlines()[-1]


def test_conv_max_steps_shortens_the_listing(capsys):
    _, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--max-steps", "3")
    assert sum(line.startswith("v_") for line in out.splitlines()) == 3
    assert "... (5 more windows)" in out
    assert "bright spot (strongest match): y_6 = 3" in out


def test_conv_two_channels_with_a_tensor_filter(capsys):
    status, out, _ = run(capsys, "conv", "--input", "[[1,2,3],[4,5,6]]", "--filter", "[[1,1],[1,-1]]",
                         "--channels")
    assert status == 0
    assert "x: 2 channels of 3" in out
    y = F.conv(np.array([[[1., 2, 3], [4, 5, 6]]]), np.array([[[1., 1], [1, -1]]]))[0, 0]
    assert f"y = x * f = {listed(y)}" in out


# ------------------------------------------------------------------------------- pool


def test_notes_9_12_max_pool_and_its_one_hot_derivative(capsys):
    status, out, err = run(capsys, "pool", "--input", NOTES_POOL, "--size", "2", "--stride", "2")
    assert status == 0 and err == ""
    assert "y = [[44, -1], [11, 321]]" in out
    assert "max 44 at x[1, 0]" in out and "max 321 at x[3, 2]" in out
    assert "d max / d r_{1,1} = [0, 0, 1, 0]" in out
    dx = F.max_pool_backward(np.ones((1, 1, 2, 2)), np.array(eval(NOTES_POOL), float)[None, None], 2)[0, 0]
    grid = out.split("derivative d(sum of y)/dx")[1]
    for row in dx:
        assert listed(row).strip("[]") in grid


@pytest.mark.parametrize("options, expected", [
    (["--kind", "avg", "--size", "2"], lambda x: F.avg_pool(x, 2)),
    (["--kind", "blur", "--size", "3"], lambda x: F.blur_pool(x, 3)),
    (["--kind", "blur"], lambda x: F.blur_pool(x, 4)),
    (["--size", "2", "--padding", "1"], lambda x: F.max_pool(x, 2, padding=1)),
    (["--size", "3", "--stride", "2", "--ceil-mode"], lambda x: F.max_pool(x, 3, stride=2, ceil_mode=True)),
    (["--kind", "avg", "--size", "3", "--padding", "1", "--exclude-pad"],
     lambda x: F.avg_pool(x, 3, padding=1, count_include_pad=False)),
])
def test_pool_kinds_and_options_match_the_library(capsys, options, expected):
    status, out, _ = run(capsys, "pool", "--input", NOTES_POOL, *options)
    assert status == 0
    y = expected(np.array(eval(NOTES_POOL), float)[None, None])[0, 0]
    printed = out.split("\ny = ")[1].splitlines()[0]
    np.testing.assert_allclose(np.array(eval(printed), float), y, atol=5e-6 * np.abs(y).max())


# ------------------------------------------------------------------------------- shape


def test_notes_key_equation_48_example_both_forms(capsys):
    status, out, _ = run(capsys, "shape", "--n", "64", "--k", "2", "--s", "2")
    assert status == 0
    assert "ceiling form: ceil((n - (k - 1) + 2p) / s) = ceil((64 - 1 + 0) / 2) = ceil(31.5) = 32" in out
    assert "floor form:   floor((n - k + 2p) / s + 1) = floor((64 - 2 + 0) / 2 + 1) = floor(32) = 32" in out
    assert out.rstrip().endswith("output spatial shape: (32,)")


def test_shape_per_axis_pool_with_ceil_mode_and_a_misfit(capsys):
    status, out, _ = run(capsys, "shape", "--n", "5,7", "--k", "2", "--op", "pool", "--ceil-mode")
    assert status == 0 and "output spatial shape: (3, 4)" in out
    status, out, _ = run(capsys, "shape", "--n", "4", "--k", "5")
    assert status == 1
    assert "no output: along axis 1 the window of size 5 does not fit the padded input of size 4" in out


def test_shape_walk_of_an_architecture_and_of_a_saved_model(capsys, tmp_path):
    status, out, _ = run(capsys, "shape", "--arch", "lenet")
    assert status == 0
    assert "(1, 6, 28, 28) -> (1, 6, 14, 14)" in out and out.rstrip().endswith("output (1, 10)")
    status, out, _ = run(capsys, "shape", "--arch", "lenet", "--input-shape", "1,8,8")
    assert status == 1 and "stopped at layer 4" in out
    from convscope import save

    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2))
    save(model, tmp_path / "m.npz", {"image_shape": [1, 10, 10]})
    status, out, _ = run(capsys, "shape", "--model", str(tmp_path / "m.npz"))
    assert status == 0 and out.rstrip().endswith("output (1, 2, 4, 4)")


# ------------------------------------------------------------------------------- params


def test_notes_9_1_18_weight_sharing_10_versus_650(capsys):
    status, out, _ = run(capsys, "params", "--input-shape", "1,5,5", "--out-channels", "1", "--kernel", "3",
                         "--padding", "1")
    assert status == 0
    assert "1 filter * (3 * 3 * 1) weights + 1 bias = 9 + 1 = 10 parameters" in out
    assert "25 * 25 weights + 25 biases = 625 + 25 = 650 parameters" in out


def test_params_without_bias_and_with_groups(capsys):
    _, out, _ = run(capsys, "params", "--input-shape", "4,8,8", "--out-channels", "6", "--kernel", "3",
                    "--groups", "2", "--no-bias")
    layer = nn.Conv2d(4, 6, 3, groups=2, bias=False, rng=0)
    assert f"= {layer.num_parameters()} parameters" in out.splitlines()[1]


# ------------------------------------------------------------------------------- jacobian


def test_notes_9_4_jacobians_all_four(capsys):
    status, out, _ = run(capsys, "jacobian")
    assert status == 0
    for rows in ("[[X_1, X_2, X_3],", "[X_2, X_3, X_4],", "[X_3, X_4, X_5],", "[X_4, X_5, X_6]]"):
        assert rows in out                                                     # (9.31)
    assert "[[1, 0, 0, 0],\n   [0, 1, 0, 0],\n   [0, 0, 0, 0],\n   [0, 0, 0, 1]]" in out   # (9.26)
    assert "[[0],\n   [0],\n   [0],\n   [1],\n   [0],\n   [0]]" in out            # (9.35)
    assert "dL/dW^1 (k x 1) = dZ^1/dW^1 (k x n) . dA^1/dZ^1 (n x n) . dA^2/dA^1 (n x 1) . dL/dA^2 (1 x 1)" in out


def test_jacobian_chain_is_checked_against_the_library_backward(capsys):
    status, out, _ = run(capsys, "jacobian", "--example", "chain", "--input", "0.5 -1 2 1 3",
                         "--filter", "1 -1", "--w2", "1 2 -1 0.5", "--target", "2")
    assert status == 0
    x, w1, w2 = np.array([0.5, -1, 2, 1, 3]), np.array([1., -1]), np.array([1., 2, -1, 0.5])
    z1 = F.conv(x[None, None], w1[None, None])
    a1 = F.relu(z1)[0]
    d_a1, _, _ = F.linear_backward(F.squared_loss_backward(F.linear(a1, w2[None]), np.array([[2.]])), a1, w2[None])
    _, dw, _ = F.conv_backward(F.relu_backward(d_a1[None], z1), x[None, None], w1[None, None])
    assert f"dw = {listed(dw)}; largest difference 0" in out


@pytest.mark.parametrize("example, options, needle", [
    ("conv", ["--input", "1 2 3 4 5 6", "--kernel", "4"], "[[1, 2, 3],"),
    ("conv", ["--input", "3", "--kernel", "2", "--padding", "1"], "[[0  , X_2, X_3, X_4],\n   [X_2, X_3, X_4, 0]]"),
    ("relu", ["--input", "-1 2"], "[[0, 0],\n   [0, 1]]"),
    ("maxpool", ["--input", "1 4 2 0", "--kernel", "2"], "[[0, 0],\n   [1, 0],\n   [0, 1],\n   [0, 0]]"),
])
def test_jacobian_single_examples_with_inputs(capsys, example, options, needle):
    status, out, _ = run(capsys, "jacobian", "--example", example, *options)
    assert status == 0 and needle in out, out


# ------------------------------------------------------------------------------- demo


def test_demo_finds_only_the_hollow_square(capsys, tmp_path):
    status, out, _ = run(capsys, "demo", "--out", str(tmp_path / "pictures"))
    assert status == 0
    assert "fires (response > 0) at [(11, 12)]: only the hollow square" in out
    assert "largest |donut response - two-layer response| = 0" in out
    written = out.splitlines()[-1]
    assert written.startswith("wrote filter_bank.png, ") and written.endswith(str(tmp_path / "pictures"))
    for name in written[len("wrote "):].split(" to ")[0].split(", "):
        assert (tmp_path / "pictures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------- shift


def test_antialias_twin_replaces_strided_max_pooling():
    from convscope.models import build_model

    model = build_model("lenet", seed=0)
    twin = antialias(build_model("lenet", seed=0), (1, 28, 28), filter_size=3)
    kinds = [type(m).__name__ for _, m in twin.named_modules()]
    assert kinds.count("BlurPool2d") == 2
    assert twin.output_shape((2, 1, 28, 28)) == model.output_shape((2, 1, 28, 28)) == (2, 10)
    blur = next(m for _, m in twin.named_modules() if type(m).__name__ == "BlurPool2d")
    assert blur.filter_size == 3 and tuple(blur.stride) == (2, 2)
    with pytest.raises(ConfigError, match="no max pooling or convolution with stride > 1"):
        antialias(nn.Sequential(nn.Conv2d(1, 1, 3, rng=0), nn.MaxPool2d(2, stride=1)), (1, 8, 8))


def test_shift_of_a_saved_model_matches_the_api(capsys, tmp_path):
    from convscope import save
    from convscope.data import Normalize, load_dataset
    from convscope.explain import per_shift_probability, shift_consistency
    from convscope.models import build_model
    from convscope.train import predict

    model = build_model("digits", seed=1)
    save(model, tmp_path / "m.npz", {"dataset": "digits", "image_shape": [1, 8, 8],
                                     "normalize": {"mean": [0.3], "std": [0.4]}})
    status, out, _ = run(capsys, "shift", str(tmp_path / "m.npz"), "--images", "30", "--mode", "crop",
                         "--max-shift", "2", "--curve-images", "3", "--seed", "5")
    assert status == 0
    test = load_dataset("digits", split="test")
    expected = shift_consistency(lambda x: predict(model, x, transform=Normalize(0.3, 0.4)),
                                 test.images[:30], test.labels[:30], 2, rng=5, mode="crop")
    assert f"consistency: {100 * expected.consistency:.2f}% of pairs" in out
    assert f"accuracy: {100 * expected.accuracy:.2f}% unshifted" in out
    assert "random shifts in [-2, 2] per axis, crops of a canvas padded with zeros" in out
    assert "probability of the correct class per diagonal shift (crop shifts, mean of the first 3 test images)" in out
    curves = [per_shift_probability(lambda x: predict(model, x, transform=Normalize(0.3, 0.4)), img, int(lab),
                                    range(-2, 3), mode="crop").probabilities
              for img, lab in zip(test.images[:3], test.labels[:3])]
    mean = np.mean(curves, axis=0)
    table = out.split("mean of the first 3 test images)")[1].splitlines()[2:7]
    assert [float(line.split()[1]) for line in table] == pytest.approx(mean, abs=6e-5)


def test_shift_train_compare_trains_both_and_saves_the_curve(capsys, tmp_path):
    from convscope import load

    status, out, err = run(capsys, "shift", "--train-compare", "--dataset", "digits", "--train-images", "64",
                           "--epochs", "1", "--images", "20", "--curve-images", "2", "--max-shift", "1",
                           "--progress", "none", "--out", str(tmp_path))
    assert status == 0, err
    summary = out.split("Summary")[1]
    assert "MaxPool " in summary and "MaxPool(stride 1) + BlurPool" in summary
    assert "consistency (crop)" in summary and "consistency (circular)" in summary
    for mode in ("crop", "circular"):
        png = tmp_path / f"shift_curve_{mode}.png"
        one = tmp_path / f"shift_curve_{mode}_image0.png"
        for path in (png, one):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {png} (mean of 2 images) and {one} (test image 0" in out
    blur = load(tmp_path / "blurpool.npz")
    assert any(type(m).__name__ == "BlurPool2d" for _, m in blur.named_modules())
    assert not any(type(m).__name__ == "BlurPool2d" for _, m in load(tmp_path / "maxpool.npz").named_modules())


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("argv, words", [
    (["conv", "--filter", "1 -1 1"], "--input is required"),
    (["conv", "--input", "1 x 2", "--filter", "1"], "could not read 'x'"),
    (["conv", "--input", "1 2", "--filter", "1 1 1"], "kernel size 3 does not fit"),
    (["conv", "--input", "1 2 3", "--filter", "1", "--stride", "0"], "--stride expects a positive integer"),
    (["conv", "--input", "1 2 3", "--filter", "1", "--padding", "-1"], "--padding expects"),
    (["conv", "--input", "1 2 3", "--filter", "1", "--bias", "nan"], "--bias expects a finite number"),
    (["conv", "--input", "no_such_file.npy", "--filter", "1"], "does not exist"),
    (["conv", "--input", "[[1,2],[3]]", "--filter", "1"], "rectangular"),
    (["pool", "--input", "1 2 3"], "--size is required"),
    (["pool", "--input", "1 2 3", "--size", "2", "--kind", "min"], "--kind expects max, avg or blur"),
    (["pool", "--input", "1 2 3 4", "--size", "2", "--kind", "blur", "--padding", "1"], "padding does not apply"),
    (["shape", "--n", "5"], "give --n (input size) and --k"),
    (["shape", "--n", "5", "--k", "3", "--op", "dense"], "--op expects conv or pool"),
    (["shape", "--n", "5", "--k", "3", "--arch", "lenet"], "not both"),
    (["shape", "--model", "no_such_model.npz"], "no_such_model.npz"),
    (["shape", "--arch", "vgg"], "unknown architecture 'vgg'"),
    (["params", "--kernel", "3"], "give --input-shape"),
    (["params", "--input-shape", "1,5,5", "--kernel", "3", "--out-channels", "0"], "--out-channels expects"),
    (["jacobian", "--example", "softmax"], "--example expects one of conv, relu, maxpool, chain"),
    (["jacobian", "--input", "1 2"], "--input needs --example"),
    (["jacobian", "--example", "chain", "--w2", "1 2"], "w2 must have one weight per output"),
    (["shift"], "give a MODEL"),
    (["shift", "--train-compare", "--mode", "sideways"], "--mode expects crop, circular or both"),
    (["shift", "--train-compare", "--epochs", "0"], "--epochs expects an integer >= 1"),
    (["shift", "--train-compare", "--progress", "loud"], "--progress expects bar, lines, epochs or none"),
    (["shift", "--train-compare", "--images", "5", "--curve-image", "7"], "--curve-image must be the index"),
])
def test_bad_input_gives_exit_2_and_one_line(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"convscope explain {argv[0]}: error: ")
    assert words in lines[0]


def test_python_dash_m_runs_explain_and_debug_shows_the_traceback():
    import subprocess
    import sys

    run_cli = [sys.executable, "-m", "convscope.cli", "explain"]
    result = subprocess.run([*run_cli, "conv", "--input", NOTES_X, "--filter", NOTES_F],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "y = x * f = [-1, 1, -1, 1, -3, 3, -1, 1]" in result.stdout
    result = subprocess.run([*run_cli, "conv", "--input", "1 x", "--filter", "1", "--debug"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" in result.stderr and "DataError" in result.stderr
