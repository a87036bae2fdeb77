"""``convscope train | evaluate | predict``: train a CNN, score it, classify images.

::

    convscope train                      # the default CNN on the built-in 8x8 digits
    convscope train --dataset mnist --data-dir ~/data/mnist --epochs 5 --out runs/mnist
    convscope evaluate runs/mnist/model.npz --dataset mnist --data-dir ~/data/mnist
    convscope predict runs/mnist/model.npz digit.png other.npy

``train`` takes every option it is not given from the dataset's recipe
(:func:`convscope.models.recipe_for`) and builds the transforms, optimizer and schedule
with :func:`convscope.models.build_training`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any

from .. import schema as sc
from ..errors import ConfigError
from ..files import write_json
from ..schema import read_json
from ..settings import check_allocation
from ._common import (
    PROGRESS,
    add_command,
    add_data_options,
    err,
    error_text,
    fraction,
    image_shape_of,
    load_model,
    non_negative_int,
    normalizer,
    path_text,
    plural,
    positive_float,
    positive_int,
    read_image,
    train_mean,
)

__all__ = ["add_train", "add_evaluate", "add_predict", "run_train", "run_evaluate", "run_predict"]


# ------------------------------------------------------------------------------- train


def add_train(subparsers: Any) -> None:
    p = add_command(subparsers, "train", run_train,
                    "train a CNN and save it (no options: the default CNN on the built-in digits)")
    add_data_options(p, "digits (default, built in), mnist, fashion-mnist, cifar10, or the path of "
                        "an image folder (one sub-folder per class; train/ and test/ used if present)")
    p.add_argument("--arch", type=path_text, metavar="NAME|SPEC.json",
                   help="digits, lenet, cifar, resnet, or a JSON spec file (default: the recipe's)")
    p.add_argument("--epochs", type=positive_int, metavar="N")
    p.add_argument("--batch-size", type=positive_int, metavar="B")
    p.add_argument("--lr", type=positive_float, metavar="X", help="(peak) learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adam"))
    p.add_argument("--seed", type=non_negative_int, metavar="S",
                   help="seed of the weights, shuffling and augmentation (default 0)")
    p.add_argument("--out", type=path_text, metavar="DIR",
                   help="output folder (default ./runs/<timestamp>); one holding a previous run is "
                   "refused unless --force")
    p.add_argument("--force", action="store_true", help="overwrite the run already in --out")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="train and test on at most N images of each split (a stratified sample, "
                   "seeded by --seed): a quick first run on a large dataset")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="threads while training: convscope's own (a convolution's batch chunks) and the "
                   "BLAS library's (matrix products between layers); with --engine torch, torch's threads in each "
                   "process (default: the recipe's; 1 for the digits)")
    p.add_argument("--val-fraction", type=fraction, metavar="F",
                   help="hold out this share of the training split for per-epoch validation (default 0)")
    p.add_argument("--clip", type=positive_float, metavar="X", help="clip the gradient norm to X")
    p.add_argument("--resume", type=path_text, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz (or its folder); --epochs is the total")
    p.add_argument("--engine", choices=("convscope", "torch"), default="convscope",
                   help="who trains: convscope's own NumPy engine (default) or PyTorch (the same recipe, "
                   "batches and seed; needs pip install \"convscope[torch]\"); the outputs are the same files")
    p.add_argument("--device", type=path_text, metavar="cpu|cuda|cuda:K",
                   help="with --engine torch: where to train (default cpu)")
    p.add_argument("--nproc", type=positive_int, metavar="N",
                   help="with --engine torch: N processes joined by torch.distributed (gloo on the CPU, NCCL on "
                   "GPUs), each taking batch/N of every batch; under torchrun leave it out")
    p.add_argument("--progress", choices=tuple(PROGRESS), default="bar",
                   help="a progress bar (default), plain lines, one line per epoch, or nothing")
    p.add_argument("--no-download", action="store_true", help="read only the cache, never download")
    p.add_argument("--wide", action="store_true",
                   help="print the full layer table (formulas, FC equivalents, window memory) however "
                   "wide; by default it is fitted to the terminal (COLUMNS, else 100 columns)")


#: train options that a resumed run takes from the original run's config.json.
_RESUMABLE = ("dataset", "data_dir", "arch", "epochs", "batch_size", "lr", "optimizer", "seed",
              "threads", "val_fraction", "clip", "limit")

#: what ``convscope train`` writes into --out; a folder holding one of them holds a run.
_RUN_FILES = ("model.npz", "checkpoint.npz", "config.json", "history.json", "metrics.json")


def _run_config_schema() -> Any:
    """What a run's config.json must hold (the options :data:`_RESUMABLE` takes back)."""
    text, count, rate = sc.Nullable(sc.Str()), sc.Nullable(sc.Int(min=1)), sc.Nullable(sc.Float(positive=True))
    fields = {"dataset": text, "data_dir": text, "arch": text, "epochs": count, "batch_size": count,
              "lr": rate, "optimizer": sc.Nullable(sc.Str(choices=("sgd", "adam"))),
              "seed": sc.Nullable(sc.Int(min=0)), "threads": count,
              "val_fraction": sc.Nullable(sc.Float(min=0.0, below=1.0)), "clip": rate}
    return sc.Object(fields, optional=fields, extra=sc.JSON())


def _resolve_resume(args: argparse.Namespace) -> Path | None:
    """The checkpoint to resume from; fills options left out from the run's config.json.

    The learning-rate schedule was laid out for the original number of epochs, so a
    resumed run keeps that number: it finishes an interrupted run, it does not extend it.
    """
    if args.resume is None:
        return None
    ckpt = Path(args.resume)
    if ckpt.is_dir():
        ckpt = ckpt / "checkpoint.npz"
    if not ckpt.exists():
        raise ConfigError(f"--resume: no checkpoint at {ckpt}; expected a run's checkpoint.npz or its folder.")
    config_path = ckpt.parent / "config.json"
    if config_path.is_file():
        saved = read_json(config_path, _run_config_schema(), f"--resume: {config_path}", ConfigError)
        if args.epochs is not None and saved.get("epochs") not in (None, args.epochs):
            raise ConfigError(
                f"--resume: the run in {ckpt.parent} was planned for {plural(saved['epochs'], 'epoch')} and its "
                f"learning-rate schedule spans exactly those; resuming finishes that plan. Leave out "
                f"--epochs (or pass --epochs {saved['epochs']}); to train longer, start a new run."
            )
        for key in _RESUMABLE:
            if getattr(args, key) is None and saved.get(key) is not None:
                setattr(args, key, saved[key])
    if args.out is None:
        args.out = str(ckpt.parent)
    return ckpt


def _limited(data: Any, limit: int | None, seed: int) -> Any:
    """At most ``limit`` images of ``data``: a stratified sample (all of them if fewer)."""
    if limit is None or len(data) <= limit:
        return data
    from ..data import stratified_split

    _, keep = stratified_split(data.labels, limit / len(data), seed)
    return data.subset(keep[:limit])


def _check_out(out: Path, args: argparse.Namespace) -> None:
    """Refuse an --out folder that holds a previous run, unless --force or --resume."""
    if args.force or args.resume is not None or not out.is_dir():
        return
    found = [name for name in _RUN_FILES if (out / name).exists()]
    if found:
        raise ConfigError(
            f"--out {out} already holds a run ({', '.join(found)}); pass --force to overwrite it, "
            f"--resume {out} to continue it, or choose another --out."
        )


def _table(table: Any, wide: bool) -> str:
    """The layer table: whole with ``wide``, else fitted to the terminal (COLUMNS, else 100)."""
    import shutil

    if wide:
        return str(table)
    return table.to_text(width=shutil.get_terminal_size((100, 24)).columns)


def _split_train(train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    from ..data import stratified_split

    keep, held = stratified_split(train.labels, fraction, seed)
    return train.subset(keep, split="train"), train.subset(held, split="val")


def _write_curves(path: Path, history: Any, test: dict) -> bool:
    """Loss and accuracy per epoch as a PNG (:func:`convscope.viz.plot_curves`); False
    when matplotlib is missing."""
    try:
        from ..viz import plot_curves

        plot_curves(history, path, test={k: test[k] for k in ("loss", "accuracy") if k in test})
    except ImportError:  # MissingDependencyError, or matplotlib's own modules
        return False
    return True


def _is_builtin(dataset: str) -> bool:
    from ..data import DATASET_NAMES

    key = str(dataset).strip().lower()
    return key in DATASET_NAMES or key in ("cifar-10", "cifar_10", "fashion_mnist", "fashionmnist")


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401  (installed with scikit-learn)
    except ImportError:
        return False
    return True


def run_train(args: argparse.Namespace) -> int:
    """Train a CNN on a dataset, show the layer summary and a progress bar, print the test
    accuracy, and write model.npz, history.json, metrics.json and curves.png to --out. Options
    left out come from the dataset's recipe (see convscope.models). With --engine torch under
    torchrun, only rank 0 prints and writes; the other ranks train their share silently."""
    import contextlib
    import os

    from ..train.torch_engine import import_torch_engine, torchrun_env, wants_torch

    env = None
    wants_torch(getattr(args, "engine", "convscope"), getattr(args, "device", None), getattr(args, "nproc", None))
    if getattr(args, "engine", "convscope") == "torch":
        import_torch_engine("convscope train --engine torch")  # says what to install, before any work
        env = torchrun_env()
    if env is not None and env[0] > 0:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return _run_train(args, main=False)
    return _run_train(args, main=True)


def _run_train(args: argparse.Namespace, main: bool) -> int:
    from .. import nn
    from ..data import load_dataset
    from ..io import save
    from ..models import add_input_normalization, build_model, build_training, check_fits, default_arch, recipe_for
    from ..nn.summary import summary
    from ..train import ModelCheckpoint, evaluate, fit

    resume = _resolve_resume(args)
    dataset = args.dataset or "digits"
    recipe = recipe_for(dataset)
    seed = 0 if args.seed is None else args.seed
    epochs = args.epochs or recipe.epochs
    batch_size = args.batch_size or recipe.batch_size
    lr = args.lr or recipe.lr
    opt_name = args.optimizer or recipe.optimizer
    threads = args.threads or recipe.threads
    if args.threads is None and threads is not None and not _has_threadpoolctl():
        threads = None  # the recipe's thread count is a speed hint, not a requirement
    val_fraction = args.val_fraction or 0.0

    load_opts: dict[str, Any] = {"data_dir": args.data_dir, "download": not args.no_download}
    start = time.perf_counter()
    out = Path(args.out) if args.out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if main:
        _check_out(out, args)
    train = _limited(load_dataset(dataset, split="train", **load_opts), args.limit, seed)
    test = _limited(load_dataset(dataset, split="test", **load_opts), args.limit, seed)
    val = None
    if val_fraction > 0:
        train, val = _split_train(train, val_fraction, seed)
    arch = args.arch or recipe.arch or default_arch(train.image_shape)
    model = build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes, seed=seed)
    check_fits(model, train.image_shape, train.num_classes, f"the {train.name!r}")
    # the model standardises its inputs itself: the saved model is the whole pipeline
    model = add_input_normalization(model, train)
    print(f"convscope train: {train.name} ({len(train)} training, {len(test)} test images of shape "
          f"{train.image_shape}, {train.num_classes} classes)\n  arch {arch}, {plural(epochs, 'epoch')}, "
          f"batch {batch_size}, {opt_name} lr {lr:g}, seed {seed}"
          + (f", --limit {args.limit}" if args.limit else ""))
    print(_table(summary(model, train.image_shape), args.wide))

    setup = build_training(
        dataclasses.replace(recipe, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=opt_name),
        model, train,
    )

    engine = getattr(args, "engine", "convscope")
    if main:
        out.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": dataset, "data_dir": args.data_dir, "arch": arch, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "optimizer": opt_name, "seed": seed, "threads": threads,
        "val_fraction": val_fraction, "clip": args.clip, "limit": args.limit, "recipe": recipe.to_dict(),
        "engine": engine, "device": getattr(args, "device", None), "nproc": getattr(args, "nproc", None),
    }
    # what predict, evaluate and explain need to use a checkpoint.npz of this run as a model
    config["model_metadata"] = {
        "dataset": dataset if _is_builtin(dataset) else str(Path(dataset).resolve()),
        "classes": list(train.classes), "image_shape": list(train.image_shape),
        "arch": arch,
    }
    if main:
        write_json(out / "config.json", config, op="convscope train")

    loss = nn.CrossEntropyLoss()
    fit_start = time.perf_counter()
    try:
        history = fit(
            model, train, val, loss=loss, optimizer=setup.optimizer, epochs=epochs, batch_size=batch_size,
            seed=seed, callbacks=[ModelCheckpoint(out / "checkpoint.npz")], scheduler=setup.scheduler,
            scheduler_interval="batch", resume=resume, progress=PROGRESS[args.progress],
            transform=setup.transform, clip_grad_norm=args.clip, threads=threads,
            engine=engine, device=getattr(args, "device", None), nproc=getattr(args, "nproc", None),
        )
    except KeyboardInterrupt:
        if not main:
            return 130
        return _interrupted(model, out, config["model_metadata"], config, epochs)
    if not main:
        return 0  # a torchrun rank other than 0: rank 0 writes the run
    fit_seconds = time.perf_counter() - fit_start
    scores = evaluate(model, test, loss=loss)
    train_seconds = sum(r["train_seconds"] for r in history)
    trained_images = sum(r["images_per_second"] * r["train_seconds"] for r in history)
    metrics = {
        "test_accuracy": scores.get("accuracy"),
        "test_loss": scores["loss"],
        "test_samples": scores["samples"],
        "epochs": len(history),
        "train_seconds": train_seconds,
        "fit_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - start,
        "images_per_second": trained_images / train_seconds if train_seconds > 0 else None,
        "dataset": train.name, "arch": arch, "seed": seed, "threads": threads, "engine": engine,
    }
    if engine == "torch":  # what PyTorch says of the trained model, beside convscope's evaluation above
        from ..train import evaluate_torch

        run_info = history.info.get("engines", [{}])[-1]
        torch_scores = evaluate_torch(model, test, device=getattr(args, "device", None) or "cpu")
        metrics.update({"device": run_info.get("device"), "nproc": run_info.get("nproc"),
                        "torch_test_accuracy": torch_scores["accuracy"], "torch_test_loss": torch_scores["loss"]})
    if val is not None:
        metrics["val_accuracy"] = history.last.get("val_accuracy")
    metadata = {
        # a built-in name stays a name (load_dataset prefers names over folders); a folder is
        # recorded as an absolute path so evaluate works from anywhere
        "dataset": dataset if _is_builtin(dataset) else str(Path(dataset).resolve()),
        "classes": list(train.classes),
        "image_shape": list(train.image_shape),
        "arch": arch,
        "config": config,
        "metrics": metrics,
    }
    save(model, out / "model.npz", metadata, input_shape=train.image_shape, classes=train.classes)
    history.save(out / "history.json")
    write_json(out / "metrics.json", metrics, op="convscope train")
    drew = _write_curves(out / "curves.png", history, scores)
    if "accuracy" in scores:
        correct = round(scores["accuracy"] * scores["samples"])
        print(f"test accuracy {scores['accuracy']:.4f} ({correct}/{scores['samples']}), test loss "
              f"{scores['loss']:.4f}; {plural(len(history), 'epoch')} in {train_seconds:.1f} s "
              f"({metrics['images_per_second']:.0f} images/s)")
    else:
        print(f"test loss {scores['loss']:.4f}")
    if history.info.get("stopped_early"):
        print(f"stopped early: {history.info.get('stop_reason')}")
    written = ["model.npz", "history.json", "metrics.json"] + (["curves.png"] if drew else [])
    print(f"wrote {', '.join(written)} (and checkpoint.npz, config.json) to {out}")
    if not drew:
        err("convscope train: curves.png skipped: matplotlib is not installed "
            '(pip install "convscope[train]").')
    return 0


def _interrupted(model: Any, out: Path, metadata: dict, config: dict, epochs: int) -> int:
    """Ctrl-C while training: save the weights as they are and say how to go on (status 130)."""
    from ..io import save
    from ..train.checkpoint import load_training_checkpoint

    done = 0
    if (out / "checkpoint.npz").is_file():
        done = load_training_checkpoint(out / "checkpoint.npz").epoch
    save(model, out / "model.npz", {**metadata, "config": config, "interrupted": True,
                                    "epochs_completed": done})
    err(f"convscope train: interrupted after {plural(done, 'complete epoch')} of {epochs}; wrote "
        f"model.npz (the weights when stopped) to {out}.")
    if done:
        err(f"convscope train: continue the run with: convscope train --resume {out}")
    else:
        err("convscope train: no epoch was complete, so there is no checkpoint to resume from; "
            "start the run again.")
    return 130


# ------------------------------------------------------------------------------- evaluate


def add_evaluate(subparsers: Any) -> None:
    p = add_command(subparsers, "evaluate", run_evaluate, "score a saved model on a dataset's test split")
    p.add_argument("model", type=path_text, metavar="MODEL",
                   help="a model.npz written by convscope train / convscope.save, a run folder, or its "
                   "checkpoint.npz")
    add_data_options(p, "dataset name or image folder (default: the one the model was trained on)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="B")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_evaluate(args: argparse.Namespace) -> int:
    """Load a model written by convscope train and print its loss and accuracy on a dataset
    (default: the dataset it was trained on)."""
    from ..data import load_dataset
    from ..models import check_fits
    from ..train import evaluate

    model, metadata = load_model(args.model)
    dataset = args.dataset or metadata.get("dataset")
    if dataset is None:
        raise ConfigError(f"evaluate: {args.model} does not record its dataset; pass --dataset.")
    data = load_dataset(dataset, data_dir=args.data_dir, split=args.split)
    check_fits(model, data.image_shape, data.num_classes, f"the {data.name!r}")
    scores = evaluate(model, data, batch_size=args.batch_size, transform=normalizer(metadata))
    result = {"dataset": data.name, "split": args.split, **scores}
    if args.json:
        print(json.dumps(result))
    elif "accuracy" in scores:
        print(f"{data.name}/{args.split}: accuracy {scores['accuracy']:.4f} "
              f"({round(scores['accuracy'] * scores['samples'])}/{scores['samples']}), loss {scores['loss']:.4f}")
    else:
        print(f"{data.name}/{args.split}: loss {scores['loss']:.4f} ({scores['samples']} samples)")
    return 0


# ------------------------------------------------------------------------------- predict


def add_predict(subparsers: Any) -> None:
    p = add_command(subparsers, "predict", run_predict, "classify image files with a saved model")
    p.add_argument("model", type=path_text, metavar="MODEL",
                   help="a model.npz, a run folder of convscope train, or its checkpoint.npz")
    p.add_argument("images", type=path_text, metavar="IMAGE", nargs="+")
    p.add_argument("--top", type=positive_int, default=3, metavar="K", help="show the K most likely classes")
    p.add_argument("--json", action="store_true", help="one JSON object per image")


def run_predict(args: argparse.Namespace) -> int:
    """Print the predicted class and its probability for each image (PNG, JPEG, ... via Pillow, or
    .npy arrays of shape (H, W) or (C, H, W) with values in [0, 1] or uint8). An image that
    clearly differs from the training images (colour, size, values, polarity) gets a warning; one
    that cannot be read or does not fit the model is reported and skipped (exit status 2)."""

    import numpy as np

    from ..errors import ConvscopeError
    from ..train import predict

    model, metadata = load_model(args.model)
    shape = image_shape_of(metadata, args.model)
    check_allocation((len(args.images), *shape), np.float32, f"batch of images of the model's shape {shape}",
                     "predict")
    mean = train_mean(metadata)
    paths, images, failed = [], [], []
    for path in args.images:
        try:
            images.append(read_image(Path(path), shape, "predict", mean))
        except (ConvscopeError, OSError) as exc:
            err(f"convscope predict: error: {error_text(exc)}")
            failed.append(path)
        else:
            paths.append(path)
    if images:
        probs = predict(model, np.stack(images), transform=normalizer(metadata)).probabilities
        classes = metadata.get("classes") or [str(i) for i in range(probs.shape[1])]
        if len(classes) != probs.shape[1]:
            raise ConfigError(
                f"predict: {args.model} names {len(classes)} classes in its metadata but the model "
                f"gives {probs.shape[1]} scores per image; the metadata does not belong to this model."
            )
        k = min(args.top, probs.shape[1])
        for path, row in zip(paths, probs):
            order = np.argsort(-row, kind="stable")[:k]
            best = int(order[0])
            if args.json:
                print(json.dumps({
                    "image": path, "class": best, "label": classes[best],
                    "probability": float(row[best]),
                    "top": [{"class": int(i), "label": classes[i], "probability": float(row[i])} for i in order],
                }))
            else:
                top = ", ".join(f"{classes[i]} {row[i]:.3f}" for i in order)
                print(f"{path}: class {best} ({classes[best]!r}) p={row[best]:.3f}  top-{k}: {top}")
    if failed:
        err(f"convscope predict: {len(failed)} of {len(args.images)} images were skipped (see the errors "
            f"above): {', '.join(failed)}")
        return 2
    return 0
