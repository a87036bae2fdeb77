"""Smoke tests of the end-to-end benchmark (benchmarks/bench_e2e.py); no timing asserted.

They run in-process on the built-in digits or a tiny synthetic set, with the machine's
OPENBLAS_* settings untouched; the real figures come from ``python -m benchmarks.bench_e2e``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_e2e  # noqa: E402 (needs the repository root on sys.path first)


def _torch():
    return pytest.importorskip("torch", reason="PyTorch (torch) is not installed: the PyTorch side of "
                                               "the end-to-end benchmark cannot run")


@pytest.fixture(scope="module")
def digits():
    plan = bench_e2e.make_plan("digits", "builtin", seed=0)
    return plan, bench_e2e.prepare_data(plan, None)


def test_both_libraries_train_the_same_run_on_the_same_batches(digits):
    _torch()
    plan, data = digits
    results = bench_e2e.run_e2e(plan, data, ["convscope", "torch"], target=1.0, max_epochs=2)
    cs, pt = results["runs"]["convscope"], results["runs"]["torch"]
    assert results["same_batches"] is True
    assert results["first_loss_difference"] < 1e-4  # same weights, same first batch
    for run in (cs, pt):
        rows = run["epochs"]
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) == (run["epochs_to_target"] or 2)
        assert rows[0]["images"] == 1437 and run["steps_per_epoch"] == 45
        assert 0 < rows[0]["train_seconds"] <= rows[-1]["train_seconds"]
        assert rows[0]["lr_first"] == pytest.approx(3e-3) and rows[-1]["lr_last"] < rows[0]["lr_first"]
        assert run["schedule_steps"] == 12 * 45  # the recipe's cosine keeps its 12 epochs
    # identical training: the two libraries end within float32 noise of each other
    for a, b in zip(cs["epochs"], pt["epochs"]):
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-3
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 2 / 360
    text = bench_e2e.format_e2e(results)
    assert "same batches and learning rates: yes" in text
    assert "| 1 | " in text and "| convscope | " in text and "| torch | " in text


def test_sgd_one_cycle_with_augmentation_matches_pytorch():
    """The CIFAR recipe's path: SGD + weight decay, one-cycle lr and momentum, crop + flip."""
    _torch()
    from convscope.data import Dataset

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 160)
    pixels = rng.integers(0, 256, (160, 1, 8, 8), dtype=np.uint8)
    pixels[np.arange(160), 0, y * 2, :] = 255  # a learnable stripe per class
    train = Dataset(pixels[:128], y[:128], ["a", "b", "c"], "stripes", split="train")
    test = Dataset(pixels[128:], y[128:], ["a", "b", "c"], "stripes", split="test")
    plan = bench_e2e.Plan("stripes", "builtin", "digits", 32, "sgd", 0.05, 0.9, 5e-4, "onecycle", 3,
                          0, 1, True, 0)
    from convscope.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip

    x_test, y_test = test.batch(np.arange(len(test)))
    data = bench_e2e.Data(train, Compose([RandomCrop(padding=1), RandomHorizontalFlip(), Normalize(0.3, 0.4)]),
                          Normalize(0.3, 0.4)(x_test), y_test, 0.0, {"name": "stripes"})
    results = bench_e2e.run_e2e(plan, data, ["convscope", "torch"], target=1.0, max_epochs=2)
    cs, pt = results["runs"]["convscope"], results["runs"]["torch"]
    assert results["same_batches"] is True
    assert cs["schedule_steps"] == 12 and len(cs["epochs"]) == len(pt["epochs"])
    assert cs["epochs"][0]["lr_first"] == pytest.approx(0.05 / 25)  # one-cycle starts at max_lr / 25
    assert cs["epochs"][-1]["lr_last"] > cs["epochs"][0]["lr_first"]  # still warming up at step 8
    for a, b in zip(cs["epochs"], pt["epochs"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-3


def test_a_run_stops_at_the_first_epoch_that_reaches_the_target(digits):
    plan, data = digits
    results = bench_e2e.run_e2e(plan, data, ["convscope"], target=0.05, max_epochs=3)
    run = results["runs"]["convscope"]
    assert run["epochs_to_target"] == 1 and len(run["epochs"]) == 1
    assert run["train_seconds_to_target"] == run["epochs"][0]["train_seconds"] > 0
    assert "ratio_to_target" not in results  # no PyTorch run to compare with


def test_main_writes_json_and_markdown_and_renders_them(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    argv = ["--dataset", "digits", "--recipe", "builtin", "--max-epochs", "1", "--target", "0.999",
            "--library", "convscope", "--train-limit", "200", "--test-limit", "100", "--json", str(out),
            "--label", "smoke"]
    assert bench_e2e.main(argv) == 0
    saved = json.loads(out.read_text())
    assert saved["label"] == "smoke" and saved["data"]["train_images"] == 200
    assert Path(saved["convscope"]["file"]).name == "__init__.py"
    assert saved["runs"]["convscope"]["epochs"][0]["images"] == 200
    assert out.with_suffix(".md").read_text().startswith("### digits, recipe builtin")
    capsys.readouterr()
    assert bench_e2e.main(["--render", str(out), str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| smoke | digits / builtin | convscope | 0.999 |")


def test_max_epochs_past_the_schedule_and_a_missing_source_are_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"exceeds the cosine schedule .*\(12 epochs\)"):
        bench_e2e.main(["--dataset", "digits", "--recipe", "builtin", "--max-epochs", "13"])
    with pytest.raises(SystemExit, match="--convscope-src must be a folder holding the convscope package"):
        bench_e2e.main(["--convscope-src", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench_e2e.build_parser().parse_args(["--library", "convscope,jax"])
    with pytest.raises(SystemExit):
        bench_e2e.build_parser().parse_args(["--target", "1.5"])
