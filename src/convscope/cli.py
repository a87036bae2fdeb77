"""The ``convscope`` command: train, evaluate, predict and summarise CNNs from a shell.

Usage (``convscope COMMAND --help`` lists every option)::

    convscope train                      # the default CNN on the built-in 8x8 digits
    convscope train --dataset mnist --data-dir ~/data/mnist --epochs 5 --out runs/mnist
    convscope evaluate runs/mnist/model.npz --dataset mnist --data-dir ~/data/mnist
    convscope predict runs/mnist/model.npz digit.png other.npy
    convscope summary --arch lenet       # or: convscope summary runs/mnist/model.npz

Errors a user can fix (a :class:`~convscope.errors.ConvscopeError`, or an ``OSError``
such as a missing file) are printed as ONE line on standard error, ``convscope
COMMAND: error: ...``, and the exit status is 2 (as for a bad option); ``--debug``
(anywhere on the line) shows the full traceback instead. Ctrl-C exits with status 130.

Adding a subcommand (e.g. ``explain``, ``export``, ``bench``) takes two additive edits:

1. write a builder that adds the subcommand's parser and sets its handler, decorated
   with :func:`subcommand`::

       @subcommand
       def add_export(subparsers):
           p = subparsers.add_parser("export", help="export a model to ONNX",
                                     description="...")
           p.add_argument("model")
           p.add_argument("--out", required=True)
           p.set_defaults(handler=run_export)

       def run_export(args) -> int:        # the exit status; raise ConvscopeError on errors
           from .export import to_onnx     # import heavy things inside the handler
           ...
           return 0

   The builder may live in another module (``convscope/export/cli.py``); then
2. add that module's name to :data:`PLUGIN_MODULES` so it is imported (and its
   ``@subcommand`` runs) before the parser is built.

The ``--debug`` flag, the error handling and ``--help`` come for free. Handlers print
results on standard output and progress on standard error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError, ConvscopeError, DataError, MissingDependencyError

__all__ = ["main", "build_parser", "subcommand", "SUBCOMMANDS", "PLUGIN_MODULES"]

#: Parser builders, in the order ``convscope --help`` lists the subcommands.
SUBCOMMANDS: list[Callable[[Any], None]] = []

#: Modules imported before the parser is built, so their ``@subcommand`` builders register.
PLUGIN_MODULES: list[str] = ["convscope.cli_explain", "convscope.viz.cli", "convscope.export.cli"]


def subcommand(builder: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``builder(subparsers)``, which adds one subcommand (see the module doc)."""
    if builder not in SUBCOMMANDS:
        SUBCOMMANDS.append(builder)
    return builder


# ------------------------------------------------------------------------- shared helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number; got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1); got {text}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 1,28,28; got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive ints C,H,W such as 1,28,28; got {text!r}")
    return shape


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load_model(path: str) -> tuple[Any, dict]:
    from .io import load

    model, metadata = load(path, return_metadata=True)
    return model, metadata


def _normalizer(metadata: dict) -> Any:
    """The Normalize transform recorded by ``convscope train`` (None if there is none)."""
    norm = metadata.get("normalize")
    if not norm:
        return None
    from .data import Normalize

    return Normalize(norm["mean"], norm["std"])


def _add_data_options(p: argparse.ArgumentParser, dataset_help: str) -> None:
    p.add_argument("--dataset", metavar="NAME|PATH", help=dataset_help)
    p.add_argument(
        "--data-dir", metavar="DIR",
        help="folder holding the dataset's standard files (nothing is downloaded); without it "
        "MNIST, Fashion-MNIST and CIFAR-10 are downloaded once into a verified cache",
    )


# ------------------------------------------------------------------------------- train


@subcommand
def add_train(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a CNN and save it (no options: the default CNN on the built-in digits)",
        description="Train a CNN on a dataset, show the layer summary and a progress bar, print the "
        "test accuracy, and write model.npz, history.json, metrics.json and curves.png to --out. "
        "Options left out come from the dataset's recipe (see convscope.models).",
    )
    _add_data_options(p, "digits (default, built in), mnist, fashion-mnist, cifar10, or the path of "
                         "an image folder (one sub-folder per class; train/ and test/ used if present)")
    p.add_argument("--arch", metavar="NAME|SPEC.json",
                   help="digits, lenet, cifar, or a JSON spec file (default: the recipe's)")
    p.add_argument("--epochs", type=_positive_int, metavar="N")
    p.add_argument("--batch-size", type=_positive_int, metavar="B")
    p.add_argument("--lr", type=_positive_float, metavar="X", help="(peak) learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adam"))
    p.add_argument("--seed", type=_non_negative_int, metavar="S",
                   help="seed of the weights, shuffling and augmentation (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default ./runs/<timestamp>)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="BLAS threads (default: the recipe's; 1 for the digits)")
    p.add_argument("--val-fraction", type=_fraction, metavar="F",
                   help="hold out this share of the training split for per-epoch validation (default 0)")
    p.add_argument("--clip", type=_positive_float, metavar="X", help="clip the gradient norm to X")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz (or its folder); --epochs is the total")
    p.add_argument("--progress", choices=("bar", "lines", "epochs", "none"), default="bar",
                   help="a progress bar (default), plain lines, one line per epoch, or nothing")
    p.add_argument("--no-download", action="store_true", help="read only the cache, never download")
    p.set_defaults(handler=run_train)


#: train options that a resumed run takes from the original run's config.json.
_RESUMABLE = ("dataset", "data_dir", "arch", "epochs", "batch_size", "lr", "optimizer", "seed",
              "threads", "val_fraction", "clip")


def _run_config_schema() -> Any:
    """What a run's config.json must hold (the options :data:`_RESUMABLE` takes back)."""
    from . import schema as sc

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
        from .schema import read_json

        saved = read_json(config_path, _run_config_schema(), f"--resume: {config_path}", ConfigError)
        if args.epochs is not None and saved.get("epochs") not in (None, args.epochs):
            raise ConfigError(
                f"--resume: the run in {ckpt.parent} was planned for {saved['epochs']} epochs and its "
                f"learning-rate schedule spans exactly those; resuming finishes that plan. Leave out "
                f"--epochs (or pass --epochs {saved['epochs']}); to train longer, start a new run."
            )
        for key in _RESUMABLE:
            if getattr(args, key) is None and saved.get(key) is not None:
                setattr(args, key, saved[key])
    if args.out is None:
        args.out = str(ckpt.parent)
    return ckpt


def _split_train(train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    from .data import stratified_split

    keep, held = stratified_split(train.labels, fraction, seed)
    return train.subset(keep, split="train"), train.subset(held, split="val")


def _make_optimizer(name: str, model: Any, recipe: Any, lr: float) -> Any:
    from . import optim

    if name == "sgd":
        return optim.SGD(model.named_parameters(), lr=lr, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay)
    return optim.Adam(model.named_parameters(), lr=lr, weight_decay=recipe.weight_decay)


def _make_scheduler(kind: str, optimizer: Any, lr: float, steps: int) -> Any:
    from . import optim

    if kind == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=steps)
    if kind == "onecycle":
        return optim.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    return None


def _write_curves(path: Path, history: Any, test: dict) -> bool:
    """Loss and accuracy per epoch as a PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = history["epoch"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if key in history.keys():
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    ax_loss.axhline(test["loss"], color="gray", linestyle="--", label=f"test {test['loss']:.4f}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation")):
        if key in history.keys():
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    if "accuracy" in test:
        ax_acc.axhline(test["accuracy"], color="gray", linestyle="--", label=f"test {test['accuracy']:.4f}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


_PROGRESS = {"bar": True, "lines": "plain", "epochs": "epochs", "none": False}


def _is_builtin(dataset: str) -> bool:
    from .data import DATASET_NAMES

    key = str(dataset).strip().lower()
    return key in DATASET_NAMES or key in ("cifar-10", "cifar_10", "fashion_mnist", "fashionmnist")


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401  (installed with scikit-learn)
    except ImportError:
        return False
    return True


def run_train(args: argparse.Namespace) -> int:
    from . import nn
    from .data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomShift, load_dataset
    from .io import save
    from .models import build_model, check_fits, default_arch, recipe_for
    from .nn.summary import summary
    from .train import ModelCheckpoint, evaluate, fit

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
    train = load_dataset(dataset, split="train", **load_opts)
    test = load_dataset(dataset, split="test", **load_opts)
    val = None
    if val_fraction > 0:
        train, val = _split_train(train, val_fraction, seed)
    arch = args.arch or recipe.arch or default_arch(train.image_shape)
    model = build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes, seed=seed)
    check_fits(model, train.image_shape, train.num_classes, f"the {train.name!r}")
    print(f"convscope train: {train.name} ({len(train)} training, {len(test)} test images of shape "
          f"{train.image_shape}, {train.num_classes} classes), arch {arch}, {epochs} epochs, batch "
          f"{batch_size}, {opt_name} lr {lr:g}, seed {seed}")
    print(summary(model, train.image_shape))

    mean, std = train.channel_stats()
    std = tuple(s if s > 0 else 1.0 for s in std)
    norm = Normalize(mean, std)
    augment: list[Any] = []
    if recipe.shift:
        augment.append(RandomShift(recipe.shift))
    if recipe.crop_padding:
        augment.append(RandomCrop(padding=recipe.crop_padding))
    if recipe.flip:
        augment.append(RandomHorizontalFlip())
    transform = Compose([*augment, norm]) if augment else norm

    out = Path(args.out) if args.out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": dataset, "data_dir": args.data_dir, "arch": arch, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "optimizer": opt_name, "seed": seed, "threads": threads,
        "val_fraction": val_fraction, "clip": args.clip, "recipe": recipe.to_dict(),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    optimizer = _make_optimizer(opt_name, model, recipe, lr)
    steps = epochs * (-(-len(train) // batch_size))
    scheduler = _make_scheduler(recipe.schedule, optimizer, lr, steps)
    loss = nn.CrossEntropyLoss()
    fit_start = time.perf_counter()
    history = fit(
        model, loss, optimizer, train, val, epochs=epochs, batch_size=batch_size, seed=seed,
        callbacks=[ModelCheckpoint(out / "checkpoint.npz")], scheduler=scheduler,
        scheduler_interval="batch", resume=resume, progress=_PROGRESS[args.progress],
        transform=transform, eval_transform=norm, clip_grad_norm=args.clip, threads=threads,
    )
    fit_seconds = time.perf_counter() - fit_start
    scores = evaluate(model, loss, test, transform=norm)
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
        "dataset": train.name, "arch": arch, "seed": seed, "threads": threads,
    }
    if val is not None:
        metrics["val_accuracy"] = history.last.get("val_accuracy")
    metadata = {
        # a built-in name stays a name (load_dataset prefers names over folders); a folder is
        # recorded as an absolute path so evaluate works from anywhere
        "dataset": dataset if _is_builtin(dataset) else str(Path(dataset).resolve()),
        "classes": list(train.classes),
        "image_shape": list(train.image_shape),
        "normalize": {"mean": list(mean), "std": list(std)},
        "arch": arch,
        "config": config,
        "metrics": metrics,
    }
    save(model, out / "model.npz", metadata)
    history.save(out / "history.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    drew = _write_curves(out / "curves.png", history, scores)
    if "accuracy" in scores:
        correct = round(scores["accuracy"] * scores["samples"])
        print(f"test accuracy {scores['accuracy']:.4f} ({correct}/{scores['samples']}), test loss "
              f"{scores['loss']:.4f}; {len(history)} epochs in {train_seconds:.1f} s "
              f"({metrics['images_per_second']:.0f} images/s)")
    else:
        print(f"test loss {scores['loss']:.4f}")
    if history.info.get("stopped_early"):
        print(f"stopped early: {history.info.get('stop_reason')}")
    written = ["model.npz", "history.json", "metrics.json"] + (["curves.png"] if drew else [])
    print(f"wrote {', '.join(written)} (and checkpoint.npz, config.json) to {out}")
    if not drew:
        _err("convscope train: curves.png skipped: matplotlib is not installed "
             '(pip install "convscope[train]").')
    return 0


# ------------------------------------------------------------------------------- evaluate


@subcommand
def add_evaluate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a saved model on a dataset's test split",
        description="Load a model written by convscope train and print its loss and accuracy on a "
        "dataset (default: the dataset it was trained on).",
    )
    p.add_argument("model", metavar="MODEL", help="a model.npz written by convscope train / convscope.save")
    _add_data_options(p, "dataset name or image folder (default: the one the model was trained on)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--batch-size", type=_positive_int, default=256, metavar="B")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from . import nn
    from .data import load_dataset
    from .models import check_fits
    from .train import evaluate

    model, metadata = _load_model(args.model)
    dataset = args.dataset or metadata.get("dataset")
    if dataset is None:
        raise ConfigError(f"evaluate: {args.model} does not record its dataset; pass --dataset.")
    data = load_dataset(dataset, data_dir=args.data_dir, split=args.split)
    check_fits(model, data.image_shape, data.num_classes, f"the {data.name!r}")
    scores = evaluate(model, nn.CrossEntropyLoss(), data, batch_size=args.batch_size,
                      transform=_normalizer(metadata))
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


_MAX_PIXELS = 4096 * 4096


def _read_image(path: Path, shape: Sequence[int]) -> Any:
    """One image as float32 (C, H, W) in [0, 1], converted and resized to ``shape``."""
    import numpy as np

    c, h, w = (int(v) for v in shape)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"could not read {path} as a .npy array: {exc}") from None
        if arr.dtype.kind not in "uif":
            raise DataError(f"{path}: expected a numeric image array; got dtype {arr.dtype}.")
        if arr.dtype.kind in "ui":
            arr = arr / (255.0 if arr.dtype == np.uint8 or arr.max(initial=0) <= 255 else float(arr.max()))
        if arr.shape == (h, w) and c == 1:
            arr = arr[None]
        elif arr.ndim == 3 and arr.shape[-1] == c and arr.shape[:2] == (h, w) and c > 1:
            arr = arr.transpose(2, 0, 1)
        if arr.shape != (c, h, w):
            raise DataError(
                f"{path}: the model takes images of shape ({c}, {h}, {w}) (C, H, W); the array has "
                f"shape {arr.shape}."
            )
        return arr.astype(np.float32)
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            'reading image files needs Pillow: pip install "convscope[train]" (or give .npy arrays).'
        ) from None
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > _MAX_PIXELS:
                raise DataError(f"{path}: {im.size[0]}x{im.size[1]} pixels is too large an image.")
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                _err(f"convscope predict: note: {path} is {im.size[0]}x{im.size[1]}; resized to {w}x{h}.")
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"could not read image {path}: {exc}") from None
    return arr[None] if c == 1 else arr.transpose(2, 0, 1)


@subcommand
def add_predict(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="classify image files with a saved model",
        description="Print the predicted class and its probability for each image (PNG, JPEG, ... "
        "via Pillow, or .npy arrays of shape (H, W) or (C, H, W) with values in [0, 1] or uint8).",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--top", type=_positive_int, default=3, metavar="K", help="show the K most likely classes")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .train import predict

    model, metadata = _load_model(args.model)
    shape = metadata.get("image_shape")
    if not shape:
        raise ConfigError(
            f"predict: {args.model} does not record the image shape it takes; save it with "
            f"convscope train (or metadata {{'image_shape': [C, H, W]}})."
        )
    from .functional.windows import check_allocation

    check_allocation((len(args.images), *shape), np.float32, f"batch of images of the model's shape {shape}",
                     "predict")
    x = np.stack([_read_image(Path(p), shape) for p in args.images])
    probs = predict(model, x, transform=_normalizer(metadata))
    classes = metadata.get("classes") or [str(i) for i in range(probs.shape[1])]
    if len(classes) != probs.shape[1]:
        raise ConfigError(
            f"predict: {args.model} names {len(classes)} classes in its metadata but the model "
            f"gives {probs.shape[1]} scores per image; the metadata does not belong to this model."
        )
    k = min(args.top, probs.shape[1])
    for path, row in zip(args.images, probs):
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
    return 0


# ------------------------------------------------------------------------------- summary


@subcommand
def add_summary(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "summary", help="layer table of a saved model or a built-in architecture",
        description="Print each layer's output shape, parameter count with its formula, the count a "
        "fully-connected layer would need, receptive field, jump and window-matrix memory.",
    )
    p.add_argument("model", metavar="MODEL", nargs="?", help="a model.npz (or give --arch)")
    p.add_argument("--arch", metavar="NAME|SPEC.json", help="digits, lenet, cifar or a JSON spec file")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="input of one image (default: the model's recorded / the architecture's own)")
    p.set_defaults(handler=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from .models import ARCHITECTURES, build_model
    from .nn.summary import summary

    if (args.model is None) == (args.arch is None):
        raise ConfigError("summary: give a MODEL file or --arch NAME (one of them).")
    if args.model is not None:
        model, metadata = _load_model(args.model)
        shape = args.input_shape or metadata.get("image_shape")
        if not shape:
            raise ConfigError(f"summary: {args.model} does not record its input shape; pass --input-shape C,H,W.")
    else:
        key = args.arch.lower()
        shape = args.input_shape or (ARCHITECTURES[key].input_shape if key in ARCHITECTURES else None)
        if key in ARCHITECTURES:
            model = build_model(key, input_shape=shape, seed=0)
        else:
            model = build_model(args.arch, seed=0)
            if shape is None:
                raise ConfigError(f"summary: pass --input-shape C,H,W for the spec file {args.arch}.")
    print(summary(model, tuple(shape)))
    return 0


# ------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The full ``convscope`` parser, with every registered subcommand."""
    from . import __version__

    for name in PLUGIN_MODULES:
        importlib.import_module(name)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    parser = argparse.ArgumentParser(
        prog="convscope", parents=[common],
        description="Convolutional neural networks you can see through: train, evaluate, predict, "
        "summarise.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # every subcommand also accepts --debug
    original = subparsers.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", [common])
        return original(name, **kwargs)

    subparsers.add_parser = add_parser  # type: ignore[method-assign]
    for builder in SUBCOMMANDS:
        builder(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``convscope`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from .schema import check_arguments

        check_arguments(argv, "command line")
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        _err(f"convscope {args.command}: interrupted")
        return 130
    except (ConvscopeError, OSError) as exc:
        if debug:
            traceback.print_exc()
        else:
            text = " ".join(str(exc).split()) or type(exc).__name__
            _err(f"convscope {args.command}: error: {text} (--debug shows the traceback)")
        return 2


if __name__ == "__main__":  # pragma: no cover
    # Run the package's module, not this __main__ copy: plugins register their subcommands
    # with convscope.cli (a second module object under ``python -m convscope.cli``).
    from convscope.cli import main as _package_main

    sys.exit(_package_main())
