"""Batch transforms: normalise, random shift / crop with zero padding, horizontal flip.

Every transform works on a whole batch ``x`` of shape (N, C, H, W), float32 or float64,
returns a new array of the same dtype (the input is never modified), and is vectorised
over the batch (no Python loop per image). The random ones draw from a
``numpy.random.Generator``: the one passed to the call (``t(x, rng)``, which is what
:class:`~convscope.data.DataLoader` does with its own generator), or else the one the
transform was built with (``rng=`` a Generator or an int seed). Either way the same
seed gives the same result.

Example:
    >>> x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    >>> t = Compose([RandomHorizontalFlip(p=1.0), Normalize(mean=[1.0], std=[2.0])])
    >>> t(x, np.random.default_rng(0))[0, 0]
    array([[ 0.5,  0. , -0.5],
           [ 2. ,  1.5,  1. ]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..settings import check_allocation
from ..shapes import as_float_array, format_shape

__all__ = ["Transform", "Normalize", "RandomCrop", "RandomShift", "RandomHorizontalFlip", "Compose"]


def _as_generator(rng: Any, op: str) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ArgumentTypeError(
        f"{op}: rng must be a numpy.random.Generator, an int seed or None; got {type(rng).__name__}."
    )


def _check_batch(x: Any, op: str) -> np.ndarray:
    x = as_float_array(x, "x", op)
    if x.ndim != 4:
        raise ShapeError(
            f"{op}: expected a batch of images of shape (N, C, H, W); got shape "
            f"{format_shape(x.shape)}. For one image use x[None]."
        )
    # Every transform returns a new batch; a zero-stride view may describe more than fits.
    check_allocation(x.shape, x.dtype, "transformed batch (the shape of x)", op)
    return x


class Transform:
    """Base class: ``__call__(x, rng=None)`` checks the batch, then calls ``apply``.

    Subclasses that need randomness use ``self._generator(rng)``.
    """

    def __init__(self, rng: np.random.Generator | int | None = None) -> None:
        self.rng = _as_generator(rng, type(self).__name__)

    def _generator(self, rng: np.random.Generator | None) -> np.random.Generator:
        rng = _as_generator(rng, type(self).__name__)
        if rng is not None:
            return rng
        if self.rng is None:
            # No generator anywhere: draw fresh entropy once (not repeatable, by request).
            self.rng = np.random.default_rng()
        return self.rng

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.apply(_check_batch(x, type(self).__name__), rng)

    def apply(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize(Transform):
    """Per channel: (x - mean[c]) / std[c].

    Args:
        mean: one value per channel (or one for all).
        std: one positive value per channel (or one for all).

    Raises:
        ConfigError: std not positive, or mean/std of different lengths.
        ShapeError: the batch has a different number of channels.

    Example:
        >>> Normalize(0.5, 0.25)(np.ones((1, 1, 1, 2), np.float32))
        array([[[[2., 2.]]]], dtype=float32)
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        super().__init__()
        try:
            self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
            self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        except (TypeError, ValueError):
            raise ArgumentTypeError(
                f"Normalize: mean and std must be real numbers or 1-D sequences of them; got "
                f"mean={mean!r}, std={std!r}."
            ) from None
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ConfigError(f"Normalize: mean and std must be numbers or 1-D sequences; got {mean!r}, {std!r}.")
        if not np.all(np.isfinite(self.mean)) or not np.all(self.std > 0) or not np.all(np.isfinite(self.std)):
            raise ConfigError(
                f"Normalize: mean must be finite and std positive and finite (it divides); got "
                f"mean={self.mean.tolist()}, std={self.std.tolist()}."
            )
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ConfigError(
                f"Normalize: mean and std need one value per channel, the same count; got "
                f"{self.mean.size} and {self.std.size}."
            )

    def apply(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        c = x.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, c):
                raise ShapeError(
                    f"Normalize: {name} has {values.size} values but the batch of shape "
                    f"{format_shape(x.shape)} has {c} channels on axis 1."
                )
        mean = self.mean.astype(x.dtype).reshape(1, -1, 1, 1)
        std = self.std.astype(x.dtype).reshape(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop(Transform):
    """Pad each image with zeros, then cut a random ``size`` window out of it.

    Each image gets its own offset, uniform over every window position of the padded
    image. With ``size`` equal to the input size (the default) this is a random
    translation by up to ``padding`` pixels in each direction, with zeros shifted in.

    Args:
        size: (height, width) of the output, or one int; None keeps the input size.
        padding: zero pixels added on every side (int >= 0).
        rng: the transform's own Generator or int seed (used when the call gives none).

    Raises:
        ConfigError: negative padding, non-positive size, or a size larger than the
            padded input.

    Example:
        >>> x = np.ones((1, 1, 3, 3), np.float32)
        >>> out = RandomCrop(padding=1, rng=0)(x)
        >>> out.shape, float(out.sum()) in (4.0, 6.0, 9.0)
        ((1, 1, 3, 3), True)
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        padding: int = 0,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(rng)
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ConfigError(f"{type(self).__name__}: padding must be an int >= 0; got {padding!r}.")
        if size is not None:
            if isinstance(size, (int, np.integer)):
                size = (size, size)
            elif isinstance(size, (tuple, list)):
                size = tuple(size)
            else:
                raise ConfigError(f"RandomCrop: size must be a positive int or (height, width); got {size!r}.")
            if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
                raise ConfigError(f"RandomCrop: size must be a positive int or (height, width); got {size!r}.")
            size = (int(size[0]), int(size[1]))
        self.size = size
        self.padding = int(padding)

    def apply(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        n, c, h, w = x.shape
        p = self.padding
        oh, ow = self.size if self.size is not None else (h, w)
        if oh > h + 2 * p or ow > w + 2 * p:
            raise ConfigError(
                f"{type(self).__name__}: crop size {oh}x{ow} is larger than the padded input "
                f"{h + 2 * p}x{w + 2 * p} (input {h}x{w}, padding {p})."
            )
        check_allocation((n, c, h + 2 * p, w + 2 * p), x.dtype, "padded batch", type(self).__name__)
        gen = self._generator(rng)
        top = gen.integers(0, h + 2 * p - oh + 1, size=n)
        left = gen.integers(0, w + 2 * p - ow + 1, size=n)
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        # windows[n, c, i, j] is the (oh, ow) window at offset (i, j): a view, no copy;
        # picking one offset per image copies only the output.
        windows = sliding_window_view(xp, (oh, ow), axis=(2, 3))
        return windows[np.arange(n), :, top, left]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomShift(RandomCrop):
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift]
    along each axis, filling with zeros (RandomCrop at the input size).

    Example:
        >>> x = np.zeros((1, 1, 3, 3), np.float32); x[0, 0, 1, 1] = 1
        >>> out = RandomShift(1, rng=3)(x)
        >>> float(out.sum()), out.shape
        (1.0, (1, 1, 3, 3))
    """

    def __init__(self, max_shift: int, rng: np.random.Generator | int | None = None) -> None:
        super().__init__(size=None, padding=max_shift, rng=rng)

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.padding})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (last axis) with probability ``p``, independently.

    Example:
        >>> x = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)
        >>> RandomHorizontalFlip(p=1.0)(x)
        array([[[[2., 1., 0.]]]], dtype=float32)
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__(rng)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ConfigError(f"RandomHorizontalFlip: p must be a probability in [0, 1]; got {p!r}.")
        self.p = float(p)

    def apply(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        flip = np.asarray(self._generator(rng).random(x.shape[0]) < self.p)
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose(Transform):
    """Apply transforms in order, passing the same generator to each.

    Example:
        >>> Compose([Normalize(0.0, 2.0), Normalize(1.0, 1.0)])(np.full((1, 1, 1, 1), 4.0))
        array([[[[1.]]]])
    """

    def __init__(self, transforms: Sequence[Any]) -> None:
        super().__init__()
        try:
            transforms = list(transforms)
        except TypeError:
            raise ArgumentTypeError(
                f"Compose: transforms must be a list of callables; got {type(transforms).__name__}."
            ) from None
        for t in transforms:
            if not callable(t):
                raise ArgumentTypeError(f"Compose: every transform must be callable; got {type(t).__name__}.")
        self.transforms = transforms

    def apply(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
