"""Exercises: drawn from a seed, answered by the library, marked entry by entry."""

import math

import numpy as np
import pytest

from convscope import functional as F
from convscope.errors import ArgumentTypeError, ConfigError, DataError
from convscope.explain import trace_conv, trace_pool
from convscope.explain.exercise import KINDS, VARIANTS, make_exercise
from convscope.explain.exercise_check import check_answer, parse_answer
from convscope.explain.exercise_sheet import exercise_sheet
from convscope.shapes import conv_output_size

SEEDS = range(12)


def _args(command):
    """make_exercise keyword arguments from an Exercise.command string."""
    parts = command.split()
    kw = {"kind": parts[0]}
    for flag, value in zip(parts[1::2], parts[2::2]):
        key = flag.lstrip("-")
        if key == "size":
            kw["size"] = tuple(int(v) for v in value.split("x"))
        elif key in ("seed", "channels"):
            kw[key] = int(value)
        else:
            kw[key] = value
    return kw


def test_same_seed_same_exercise_pinned_numbers():
    # These numbers are what numpy's PCG64 stream gives for seed 0; a machine or numpy version
    # that drew others would give students different exercises for the same seed.
    ex = make_exercise("conv", seed=0)
    assert ex.trace.x[0].tolist() == [-1, -1, -2, -2, -2]
    assert ex.trace.f.tolist() == [[2, 1, 2], [-1, -1, 2], [-1, 1, -1]]
    assert ex.answer.tolist() == [[-4, -5, 2], [6, 2, 5], [9, 8, 7]]
    again = make_exercise("conv", seed=0)
    assert again.question() == ex.question() and again.solution() == ex.solution()
    pool = make_exercise("backprop", seed=0)
    assert pool.command == "backprop --seed 0 --variant maxpool"
    assert pool.answer[1].tolist() == [2, 0, 0, 1, 0, -1]


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_give_different_exercises(kind):
    questions = {make_exercise(kind, seed=s).question() for s in SEEDS}
    assert len(questions) >= len(SEEDS) - 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 5, 9])
def test_command_draws_the_same_exercise_again(kind, seed):
    ex = make_exercise(kind, seed=seed)
    again = make_exercise(**_args(ex.command))
    assert np.array_equal(again.answer, ex.answer) and again.question() == ex.question()


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_answer_is_the_library_convolution(seed):
    ex = make_exercise("conv", seed=seed)
    t = ex.trace
    g = t.geometry
    x = t.x[None] if not t.channels else t.x
    f = t.f[None] if not t.channels else t.f
    y = F.conv(x[None], f[None, ...], np.array([t.b]), stride=g.s, padding=g.p)[0, 0]
    assert np.array_equal(ex.answer, y)
    assert t.text() in ex.solution()                      # the solution IS the explainer's trace


def test_conv_with_channels_and_1d():
    ex = make_exercise("conv", seed=2, channels=2, size=(4, 4))
    assert ex.trace.channels and ex.trace.x.shape == (2, 4, 4) and "tensor filter" in ex.question()
    one = make_exercise("conv", seed=2, size=8)
    assert one.answer.ndim == 1 and one.trace.x.shape == (8,)


@pytest.mark.parametrize("variant", ["max", "avg"])
@pytest.mark.parametrize("seed", SEEDS)
def test_pool_answer_is_the_library_pooling(seed, variant):
    ex = make_exercise("pool", seed=seed, variant=variant)
    t = ex.trace
    op = F.max_pool if variant == "max" else F.avg_pool
    assert np.allclose(ex.answer, op(t.x[None, None], t.k, t.s)[0, 0], rtol=0, atol=1e-12)
    assert t.text() in ex.solution()


@pytest.mark.parametrize("seed", SEEDS)
def test_shape_answer_is_key_equation_48(seed):
    ex = make_exercise("shape", seed=seed)
    for a, out in zip(ex.trace.axes, ex.answer):
        assert out == conv_output_size(a.n, a.k, a.p[0], a.s, a.d)


@pytest.mark.parametrize("seed", SEEDS)
def test_params_answer_counts_a_real_layer(seed):
    from convscope import nn

    ex = make_exercise("params", seed=seed)
    e = ex.trace
    layer = nn.Conv2d(e.in_shape[0], e.out_shape[0], e.kernel, rng=0)
    assert ex.answer[0] == sum(p.data.size for p in layer.parameters())
    n_in, n_out = math.prod(e.in_shape), math.prod(e.out_shape)
    assert ex.answer[1] == n_in * n_out + n_out


@pytest.mark.parametrize("seed", SEEDS)
def test_backprop_dw_is_the_library_filter_gradient(seed):
    ex = make_exercise("backprop", seed=seed, variant="dw")
    g = ex.given
    k = (g["kernel_size"],) * 2
    _, dw, _ = F.conv_backward(g["dy"][None, None], g["x"][None, None], np.zeros((1, 1) + k), stride=g["stride"])
    assert np.array_equal(ex.answer, dw[0, 0])
    assert ex.trace.text() in ex.solution() and "9.31" in ex.solution()


@pytest.mark.parametrize("seed", SEEDS)
def test_backprop_maxpool_is_one_hot_routing(seed):
    ex = make_exercise("backprop", seed=seed, variant="maxpool")
    a, dy = ex.given["a"], ex.given["dy"]
    assert np.array_equal(ex.answer, F.max_pool_backward(dy[None, None], a[None, None], 2, 2)[0, 0])
    # no ties inside a window: the routing does not depend on a tie rule
    for st in ex.trace.steps:
        assert (st.values == st.y).sum() == 1
    assert np.count_nonzero(ex.answer) == dy.size


def test_variant_named_or_drawn_gives_the_same_numbers():
    for seed in SEEDS:
        drawn = make_exercise("backprop", seed=seed)
        named = make_exercise("backprop", seed=seed, variant=drawn.variant)
        assert np.array_equal(drawn.answer, named.answer)


def test_checker_finds_an_injected_wrong_entry_and_names_it():
    ex = make_exercise("conv", seed=4)
    answer = ex.answer.copy()
    answer[1, 0] += 3
    r = check_answer(ex, answer)
    assert not r.correct and r.wrong == ((1, 0),)
    text = r.text()
    assert "1 of 9 entries is wrong: y_{2,1}" in text
    step = ex.trace.step((1, 0))
    assert ex.trace.window_text(step) in text and ex.trace.arithmetic(step) in text
    assert f"you wrote {int(answer[1, 0])}, the right value is {int(ex.answer[1, 0])}" in text
    assert check_answer(ex, ex.answer).correct


@pytest.mark.parametrize("kind, variant, needle", [
    ("pool", "max", "max "), ("shape", None, "floor form"), ("params", None, "weights"),
    ("backprop", "dw", "dL/dW_{"), ("backprop", "maxpool", "maximum"),
])
def test_checker_explains_the_first_wrong_entry_of_every_kind(kind, variant, needle):
    ex = make_exercise(kind, seed=1, variant=variant)
    answer = ex.answer.copy()
    pos = tuple(int(i) for i in np.unravel_index(answer.size - 1, answer.shape))
    answer[pos] += 1
    r = check_answer(ex, answer)
    assert r.wrong == (pos,) and ex.entry_label(pos) in r.text() and needle in r.text()


def test_checker_reads_typed_text_files_and_fractions(tmp_path):
    ex = make_exercise("pool", seed=5, variant="avg", size=(4, 4))
    exact = ex.answer
    typed = "; ".join(" ".join(f"{v:.2f}" for v in row) for row in exact)
    assert check_answer(ex, typed).correct
    fractions = "\n".join(" ".join(f"{round(v * 9)}/9" for v in row) for row in exact)
    assert check_answer(ex, fractions).correct
    (tmp_path / "answer.txt").write_text(fractions)
    assert check_answer(ex, str(tmp_path / "answer.txt")).correct
    np.save(tmp_path / "answer.npy", exact)
    assert check_answer(ex, tmp_path / "answer.npy").correct
    off = exact.copy()
    off[0, 1] += 0.02
    assert check_answer(ex, off).wrong == ((0, 1),)


def test_checker_refuses_a_fifo_or_a_folder_as_answer_file(tmp_path):
    import os

    ex = make_exercise("conv", seed=0)
    fifo = tmp_path / "answer"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        check_answer(ex, str(fifo))
    with pytest.raises(DataError, match="directory|folder"):
        check_answer(ex, tmp_path)


def test_whole_number_answers_must_be_exact():
    ex = make_exercise("conv", seed=0)
    near = ex.answer + 0.01
    assert len(check_answer(ex, near).wrong) == ex.answer.size


def test_checker_wrong_shape_and_unreadable_answers():
    ex = make_exercise("conv", seed=0)
    r = check_answer(ex, "1 2 3; 4 5 6")
    assert not r.correct and r.problem and "3x3 matrix" in r.text() and "2x3" in r.text()
    with pytest.raises(DataError, match="could not read 'x'"):
        check_answer(ex, "1 2 x")
    with pytest.raises(DataError, match="same number of entries"):
        parse_answer("1 2; 3")
    vector = make_exercise("shape", seed=0)
    assert check_answer(vector, "; ".join(str(int(v)) for v in vector.answer)).correct


def test_formats_html_and_latex():
    ex = make_exercise("backprop", seed=2, variant="dw")
    h = ex.question("html")
    assert '<table class="m">' in h and "<script" not in h
    tex = ex.question("latex")
    assert r"\begin{bmatrix}" in tex and r"\frac{\partial L}{\partial Z}" in tex
    sol = ex.solution("latex")
    assert sol.count(r"\begin{verbatim}") == sol.count(r"\end{verbatim}") >= 1
    with pytest.raises(ConfigError, match="format"):
        ex.question("pdf")


@pytest.mark.parametrize("fmt", ["text", "html", "latex"])
def test_sheet_of_questions_and_separate_solutions(fmt):
    sheet = exercise_sheet(count=7, seed=20, fmt=fmt)
    assert len(sheet.exercises) == 7
    assert [e.kind for e in sheet.exercises] == list(KINDS) + list(KINDS[:2])
    for i, ex in enumerate(sheet.exercises, 1):
        assert f"Question {i}" in sheet.questions and f"Solution {i}" in sheet.solutions
        assert f"exercise check {ex.command}" in sheet.questions.replace("\\_", "_").replace("\\", "")
    # the question sheet gives no answers; the solution sheet holds every worked trace
    assert "bright spot" not in sheet.questions and "bright spot" in sheet.solutions
    if fmt == "html":
        assert sheet.questions.startswith("<!DOCTYPE html>") and "http" not in sheet.questions
    if fmt == "latex":
        for doc in (sheet.questions, sheet.solutions):
            assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
            assert doc.isascii()
            assert doc.count(r"\begin{") == doc.count(r"\end{")


def test_sheet_saves_questions_and_solutions_apart(tmp_path):
    sheet = exercise_sheet(count=3, seed=1, fmt="latex")
    q, s = sheet.save(tmp_path / "q.tex", tmp_path / "s.tex")
    assert q.read_text() == sheet.questions and s.read_text() == sheet.solutions
    with pytest.raises(ConfigError, match="another file"):
        sheet.save(tmp_path / "q.tex", tmp_path / "q.tex")


def test_errors_name_the_argument():
    with pytest.raises(ConfigError, match="kind must be one of"):
        make_exercise("matmul")
    with pytest.raises(ConfigError, match="from 2 to 12"):
        make_exercise("conv", size=(40, 40))
    with pytest.raises(ArgumentTypeError, match="seed"):
        make_exercise("conv", seed=-1)
    with pytest.raises(ArgumentTypeError, match="size"):
        make_exercise("conv", size="5x5")
    with pytest.raises(ConfigError, match="channels applies to conv"):
        make_exercise("pool", channels=2)
    with pytest.raises(ConfigError, match="variant must be one of max, avg"):
        make_exercise("pool", variant="blur")
    with pytest.raises(ConfigError, match="no variants"):
        make_exercise("conv", variant="max")
    with pytest.raises(ConfigError, match="count"):
        exercise_sheet(count=0)


def test_variants_table_matches_the_makers():
    for kind, options in VARIANTS.items():
        for v in options or (None,):
            assert make_exercise(kind, seed=3, variant=v).variant == v


def test_reprs_are_short():
    ex = make_exercise("conv", seed=1)
    assert len(repr(ex)) < 200 and len(repr(check_answer(ex, ex.answer))) < 200
    assert len(repr(exercise_sheet(count=2))) < 200


def test_trace_functions_agree_with_the_exercise_numbers():
    ex = make_exercise("pool", seed=7)
    t = trace_pool(ex.trace.x, ex.trace.k, ex.trace.s)
    assert np.array_equal(t.y, ex.answer)
    c = make_exercise("conv", seed=7)
    t2 = trace_conv(c.trace.x, c.trace.f, c.trace.b, stride=c.trace.geometry.s, padding=c.trace.geometry.p)
    assert np.array_equal(t2.y, c.answer)
