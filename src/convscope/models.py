"""Built-in architectures by name, and the training recipe that goes with each dataset.

The notes' typical architecture (section 9.3): blocks of convolution, ReLU and max pooling
that shrink the image while growing the number of channels, then flatten and one or two
fully-connected layers that give one raw score per class. The softmax is not a layer of
these models: :class:`~convscope.nn.CrossEntropyLoss` fuses it into the loss (stable
log-sum-exp), and :func:`convscope.train.predict` applies it to give probabilities.

======================  ==============  ====================================================
name                    made for        layers
======================  ==============  ====================================================
``"digits"`` (default)  1x8x8 digits    conv3x3(32)-relu-pool2, conv3x3(64)-relu-pool2,
                                        flatten, fc(128)-relu, fc(classes)
``"lenet"``             1x28x28 gray    LeNet-5 with ReLU and max pooling: conv5x5(6, p=2)-
                                        relu-pool2, conv5x5(16)-relu-pool2, flatten,
                                        fc(120)-relu, fc(84)-relu, fc(classes)
``"cifar"``             3x32x32 RGB     three blocks of conv3x3-BatchNorm-relu (x2, x2, x1;
                                        32, 64, 128 channels) each ending in pool2, flatten,
                                        fc(classes)
``"resnet"``            3x32x32 RGB     a small ResNet (He et al. 2016, the CIFAR variant),
                                        an ``nn.Graph``: conv3x3(16)-BN-relu, three stages
                                        (16, 32, 64 channels) of one BasicBlock each
                                        (conv3x3-BN-relu-conv3x3-BN, added to the shortcut,
                                        then relu); the blocks of stages 2 and 3 start with
                                        stride 2 and their shortcut is a projection,
                                        conv1x1 stride 2-BN; AdaptiveAvgPool2d(1), flatten,
                                        fc(classes) ("ResNet-8", 78,042 parameters)
======================  ==============  ====================================================

Every builder reads the channel count and image size from ``input_shape`` (the size of
the flattened features is computed, not hard-coded), so ``"lenet"`` also accepts 1x32x32
and ``"cifar"`` accepts 1x28x28; an image too small for the blocks stops with a
:class:`~convscope.errors.ShapeError` that shows the arithmetic.

Recipes (:data:`RECIPES`, used by ``convscope train`` when no option overrides them):

==================  ======  ======  =====  =========  ====================  ===================
dataset             arch    epochs  batch  optimizer  lr schedule           augmentation
==================  ======  ======  =====  =========  ====================  ===================
``digits``          digits  12      32     adam       3e-3, cosine to 0     none (1 BLAS thread)
``mnist``           lenet   10      64     adam       2e-3, cosine to 0     random shift 1 px (1 thread)
``fashion-mnist``   lenet   15      64     adam       2e-3, cosine to 0     random shift 1 px (1 thread)
``cifar10``         cifar   6       128    sgd 0.9    0.05, one-cycle,      crop 4 px + flip
                                                      wd 5e-4               (1 thread)
an image folder     chosen by image shape (see :func:`default_arch`), 20 epochs, batch 32,
                    adam 1e-3, cosine, no augmentation
==================  ======  ======  =====  =========  ====================  ===================

Every recipe normalises the inputs with the training split's per-channel mean and
standard deviation (:func:`input_statistics`); ``convscope train`` makes that the model's
first layer (:func:`add_input_normalization`, an :class:`~convscope.nn.Normalize`), so the
saved model takes raw pixels wherever it runs. Recipes hold out nothing for validation
(the test split is scored once, at the end; ``--val-fraction`` holds out a share).
:func:`build_training` turns a recipe into what :func:`convscope.train.fit` takes: the
transforms, the optimizer and the per-batch learning-rate schedule, built the one way
``convscope train``, ``convscope explain shift --train-compare`` and the end-to-end
benchmark all use.

:func:`antialias` rewrites a model the way the notes' fix of the shift problem (9.2.6)
and Zhang 2019 do: every max pooling of stride ``s > 1`` becomes ``MaxPool(stride 1)``
followed by ``BlurPool(stride s)``.

Measured on the project's 2-core machine (2026-11-25, seed 0, other jobs running):
``convscope train`` (digits) 0.9833 test accuracy, 5-19 s of training, 9-31 s wall
including start-up; ``convscope train --dataset mnist --data-dir ...`` 0.9938 in 225 s
of training (10 epochs, about 2,700 images/s); ``convscope train --dataset cifar10
--data-dir ...`` 0.8318 in 2,162 s of training (6 epochs, about 139 images/s).

Example:
    >>> model = build_model("digits", seed=0)
    >>> model.output_shape((1, 1, 8, 8))
    (1, 10)
    >>> sorted(ARCHITECTURES)
    ['cifar', 'digits', 'lenet', 'resnet']
    >>> recipe_for("mnist").arch, recipe_for("mnist").epochs
    ('lenet', 10)
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import nn, optim
from .data import Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomShift
from .errors import ArgumentTypeError, ConfigError, ConvscopeError, DataError, ResourceError, ShapeError, StateError
from .files import check_readable
from .nn.layer_types import ResidualLayer
from .schema import parse_json
from .shapes import WindowGeometry, format_shape

__all__ = [
    "ARCHITECTURES",
    "RECIPES",
    "Architecture",
    "Recipe",
    "Training",
    "antialias",
    "fold_batch_norm",
    "inference_twin",
    "add_input_normalization",
    "input_statistics",
    "describe_pooling",
    "build_model",
    "build_training",
    "check_fits",
    "default_arch",
    "recipe_for",
]


# ------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class Architecture:
    """A named model family: how to build it and the input it was made for.

    Attributes:
        name: the name ``build_model`` and ``--arch`` accept.
        input_shape: the (C, H, W) it was designed for (the default input).
        description: one line for ``convscope summary`` and error messages.
        builder: ``builder(input_shape, num_classes, rng, dtype) -> Module``.
    """

    name: str
    input_shape: tuple[int, int, int]
    description: str
    builder: Callable[[tuple[int, ...], int, np.random.Generator, Any], nn.Module]


def _output_shape(model: nn.Module, image_shape: Sequence[int], misfit: str) -> tuple[int, ...]:
    """The output shape of ``model`` for a batch of one image; a ShapeError that starts with
    ``misfit`` (``"architecture 'lenet' does not fit"``) when the image does not fit."""
    try:
        return model.output_shape((1, *image_shape))
    except ShapeError as exc:
        raise ShapeError(f"{misfit} images of shape {format_shape(tuple(image_shape))}: {exc}") from None


def _head_size(features: nn.Module, input_shape: tuple[int, ...], arch: str) -> int:
    """Entries per sample after ``features`` (the fully-connected layer's in_features)."""
    out = _output_shape(features, input_shape, f"architecture {arch!r} does not fit")
    return int(np.prod(out[1:]))


def _digits(shape: tuple[int, ...], classes: int, rng: np.random.Generator, dtype: Any) -> nn.Module:
    c = shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    n = _head_size(features, shape, "digits")
    return nn.Sequential(
        *features,
        nn.Linear(n, 128, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(128, classes, rng=rng, dtype=dtype),
    )


def _lenet(shape: tuple[int, ...], classes: int, rng: np.random.Generator, dtype: Any) -> nn.Module:
    c = shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    n = _head_size(features, shape, "lenet")
    return nn.Sequential(
        *features,
        nn.Linear(n, 120, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(120, 84, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(84, classes, rng=rng, dtype=dtype),
    )


def _cifar(shape: tuple[int, ...], classes: int, rng: np.random.Generator, dtype: Any) -> nn.Module:
    layers: list[nn.Module] = []
    c_in = shape[0]
    for widths in ((32, 32), (64, 64), (128,)):
        for c_out in widths:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng, dtype=dtype),
                nn.BatchNorm2d(c_out, dtype=dtype), nn.ReLU(),
            ]
            c_in = c_out
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    features = nn.Sequential(*layers)
    n = _head_size(features, shape, "cifar")
    return nn.Sequential(*features, nn.Linear(n, classes, rng=rng, dtype=dtype))


def _resnet(shape: tuple[int, ...], classes: int, rng: np.random.Generator, dtype: Any) -> nn.Module:
    """The small CIFAR ResNet of the table above, an :class:`~convscope.nn.Graph` with
    torchvision's node names (``conv1``, ``layer2.0.conv1``, ``layer2.0.downsample.0`` ...).

    Each BasicBlock computes ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``: the
    shortcut is ``x`` itself where the block keeps size and width (stage 1), and the projection
    ``bn(conv1x1 stride 2 (x))`` where it halves the image and doubles the channels (the first
    block of stages 2 and 3: He et al.'s option B, torchvision's ``downsample``).
    """
    g = nn.GraphBuilder()

    def conv_bn(prefix: str, ref: str, c_in: int, c_out: int, k: int, stride: int, conv: str, bn: str) -> str:
        h = g.add(prefix + conv, nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False,
                                           rng=rng, dtype=dtype), ref)
        return g.add(prefix + bn, nn.BatchNorm2d(c_out, dtype=dtype), h)

    h = g.add("relu", nn.ReLU(), conv_bn("", g.input, shape[0], 16, 3, 1, "conv1", "bn1"))
    c_in = 16
    for stage, width in enumerate((16, 32, 64)):
        p, stride = f"layer{stage + 1}.0.", 1 if stage == 0 else 2
        y = g.add(p + "relu1", nn.ReLU(), conv_bn(p, h, c_in, width, 3, stride, "conv1", "bn1"))
        y = conv_bn(p, y, width, width, 3, 1, "conv2", "bn2")
        skip = h if stride == 1 and c_in == width else conv_bn(p, h, c_in, width, 1, stride,
                                                                 "downsample.0", "downsample.1")
        h = g.add(p + "relu", nn.ReLU(), g.add(p + "add", nn.Add(), y, skip))
        c_in = width
    h = g.add("flatten", nn.Flatten(), g.add("avgpool", nn.AdaptiveAvgPool2d(1), h))   # global average pooling
    model = g.build(g.add("fc", nn.Linear(c_in, classes, rng=rng, dtype=dtype), h))
    _output_shape(model, shape, "architecture 'resnet' does not fit")
    return model


#: Built-in architectures by name.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("digits", (1, 8, 8), "conv-relu-pool x2, fc-relu, fc (for 8x8 digits)", _digits),
        Architecture("lenet", (1, 28, 28), "LeNet-5 with ReLU and max pooling (for 28x28 gray)", _lenet),
        Architecture("cifar", (3, 32, 32), "conv-BN-relu blocks with pooling, fc (for 32x32 RGB)", _cifar),
        Architecture("resnet", (3, 32, 32), "a small ResNet graph: 3 stages of BasicBlocks (projection "
                     "shortcuts), global average pooling, fc (for 32x32 RGB)", _resnet),
    )
}


def _check_shape(input_shape: Any) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in input_shape)
        ok = len(shape) == 3 and all(v >= 1 and v == w for v, w in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"build_model: input_shape must be (channels, height, width) of one image, three "
            f"positive ints; got {input_shape!r}."
        )
    return shape  # type: ignore[return-value]


def build_model(
    name: str | Path = "digits",
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int = 10,
    seed: int | None = None,
    dtype: Any = np.float32,
) -> nn.Module:
    """Build a built-in architecture by name, or rebuild one from a JSON spec file.

    Args:
        name: a key of :data:`ARCHITECTURES` (``"digits"``, ``"lenet"``, ``"cifar"``), or
            the path of a ``.json`` file holding a :func:`convscope.nn.to_spec` dict.
        input_shape: (C, H, W) of one image; default: the architecture's own. Ignored
            for a spec file (the spec fixes every size).
        num_classes: scores the last layer gives (built-in architectures only).
        seed: seed of the initial weights (None: not repeatable). For a spec file the
            seed goes to :func:`convscope.nn.init.manual_seed`, which the modules of a
            rebuilt spec draw from.
        dtype: float32 (default) or float64 (built-in architectures only).

    Returns:
        A fresh, untrained :class:`~convscope.nn.Sequential` (an :class:`~convscope.nn.Graph`
            for ``"resnet"``; whatever the spec holds for a spec file).

    Raises:
        ConfigError: unknown name, unreadable or invalid spec file, bad input_shape or
            num_classes.
        ShapeError: the images are too small for the architecture's blocks.

    Example:
        >>> m = build_model("lenet", seed=0)
        >>> m.num_parameters()
        61706
        >>> build_model("lenet", input_shape=(3, 32, 32), seed=0).output_shape((2, 3, 32, 32))
        (2, 10)
        >>> build_model("vgg")
        Traceback (most recent call last):
        ...
        convscope.errors.ConfigError: unknown architecture 'vgg': expected one of cifar, digits, lenet, resnet, or the path of a .json spec file (from convscope.nn.to_spec); no such file exists.
    """
    if not isinstance(name, (str, Path)):
        raise ArgumentTypeError(f"build_model: name must be a str or a path; got {type(name).__name__}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ConfigError(f"build_model: seed must be a non-negative int or None; got {seed!r}.")
    key = str(name)
    if isinstance(name, str) and key.lower() in ARCHITECTURES:
        arch = ARCHITECTURES[key.lower()]
        shape = arch.input_shape if input_shape is None else _check_shape(input_shape)
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ConfigError(f"build_model: num_classes must be a positive int; got {num_classes!r}.")
        return arch.builder(shape, int(num_classes), np.random.default_rng(seed), dtype)
    path = Path(name)
    try:
        exists = path.exists()
    except OSError:  # e.g. a name longer than the file system allows: not a file
        exists = False
    if exists:  # a FIFO or folder of that name is refused here, not opened
        return _from_spec_file(check_readable(path, "architecture spec", error=ConfigError), seed)
    raise ConfigError(
        f"unknown architecture {key!r}: expected one of {', '.join(sorted(ARCHITECTURES))}, or "
        f"the path of a .json spec file (from convscope.nn.to_spec); no such file exists."
    )


def _from_spec_file(path: Path, seed: int | None) -> nn.Module:
    def fail(message: str) -> ConfigError:
        return ConfigError(
            f"could not read the architecture spec {path}: {message} Expected a JSON file written "
            f"from convscope.nn.to_spec(model)."
        )

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"{exc}.") from None
    spec = parse_json(data, "it", fail)
    if seed is not None:
        nn.init.manual_seed(int(seed))
    try:
        return nn.from_spec(spec)
    except ResourceError as exc:
        raise ResourceError(f"the architecture spec {path} is too large: {exc}") from None
    except ConvscopeError as exc:
        raise ConfigError(f"the architecture spec {path} is not valid: {exc}") from None


def default_arch(image_shape: Sequence[int]) -> str:
    """The built-in architecture for images of ``image_shape`` (C, H, W).

    8x8 and smaller: ``"digits"``; gray images up to 31 pixels: ``"lenet"``; everything
    else: ``"cifar"`` (its three pooling steps need at least 8x8).

    >>> default_arch((1, 8, 8)), default_arch((1, 28, 28)), default_arch((3, 32, 32))
    ('digits', 'lenet', 'cifar')
    """
    c, h, w = _check_shape(image_shape)
    side = min(h, w)
    if side <= 8:
        return "digits"
    if c == 1 and side < 32:
        return "lenet"
    return "cifar"


# ------------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """How ``convscope train`` trains on one dataset when no option overrides it.

    Attributes:
        arch: architecture name (None: chosen by image shape with :func:`default_arch`).
        epochs, batch_size, lr: the obvious.
        optimizer: ``"adam"`` or ``"sgd"`` (SGD uses ``momentum``, Nesterov off).
        momentum: SGD momentum.
        weight_decay: L2 penalty (SGD) / decoupled decay is not used.
        schedule: ``"cosine"`` (per batch, down to 0), ``"onecycle"`` (per batch, peak
            ``lr``) or ``"constant"``.
        shift: RandomShift pixels (0: none).
        crop_padding: RandomCrop padding at the input size (0: none).
        flip: random horizontal flips.
        threads: BLAS threads for training (None: the library's default). The products of
            the digits and LeNet models are too small to share between threads: one thread
            is as fast or faster, and does not stall when another process holds a core.
    """

    arch: str | None
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    shift: int = 0
    crop_padding: int = 0
    flip: bool = False
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (written to metrics.json by the CLI)."""
        return asdict(self)

    def make_transforms(self, train: Any, *, normalize: bool = True) -> tuple[Any, Normalize | None]:
        """The training transform and the evaluation transform for the ``train`` split.

        Both normalise with the split's per-channel mean and standard deviation
        (:func:`input_statistics`; a channel without spread is divided by 1). The
        training transform first applies the recipe's augmentation: random shift, then
        random crop, then random horizontal flip.

        Args:
            train: the training split.
            normalize: False for a model that standardises its inputs itself (an
                :class:`~convscope.nn.Normalize` layer first, :func:`add_input_normalization`):
                the augmentation alone (None without any) and no evaluation transform.

        Returns:
            ``(train_transform, normalize)``; ``train_transform`` is ``normalize`` itself
            when the recipe has no augmentation.

        Example:
            >>> from convscope.data import load_dataset
            >>> RECIPES["cifar10"].make_transforms(load_dataset("digits"))[0]  # doctest: +ELLIPSIS
            Compose([RandomCrop(...), RandomHorizontalFlip(...), Normalize(...)])
        """
        augment: list[Any] = []
        if self.shift:
            augment.append(RandomShift(self.shift))
        if self.crop_padding:
            augment.append(RandomCrop(padding=self.crop_padding))
        if self.flip:
            augment.append(RandomHorizontalFlip())
        if not normalize:
            return (Compose(augment) if len(augment) > 1 else (augment[0] if augment else None)), None
        norm = Normalize(*input_statistics(train))
        return (Compose([*augment, norm]) if augment else norm), norm

    def make_optimizer(self, parameters: Any, steps: int) -> tuple[optim.Optimizer, Any]:
        """The recipe's optimizer over ``parameters`` and its per-batch schedule.

        Args:
            parameters: what an optimizer takes (``model.named_parameters()``, ...).
            steps: optimizer steps of the whole run; the cosine schedule decays to 0 over
                them, the one-cycle schedule warms up and anneals over them.

        Returns:
            ``(optimizer, scheduler)``: :class:`~convscope.optim.SGD` (``momentum``,
            ``weight_decay``) or :class:`~convscope.optim.Adam` (``weight_decay``) at
            ``lr``; :class:`~convscope.optim.CosineAnnealingLR`,
            :class:`~convscope.optim.OneCycleLR` (peak ``lr``) or None for ``"constant"``.

        Raises:
            ConfigError: an optimizer or schedule name this recipe format does not know.
        """
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"Recipe.optimizer must be 'sgd' or 'adam'; got {self.optimizer!r}.")
        if self.schedule not in ("cosine", "onecycle", "constant"):
            raise ConfigError(f"Recipe.schedule must be 'cosine', 'onecycle' or 'constant'; got "
                              f"{self.schedule!r}.")
        if self.optimizer == "sgd":
            opt: optim.Optimizer = optim.SGD(parameters, lr=self.lr, momentum=self.momentum,
                                             weight_decay=self.weight_decay)
        else:
            opt = optim.Adam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule == "cosine":
            return opt, optim.CosineAnnealingLR(opt, T_max=steps)
        if self.schedule == "onecycle":
            return opt, optim.OneCycleLR(opt, max_lr=self.lr, total_steps=steps)
        return opt, None


#: Default recipes per dataset name; ``"folder"`` is used for image-folder paths.
RECIPES: dict[str, Recipe] = {
    "digits": Recipe("digits", epochs=12, batch_size=32, lr=3e-3, threads=1),
    "mnist": Recipe("lenet", epochs=10, batch_size=64, lr=2e-3, shift=1, threads=1),
    "fashion-mnist": Recipe("lenet", epochs=15, batch_size=64, lr=2e-3, shift=1, threads=1),
    "cifar10": Recipe(
        "cifar", epochs=6, batch_size=128, lr=0.05, optimizer="sgd", weight_decay=5e-4,
        schedule="onecycle", crop_padding=4, flip=True, threads=1,
    ),
    "folder": Recipe(None, epochs=20, batch_size=32, lr=1e-3),
}


def recipe_for(dataset: str | Path) -> Recipe:
    """The recipe for a dataset name (any name that is not built in gets ``"folder"``).

    >>> recipe_for("cifar10").optimizer, recipe_for("./my_photos").arch is None
    ('sgd', True)
    """
    key = str(dataset).strip().lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}.get(key, key)
    if not isinstance(dataset, str):
        key = "folder"
    return RECIPES.get(key, RECIPES["folder"])


def input_statistics(train: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` of a training split, what every recipe standardises with.

    :meth:`~convscope.data.Dataset.channel_stats`, with a channel that has no spread
    divided by 1 instead of 0.

    >>> from convscope.data import load_dataset
    >>> mean, std = input_statistics(load_dataset("digits"))
    >>> len(mean), round(mean[0], 3), round(std[0], 3)
    (1, 0.306, 0.376)
    """
    mean, std = train.channel_stats()
    return tuple(float(m) for m in mean), tuple(float(s) if s > 0 else 1.0 for s in std)


def add_input_normalization(model: nn.Module, train: Any) -> nn.Module:
    """``model`` with an :class:`~convscope.nn.Normalize` layer of the split's statistics
    first (:func:`input_statistics`), so that the model takes raw ``[0, 1]`` pixels.

    The saved model is then the whole pipeline: ``convscope.load``, ``predict``,
    ``evaluate``, the ONNX and the PyTorch export all standardise the same way, because
    the model does it. ``convscope train`` builds every model this way;
    :func:`build_training` then leaves the normalisation out of the transforms.

    Example:
        >>> from convscope.data import load_dataset
        >>> model = add_input_normalization(build_model("digits", seed=0), load_dataset("digits"))
        >>> model[0]
        Normalize(mean=[0.3055], std=[0.3761])
        >>> build_training(RECIPES["digits"], model, load_dataset("digits")).transform is None
        True
    """
    return nn.with_input_normalization(model, *input_statistics(train))


def check_fits(model: nn.Module, image_shape: Sequence[int], num_classes: int, source: str) -> None:
    """Raise a clear error when ``model`` cannot take images of ``image_shape``.

    Raises:
        ShapeError: the model rejects the image shape (message from its first misfit).
        DataError: the model gives another number of scores than the dataset has classes.
    """
    out = _output_shape(model, image_shape, f"the model does not fit {source}")
    if len(out) != 2 or out[1] != num_classes:
        raise DataError(
            f"the model gives outputs of shape {format_shape(out)} per batch of one, but {source} "
            f"has {num_classes} classes; the last layer needs {num_classes} outputs."
        )


# ------------------------------------------------------------------------ training setup


@dataclass(frozen=True)
class Training:
    """What :func:`build_training` makes of a recipe: the arguments ``fit`` trains with.

    Attributes:
        transform: applied to every training batch (augmentation, then normalisation);
            the augmentation alone (None without any) when the model normalises itself.
        eval_transform: the normalisation alone, for validation, test and prediction;
            None when the model normalises itself (an :class:`~convscope.nn.Normalize`
            layer first, :func:`add_input_normalization`).
        optimizer: the recipe's optimizer over the model's parameters.
        scheduler: the per-batch learning-rate schedule (step it every batch), or None.
        steps: optimizer steps in the run, ``epochs * ceil(len(train) / batch_size)``.
    """

    transform: Any
    eval_transform: Normalize | None
    optimizer: optim.Optimizer
    scheduler: Any
    steps: int


def build_training(recipe: Recipe, model: nn.Module, train: Any) -> Training:
    """Assemble transforms, optimizer and schedule for training ``model`` on ``train``.

    The one place a recipe becomes training objects: ``convscope train`` (after applying
    its options with :func:`dataclasses.replace`), ``convscope explain shift
    --train-compare`` and the end-to-end benchmark build them here, so the same recipe
    trains the same way everywhere. Pass the result to :func:`convscope.train.fit` as
    ``optimizer=``, ``scheduler=`` (with ``scheduler_interval="batch"``),
    ``transform=`` and ``eval_transform=``, with ``epochs=recipe.epochs`` and
    ``batch_size=recipe.batch_size``.

    Args:
        recipe: a :class:`Recipe` (see :data:`RECIPES`); ``epochs`` and ``batch_size``
            fix the length of the schedule.
        model: the model to train; the optimizer takes its ``named_parameters()``.
        train: the training split (a :class:`~convscope.data.Dataset`); its per-channel
            statistics give the normalisation (unless the model starts with its own
            :class:`~convscope.nn.Normalize` layer) and its length the number of steps.

    Returns:
        A :class:`Training`.

    Raises:
        ConfigError: the recipe names an unknown optimizer or schedule.

    Example:
        >>> from convscope.data import load_dataset
        >>> train = load_dataset("digits")
        >>> setup = build_training(RECIPES["digits"], build_model("digits", seed=0), train)
        >>> type(setup.optimizer).__name__, type(setup.scheduler).__name__, setup.steps
        ('Adam', 'CosineAnnealingLR', 540)
    """
    transform, norm = recipe.make_transforms(train, normalize=nn.input_normalization(model) is None)
    steps = recipe.epochs * (-(-len(train) // recipe.batch_size))
    optimizer, scheduler = recipe.make_optimizer(model.named_parameters(), steps)
    return Training(transform, norm, optimizer, scheduler, steps)


# -------------------------------------------------------------------------- anti-aliasing


def describe_pooling(model: nn.Module) -> str:
    """One line on what pools in ``model``, for messages.

    Layers are read through the layer protocol (``layer_kind`` and ``window``), so a
    subclass of a pooling layer counts as that pooling.

    Example:
        >>> describe_pooling(build_model("digits", seed=0))
        'MaxPool2d(stride 2,2), MaxPool2d(stride 2,2)'
        >>> describe_pooling(antialias(build_model("digits", seed=0), (1, 8, 8)))
        'MaxPool2d(stride 1,1), MaxPool2d(stride 1,1); 2 BlurPool'
    """
    pools, blurs = [], 0
    for record in nn.walk(model):
        kind, window = record.module.layer_kind, record.module.window
        if kind == "blur_pool":
            blurs += 1
        elif kind in ("max_pool", "avg_pool") and window is not None:
            pools.append(f"{type(record.module).__name__}(stride {','.join(map(str, window.stride))})")
    parts = []
    if pools:
        parts.append(", ".join(pools))
    if blurs:
        parts.append(f"{blurs} BlurPool")
    return "; ".join(parts) or "no pooling layers"


#: The public pooling classes by number of spatial axes, for the layers antialias adds.
_MAX_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_BLUR_POOLS = {1: nn.BlurPool1d, 2: nn.BlurPool2d, 3: nn.BlurPool3d}
_NESTS = ("sequential", "residual", "graph")      # containers antialias rebuilds inside


def _dense_twin(module: nn.Module) -> nn.Module | None:
    """The stride-1 version of a strided max pooling or convolution (None for any other layer).

    A max pooling becomes a new ``MaxPool(k, stride 1)``; a convolution a copy of itself (same
    weights, its own parameters) with stride 1 and otherwise the same geometry.
    """
    window = module.window
    if window is None or all(s == 1 for s in window.stride):
        return None
    if module.layer_kind == "max_pool":
        return _MAX_POOLS[window.ndim](window.kernel_size, stride=1, padding=window.padding,
                                       dilation=window.dilation)
    if module.layer_kind == "conv":
        dense = copy.deepcopy(module)
        dense.stride = (1,) * window.ndim     # type: ignore[attr-defined]
        return dense
    return None


def antialias(model: nn.Module, input_shape: Sequence[int], filter_size: int = 4) -> nn.Module:
    """The anti-aliased twin of ``model``: every max pooling of stride ``s > 1`` becomes
    ``MaxPool(k, stride 1)`` followed by ``BlurPool(stride s)``, and every convolution of
    stride ``s > 1`` becomes the same convolution with stride 1 followed by
    ``BlurPool(stride s)`` (notes 9.2.6, Zhang 2019's MaxBlurPool and ConvBlurPool).

    Pooling with a stride skips positions, so a one-pixel shift of the input can change
    the output entirely (the shift problem of 9.2.6). Taking the maximum densely and then
    low-pass filtering before subsampling (BlurPool, Key Equation 15 with a fixed binomial
    filter) keeps the output shape and makes the model's answer change smoothly with
    the shift.

    Layers are recognised by the layer protocol (``layer_kind`` ``"max_pool"`` or ``"conv"``
    and its ``window``), so a subclass is rewritten too. Containers of kind
    ``"sequential"`` are rebuilt as :class:`~convscope.nn.Sequential` and ``"residual"`` as
    :class:`~convscope.nn.Residual` around the rewritten block; in a :class:`~convscope.nn.Graph`
    a strided node ``X`` becomes two nodes, ``X.dense`` (stride 1, reading X's inputs) and ``X``
    (the BlurPool), so every reference to ``X`` still holds; a rewritten convolution is a
    copy (same weights, its own parameters); every other layer is the same object in both
    models, so give this function a freshly built model (same seed,
    same initial weights) when both are to be trained. The output shape must stay the same,
    so the layers after each pooling still fit.

    Args:
        model: the model to rewrite (it is not changed).
        input_shape: the shape of one input, without the batch axis (C, H, W for images):
            it gives each BlurPool its channel count.
        filter_size: the BlurPool filter size (binomial filter of that many taps per axis).

    Returns:
        The twin, a new container of the model's kind (Sequential, Residual or Graph).

    Raises:
        ConfigError: the model has no strided max pooling, or the twin's output shape differs.

    Example:
        >>> twin = antialias(build_model("digits", seed=0), (1, 8, 8))
        >>> twin[2]
        Sequential(
          (0): MaxPool2d(kernel_size=(2, 2), stride=(1, 1))
          (1): BlurPool2d(32)
        )
        >>> twin.output_shape((1, 1, 8, 8))
        (1, 10)
    """
    replaced = 0

    def rebuild(module: nn.Module, shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
        nonlocal replaced
        if module.layer_kind == "sequential":
            children = []
            for child in module:  # type: ignore[attr-defined]
                new, shape = rebuild(child, shape)
                children.append(new)
            return nn.Sequential(*children), shape
        if module.layer_kind == "graph":
            return rebuild_graph(module, shape)
        if module.layer_kind == "residual":
            block, _ = rebuild(cast(ResidualLayer, module).block, shape)
            return nn.Residual(block), module.output_shape(shape)
        out = module.output_shape(shape)
        dense = _dense_twin(module)
        if dense is None:
            return module, out
        replaced += 1
        window = cast(WindowGeometry, module.window)
        channels = dense.output_shape(shape)[1]
        blur = _BLUR_POOLS[window.ndim](channels, filter_size=filter_size, stride=window.stride)
        return nn.Sequential(dense, blur), out

    def rebuild_graph(graph: Any, shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
        """A strided node ``X`` becomes two nodes: ``X.dense`` (stride 1, X's inputs) and ``X``
        (the BlurPool, reading ``X.dense``), so every reference to ``X`` still holds."""
        shapes: dict[str, Any] = {name: shape for name in graph.inputs}
        nodes = []
        for node in graph.nodes:
            ins = [shapes[ref] for ref in node.inputs]
            before = replaced
            new, out = rebuild(node.module, ins[0]) if len(ins) == 1 else (node.module, node.module.output_shape(*ins))
            if replaced > before and new.layer_kind == "sequential" and node.module.layer_kind not in _NESTS:
                dense, blur = list(new)  # type: ignore[arg-type]
                nodes += [nn.Node(f"{node.name}.dense", dense, node.inputs), nn.Node(node.name, blur, (f"{node.name}.dense",))]
            else:
                nodes.append(nn.Node(node.name, new, node.inputs))
            outs = list(out) if out and not isinstance(out[0], (int, np.integer)) else [out]
            shapes[node.name] = outs[0]
            shapes.update({f"{node.name}:{k}": o for k, o in enumerate(outs)})
        twin = nn.Graph(nodes, inputs=graph.inputs, outputs=graph.outputs)
        return twin, twin.output_shape(shape)

    shape = (1, *tuple(int(v) for v in input_shape))
    twin, _ = rebuild(model, shape)
    if not replaced:
        raise ConfigError(f"the model has no max pooling or convolution with stride > 1 for antialias to "
                          f"replace by its stride-1 version + BlurPool ({describe_pooling(model)}).")
    want, got = model.output_shape(shape), twin.output_shape(shape)
    if want != got:
        raise ConfigError(f"the BlurPool twin from antialias gives outputs of shape {got} instead "
                          f"of {want}; the layers after the pooling would not fit. Try another "
                          f"filter_size.")
    return twin


# -------------------------------------------------------------------------- inference folding


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """A convolution followed by a batch norm that normalises with running statistics."""
    return (conv.layer_kind == "conv" and bn.layer_kind == "batch_norm"
            and getattr(bn, "running_mean", None) is not None and not bn.training
            and getattr(conv, "out_channels", None) == getattr(bn, "num_features", None))


def _fold_values(conv: nn.Module, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The weight and bias of one convolution computing ``bn(conv(x))``: with
    ``s = gamma / sqrt(running_var + eps)`` per output channel, ``w' = s * w`` and
    ``b' = s * (b - running_mean) + beta`` (in float64, cast to the convolution's dtype)."""
    c = cast(Any, conv)
    norm = cast(Any, bn)
    dtype = c.weight.data.dtype
    scale = np.asarray(1.0 / np.sqrt(np.asarray(norm.running_var, np.float64) + norm.eps))
    if norm.weight is not None:
        scale = scale * np.asarray(norm.weight.data, np.float64)
    shift = -np.asarray(norm.running_mean, np.float64) * scale
    if c.bias is not None:
        shift = shift + np.asarray(c.bias.data, np.float64) * scale
    if norm.bias is not None:
        shift = shift + np.asarray(norm.bias.data, np.float64)
    weight = np.asarray(c.weight.data, np.float64) * scale.reshape((-1,) + (1,) * (c.weight.data.ndim - 1))
    return weight.astype(dtype), shift.astype(dtype)


def _folded(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """One convolution computing ``bn(conv(x))`` (see :func:`_fold_values`)."""
    weight, bias = _fold_values(conv, bn)
    fused = copy.deepcopy(conv)
    f = cast(Any, fused)
    f.weight = nn.Parameter(weight)
    f.bias = nn.Parameter(bias)
    fused.eval()
    return fused


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference in which every convolution followed by a batch norm is
    one convolution: ``bn(conv(x)) = (s * w) (*) x + s * (b - mean) + beta`` with
    ``s = gamma / sqrt(var + eps)`` per output channel, from the running statistics.

    In evaluation mode a batch norm is an affine map per channel (Key Equation of the
    batch-norm section: ``gamma * (x - mean) / sqrt(var + eps) + beta`` with fixed mean and
    var), and so is a convolution's dependence on its bias: the two compose into one
    convolution, and the pass over the activations that the batch norm made is gone (14%
    of a ResNet-8 forward on the Intel Xeon, BENCHMARKS.md). The folded layer is a
    convolution with a bias; the batch norm's place holds an ``nn.Identity``, so layer
    numbers and names stay those of ``model``. Results agree with ``model`` up to rounding
    (float64 to ~1e-15 relative), not bit for bit. For inference only: training the copy
    would train a different model (no batch statistics), and the explainer shows the
    original's batch norms.

    A pair is folded when the batch norm reads only that convolution (the next layer of a
    Sequential; in a Graph, the convolution's only consumer, not a graph output) and has
    running statistics. Containers (Sequential, Residual, Graph) are rebuilt; every other
    layer is shared with ``model``, which is not changed.

    Args:
        model: a model in evaluation mode (``model.eval()``).

    Returns:
        The folded copy, in evaluation mode (``model`` itself when nothing folds).

    Raises:
        StateError: ``model`` is in training mode (its batch norms use batch statistics there,
            which no fixed convolution can).
        ArgumentTypeError: ``model`` is not a convscope module.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False, rng=0), nn.BatchNorm2d(2), nn.ReLU())
        >>> folded = fold_batch_norm(net.eval())
        >>> [type(m).__name__ for m in folded], folded[0].bias is not None
        (['Conv2d', 'Identity', 'ReLU'], True)
        >>> x = np.random.default_rng(0).standard_normal((1, 1, 5, 5)).astype(np.float32)
        >>> bool(np.allclose(folded(x), net(x), atol=1e-6))
        True
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"fold_batch_norm: model must be a convscope nn.Module; got "
                                f"{type(model).__name__}.")
    if model.training:
        raise StateError("fold_batch_norm: the model is in training mode, where batch norm "
                         "normalises with each batch's own statistics, which no fixed "
                         "convolution computes; call model.eval() first (folding is for inference).")
    folded, pairs = _fold(model)
    return folded if pairs else model


def _fold(model: nn.Module) -> tuple[nn.Module, list[tuple[nn.Module, nn.Module, nn.Module]]]:
    """:func:`fold_batch_norm`'s copy and its ``(fused conv, conv, batch norm)`` triples."""
    pairs: list[tuple[nn.Module, nn.Module, nn.Module]] = []

    def fuse(conv: nn.Module, bn: nn.Module) -> nn.Module:
        fused = _folded(conv, bn)
        pairs.append((fused, conv, bn))
        return fused

    def rebuild(module: nn.Module) -> nn.Module:
        kind = module.layer_kind
        if kind == "sequential":
            children = [rebuild(c) for c in module]  # type: ignore[attr-defined]
            for i in range(len(children) - 1):
                if _foldable(children[i], children[i + 1]):
                    children[i], children[i + 1] = fuse(children[i], children[i + 1]), nn.Identity()
            return nn.Sequential(*children)
        if kind == "residual":
            return nn.Residual(rebuild(cast(ResidualLayer, module).block))
        if kind == "graph":
            graph = cast(Any, module)
            readers: dict[str, list[str]] = {}
            for node in graph.nodes:
                for ref in node.inputs:
                    readers.setdefault(ref, []).append(node.name)
            outputs = graph.outputs if isinstance(graph.outputs, tuple) else (graph.outputs,)
            modules = {node.name: rebuild(node.module) for node in graph.nodes}
            for node in graph.nodes:
                src = node.inputs[0] if len(node.inputs) == 1 else ""
                if src in modules and readers.get(src) == [node.name] and src not in outputs \
                        and _foldable(modules[src], modules[node.name]):
                    modules[src], modules[node.name] = fuse(modules[src], modules[node.name]), nn.Identity()
            return nn.Graph([nn.Node(n.name, modules[n.name], n.inputs) for n in graph.nodes],
                            inputs=graph.inputs, outputs=graph.outputs)
        return module

    folded = rebuild(model)
    folded.eval()
    return folded, pairs


#: model -> (its structure, the folded twin, the (fused, conv, bn) triples) for inference_twin
_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_twin(model: nn.Module) -> nn.Module:
    """What :func:`convscope.train.evaluate` runs: ``model``'s :func:`fold_batch_norm` copy, kept
    per model and brought up to date with its weights and statistics on every call.

    The copy is made once per model (and again if its layers change); later calls recompute the
    fused convolutions' weights in place, so the same arrays stay in use (the worker processes
    of :mod:`convscope.train.data_parallel` keep them) and every other layer is the model's own.
    A model in training mode, or one with nothing to fold, is returned as it is.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2)).eval()
        >>> twin = inference_twin(net)
        >>> twin is inference_twin(net), [type(m).__name__ for m in twin]
        (True, ['Conv2d', 'Identity'])
    """
    if not isinstance(model, nn.Module) or model.training:
        return model
    structure = tuple(id(r.module) for r in nn.walk(model))
    entry = _TWINS.get(model)
    if entry is not None and any(cast(Any, f).weight.data.dtype != cast(Any, c).weight.data.dtype
                                 or cast(Any, f).weight.data.shape != cast(Any, c).weight.data.shape
                                 for f, c, _ in entry[2]):
        entry = None                            # the model was cast (model.to) or reshaped: fold anew
    if entry is None or entry[0] != structure:
        folded, pairs = _fold(model)
        entry = (structure, folded if pairs else model, pairs)
        _TWINS[model] = entry
        return entry[1]
    for fused, conv, bn in entry[2]:
        weight, bias = _fold_values(conv, bn)
        f = cast(Any, fused)
        f.weight.data[...] = weight
        f.bias.data[...] = bias
    return entry[1]
