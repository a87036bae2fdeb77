"""``convscope exercise ...`` and ``convscope explain serve``: the exercises and the live mode from the shell."""

from __future__ import annotations

import numpy as np
import pytest

from convscope import cli, nn, save
from convscope.explain import make_exercise


def _main(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _typed(a):
    return "; ".join(" ".join(str(int(v)) for v in row) for row in np.atleast_2d(a))


def test_question_and_worked_solution(capsys):
    status, out, _ = _main(["exercise", "conv", "--seed", "3"], capsys)
    ex = make_exercise("conv", seed=3)
    assert status == 0 and out.startswith(ex.question()) and "bright spot" not in out
    assert "convscope exercise check conv --seed 3" in out
    status, out, _ = _main(["exercise", "conv", "--seed", "3", "--solution"], capsys)
    assert status == 0 and ex.trace.text() in out


@pytest.mark.parametrize("fmt, start", [("html", "<!DOCTYPE html>"), ("latex", "\\documentclass")])
def test_formats_written_to_a_file(tmp_path, capsys, fmt, start):
    out_file = tmp_path / f"q.{fmt}"
    status, out, _ = _main(["exercise", "backprop", "--seed", "2", "--variant", "dw", "--format", fmt,
                            "--solution", "--out", str(out_file)], capsys)
    text = out_file.read_text()
    assert status == 0 and f"wrote {out_file}" in out and text.startswith(start) and "9.31" in text


def test_check_names_the_wrong_entry_and_sets_the_exit_status(tmp_path, capsys):
    ex = make_exercise("conv", seed=3)
    wrong = ex.answer.copy()
    wrong[2, 2] += 1
    status, out, _ = _main(["exercise", "check", "conv", "--seed", "3", _typed(wrong)], capsys)
    assert status == 1 and "1 of 9 entries is wrong: y_{3,3}" in out
    assert ex.trace.arithmetic(ex.trace.step((2, 2))) in out
    status, out, _ = _main(["exercise", "check", "conv", "--seed", "3", _typed(ex.answer)], capsys)
    assert status == 0 and "all 9 entries of y are right" in out
    answer_file = tmp_path / "answer.txt"
    answer_file.write_text(_typed(ex.answer).replace("; ", "\n"))
    status, out, _ = _main(["exercise", "check", "conv", "--seed", "3", str(answer_file)], capsys)
    assert status == 0


def test_check_with_size_and_variant(capsys):
    ex = make_exercise("backprop", seed=4, size=(4, 4), variant="maxpool")
    argv = ["exercise", "check", "backprop", "--seed", "4", "--size", "4x4", "--variant", "maxpool"]
    status, out, _ = _main(argv + [_typed(ex.answer)], capsys)
    assert status == 0
    status, out, _ = _main(argv + [_typed(np.zeros((4, 4)))], capsys)
    assert status == 1 and "dL/da[" in out


def test_sheet_writes_questions_and_solutions(tmp_path, capsys):
    out_file = tmp_path / "sheet.html"
    status, out, _ = _main(["exercise", "sheet", "--count", "6", "--seed", "10", "--out", str(out_file)], capsys)
    solutions = tmp_path / "sheet-solutions.html"
    assert status == 0 and out_file.exists() and solutions.exists()
    assert "Question 6" in out_file.read_text() and "Solution 6" in solutions.read_text()
    status, _, err = _main(["exercise", "sheet", "--out", str(out_file), "--solutions", str(out_file)], capsys)
    assert status == 2 and "--solutions must differ" in err
    status, _, err = _main(["exercise", "sheet", "--kinds", "conv,matmul", "--out", str(out_file)], capsys)
    assert status == 2 and "--kinds expects" in err


def test_bad_options_are_one_line_errors(capsys):
    status, _, err = _main(["exercise", "pool", "--variant", "min"], capsys)
    assert status == 2 and "--variant expects max or avg; got 'min'" in err
    status, _, err = _main(["exercise", "conv", "--size", "5x"], capsys)
    assert status == 2 and "--size expects" in err
    status, _, err = _main(["exercise", "conv", "--size", "40x40"], capsys)
    assert status == 2 and "from 2 to 12" in err and "Traceback" not in err


@pytest.fixture
def model_file(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3, rng=1))
    path = tmp_path / "m.npz"
    save(model, path, metadata={"image_shape": [1, 8, 8], "classes": ["a", "b", "c"],
                                "normalize": {"mean": [0.5], "std": [0.25]}})
    return path


def test_serve_refuses_a_remote_host_without_allow_remote(model_file, capsys):
    status, _, err = _main(["explain", "serve", str(model_file), "--host", "0.0.0.0"], capsys)
    assert status == 2 and "refusing to listen on '0.0.0.0'" in err and "--allow-remote" in err


def test_serve_passes_the_model_file_metadata(model_file, capsys, monkeypatch):
    import convscope.viz.serve as live

    seen = {}

    def fake_serve(model, image_shape, **kwargs):
        seen.update(kwargs, model=model, image_shape=image_shape)

    monkeypatch.setattr(live, "serve", fake_serve)
    status, _, _ = _main(["explain", "serve", str(model_file), "--port", "0", "--max-upload-mb", "1"], capsys)
    assert status == 0 and seen["image_shape"] == [1, 8, 8] and seen["class_names"] == ["a", "b", "c"]
    assert seen["host"] == "127.0.0.1" and seen["port"] == 0 and seen["max_upload_bytes"] == 2**20
    x = np.ones((1, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(seen["normalize"](x), (x - 0.5) / 0.25)
    status, _, err = _main(["explain", "serve", str(model_file), "--port", "70000"], capsys)
    assert status == 2 and "--port" in err
