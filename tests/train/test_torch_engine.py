"""engine="torch": the same recipe trained by PyTorch (one process, and two with gloo), and back.

Tolerances, as measured on the digits recipe (Adam, cosine per batch, batch 32):
* one process, float32: every first-epoch step loss within 2.3e-7 relative of convscope's
  engine (the batches are the same; PyTorch's oneDNN/BLAS kernels add in another order than
  NumPy's, and Adam carries the rounding on); asserted at 1e-5. float64: 2.5e-16, asserted 1e-12.
* two processes, float64: the all-reduced gradients of every step equal one process's on the
  global batch to 2.5e-15 relative (asserted 1e-12), also on the last batch of the epoch,
  which splits unevenly (29 images: 15 and 14).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json

import numpy as np
import pytest

from convscope import errors, optim
from convscope.cli import main
from convscope.data import load_dataset
from convscope.errors import ConfigError, MissingDependencyError
from convscope.models import RECIPES, add_input_normalization, build_model, build_training
from convscope.nn import Parameter
from convscope.train import LambdaCallback, ModelCheckpoint, evaluate, fit, torch_engine
from convscope.train.torch_engine import fit_torch, resolve_device, torchrun_env, wants_torch

# --------------------------------------------------------------------------- without torch


def _no_torch(monkeypatch):
    def missing(name, what, install, submodules=()):
        return errors.import_optional("convscope_test_no_such_package", what, install)

    monkeypatch.setattr(torch_engine, "import_optional", missing)


def test_without_torch_the_engine_says_what_to_install(monkeypatch, capsys, tmp_path):
    _no_torch(monkeypatch)
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2
    model = build_model("digits", num_classes=2, seed=0)
    with pytest.raises(MissingDependencyError, match=r'pip install "convscope\[torch\]"'):
        fit(model, (x, y), engine="torch", progress=False)
    assert main(["train", "--engine", "torch", "--out", str(tmp_path / "run")]) != 0
    assert 'pip install "convscope[torch]"' in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_engine_options_are_checked():
    assert wants_torch("torch", None, None) and not wants_torch("convscope", None, 1)
    with pytest.raises(ConfigError, match="engine must be one of"):
        wants_torch("jax", None, None)
    model = build_model("digits", num_classes=2, seed=0)
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2
    with pytest.raises(ConfigError, match="options of engine='torch'"):
        fit(model, (x, y), nproc=2, progress=False)
    with pytest.raises(ConfigError, match="options of engine='torch'"):
        fit(model, (x, y), device="cuda", progress=False)


def test_torchrun_environment_is_read(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert torchrun_env() is None
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert torchrun_env() == (1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK < WORLD_SIZE"):
        torchrun_env()
    monkeypatch.setenv("RANK", "zero")
    with pytest.raises(ConfigError, match="not integers"):
        torchrun_env()


# --------------------------------------------------------------------------- with torch

# Only these tests need torch; the ones above run without it.
torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
needs_torch = pytest.mark.skipif(torch is None, reason="the torch engine needs the optional package torch")


@needs_torch
def test_device_selection_and_the_error_without_cuda(monkeypatch):
    assert resolve_device(torch, "cpu", 2) == "cpu"
    with pytest.raises(ConfigError, match="must be 'cpu', 'cuda' or 'cuda:K'"):
        resolve_device(torch, "gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="has no CUDA device.*device='cpu'"):
        resolve_device(torch, "cuda")
    model = build_model("digits", num_classes=2, seed=0)
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2
    with pytest.raises(ConfigError, match="no CUDA device"):
        fit(model, (x, y), engine="torch", device="cuda:0", progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device(torch, "cuda") == "cuda"
    with pytest.raises(ConfigError, match="needs 2 GPUs .one per process.; torch sees 1"):
        resolve_device(torch, "cuda", 2)
    with pytest.raises(ConfigError, match="needs 2 GPUs"):
        resolve_device(torch, "cuda:1")


@needs_torch
def test_nproc_must_match_torchrun(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4) % 2
    with pytest.raises(ConfigError, match="torchrun started 2 processes"):
        fit(build_model("digits", num_classes=2, seed=0), (x, y), engine="torch", nproc=3, progress=False)


def _scheduled(kind: str):
    p = Parameter(np.zeros(3))
    if kind == "onecycle":
        opt = optim.SGD([("w", p)], lr=0.1, momentum=0.9)
        return opt, optim.OneCycleLR(opt, max_lr=0.5, total_steps=20)
    opt = optim.Adam([("w", p)], lr=0.1)
    if kind == "cosine":
        return opt, optim.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
    return opt, optim.StepLR(opt, step_size=3, gamma=0.5)


@needs_torch
@pytest.mark.parametrize("kind", ["step", "cosine", "onecycle"])
@pytest.mark.parametrize("start", [0, 7])
def test_schedules_map_to_torch_at_any_position(kind, start):
    opt, sched = _scheduled(kind)
    for _ in range(start):
        sched.step()
    tp = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    topt = torch_engine._torch_optimizer(torch, opt, {"w": tp})
    tsched = torch_engine._torch_scheduler(torch, sched, topt)
    for _ in range(12):
        group = topt.param_groups[0]
        assert group["lr"] == pytest.approx(opt.lr, rel=1e-12)
        if kind == "onecycle":
            assert group["momentum"] == pytest.approx(opt.momentum, rel=1e-12)
        sched.step()
        topt.step()  # (no gradients: changes nothing; torch wants it before the schedule's step)
        tsched.step()


# ---------------------------------------------------------------- the digits recipe, both engines


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


def _recipe(train, dtype, epochs):
    model = add_input_normalization(
        build_model("digits", input_shape=train.image_shape, num_classes=10, seed=0), train).to(dtype)
    setup = build_training(dataclasses.replace(RECIPES["digits"], epochs=epochs), model, train)
    kwargs = dict(optimizer=setup.optimizer, scheduler=setup.scheduler, scheduler_interval="batch",
                  epochs=epochs, batch_size=32, seed=0, transform=setup.transform, progress=False, threads=1)
    return model, kwargs


def _step_losses(train, dtype, **engine):
    model, kwargs = _recipe(train, dtype, 1)
    losses: list[float] = []
    fit(model, train, callbacks=[LambdaCallback(on_batch_end=lambda run, b, logs: losses.append(logs["loss"]))],
        **kwargs, **engine)
    return np.array(losses), model


@needs_torch
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_first_epoch_losses_match_convscopes_engine(digits, dtype, rtol):
    train, test = digits
    ours, model = _step_losses(train, dtype)
    theirs, tmodel = _step_losses(train, dtype, engine="torch")
    assert len(ours) == len(theirs) == 45  # ceil(1437 / 32) steps of the same batches
    np.testing.assert_allclose(theirs, ours, rtol=rtol)
    a, b = evaluate(model, test), evaluate(tmodel, test)
    assert abs(a["accuracy"] - b["accuracy"]) <= 2 / 360 and a["loss"] == pytest.approx(b["loss"], rel=100 * rtol)


@needs_torch
def test_sgd_onecycle_batchnorm_and_augmentation_match_too():
    """The CIFAR-10 recipe's parts (SGD with momentum and weight decay, one-cycle with momentum
    cycling, BatchNorm, random crops and flips) on a tiny model: float64, two epochs."""
    from convscope.data import Compose, RandomCrop, RandomHorizontalFlip

    from ._helpers import tiny_cnn, toy_images

    x, y = toy_images(40)
    runs = {}
    for engine in ("convscope", "torch"):
        model = tiny_cnn(seed=0, dropout=0.0).to(np.float64)
        opt = optim.SGD(model.named_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        sched = optim.OneCycleLR(opt, max_lr=0.05, total_steps=6)
        losses: list[float] = []
        fit(model, (x.astype(np.float64), y), epochs=2, batch_size=16, seed=3, optimizer=opt, scheduler=sched,
            scheduler_interval="batch", transform=Compose([RandomCrop(padding=1), RandomHorizontalFlip()]),
            callbacks=[LambdaCallback(on_batch_end=lambda run, b, logs: losses.append(logs["loss"]))],
            progress=False, engine=engine)
        runs[engine] = np.array(losses), model.state_dict(), opt.state_dict()
    (a, wa, oa), (b, wb, ob) = runs["convscope"], runs["torch"]
    assert len(a) == 6
    np.testing.assert_allclose(b, a, rtol=1e-12)
    for key in wa:  # the weights, BatchNorm's running statistics and the momentum buffers came back
        np.testing.assert_allclose(wb[key], wa[key], rtol=1e-10, atol=1e-13, err_msg=key)
    assert oa["hyperparameters"] == pytest.approx(ob["hyperparameters"], rel=1e-12)
    for key in oa["arrays"]:
        np.testing.assert_allclose(ob["arrays"][key], oa["arrays"][key], rtol=1e-10, atol=1e-13, err_msg=key)


@needs_torch
def test_two_processes_equal_one_on_the_global_batch(digits):
    """A real torch.distributed run (gloo on 127.0.0.1, two processes; timeout 120 s)."""
    train, test = digits
    grads: dict[int, list[dict]] = {1: [], 2: []}
    models, histories = {}, {}
    for n in (1, 2):
        model, kwargs = _recipe(train, np.float64, 2)
        histories[n] = fit_torch(model, train, nproc=n, timeout=120.0, **kwargs,
                                 gradient_hook=lambda step, g, n=n: grads[n].append(g))
        models[n] = model
    assert len(grads[1]) == len(grads[2]) == 90
    for one, two in zip(grads[1], grads[2]):
        assert one.keys() == two.keys()
        for key in one:
            np.testing.assert_allclose(two[key], one[key], rtol=1e-12, atol=1e-12 * np.abs(one[key]).max())
    assert histories[2].info["engines"][-1]["nproc"] == 2
    assert histories[2].last["train_loss"] == pytest.approx(histories[1].last["train_loss"], rel=1e-10)
    # the model trained on two processes, imported back: the same test accuracy within one image
    # in 360 (float64 rounding could flip an argmax at most), and convscope scores it as PyTorch does
    one, two = evaluate(models[1], test), evaluate(models[2], test)
    assert abs(one["accuracy"] - two["accuracy"]) <= 1 / 360 and two["accuracy"] > 0.85
    reported = torch_engine.evaluate_torch(models[2], test)
    assert reported["accuracy"] == two["accuracy"] and reported["loss"] == pytest.approx(two["loss"], rel=1e-9)


# --------------------------------------------------------------------------- resume, both ways


def _train(train, engine, epochs, *, resume=None, save=None):
    model, kwargs = _recipe(train, np.float64, 2)
    kwargs["epochs"] = epochs
    callbacks = [ModelCheckpoint(save)] if save is not None else []
    fit(model, train, callbacks=callbacks, resume=resume, engine=engine, **kwargs)
    return model


@needs_torch
@pytest.mark.parametrize("first, then", [("torch", "convscope"), ("convscope", "torch"), ("torch", "torch")])
def test_a_checkpoint_resumes_on_either_engine(digits, tmp_path, first, then):
    train, _ = digits
    ckpt = tmp_path / "checkpoint.npz"
    _train(train, first, 1, save=ckpt)
    resumed = _train(train, then, 2, resume=ckpt)
    straight = _train(train, then, 2)
    a, b = resumed.state_dict(), straight.state_dict()
    for key in b:  # float64: the engines' rounding (1e-16) stays far below this
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)


# --------------------------------------------------------------------------- the command line


@needs_torch
def test_cli_engine_torch_writes_a_run_the_other_commands_use(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--engine", "torch", "--epochs", "2", "--out", str(out), "--progress", "none"]) == 0
    for name in ("model.npz", "history.json", "metrics.json", "checkpoint.npz", "config.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["engine"] == "torch" and metrics["nproc"] == 1
    assert metrics["torch_test_accuracy"] == metrics["test_accuracy"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["accuracy"] == metrics["test_accuracy"]
    image = tmp_path / "digit.npy"
    np.save(image, load_dataset("digits", split="test").batch([0])[0][0])
    assert main(["predict", str(out), str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in [str(i) for i in range(10)]
    assert main(["export", str(out), "--format", "torch", "--out", str(tmp_path / "m.pt")]) == 0
    assert main(["explain", "model", str(out), "--input", str(image), "--out", str(tmp_path / "r.html")]) == 0
    with pytest.raises(SystemExit):  # only the torch engine takes --device/--nproc
        main(["train", "--engine", "numpy"])
    assert main(["train", "--nproc", "2", "--out", str(tmp_path / "x")]) == 2
    assert "options of engine='torch'" in capsys.readouterr().err
