"""Fuzz the ``convscope`` command with malformed arguments and files.

Every malformed command line must end with exit status 2 and a readable message on
standard error, never a traceback: a convscope error is ONE line ``convscope COMMAND:
error: ...``; a bad option is argparse's usage line plus its ``error:`` line. ``--debug``
shows the traceback instead. Most cases run ``convscope.cli.main`` in this process (fast);
a few run the real ``convscope`` entry point in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convscope
from convscope import nn

from ._harness import judge

cli = pytest.importorskip("convscope.cli")

# NaN, Inf and huge values are fed in on purpose; the warnings they raise are expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

CATEGORY = "cli"

BAD_INTS = ["0", "-1", "abc", "1.5", "", "nan", "1e400", "99999999999999999999999"]
BAD_FLOATS = ["abc", "nan", "inf", "-1", "", "1e400", "0x10"]
BAD_SHAPES = ["", "a,b,c", "1,,2", "-1,8,8", "0,8,8", "1,8", "1,8,8,8,8", "1;8;8", "2**40,1,1",
              "1,99999999999,99999999999", "3,8,8", "8,8,1"]
BAD_ARRAYS = ["", "[[1,2],[3", "1 2 x", "nan", "[]", "[[1],[1,2]]", "1e400", "'a'", "{}",
              "[" * 200, "1 " * 5000, "missing.npy"]
BAD_AXES = ["0", "-1", "a", "1,2,3,4", "", "1,", "2**40", "99999999999", "same,1", "valid"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A small valid model (8x8 digits, as ``convscope train`` writes it) and bad files."""
    root = tmp_path_factory.mktemp("cli")
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=1))
    good = convscope.save(model, root / "model.npz", {
        "dataset": "digits", "classes": [str(i) for i in range(10)], "image_shape": [1, 8, 8],
        "normalize": {"mean": [0.0], "std": [1.0]}})
    (root / "corrupt.npz").write_bytes(good.read_bytes()[:500])
    (root / "text.npz").write_text("not a model")
    (root / "empty.npz").write_bytes(b"")
    (root / "adir").mkdir()
    np.save(root / "image.npy", np.zeros((1, 8, 8), np.float32))
    np.save(root / "bad_image.npy", np.zeros((3, 5), np.int64))
    np.save(root / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (root / "spec.json").write_text('{"type": "Bogus"}')
    (root / "notjson.json").write_text("{")
    # Import what the commands import (scikit-learn's digits, matplotlib) once, outside the
    # judged cases: tracing allocations makes imports several times slower.
    for argv in (["evaluate", str(good)], ["explain", "filters", str(good), "--out", str(root / "w.png")]):
        assert run_cli(argv)[0] == 0, argv
    return {
        "root": root, "model": str(good), "corrupt": str(root / "corrupt.npz"),
        "text": str(root / "text.npz"), "empty": str(root / "empty.npz"),
        "dir": str(root / "adir"), "missing": str(root / "missing.npz"),
        "image": str(root / "image.npy"), "bad_image": str(root / "bad_image.npy"),
        "object": str(root / "object.npy"), "bad_png": str(root / "bad.png"),
        "spec": str(root / "spec.json"), "notjson": str(root / "notjson.json"),
    }


BAD_MODELS = ["missing", "corrupt", "text", "empty", "dir", "image", "spec"]


def commands(p: dict) -> dict[str, dict]:
    """Per command: the fixed argv prefix, valid positionals, bad positionals, options
    (name -> (valid values, bad values)) and, for train, options that always fail fast."""
    out = str(p["root"] / "out")
    return {
        "summary": dict(
            prefix=["summary"], pos=[[p["model"]]], bad_pos=[[p[k]] for k in BAD_MODELS],
            opts={"--input-shape": (["1,8,8"], BAD_SHAPES),
                  "--arch": (["digits"], ["bogus", p["spec"], p["notjson"], p["missing"], ""])}),
        "evaluate": dict(
            prefix=["evaluate"], pos=[[p["model"]]], bad_pos=[[p[k]] for k in BAD_MODELS],
            opts={"--split": (["test"], ["bogus", ""]), "--batch-size": (["64"], BAD_INTS),
                  "--dataset": (["digits"], ["bogus", p["dir"], p["missing"], ""]),
                  "--data-dir": ([], [p["missing"], p["model"]])}),
        "predict": dict(
            prefix=["predict"], pos=[[p["model"], p["image"]]],
            bad_pos=[[p[k], p["image"]] for k in BAD_MODELS]
            + [[p["model"], p[k]] for k in ("bad_image", "object", "bad_png", "missing", "dir", "text")],
            opts={"--top": (["3"], BAD_INTS)}),
        "export": dict(
            prefix=["export"], pos=[[p["model"]]], bad_pos=[[p[k]] for k in BAD_MODELS],
            opts={"--format": (["onnx", "torch"], ["bogus", ""]),
                  "--out": ([out + ".onnx"], [p["dir"], str(p["root"] / "no" / "dir" / "m.onnx"), ""]),
                  "--input-shape": (["1,8,8"], BAD_SHAPES), "--opset": (["17"], BAD_INTS + ["3"])}),
        "explain conv": dict(
            prefix=["explain", "conv"], pos=[[]], bad_pos=[],
            opts={"--input": (["1 1 -1 2"], BAD_ARRAYS), "--filter": (["1 -1"], BAD_ARRAYS),
                  "--bias": (["0.5"], BAD_FLOATS), "--stride": (["1"], BAD_AXES),
                  "--padding": (["1"], BAD_AXES[1:] + ["sideways"]), "--dilation": (["1"], BAD_AXES),
                  "--padding-mode": (["zeros"], ["bogus", ""]), "--max-steps": (["5"], BAD_INTS)}),
        "explain pool": dict(
            prefix=["explain", "pool"], pos=[[]], bad_pos=[],
            opts={"--input": (["[[1,3],[4,5]]"], BAD_ARRAYS), "--size": (["2"], BAD_AXES),
                  "--stride": (["1"], BAD_AXES), "--kind": (["max", "avg", "blur"], ["bogus", ""]),
                  "--padding": (["0"], BAD_AXES[1:]), "--dilation": (["1"], BAD_AXES),
                  "--padding-mode": (["reflect"], ["bogus"]), "--max-steps": (["5"], BAD_INTS)}),
        "explain shape": dict(
            prefix=["explain", "shape"], pos=[[]], bad_pos=[],
            opts={"--n": (["28"], BAD_AXES), "--k": (["3"], BAD_AXES), "--p": (["1"], BAD_AXES[1:]),
                  "--s": (["2"], BAD_AXES), "--d": (["1"], BAD_AXES), "--op": (["conv", "pool"], ["bogus"]),
                  "--model": ([p["model"]], [p[k] for k in BAD_MODELS]),
                  "--input-shape": (["1,8,8"], BAD_SHAPES)}),
        "explain params": dict(
            prefix=["explain", "params"], pos=[[]], bad_pos=[],
            opts={"--input-shape": (["1,28,28"], BAD_SHAPES), "--out-channels": (["6"], BAD_INTS),
                  "--kernel": (["5"], BAD_AXES), "--padding": (["2"], BAD_AXES[1:]),
                  "--stride": (["1"], BAD_AXES), "--dilation": (["1"], BAD_AXES),
                  "--groups": (["1"], BAD_INTS + ["4"])}),
        "explain jacobian": dict(
            prefix=["explain", "jacobian"], pos=[[]], bad_pos=[],
            opts={"--example": (["conv", "relu", "maxpool", "chain"], ["bogus", ""]),
                  "--input": (["1 2 3 4 5"], BAD_ARRAYS), "--kernel": (["2"], BAD_AXES),
                  "--stride": (["1"], BAD_AXES), "--padding": (["0"], BAD_AXES[1:]),
                  "--filter": (["1 -1"], BAD_ARRAYS), "--w2": (["1 2"], BAD_ARRAYS),
                  "--target": (["1"], BAD_FLOATS)}),
        "explain filters": dict(
            prefix=["explain", "filters"], pos=[[p["model"]]], bad_pos=[[p[k]] for k in BAD_MODELS],
            opts={"--layer": (["1"], ["0", "-1", "99", "bogus", "", "4"]),
                  "--out": ([out + "-f.png"], [p["dir"], str(p["root"] / "no" / "d" / "f.png")]),
                  "--max-filters": (["4"], BAD_INTS), "--max-channels": (["4"], BAD_INTS)}),
        "train": dict(
            prefix=["train", "--progress", "none", "--out", out + "-train"], pos=[[]], bad_pos=[],
            opts={"--dataset": (["digits"], ["bogus", p["dir"], p["missing"], ""]),
                  "--arch": (["digits"], ["bogus", p["spec"], p["notjson"], p["missing"]]),
                  "--epochs": (["1"], BAD_INTS), "--batch-size": (["32"], BAD_INTS),
                  "--lr": (["0.1"], BAD_FLOATS + ["0"]), "--optimizer": (["sgd"], ["bogus"]),
                  "--seed": (["0"], ["-1", "abc", "1.5"]), "--threads": (["1"], BAD_INTS),
                  "--val-fraction": (["0.1"], ["-0.1", "1", "1.5", "abc", "nan"]),
                  "--clip": (["1.0"], BAD_FLOATS), "--resume": ([], [p[k] for k in BAD_MODELS])},
            # a train run with every option valid would train for seconds: each case has at
            # least one of these, all refused before training starts
            fatal={"--epochs": ["0", "-1", "abc"], "--batch-size": ["0", "abc"],
                   "--dataset": ["bogus", p["missing"]], "--arch": ["bogus", p["notjson"]],
                   "--resume": [p["missing"], p["corrupt"]]}),
    }


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``convscope argv`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse's own errors (and --help)
            status = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(here)
    return int(status), out.getvalue(), err.getvalue()


def check_cli(argv: list[str], expect_error: bool = True) -> tuple[int, str, str]:
    """Judge one command line: exit 2 with a readable message (or 0 when it was valid)."""
    context = "convscope " + " ".join(a if len(a) < 60 else a[:57] + "..." for a in argv)
    outcome = judge(lambda: run_cli(argv), category=CATEGORY, expect="ok", context=context,
                    trace=False)
    if outcome.value is None:  # only in CONVSCOPE_FUZZ_COLLECT mode: already reported
        return 2, "", ""
    status, out, err = outcome.value
    assert "Traceback" not in err, f"{context}: a traceback on stderr:\n{err[-2000:]}"
    if status == 0 and not expect_error:
        return status, out, err
    assert status == 2 or (status == 0 and not expect_error), (
        f"{context}: exit status {status}, expected 2\nstderr: {err[-1000:]}")
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, f"{context}: exit status 2 with nothing on stderr"
        errors = [line for line in lines if "error:" in line]
        assert errors, f"{context}: no 'error:' line on stderr: {err[-1000:]}"
        if not lines[0].startswith("usage:"):
            # A convscope error: exactly one line, naming the command.
            assert len(lines) == 1 or all(not ln.startswith(" ") for ln in lines[1:]), context
            assert len(errors) == 1 and errors[0].startswith("convscope"), (
                f"{context}: expected one line 'convscope COMMAND: error: ...', got:\n{err[-1500:]}")
            assert len(errors[0]) < 3000, f"{context}: error line of {len(errors[0])} characters"
    return status, out, err


def _argv(spec: dict, pos: list[str], opts: dict[str, str]) -> list[str]:
    argv = list(spec["prefix"]) + list(pos)
    for name, value in opts.items():
        argv += [name, value] if not name.startswith("--ceil") else [name]
    return argv


def test_every_bad_option(paths, monkeypatch, tmp_path):
    """Each command with one malformed option (others left out): exit 2 or a valid run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVSCOPE_NO_DOWNLOAD", "1")
    for name, spec in commands(paths).items():
        if name == "train":
            continue  # below, always with a fast-failing option
        for opt, (_valid, bad) in spec["opts"].items():
            for value in bad:
                check_cli(_argv(spec, spec["pos"][0], {opt: value}), expect_error=False)
        for pos in spec["bad_pos"]:
            check_cli(_argv(spec, pos, {}))


def test_train_bad_options(paths, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    spec = commands(paths)["train"]
    for opt, values in spec["fatal"].items():
        for value in values:
            check_cli(_argv(spec, [], {opt: value}))
    for opt, (_valid, bad) in spec["opts"].items():
        for value in bad:
            # paired with a fatal option so that nothing trains; whichever is checked first
            # must be reported cleanly
            fatal = "--epochs" if opt != "--epochs" else "--batch-size"
            check_cli(_argv(spec, [], {opt: value, fatal: "0"}))


@settings(max_examples=80)
@given(data=st.data())
def test_random_command_lines(paths, data):
    """Random commands with several options, some malformed: exit 2 (or 0 if all valid)."""
    specs = commands(paths)
    name = data.draw(st.sampled_from(sorted(specs)))
    spec = specs[name]
    chosen = data.draw(st.lists(st.sampled_from(sorted(spec["opts"])), max_size=4, unique=True))
    opts: dict[str, str] = {}
    for opt in chosen:
        valid, bad = spec["opts"][opt]
        if valid and data.draw(st.booleans()):
            opts[opt] = data.draw(st.sampled_from(valid))
        else:
            opts[opt] = data.draw(st.sampled_from(bad))
    pos = spec["pos"][0]
    if spec["bad_pos"] and data.draw(st.booleans()):
        pos = data.draw(st.sampled_from(spec["bad_pos"]))
    if name == "train":
        fatal = data.draw(st.sampled_from(sorted(spec["fatal"])))
        opts[fatal] = data.draw(st.sampled_from(spec["fatal"][fatal]))
    if data.draw(st.booleans()):  # junk positional or unknown option
        extra = data.draw(st.sampled_from(["--bogus", "-x", "extra-positional", "--", "--debug"]))
        argv = _argv(spec, pos, opts) + [extra]
    else:
        argv = _argv(spec, pos, opts)
    cwd = os.getcwd()
    os.chdir(paths["root"])
    try:
        if "--debug" in argv:
            outcome = judge(lambda: run_cli(argv), category=CATEGORY, expect="ok",
                            context="convscope " + " ".join(argv), trace=False)
            status = outcome.value[0]
            assert status in (0, 2), f"convscope {' '.join(argv)}: exit status {status}"
        else:
            # Some "bad" values are accepted forms (padding "valid", opset 3 for a check
            # further on): exit 0 is fine as long as nothing leaks.
            check_cli(argv, expect_error=False)
    finally:
        os.chdir(cwd)


def test_no_command_and_unknown_command(paths):
    for argv in ([], ["bogus"], ["--bogus"], ["explain"], ["explain", "bogus"], ["summary", "--bogus"]):
        status, _, err = run_cli(argv)
        assert status == 2 and "Traceback" not in err, (argv, status, err)


def _convscope_exe() -> list[str]:
    return [sys.executable, "-m", "convscope.cli"]


def test_real_process_one_line_and_debug(paths, tmp_path):
    """The real command: one line and status 2; with --debug the traceback."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    plain = subprocess.run(_convscope_exe() + ["summary", paths["corrupt"]], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=120)
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert plain.returncode == 2, plain
    assert len(lines) == 1 and lines[0].startswith("convscope summary: error:"), plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(_convscope_exe() + ["summary", paths["corrupt"], "--debug"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert debug.returncode == 2, debug
    assert "Traceback (most recent call last)" in debug.stderr
    assert "CheckpointError" in debug.stderr
    judge(lambda: None, category=CATEGORY, context="subprocess cases")  # count the two runs
    judge(lambda: None, category=CATEGORY, context="subprocess cases")
