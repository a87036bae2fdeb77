"""``--out FILE.png|FILE.svg`` on the notes' explain subcommands, a filter bank for ``explain conv``,
``explain gradients``, and the stride of ``explain jacobian``."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.cli import main
from convscope.explain import trace_filter_bank

pytest.importorskip("matplotlib", reason="the pictures need matplotlib (convscope[train])")
Image = pytest.importorskip("PIL.Image", reason="Pillow reads the PNGs")

NOTES_X = "1 1 -1 -1 -1 1 -1 1 1 1"
NOTES_F = "1 -1 1"
NOTES_POOL = "[[1,3,-9,-22],[44,-10,-11,-1],[0,10,4,-3],[11,9,321,99]]"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["explain", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _width(path) -> int:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size[0]


def test_conv_out_draws_what_it_prints(capsys, tmp_path):
    status, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--out", str(tmp_path / "w.png"))
    assert status == 0 and "bright spot (strongest match): y_6 = 3" in out
    assert out.strip().endswith(f"wrote {tmp_path / 'w.png'}")
    assert _width(tmp_path / "w.png") >= 1600
    status, _, _ = run(capsys, "conv", "--input", "[[1,2,3],[4,5,6],[7,8,9]]", "--filter", "[[1,0],[0,-1]]",
                       "--out", str(tmp_path / "w.svg"))
    assert status == 0 and (tmp_path / "w.svg").read_text().lstrip().startswith("<?xml")


def test_conv_accepts_a_filter_bank(capsys, tmp_path):
    status, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", "[[1,-1,1],[-1,1,-1]]",
                         "--out", str(tmp_path / "bank.png"))
    assert status == 0
    expected = trace_filter_bank(np.array([float(v) for v in NOTES_X.split()]), [[1, -1, 1], [-1, 1, -1]])
    assert out.startswith(expected.text().splitlines()[0])
    assert "filter 2 of 2 -> output channel 2:" in out and (tmp_path / "bank.png").exists()


def test_pool_shape_and_jacobian_pictures(capsys, tmp_path):
    assert run(capsys, "pool", "--input", NOTES_POOL, "--size", "2", "--out", str(tmp_path / "p.png"))[0] == 0
    status, out, _ = run(capsys, "shape", "--n", "11", "--k", "3", "--s", "4", "--out", str(tmp_path / "s.png"))
    assert status == 0 and "never read: x_4, x_8" in out and (tmp_path / "s.png").exists()
    status, out, _ = run(capsys, "jacobian", "--example", "conv", "--stride", "2", "--input", "8", "--kernel", "3",
                         "--out", str(tmp_path / "j.svg"))
    assert status == 0 and "X_{s(i-1)+j}" in out and (tmp_path / "j.svg").exists()
    status, _, err = run(capsys, "jacobian", "--out", str(tmp_path / "all.png"))
    assert status == 2 and "--out needs --example" in err
    status, _, err = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--out", str(tmp_path / "w.jpg"))
    assert status == 2 and ".png or .svg" in err and not (tmp_path / "w.jpg").exists()


def test_jacobian_chain_honours_the_stride(capsys):
    status, out, _ = run(capsys, "jacobian", "--example", "chain", "--stride", "2", "--input", "1 -2 3 1 0 2 1",
                         "--filter", "1 0 1", "--w2", "1 -1 2")
    assert status == 0
    assert "stride s = 2" in out and "Z^1 = [4, 3, 1]" in out and "largest difference 0" in out
    status, _, err = run(capsys, "jacobian", "--example", "chain", "--stride", "2")
    assert status == 2 and "floor((m + 2p - k) / s) + 1" in err       # the notes' W^2 no longer fits: said why
    status, _, err = run(capsys, "jacobian", "--example", "relu", "--stride", "2")
    assert status == 2 and "does not apply" in err


def test_explain_gradients_draws_dl_dw(capsys, tmp_path):
    image = np.random.default_rng(0).random((8, 8))
    np.save(tmp_path / "digit.npy", image)
    status, out, err = run(capsys, "gradients", "digits", "--input", str(tmp_path / "digit.npy"), "--label", "3",
                           "--out", str(tmp_path / "g.png"))
    assert status == 0, err
    assert out.strip().endswith(f"wrote {tmp_path / 'g.png'}") and _width(tmp_path / "g.png") >= 1600
    status, _, err = run(capsys, "gradients", "digits", "--input", str(tmp_path / "digit.npy"), "--label", "-1")
    assert status == 2 and "--label" in err


def test_pool_out_draws_the_derivative_and_the_shift_problem(capsys, tmp_path):
    status, out, _ = run(capsys, "pool", "--input", NOTES_POOL, "--size", "2", "--picture", "derivative",
                         "--out", str(tmp_path / "d.png"))
    assert status == 0 and out.strip().endswith(f"wrote {tmp_path / 'd.png'}")
    assert _width(tmp_path / "d.png") >= 1600
    status, out, _ = run(capsys, "pool", "--input", "[[0,0,0,0],[0,1,1,0]]", "--size", "2", "--picture", "shift",
                         "--out", str(tmp_path / "s.svg"))
    assert status == 0 and "max-pool" in (tmp_path / "s.svg").read_text()
    status, _, err = run(capsys, "pool", "--input", NOTES_POOL, "--size", "2", "--kind", "avg",
                         "--picture", "shift", "--out", str(tmp_path / "a.png"))
    assert status == 2 and "draws max pooling" in err and not (tmp_path / "a.png").exists()


def test_conv_and_pool_animate_window_by_window(capsys, tmp_path):
    status, out, _ = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--animate", str(tmp_path / "c.gif"))
    assert status == 0 and out.strip().endswith(f"wrote {tmp_path / 'c.gif'}")
    with Image.open(tmp_path / "c.gif") as img:
        assert img.n_frames == 8  # one frame per window of the notes' example
    status, _, _ = run(capsys, "pool", "--input", NOTES_POOL, "--size", "2", "--animate", str(tmp_path / "p.html"))
    page = (tmp_path / "p.html").read_text()
    assert status == 0 and page.count("<svg") == 4  # one frame per receptive field
    status, _, err = run(capsys, "conv", "--input", NOTES_X, "--filter", NOTES_F, "--animate", str(tmp_path / "c.mp4"))
    assert status == 2 and ".gif or .html" in err


def test_summary_out_draws_the_architecture(capsys, tmp_path):
    status = main(["summary", "--arch", "lenet", "--out", str(tmp_path / "arch.png")])
    out, _ = capsys.readouterr()
    assert status == 0 and "Conv2d" in out and out.strip().endswith(f"wrote {tmp_path / 'arch.png'}")
    assert _width(tmp_path / "arch.png") >= 1600
