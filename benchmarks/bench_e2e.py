"""End to end: training time to a test-accuracy target, convscope next to PyTorch.

Both libraries train the same model (the PyTorch twin of the convscope model, built by
:func:`benchmarks.bench_train.torch_twin`, starts from the same weights) on the same
batches: each library iterates its own convscope :class:`~convscope.data.DataLoader`,
seeded exactly as ``convscope train`` seeds it (``SeedSequence(seed).spawn(2)[0]``), with
the recipe's transforms, so both see identical NumPy batches in the same order (a CRC of
every epoch's images and labels is recorded per library to prove it). The optimizer,
learning-rate schedule and augmentation come from the plan's :class:`convscope.models.Recipe`
(``make_transforms``, ``make_optimizer``: the two halves of
:func:`convscope.models.build_training`, which ``convscope train`` uses); the PyTorch side
uses the equivalent ``torch.optim`` optimizer and, before every step, takes the learning rate
(and, for the one-cycle schedule, the momentum) that convscope's schedule gives for that
step, so the schedules are identical.

Timing. Per epoch: the training time (wall clock of forward, loss, backward, optimizer
and schedule step only; process CPU time too), the data time (drawing and transforming
the batch, converting it for the library; shared work, reported apart), then the accuracy
on the full test set (not counted). A library's run stops at the first epoch whose test
accuracy reaches ``--target``, or after ``--max-epochs``; a schedule keeps the recipe's
length even when the run stops early. Libraries run one after the other in one process,
at the same thread count (threadpoolctl for BLAS, ``torch.set_num_threads``,
``convscope.set_num_threads``).

Recipes:

- ``issue``: the recipe of issue 4's end-to-end target: LeNet (``build_model("lenet")``),
  Adam lr 1e-3 constant, batch 64, no augmentation, inputs normalised like every
  convscope recipe.
- ``builtin``: the dataset's recipe from :func:`convscope.models.recipe_for` (CIFAR-10:
  SGD 0.05 momentum 0.9 weight decay 5e-4, one-cycle over 6 epochs, crop 4 + flip, batch
  128).

Run from the repository root (the benchmark re-executes itself without this machine's
``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE``, as ``python -m benchmarks`` does)::

    python -m benchmarks.bench_e2e --dataset mnist --data-dir ../shared/data/mnist \\
        --recipe issue --target 0.99 --max-epochs 10 --threads 1 --library convscope,torch
    python -m benchmarks.bench_e2e --dataset cifar10 --data-dir ../shared/data/cifar-10 \\
        --recipe builtin --target 0.75
    # an older convscope ("before"): its src folder goes first on the child's sys.path (one that
    # has Recipe.make_transforms; for an older one run that checkout's own benchmarks/bench_e2e.py)
    git worktree add /tmp/before <commit>
    python -m benchmarks.bench_e2e --convscope-src /tmp/before/src ...   # or PYTHONPATH=/tmp/before/src
    python -m benchmarks.bench_e2e --render before.json after.json        # one summary table

The output names the ``convscope`` package that was timed (its ``__file__``) and the git
revision of the tree it came from.

>>> make_plan("mnist", "issue", seed=0).describe()
'lenet, adam lr 0.001 constant, batch 64, no augmentation, seed 0'
>>> make_plan("cifar10", "builtin", seed=0).describe()
'cifar, sgd lr 0.05 momentum 0.9 weight decay 0.0005 onecycle over 6 epochs, batch 128, crop 4 + flip, seed 0'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import _env

__all__ = [
    "LIBRARIES",
    "RECIPE_NAMES",
    "Plan",
    "build_parser",
    "convscope_origin",
    "format_e2e",
    "format_summary",
    "main",
    "make_plan",
    "prepare_data",
    "run_e2e",
    "run_library",
]

RECIPE_NAMES = ("issue", "builtin")
LIBRARIES = ("convscope", "torch")


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Plan:
    """Everything that defines a training run, shared by both libraries."""

    dataset: str
    recipe: str
    arch: str | None
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    schedule_epochs: int
    shift: int
    crop_padding: int
    flip: bool
    seed: int

    def describe(self) -> str:
        """One line: architecture, optimizer, schedule, batch, augmentation, seed."""
        opt = f"{self.optimizer} lr {self.lr:g}"
        if self.optimizer == "sgd":
            opt += f" momentum {self.momentum:g}"
        if self.weight_decay:
            opt += f" weight decay {self.weight_decay:g}"
        sched = "constant" if self.schedule == "constant" else f"{self.schedule} over {self.schedule_epochs} epochs"
        aug = [f"shift {self.shift}"] if self.shift else []
        aug += [f"crop {self.crop_padding}"] if self.crop_padding else []
        aug += ["flip"] if self.flip else []
        return (f"{self.arch or 'arch by image shape'}, {opt} {sched}, batch {self.batch_size}, "
                f"{' + '.join(aug) or 'no augmentation'}, seed {self.seed}")

    def as_recipe(self) -> Any:
        """The plan as a :class:`convscope.models.Recipe` (its schedule spans ``schedule_epochs``)."""
        from convscope.models import Recipe

        return Recipe(self.arch, epochs=self.schedule_epochs, batch_size=self.batch_size, lr=self.lr,
                      optimizer=self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay,
                      schedule=self.schedule, shift=self.shift, crop_padding=self.crop_padding, flip=self.flip)


def make_plan(dataset: str, recipe: str, seed: int = 0) -> Plan:
    """The plan of ``recipe`` ("issue" or "builtin") on ``dataset``.

    >>> make_plan("digits", "builtin").schedule_epochs
    12
    >>> make_plan("mnist", "fancy")
    Traceback (most recent call last):
    ...
    ValueError: recipe must be one of issue, builtin; got 'fancy'.
    """
    from convscope.models import recipe_for

    if recipe not in RECIPE_NAMES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPE_NAMES)}; got {recipe!r}.")
    if recipe == "issue":
        # Issue 4: "PyTorch LeNet, Adam 1e-3, batch 64" (constant lr, no augmentation).
        return Plan(dataset, recipe, "lenet", 64, "adam", 1e-3, 0.9, 0.0, "constant", 0, 0, 0, False, seed)
    r = recipe_for(dataset)
    return Plan(dataset, recipe, r.arch, r.batch_size, r.optimizer, r.lr, r.momentum, r.weight_decay,
                r.schedule, r.epochs, r.shift, r.crop_padding, r.flip, seed)


# ------------------------------------------------------------------------------ the data


@dataclass
class Data:
    """The training split, the recipe's transform and the normalised test arrays."""

    train: Any
    transform: Any
    x_test: Any
    y_test: Any
    load_seconds: float
    info: dict


def prepare_data(plan: Plan, data_dir: str | None, train_limit: int | None = None,
                 test_limit: int | None = None) -> Data:
    """Load both splits and build the transform exactly as ``convscope train`` does.

    The training images are normalised with the training split's per-channel mean and
    standard deviation after the recipe's augmentation (shift, crop, flip); the test
    images are normalised once, up front, and scored in that form by both libraries.
    ``train_limit`` / ``test_limit`` keep the first N images (smoke runs only).
    """
    import numpy as np

    from convscope.data import load_dataset

    start = time.perf_counter()
    train = load_dataset(plan.dataset, data_dir=data_dir, split="train", download=False)
    test = load_dataset(plan.dataset, data_dir=data_dir, split="test", download=False)
    if train_limit is not None and train_limit < len(train):
        train = train.subset(np.arange(train_limit), split="train")
    if test_limit is not None and test_limit < len(test):
        test = test.subset(np.arange(test_limit), split="test")
    transform, norm = plan.as_recipe().make_transforms(train)
    x_test, y_test = test.batch(np.arange(len(test)))
    x_test = np.ascontiguousarray(norm(x_test), dtype=np.float32)
    info = {
        "name": train.name, "train_images": len(train), "test_images": len(test),
        "image_shape": list(train.image_shape), "classes": train.num_classes,
        "mean": norm.mean.tolist(), "std": norm.std.tolist(), "transform": repr(transform),
    }
    return Data(train, transform, x_test, np.asarray(y_test, dtype=np.int64),
                time.perf_counter() - start, info)


# ------------------------------------------------------------------------- optimizers


def _convscope_optimizer(plan: Plan, params: Any, total_steps: int) -> tuple[Any, Any]:
    """Optimizer and per-batch schedule as ``convscope train`` builds them (Recipe.make_optimizer)."""
    return plan.as_recipe().make_optimizer(params, total_steps)


class _Shadow:
    """A parameter-less stand-in that only carries a gradient for the schedule's optimizer."""

    def __init__(self) -> None:
        import numpy as np

        self.data = np.zeros(1, np.float32)
        self.grad = np.zeros(1, np.float32)


def _hyper(opt: Any) -> dict:
    """The per-step hyperparameters of a convscope optimizer, in torch's param_group keys."""
    if hasattr(opt, "betas"):
        return {"lr": float(opt.lr), "betas": tuple(float(b) for b in opt.betas)}
    return {"lr": float(opt.lr), "momentum": float(opt.momentum)}


def _torch_optimizer(plan: Plan, params: Any, torch: Any, cs_opt: Any) -> Any:
    if plan.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cs_opt.lr, momentum=cs_opt.momentum, dampening=cs_opt.dampening,
                               nesterov=cs_opt.nesterov, weight_decay=cs_opt.weight_decay)
    return torch.optim.Adam(params, lr=cs_opt.lr, betas=tuple(cs_opt.betas), eps=cs_opt.eps,
                            weight_decay=cs_opt.weight_decay)


# ----------------------------------------------------------------------------- one run


def _cross_entropy(logits: Any, y: Any) -> float:
    import numpy as np

    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def _score(forward: Callable[[Any], Any], x: Any, y: Any, batch: int = 256) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``forward`` (NumPy logits) on the test arrays."""
    import numpy as np

    correct, loss = 0, 0.0
    for s in range(0, len(y), batch):
        logits = np.asarray(forward(x[s : s + batch]))
        t = y[s : s + batch]
        correct += int((logits.argmax(axis=1) == t).sum())
        loss += _cross_entropy(logits, t) * len(t)
    return correct / len(y), loss / len(y)


def run_library(
    library: str,
    plan: Plan,
    data: Data,
    *,
    target: float,
    max_epochs: int,
    torch: Any = None,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train one library to ``target`` test accuracy (or ``max_epochs``); JSON-ready dict.

    The per-epoch rows hold ``train_seconds`` (cumulative wall clock of the training steps),
    ``cpu_seconds`` (same, process CPU time), ``data_seconds`` (cumulative), the epoch's
    own times, mean training loss, test accuracy and loss, the learning rate of the
    epoch's first and last step, and ``data_crc`` (CRC-32 of the epoch's batches).
    """
    import numpy as np

    from convscope import nn
    from convscope.data import DataLoader
    from convscope.models import build_model, check_fits, default_arch

    say = log or (lambda msg: None)
    train = data.train
    arch = plan.arch or default_arch(train.image_shape)
    model = build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes, seed=plan.seed)
    check_fits(model, train.image_shape, train.num_classes, f"the {train.name!r}")
    data_seq, _module_seq = np.random.SeedSequence(int(plan.seed)).spawn(2)  # as fit(seed=...)
    loader = DataLoader(train, plan.batch_size, shuffle=True, drop_last=False,
                        rng=np.random.default_rng(data_seq), transform=data.transform)
    steps_per_epoch = len(loader)
    schedule_epochs = plan.schedule_epochs if plan.schedule != "constant" else max_epochs
    total_steps = schedule_epochs * steps_per_epoch

    if library == "convscope":
        opt, sched = _convscope_optimizer(plan, model.named_parameters(), total_steps)
        loss_fn = nn.CrossEntropyLoss()
        model.train()

        def prepare(x, y):
            return np.asarray(x, dtype=np.float32), y

        # As fit: the data-parallel step and forward (one shard per thread, the measured
        # choice) where the convscope under test has them; older checkouts: the serial calls,
        # without the images' gradient (backward_params) where it exists.
        try:
            from convscope.train.data_parallel import sharded_forward, training_step
        except ImportError:
            training_step = sharded_forward = None
        backward = getattr(model, "backward_params", model.backward)

        def step(x, y) -> float:
            model.zero_grad()
            opt.zero_grad()
            if training_step is not None:
                value, _ = training_step(model, loss_fn, x, y)
            else:
                value = loss_fn(model(x), y)
                backward(loss_fn.backward())
            opt.step()
            if sched is not None:
                sched.step()
            return float(value)

        def forward_eval(x):
            return model(x) if sharded_forward is None else sharded_forward(model, x)

        def set_mode(training: bool) -> None:
            model.train(training)

        def hyper():
            return _hyper(opt)

    elif library == "torch":
        if torch is None:
            raise ValueError("library 'torch' needs PyTorch (import torch failed); pass --library convscope.")
        from .bench_train import torch_twin

        twin = torch_twin(model, torch)
        twin.train()
        # The schedule's values come from convscope's own schedule on a stand-in optimizer.
        shadow_opt, shadow_sched = _convscope_optimizer(plan, [_Shadow()], total_steps)
        topt = _torch_optimizer(plan, twin.parameters(), torch, shadow_opt)
        groups = topt.param_groups
        tloss = torch.nn.CrossEntropyLoss()

        def prepare(x, y):
            return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                    torch.from_numpy(np.asarray(y, dtype=np.int64)))

        def step(x, y) -> float:
            values = _hyper(shadow_opt)
            for g in groups:
                g.update(values)
            topt.zero_grad()
            value = tloss(twin(x), y)
            value.backward()
            topt.step()
            if shadow_sched is not None:
                shadow_sched.step()
            return float(value.detach())

        def forward_eval(x):
            with torch.no_grad():
                return twin(torch.from_numpy(x)).numpy()

        def set_mode(training: bool) -> None:
            twin.train(training)

        def hyper():
            return _hyper(shadow_opt)

    else:
        raise ValueError(f"library must be one of {', '.join(LIBRARIES)}; got {library!r}.")

    rows: list[dict] = []
    result: dict = {
        "library": library, "arch": arch, "steps_per_epoch": steps_per_epoch,
        "schedule_steps": total_steps if plan.schedule != "constant" else None,
        "target": target, "max_epochs": max_epochs, "epochs": rows,
        "epochs_to_target": None, "train_seconds_to_target": None,
        "load_before": os.getloadavg()[0],
    }
    clock, cpu = time.perf_counter, time.process_time
    train_s = cpu_s = data_s = 0.0
    images = 0
    first_loss = None
    for epoch in range(1, max_epochs + 1):
        ep_train = ep_cpu = ep_data = 0.0
        loss_sum, seen, crc = 0.0, 0, 0
        lr_first = None
        it = iter(loader)
        while True:
            t0 = clock()
            try:
                x, y = next(it)
            except StopIteration:
                ep_data += clock() - t0
                break
            bx, by = prepare(x, y)
            t1 = clock()
            ep_data += t1 - t0
            crc = zlib.crc32(np.ascontiguousarray(y, dtype=np.int64), zlib.crc32(np.ascontiguousarray(x), crc))
            if lr_first is None:
                lr_first = hyper()["lr"]
            lr_last = hyper()["lr"]
            c1 = cpu()
            t1 = clock()
            value = step(bx, by)
            t2 = clock()
            ep_cpu += cpu() - c1
            ep_train += t2 - t1
            n = int(x.shape[0])
            if first_loss is None:
                first_loss = value
            loss_sum += value * n
            seen += n
            if not math.isfinite(value):
                raise FloatingPointError(f"{library}: the training loss became {value} at epoch {epoch}.")
        train_s += ep_train
        cpu_s += ep_cpu
        data_s += ep_data
        images += seen
        e0 = clock()
        set_mode(False)
        acc, test_loss = _score(forward_eval, data.x_test, data.y_test)
        set_mode(True)
        row = {
            "epoch": epoch, "test_accuracy": acc, "test_loss": test_loss, "train_loss": loss_sum / max(seen, 1),
            "train_seconds": train_s, "cpu_seconds": cpu_s, "data_seconds": data_s,
            "epoch_train_seconds": ep_train, "epoch_data_seconds": ep_data, "eval_seconds": clock() - e0,
            "images_per_second": seen / ep_train if ep_train > 0 else None,
            "lr_first": lr_first, "lr_last": lr_last, "data_crc": crc, "images": seen,
        }
        rows.append(row)
        say(f"  {library:<9} epoch {epoch:>2}: test accuracy {acc:.4f} (loss {test_loss:.4f}), train "
            f"{ep_train:7.1f} s (cumulative {train_s:8.1f} s, {row['images_per_second']:6.0f} img/s), "
            f"data {ep_data:5.1f} s, eval {row['eval_seconds']:4.1f} s")
        result.update(first_loss=first_loss, train_seconds=train_s, cpu_seconds=cpu_s, data_seconds=data_s,
                      images=images, images_per_second=images / train_s if train_s > 0 else None,
                      final_test_accuracy=acc, load_after=os.getloadavg()[0])
        if acc >= target:
            result["epochs_to_target"] = epoch
            result["train_seconds_to_target"] = train_s
            result["cpu_seconds_to_target"] = cpu_s
        if on_epoch is not None:
            on_epoch(result)
        if acc >= target:
            break
    return result


# ------------------------------------------------------------------- origin of convscope


def _git(folder: Path, *args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() if strip else out.stdout


def convscope_origin() -> dict:
    """Which convscope is imported: ``__file__``, version, and the git revision of its tree.

    ``git_dirty`` lists the modified tracked files under the package's source folder
    (uncommitted edits that the revision alone does not describe).
    """
    import convscope

    pkg = Path(convscope.__file__).resolve().parent
    rev = _git(pkg, "rev-parse", "--short", "HEAD")
    dirty = _git(pkg.parent, "status", "--porcelain", "--untracked-files=no", "--", ".", strip=False)
    return {
        "file": str(Path(convscope.__file__).resolve()),
        "version": getattr(convscope, "__version__", None),
        "git_root": _git(pkg, "rev-parse", "--show-toplevel"),
        "git_revision": rev,
        "git_subject": _git(pkg, "log", "-1", "--format=%s"),
        "git_dirty": [line[3:] for line in dirty.splitlines() if line.strip()] if dirty else [],
    }


# ------------------------------------------------------------------------------ the runs


def run_e2e(
    plan: Plan,
    data: Data,
    libraries: Sequence[str] = LIBRARIES,
    *,
    target: float = 0.99,
    max_epochs: int = 10,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
    on_update: Callable[[dict], None] | None = None,
) -> dict:
    """Run each library in turn at ``threads`` threads; the JSON-ready results."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    torch = None
    if "torch" in libraries:
        try:
            import torch
        except ImportError:
            raise ValueError("library 'torch' needs PyTorch, which is not installed (import torch failed); "
                             "pass --library convscope.") from None
    say = log or (lambda msg: None)
    results: dict = {
        "benchmark": "bench_e2e", "format": 1, "plan": asdict(plan), "plan_text": plan.describe(),
        "target": target, "max_epochs": max_epochs, "threads": threads, "data": data.info,
        "data_load_seconds": data.load_seconds, "convscope": convscope_origin(),
        "bench_revision": _env.git_revision(), "machine": _env.machine_info(),
        "removed_env": _env.removed_variables(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"numpy": np.__version__, "torch": getattr(torch, "__version__", None)},
        "runs": {},
    }
    import convscope

    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        if hasattr(convscope, "set_num_threads"):  # convscope's own threads (default: every core)
            convscope.set_num_threads(threads)
        results["blas"] = _env.blas_info()
        for lib in libraries:
            say(f"{lib}: {plan.describe()}, target {target}, at most {max_epochs} epochs, {threads} thread(s)")

            def update(partial: dict, lib: str = lib) -> None:
                results["runs"][lib] = partial
                if on_update is not None:
                    on_update(results)

            results["runs"][lib] = run_library(lib, plan, data, target=target, max_epochs=max_epochs,
                                               torch=torch, log=say, on_epoch=update)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    _compare(results)
    if on_update is not None:
        on_update(results)
    return results


def _compare(results: dict) -> None:
    """Add the time ratio convscope/torch and whether both saw the same batches."""
    runs = results["runs"]
    if not ("convscope" in runs and "torch" in runs):
        return
    cs, pt = runs["convscope"], runs["torch"]
    a, b = cs.get("train_seconds_to_target"), pt.get("train_seconds_to_target")
    results["ratio_to_target"] = a / b if a and b else None
    common = min(len(cs["epochs"]), len(pt["epochs"]))
    results["same_batches"] = all(
        cs["epochs"][i]["data_crc"] == pt["epochs"][i]["data_crc"]
        and cs["epochs"][i]["lr_first"] == pt["epochs"][i]["lr_first"]
        and cs["epochs"][i]["lr_last"] == pt["epochs"][i]["lr_last"]
        for i in range(common)
    )
    if cs.get("first_loss") is not None and pt.get("first_loss") is not None:
        results["first_loss_difference"] = abs(cs["first_loss"] - pt["first_loss"])


# ------------------------------------------------------------------------------ tables


def _fmt(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_e2e(results: dict) -> str:
    """Markdown: the run's settings, a summary row per library and the per-epoch table."""
    origin = results["convscope"]
    dirty = f" + uncommitted edits to {', '.join(origin['git_dirty'])}" if origin.get("git_dirty") else ""
    out = [
        (f"### {results['data']['name']}, recipe {results['plan']['recipe']}: time to test accuracy "
         f">= {results['target']}"),
        "",
        (f"- recipe: {results['plan_text']}; at most {results['max_epochs']} epochs; "
         f"{results['threads']} thread(s)"),
        (f"- convscope: `{origin['file']}` (revision {origin.get('git_revision')}"
         f"{': ' + origin['git_subject'] if origin.get('git_subject') else ''}{dirty})"),
        (f"- data: {results['data']['train_images']} training, {results['data']['test_images']} test images; "
         f"numpy {results['versions']['numpy']}, torch {results['versions']['torch']}; "
         f"removed env {results.get('removed_env') or {}}"),
    ]
    machine = results.get("machine") or {}
    kernels = ", ".join(f"{b.get('internal_api')} {b.get('architecture')}"
                        for b in results.get("blas") or [] if b.get("user_api") == "blas")
    loads = ", ".join(f"{lib} {run.get('load_before', 0):.2f} -> {run.get('load_after', 0):.2f}"
                      for lib, run in results["runs"].items())
    out.append(f"- machine: {machine.get('cpu_model')}, {machine.get('cpus')} CPUs; BLAS {kernels or '?'}; "
               f"1-minute load average before -> after each run: {loads}")
    if "same_batches" in results:
        out.append(f"- both libraries saw the same batches and learning rates: "
                   f"{'yes' if results['same_batches'] else 'NO'}; first-batch loss difference "
                   f"{_fmt(results.get('first_loss_difference'), '.2e')}")
    out += ["", ("| library | epochs to target | train s to target | CPU s to target | images/s | data s | "
                 "epochs run | last test accuracy | time ratio convscope/torch |"),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratio = results.get("ratio_to_target")
    for lib, run in results["runs"].items():
        out.append(
            f"| {lib} | {_fmt(run.get('epochs_to_target'), 'd', 'not reached')} | "
            f"{_fmt(run.get('train_seconds_to_target'), '.1f')} | {_fmt(run.get('cpu_seconds_to_target'), '.1f')} | "
            f"{_fmt(run.get('images_per_second'), '.0f')} | {_fmt(run.get('data_seconds'), '.1f')} | "
            f"{len(run['epochs'])} | "
            f"{_fmt(run.get('final_test_accuracy'), '.4f')} | "
            f"{_fmt(ratio, '.2f') if lib == 'convscope' else ''} |"
        )
    libs = list(results["runs"])
    out += ["", "| epoch | " + " | ".join(f"{lib} test acc | {lib} train s (cum.)" for lib in libs) + " |",
            "|---:|" + "---:|---:|" * len(libs)]
    longest = max((len(r["epochs"]) for r in results["runs"].values()), default=0)
    for i in range(longest):
        cells = []
        for lib in libs:
            rows = results["runs"][lib]["epochs"]
            cells += ([f"{rows[i]['test_accuracy']:.4f}", f"{rows[i]['train_seconds']:.1f}"]
                      if i < len(rows) else ["", ""])
        out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def format_summary(runs: Sequence[dict], labels: Sequence[str] | None = None) -> str:
    """One Markdown table over several result files (e.g. before and after).

    One row per (file, library): the label (default: the convscope revision), time to the
    target, epochs, images/s, and the ratio to PyTorch in the same file.
    """
    out = [("| run | dataset / recipe | library | target | epochs to target | train s to target | "
           "images/s | ratio to torch |"),
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for i, res in enumerate(runs):
        label = labels[i] if labels else (res.get("label") or res["convscope"].get("git_revision") or f"run {i + 1}")
        for lib, run in res["runs"].items():
            ratio = res.get("ratio_to_target") if lib == "convscope" else None
            out.append(
                f"| {label} | {res['data']['name']} / {res['plan']['recipe']} | {lib} | {res['target']} | "
                f"{_fmt(run.get('epochs_to_target'), 'd', 'not reached')} | "
                f"{_fmt(run.get('train_seconds_to_target'), '.1f')} | {_fmt(run.get('images_per_second'), '.0f')} | "
                f"{_fmt(ratio, '.2f')} |"
            )
    return "\n".join(out) + "\n"


# -------------------------------------------------------------------------------- CLI


def _target(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a test accuracy in (0, 1]; got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a test accuracy in (0, 1]; got {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def _libraries(text: str) -> list[str]:
    libs = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in libs if v not in LIBRARIES]
    if not libs or bad or len(set(libs)) != len(libs):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of distinct libraries from {', '.join(LIBRARIES)}; got {text!r}")
    return libs


def build_parser() -> argparse.ArgumentParser:
    """The command line (parsed in the launcher, before NumPy loads, and again in the child).

    >>> a = build_parser().parse_args(["--dataset", "cifar10", "--recipe", "builtin", "--library", "torch"])
    >>> a.target, a.threads, a.library, a.max_epochs
    (0.99, 1, ['torch'], None)
    """
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_e2e", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", help="mnist (default), fashion-mnist, cifar10, digits")
    p.add_argument("--data-dir", help="folder with the dataset's standard files (nothing is downloaded)")
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="issue",
                   help="issue: LeNet, Adam 1e-3, batch 64 (default); builtin: the dataset's convscope recipe")
    p.add_argument("--target", type=_target, default=0.99, help="test accuracy to reach (default 0.99)")
    p.add_argument("--max-epochs", type=_positive,
                   help="stop here if the target is not reached (default: issue 10; builtin: the recipe's epochs, "
                        "which is also the most a scheduled recipe allows)")
    p.add_argument("--threads", type=_positive, default=1, help="BLAS / PyTorch threads (default 1)")
    p.add_argument("--library", type=_libraries, default=list(LIBRARIES),
                   help="comma-separated, run in this order (default convscope,torch)")
    p.add_argument("--seed", type=int, default=0, help="weights, shuffling and augmentation (default 0)")
    p.add_argument("--json", help="results file (default benchmarks/results/e2e-<dataset>-<recipe>-<time>.json)")
    p.add_argument("--markdown", help="Markdown file (default: the JSON path with .md)")
    p.add_argument("--label", help="a name for this run in summaries (e.g. before, after)")
    p.add_argument("--convscope-src", metavar="DIR",
                   help="time the convscope package in DIR (e.g. /tmp/before/src of a git worktree)")
    p.add_argument("--train-limit", type=_positive, help=argparse.SUPPRESS)
    p.add_argument("--test-limit", type=_positive, help=argparse.SUPPRESS)
    p.add_argument("--render", nargs="+", metavar="JSON",
                   help="print earlier results instead of running (several files: one summary table)")
    return p


def _check_src(src: str) -> Path:
    path = Path(src).resolve()
    if not (path / "convscope" / "__init__.py").is_file():
        raise SystemExit(
            f"bench_e2e: --convscope-src must be a folder holding the convscope package "
            f"(DIR/convscope/__init__.py); got {src!r}, which has none.")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run (inside the clean child process, or in-process from tests) and write the files."""
    args = build_parser().parse_args(argv)
    if args.render:
        runs = [json.loads(Path(f).read_text()) for f in args.render]
        print(format_e2e(runs[0]) if len(runs) == 1 else format_summary(runs))
        return 0
    if args.convscope_src:
        src = _check_src(args.convscope_src)
        if str(src) not in sys.path:
            sys.path.insert(0, str(src))
    import convscope

    origin = Path(convscope.__file__).resolve()
    print(f"convscope under test: {origin}", flush=True)
    if args.convscope_src and _check_src(args.convscope_src) not in origin.parents:
        raise SystemExit(f"bench_e2e: --convscope-src {args.convscope_src} was asked for, but convscope "
                         f"was imported from {origin}.")
    plan = make_plan(args.dataset, args.recipe, seed=args.seed)
    if args.max_epochs is None:
        max_epochs = plan.schedule_epochs if plan.schedule != "constant" else 10
    else:
        max_epochs = args.max_epochs
        if plan.schedule != "constant" and max_epochs > plan.schedule_epochs:
            raise SystemExit(
                f"bench_e2e: --max-epochs {max_epochs} exceeds the {plan.schedule} schedule of the "
                f"{args.dataset} recipe ({plan.schedule_epochs} epochs); the schedule cannot run past its end.")
    json_path = Path(args.json) if args.json else (
        _env.REPO_ROOT / "benchmarks" / "results"
        / time.strftime(f"e2e-{args.dataset}-{args.recipe}-%Y%m%d-%H%M%S.json"))
    md_path = Path(args.markdown) if args.markdown else json_path.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)

    data = prepare_data(plan, args.data_dir, args.train_limit, args.test_limit)
    print(f"data: {data.info['name']}, {data.info['train_images']} training / {data.info['test_images']} test "
          f"images, loaded in {data.load_seconds:.1f} s", flush=True)

    def save(results: dict) -> None:
        if args.label:
            results["label"] = args.label
        json_path.write_text(json.dumps(results, indent=1) + "\n")

    results = run_e2e(plan, data, args.library, target=args.target, max_epochs=max_epochs,
                      threads=args.threads, log=lambda m: print(m, flush=True), on_update=save)
    save(results)
    text = format_e2e(results)
    md_path.write_text(text)
    print(text)
    print(f"wrote {json_path} and {md_path}")
    return 0


def launch(argv: Sequence[str]) -> int:
    """Parse, then re-execute in a child without the slow OpenBLAS variables, at --threads."""
    args = build_parser().parse_args(argv)  # answer --help and reject bad options here
    if args.render:
        return main(argv)
    env = _env.child_environ(threads=args.threads)
    if args.convscope_src:
        src = _check_src(args.convscope_src)
        env["PYTHONPATH"] = str(src) + os.pathsep + env["PYTHONPATH"]
    return subprocess.call([sys.executable, "-m", "benchmarks.bench_e2e", *argv], env=env)


if __name__ == "__main__":
    if not _env.is_child():
        sys.exit(launch(sys.argv[1:]))
    sys.exit(main())
