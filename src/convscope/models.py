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
standard deviation (``Dataset.channel_stats``) and holds out nothing for validation
(the test split is scored once, at the end; ``--val-fraction`` holds out a share).

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
    ['cifar', 'digits', 'lenet']
    >>> recipe_for("mnist").arch, recipe_for("mnist").epochs
    ('lenet', 10)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import nn
from .errors import ArgumentTypeError, ConfigError, ConvscopeError, DataError, ResourceError, ShapeError
from .schema import parse_json
from .shapes import format_shape

__all__ = [
    "ARCHITECTURES",
    "RECIPES",
    "Architecture",
    "Recipe",
    "build_model",
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


def _head_size(features: nn.Module, input_shape: tuple[int, ...], arch: str) -> int:
    """Entries per sample after ``features`` (the fully-connected layer's in_features)."""
    try:
        out = features.output_shape((1, *input_shape))
    except ShapeError as exc:
        raise ShapeError(
            f"architecture {arch!r} does not fit images of shape {format_shape(input_shape)}: "
            f"{exc}"
        ) from None
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


#: Built-in architectures by name.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("digits", (1, 8, 8), "conv-relu-pool x2, fc-relu, fc (for 8x8 digits)", _digits),
        Architecture("lenet", (1, 28, 28), "LeNet-5 with ReLU and max pooling (for 28x28 gray)", _lenet),
        Architecture("cifar", (3, 32, 32), "conv-BN-relu blocks with pooling, fc (for 32x32 RGB)", _cifar),
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
        A fresh, untrained :class:`~convscope.nn.Sequential` (or whatever the spec holds).

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
        >>> build_model("resnet")
        Traceback (most recent call last):
        ...
        convscope.errors.ConfigError: unknown architecture 'resnet': expected one of cifar, digits, lenet, or the path of a .json spec file (from convscope.nn.to_spec); no such file exists.
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
    if path.is_file():
        return _from_spec_file(path, seed)
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


def check_fits(model: nn.Module, image_shape: Sequence[int], num_classes: int, source: str) -> None:
    """Raise a clear error when ``model`` cannot take images of ``image_shape``.

    Raises:
        ShapeError: the model rejects the image shape (message from its first misfit).
        DataError: the model gives another number of scores than the dataset has classes.
    """
    try:
        out = model.output_shape((1, *image_shape))
    except ShapeError as exc:
        raise ShapeError(
            f"the model does not fit {source} images of shape {format_shape(tuple(image_shape))}: "
            f"{exc}"
        ) from None
    if len(out) != 2 or out[1] != num_classes:
        raise DataError(
            f"the model gives outputs of shape {format_shape(out)} per batch of one, but {source} "
            f"has {num_classes} classes; the last layer needs {num_classes} outputs."
        )
