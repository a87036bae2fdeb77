"""``convscope explain shift``: shift consistency of a trained model (Concept 59), MaxPool
versus BlurPool.

::

    convscope explain shift runs/mnist/model.npz
    convscope explain shift --dataset mnist --train-compare --out runs/shift

With ``--train-compare`` the dataset's recipe trains a model and its anti-aliased twin
(:func:`convscope.models.antialias`) the way ``convscope train`` trains
(:func:`convscope.models.build_training`), and both are measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._common import PROGRESS, add_command, choice, count, load_model, normalizer, plural

__all__ = ["add_shift", "run_shift"]


def add_shift(sub: Any) -> None:
    p = add_command(sub, "shift", run_shift,
                    "shift consistency of a trained model (Concept 59), MaxPool versus BlurPool", one_line_errors=True)
    p.add_argument("model", metavar="MODEL", nargs="?", help="a model.npz written by convscope train")
    p.add_argument("--dataset", metavar="NAME|PATH",
                   help="default: the model's own dataset; with --train-compare and no MODEL: digits")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset's standard files")
    p.add_argument("--no-download", action="store_true", help="read only the cache, never download")
    p.add_argument("--max-shift", type=count(0), metavar="N",
                   help="largest shift per axis in pixels (default: image height // 8, at least 1)")
    p.add_argument("--mode", type=choice("crop", "circular", "both"), default="both", metavar="MODE",
                   help="crop, circular or both (default)")
    p.add_argument("--images", type=count(1), metavar="N", help="test images to measure on (default: all)")
    p.add_argument("--pairs", type=count(1), default=1, metavar="N",
                   help="pairs of random shifts per image (default 1)")
    p.add_argument("--seed", type=count(0), default=0, metavar="S",
                   help="seed of the shifts and of training (default 0)")
    p.add_argument("--curve-images", type=count(1), default=100, metavar="N",
                   help="images averaged in the per-shift probability curve (default 100)")
    p.add_argument("--curve-image", type=count(0), default=0, metavar="I",
                   help="the test image whose per-shift curve is drawn in the PNG (default 0)")
    p.add_argument("--out", metavar="DIR", help="save the curve (PNG) and the trained models here")
    p.add_argument("--train-compare", action="store_true",
                   help="train a model and its anti-aliased twin (strided MaxPool and convolutions at "
                        "stride 1 + BlurPool) with the same recipe, and compare them")
    p.add_argument("--arch", metavar="NAME",
                   help="--train-compare: the architecture (default: the recipe's or the model's)")
    p.add_argument("--epochs", type=count(1), metavar="N", help="--train-compare: epochs (default: the recipe's)")
    p.add_argument("--train-images", type=count(1), metavar="N",
                   help="--train-compare: train on the first N training images only (default: all)")
    p.add_argument("--blur-filter", type=count(1), default=4, metavar="F",
                   help="--train-compare: BlurPool filter size (default 4)")
    p.add_argument("--progress", type=choice(*PROGRESS), default="epochs", metavar="MODE",
                   help="--train-compare: bar, lines, epochs (default) or none")


def _train_compare(args: argparse.Namespace, dataset: str, load: dict, metadata: dict) -> list[tuple[str, Any, Any]]:
    """Train the recipe's model and its anti-aliased twin; ``(label, model, normalisation)`` each."""
    import numpy as np

    from .. import nn
    from ..data import load_dataset
    from ..io import save
    from ..models import antialias, build_model, build_training, default_arch, recipe_for
    from ..train import fit

    train = load_dataset(dataset, split="train", **load)
    if args.train_images:
        train = train.subset(np.arange(min(args.train_images, len(train))))
    recipe = recipe_for(dataset)
    arch = args.arch or metadata.get("arch") or recipe.arch or default_arch(train.image_shape)
    recipe = dataclasses.replace(recipe, epochs=args.epochs or recipe.epochs)

    def fresh() -> Any:
        return build_model(arch, input_shape=train.image_shape, num_classes=train.num_classes, seed=args.seed)

    base = fresh()
    try:
        twin = antialias(fresh(), train.image_shape, args.blur_filter)
    except ConfigError as exc:
        raise ConfigError(f"--train-compare: {exc}") from None
    plain, blurred = downsampling_labels(base)
    print(f"training {arch} twice on {train.name} ({len(train)} images, {plural(recipe.epochs, 'epoch')}, batch "
          f"{recipe.batch_size}, {recipe.optimizer} lr {recipe.lr:g}, seed {args.seed}): {plain}, then "
          f"{blurred} (filter {args.blur_filter})", flush=True)
    out = Path(args.out) if args.out else None
    entries = []
    for label, model in ((plain, base), (blurred, twin)):
        start = time.perf_counter()
        setup = build_training(recipe, model, train)
        fit(model, train, loss=nn.CrossEntropyLoss(), optimizer=setup.optimizer, epochs=recipe.epochs,
            batch_size=recipe.batch_size, seed=args.seed, scheduler=setup.scheduler,
            scheduler_interval="batch", progress=PROGRESS[args.progress], transform=setup.transform,
            threads=recipe.threads)
        norm = setup.eval_transform
        assert norm is not None  # the shift recipe always standardises its inputs
        print(f"  {label}: trained in {time.perf_counter() - start:.1f} s", flush=True)
        entries.append((label, model, norm))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            name = "maxpool.npz" if model is base else "blurpool.npz"
            save(model, out / name, {
                "dataset": dataset, "classes": list(train.classes),
                "image_shape": list(train.image_shape), "arch": arch,
                "normalize": {"mean": norm.mean.tolist(), "std": norm.std.tolist()},
                "shift_compare": {"pooling": label, "epochs": recipe.epochs, "seed": args.seed,
                                  "train_images": len(train)},
            })
    return entries


def downsampling_labels(model: Any) -> tuple[str, str]:
    """Names of a model's downsampling and of its anti-aliased twin's, from the layers that
    :func:`~convscope.models.antialias` rewrites (strided max pooling, strided convolutions).

    >>> from convscope.models import build_model
    >>> downsampling_labels(build_model("lenet", seed=0))
    ('MaxPool', 'MaxPool(stride 1) + BlurPool')
    >>> downsampling_labels(build_model("resnet", seed=0))
    ('strided conv', 'conv(stride 1) + BlurPool')
    """
    kinds = []
    for m in model.modules():
        window = getattr(m, "window", None)
        kind = getattr(m, "layer_kind", None)
        if window is None or kind not in ("max_pool", "conv") or max(window.stride) <= 1:
            continue
        name = "MaxPool" if kind == "max_pool" else "strided conv"
        if name not in kinds:
            kinds.append(name)
    if not kinds:
        return "no downsampling", "no downsampling (nothing to blur)"
    plain = " and ".join(kinds)
    blurred = " and ".join("MaxPool(stride 1) + BlurPool" if k == "MaxPool" else "conv(stride 1) + BlurPool"
                           for k in kinds)
    return plain, blurred


def run_shift(args: argparse.Namespace) -> int:
    """Zhang 2019's classification consistency: two random shifts of each test image (crops of a
    zero-padded canvas, and circular shifts), the share of images whose top-1 class is the same
    for both, reported with the accuracy. With --train-compare, trains the dataset's recipe
    twice, with its strided layers (MaxPool, strided convolutions) and with them at stride 1 +
    BlurPool, and compares them (labels from :func:`downsampling_labels`); also prints
    the correct-class probability per shift (saved as PNG curves with --out)."""

    import numpy as np

    from ..data import load_dataset
    from ..explain import per_shift_probability, shift_consistency
    from ..models import check_fits, describe_pooling
    from ..train import predict

    if args.model is None and not args.train_compare:
        raise ConfigError("give a MODEL (a model.npz from convscope train), or "
                          "--train-compare to train a MaxPool model and its BlurPool twin.")
    seed, pick = args.seed, args.curve_image
    model_file, metadata = (None, {}) if args.model is None else load_model(args.model)
    dataset = args.dataset or metadata.get("dataset") or "digits"
    load = {"data_dir": args.data_dir, "download": not args.no_download}
    test = load_dataset(dataset, split="test", **load)
    test = test.subset(np.arange(min(args.images or len(test), len(test))))
    images, labels = test.images, test.labels
    if pick >= len(images):
        raise ConfigError(f"--curve-image must be the index of one of the {len(images)} test images "
                          f"measured; got {pick}.")
    curve_n = min(args.curve_images, len(images))
    height = test.image_shape[1] if len(test.image_shape) > 1 else test.image_shape[0]
    max_shift = args.max_shift if args.max_shift is not None else max(1, height // 8)

    # (label, model, normalisation) for every model measured.
    entries: list[tuple[str, Any, Any]] = []
    if model_file is not None:
        check_fits(model_file, test.image_shape, test.num_classes, f"the {test.name!r}")
        # what downsamples matters to shift consistency: a ResNet's or MobileNet's strided
        # convolutions as much as its pooling
        print(f"{args.model}: pooling {describe_pooling(model_file)}; downsampling "
              f"{downsampling_labels(model_file)[0]}")
        entries.append((Path(args.model).name, model_file, normalizer(metadata)))
    if args.train_compare:
        entries += _train_compare(args, dataset, load, metadata)

    modes = ("crop", "circular") if args.mode == "both" else (args.mode,)
    table = []
    for label, model, norm in entries:
        def predict_fn(x: Any, model: Any = model, norm: Any = norm) -> Any:
            return predict(model, x, transform=norm)

        print(f"\n{label}")
        row: list[Any] = [label]
        for mode in modes:
            result = shift_consistency(predict_fn, images, labels, max_shift, n_pairs=args.pairs,
                                       rng=seed, mode=mode)
            print(result.text())
            row += [result.accuracy, result.consistency, result.shifted_accuracy]
        table.append(row)
    print("\nSummary (accuracy on the unshifted images; consistency = same top-1 class for two random "
          f"shifts in [-{max_shift}, {max_shift}])")
    head = f"{'model':44} {'accuracy':>9}" + "".join(f" {'consistency (' + m + ')':>24}" for m in modes)
    print(head)
    for row in table:
        cells = "".join(f" {100 * row[2 + 3 * i]:>23.2f}%" for i in range(len(modes)))
        print(f"{row[0][:44]:44} {100 * row[1]:>8.2f}%{cells}")

    shifts = list(range(-max_shift, max_shift + 1))
    for mode in modes:
        means, picked = {}, {}
        for label, model, norm in entries:
            def predict_fn(x: Any, model: Any = model, norm: Any = norm) -> Any:
                return predict(model, x, transform=norm)

            curves = [per_shift_probability(predict_fn, img, int(lab), shifts, mode=mode)
                      for img, lab in zip(images[:curve_n], labels[:curve_n])]
            means[label] = np.mean([c.probabilities for c in curves], axis=0)
            picked[label] = (curves[pick] if pick < curve_n else
                             per_shift_probability(predict_fn, images[pick], int(labels[pick]), shifts, mode=mode))
        print(f"\nprobability of the correct class per diagonal shift ({mode} shifts, mean of the first "
              f"{curve_n} test images)")
        print(f"{'shift':>6}" + "".join(f" {label[:30]:>30}" for label in means))
        for i, s in enumerate(shifts):
            print(f"{s:>6}" + "".join(f" {values[i]:>30.4f}" for values in means.values()))
        if args.out is not None:
            _save_curves(Path(args.out), mode, shifts, means, picked, curve_n, pick, int(labels[pick]))
    return 0


def _save_curves(out_dir: Path, mode: str, shifts: list[int], means: dict, picked: dict, curve_n: int,
                 pick: int, label: int) -> None:
    """The mean per-shift curve and the one of test image ``pick`` as PNG files."""
    from ..errors import MissingDependencyError
    from ..viz import plot_shift_curve, save_shift_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        mean_path = save_shift_curve(
            out_dir / f"shift_curve_{mode}.png", shifts, means,
            title=f"probability of the correct class per diagonal {mode} shift (mean of "
                  f"{curve_n} test images)")
        one_path = plot_shift_curve(
            picked, out_dir / f"shift_curve_{mode}_image{pick}.png",
            title=f"test image {pick} (class {label}): probability of the correct "
                  f"class per diagonal {mode} shift")
    except MissingDependencyError as exc:
        print(f"convscope explain shift: curves not written: {exc}", file=sys.stderr)
        return
    print(f"wrote {mean_path} (mean of {curve_n} images) and {one_path} (test image {pick}, as "
          f"Zhang 2019's Figure 1)")
