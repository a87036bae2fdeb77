"""Concept 59 measured: how much a classifier's answer changes when its input shifts.

Strided max pooling skips receptive fields, so a small shift of the input can change what
the network sees (notes 9.2.6). Zhang 2019 ("Making Convolutional Networks Shift-Invariant
Again", the paper the notes cite) measures this with *classification consistency*: take two
random shifts of each image and count how often the top-1 class is the same for both.

* ``mode="crop"`` (Zhang's protocol): each shifted copy is a crop, the size of the image, out
  of a canvas padded by ``max_shift`` zeros on every side; a shift moves the content and
  fills the uncovered border with zeros.
* ``mode="circular"``: the image wraps around (``np.roll``), so no content is lost and no
  zeros come in; the variant Zhang uses for CIFAR.

Report consistency together with accuracy: a model that always answers the same class is
perfectly consistent. :func:`per_shift_probability` gives the curve of the correct class's
probability against the shift (Zhang's Figure 1), which ``convscope.viz`` draws.

``predict_fn`` is any function from a batch ``(N, C, *spatial)`` to class probabilities
``(N, classes)``, e.g. ``lambda x: F.softmax(model.eval()(x), axis=1)``.

Example:
    A "classifier" that answers by which half of the image is brighter: consistent under
    small shifts of an image whose bright spot sits far from the middle, not of one near it.

    >>> def halves(x):
    ...     left = x[..., :4].sum(axis=(1, 2, 3)); right = x[..., 4:].sum(axis=(1, 2, 3))
    ...     p = (right > left).astype(float)
    ...     return np.stack([1 - p, p], axis=1)
    >>> images = np.zeros((2, 1, 8, 8)); images[0, 0, 4, 0] = 1; images[1, 0, 4, 3] = 1
    >>> r = shift_consistency(halves, images, np.array([0, 0]), max_shift=2, n_pairs=50, rng=0)
    >>> r.accuracy, 0.5 < r.consistency < 1.0
    (1.0, True)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, DataError, ShapeError
from ..shapes import format_shape, normalize_int
from ._result import Result
from ._text import fmt_num

__all__ = [
    "ShiftConsistency",
    "ShiftCurve",
    "shift_images",
    "shift_consistency",
    "per_shift_probability",
]

_MODES = ("crop", "circular")


def _generator(rng: Any, op: str) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ArgumentTypeError(f"{op}: rng must be a numpy Generator, an int seed or None; got {rng!r}.")


def _check_mode(mode: Any, op: str) -> str:
    if mode not in _MODES:
        raise ConfigError(f"{op}: mode must be 'crop' (Zhang's zero-padded canvas) or 'circular' "
                          f"(np.roll); got {mode!r}.")
    return mode


def _shift_one(x: np.ndarray, shift: Sequence[int], mode: str) -> np.ndarray:
    """One sample ``(C, *spatial)`` moved by ``shift`` (content moves towards larger indices)."""
    axes = tuple(range(1, x.ndim))
    if mode == "circular":
        return np.roll(x, tuple(int(v) for v in shift), axis=axes)
    out = np.zeros_like(x)
    src, dst = [slice(None)], [slice(None)]
    for n, v in zip(x.shape[1:], shift):
        v = int(v)
        if abs(v) >= n:
            return out
        src.append(slice(max(0, -v), n - max(0, v)))
        dst.append(slice(max(0, v), n - max(0, -v)))
    out[tuple(dst)] = x[tuple(src)]
    return out


def shift_images(images: np.ndarray, shifts: np.ndarray, mode: str = "crop") -> np.ndarray:
    """Shift every image of a batch by its own shift vector.

    Args:
        images: ``(N, C, *spatial)``.
        shifts: ``(N, len(spatial))`` ints; positive values move the content down/right.
        mode: "crop" (zero fill: the crop of a zero-padded canvas) or "circular" (wrap around).

    Returns:
        A new array shaped like ``images``.

    Example:
        >>> x = np.arange(4.).reshape(1, 1, 4)
        >>> shift_images(x, np.array([[1]]))[0, 0], shift_images(x, np.array([[1]]), "circular")[0, 0]
        (array([0., 0., 1., 2.]), array([3., 0., 1., 2.]))
    """
    op = "shift_images"
    mode = _check_mode(mode, op)
    images = np.asarray(images)
    shifts = np.asarray(shifts)
    if images.ndim < 3 or shifts.shape != (images.shape[0], images.ndim - 2):
        raise ShapeError(f"{op}: images must be (N, C, *spatial) and shifts (N, number of spatial "
                         f"axes); got images {format_shape(images.shape)} and shifts "
                         f"{format_shape(shifts.shape)}.")
    return np.stack([_shift_one(x, s, mode) for x, s in zip(images, shifts)]) if len(images) else images.copy()


def _predict(predict_fn: Callable, x: np.ndarray, batch_size: int, op: str) -> np.ndarray:
    outs = []
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size]
        p = np.asarray(predict_fn(batch))
        if p.ndim != 2 or p.shape[0] != batch.shape[0]:
            raise ShapeError(f"{op}: predict_fn must return class probabilities of shape (N, classes) "
                             f"for a batch of N images; for a batch of shape "
                             f"{format_shape(batch.shape)} it returned shape {format_shape(p.shape)}.")
        outs.append(p)
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def _check_images(images: Any, labels: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.ndim < 3 or images.dtype.kind not in "fiu" or images.shape[0] < 1:
        raise ShapeError(f"{op}: images must be a non-empty real array (N, C, *spatial), e.g. "
                         f"(N, 1, 28, 28); got shape {format_shape(images.shape)} and dtype "
                         f"{images.dtype}. Add a channel axis with images[:, None] if needed.")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
        raise ShapeError(f"{op}: labels must be {images.shape[0]} integer classes, one per image; "
                         f"got shape {format_shape(labels.shape)} and dtype {labels.dtype}.")
    return images, labels


@dataclass(frozen=True)
class ShiftConsistency(Result):
    """Zhang's classification consistency with the accuracy beside it.

    Attributes:
        consistency: fraction of image pairs (two random shifts of one image) with the same
            top-1 class.
        accuracy: top-1 accuracy on the unshifted images.
        shifted_accuracy: top-1 accuracy over all the shifted copies.
        n_images, n_pairs, max_shift, mode: how it was measured (``n_pairs`` shifted pairs
            per image).
    """

    consistency: float
    accuracy: float
    shifted_accuracy: float
    n_images: int
    n_pairs: int
    max_shift: int
    mode: str

    def text(self) -> str:
        """The figures as printed by ``convscope explain shift``."""
        how = ("crops of a canvas padded with zeros" if self.mode == "crop"
               else "circular shifts (np.roll)")
        return "\n".join([
            f"Shift consistency (Zhang 2019; notes Concept 59): {self.n_images} images x "
            f"{self.n_pairs} pair{'s' if self.n_pairs != 1 else ''} of random shifts in "
            f"[-{self.max_shift}, {self.max_shift}] per axis, {how}",
            f"  consistency: {100 * self.consistency:.2f}% of pairs get the same top-1 class",
            f"  accuracy: {100 * self.accuracy:.2f}% unshifted, {100 * self.shifted_accuracy:.2f}% "
            f"on the shifted copies",
        ])

    _html = "text_html"
    _html_title = "Shift consistency (Concept 59)"

    def __repr__(self) -> str:
        return (f"ShiftConsistency(consistency {100 * self.consistency:.2f}%, accuracy "
                f"{100 * self.accuracy:.2f}%, {self.n_images} images)")


def shift_consistency(predict_fn: Callable[[np.ndarray], np.ndarray], images: Any, labels: Any,
                      max_shift: int, n_pairs: int = 1, rng: Any = None, mode: str = "crop",
                      batch_size: int = 256) -> ShiftConsistency:
    """Classification consistency under random shifts (Zhang 2019), with accuracy.

    Args:
        predict_fn: maps a batch ``(B, C, *spatial)`` to probabilities (or scores) ``(B, classes)``;
            only the top-1 class is used.
        images: ``(N, C, *spatial)``.
        labels: ``(N,)`` integer classes.
        max_shift: largest shift per axis; each shift is drawn uniformly from
            ``[-max_shift, max_shift]`` independently per axis (the two shifts of a pair are
            independent, as in Zhang's code, so they may coincide).
        n_pairs: pairs of shifts per image.
        rng: a numpy Generator, an int seed, or None (seed 0, so runs repeat).
        mode: "crop" or "circular" (see the module docstring).
        batch_size: images per call of ``predict_fn``.

    Returns:
        A :class:`ShiftConsistency`.

    Raises:
        ShapeError: images/labels of the wrong shape, predict_fn returning the wrong shape.
        ConfigError: negative ``max_shift``, ``n_pairs`` or ``batch_size`` < 1, unknown mode.

    Example:
        A classifier that only looks at the total brightness is shift invariant under
        circular shifts:

        >>> total = lambda x: np.stack([x.sum(axis=(1, 2, 3)) < 3, x.sum(axis=(1, 2, 3)) >= 3], axis=1) * 1.0
        >>> images = np.random.default_rng(1).random((20, 1, 6, 6))
        >>> labels = (images.sum(axis=(1, 2, 3)) >= 3).astype(int)
        >>> shift_consistency(total, images, labels, 3, mode="circular").consistency
        1.0
    """
    op = "shift_consistency"
    images, labels = _check_images(images, labels, op)
    max_shift = normalize_int(max_shift, "max_shift", op, minimum=0)
    n_pairs = normalize_int(n_pairs, "n_pairs", op, minimum=1)
    batch_size = normalize_int(batch_size, "batch_size", op, minimum=1)
    mode = _check_mode(mode, op)
    gen = _generator(rng, op)
    n, ndim = images.shape[0], images.ndim - 2
    base = _predict(predict_fn, images, batch_size, op).argmax(axis=1)
    same = 0
    correct = 0
    for _ in range(n_pairs):
        s1 = gen.integers(-max_shift, max_shift + 1, size=(n, ndim))
        s2 = gen.integers(-max_shift, max_shift + 1, size=(n, ndim))
        p1 = _predict(predict_fn, shift_images(images, s1, mode), batch_size, op).argmax(axis=1)
        p2 = _predict(predict_fn, shift_images(images, s2, mode), batch_size, op).argmax(axis=1)
        same += int(np.sum(p1 == p2))
        correct += int(np.sum(p1 == labels)) + int(np.sum(p2 == labels))
    return ShiftConsistency(same / (n * n_pairs), float(np.mean(base == labels)),
                            correct / (2 * n * n_pairs), n, n_pairs, max_shift, mode)


@dataclass(frozen=True, eq=False)
class ShiftCurve(Result):
    """The correct class's probability for each shift of one image.

    Attributes:
        shifts: ``(S, number of spatial axes)``.  probabilities: ``(S,)``.
        predicted: top-1 class per shift.  label: the correct class.  mode: "crop" or "circular".
    """

    shifts: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    label: int
    mode: str

    def text(self) -> str:
        """One line per shift, then the spread of the curve."""
        lines = [f"Probability of the correct class {self.label} per shift ({self.mode} shifts)"]
        for s, p, c in zip(self.shifts, self.probabilities, self.predicted):
            mark = "" if c == self.label else f"   <- predicted {int(c)}"
            lines.append(f"  shift {tuple(int(v) for v in s)}: {p:.4f}{mark}")
        wrong = int(np.sum(self.predicted != self.label))
        lines.append(f"range {fmt_num(self.probabilities.min())} to {fmt_num(self.probabilities.max())}"
                     f" (spread {fmt_num(np.ptp(self.probabilities))}); wrong at "
                     f"{wrong} of {len(self.shifts)} shifts")
        return "\n".join(lines)

    _html = "text_html"
    _html_title = "Correct-class probability per shift (Concept 59)"

    def __repr__(self) -> str:
        return (f"ShiftCurve(class {self.label}, {len(self.shifts)} shifts, {self.mode}, "
                f"probability {float(np.min(self.probabilities)):.3g}..{float(np.max(self.probabilities)):.3g})")


def per_shift_probability(predict_fn: Callable[[np.ndarray], np.ndarray], image: Any, label: int,
                          shifts: Any, mode: str = "crop") -> ShiftCurve:
    """The correct-class probability of one image under each shift (Zhang's Figure 1 curve).

    Args:
        predict_fn: batch ``(S, C, *spatial)`` to probabilities ``(S, classes)`` (rows must be
            probabilities: non-negative, summing to 1; apply softmax to scores first).
        image: ``(C, *spatial)``.
        label: the correct class.
        shifts: an int per shift (the same shift on every spatial axis: a diagonal shift, as
            in Zhang's figure) or a tuple per shift (one value per axis), e.g. ``range(-8, 9)``.
        mode: "crop" (zero fill) or "circular".

    Returns:
        A :class:`ShiftCurve`.

    Raises:
        ShapeError: a bad image or shift shape.  DataError: predict_fn does not return
        probabilities.

    Example:
        >>> def brightness(x):                 # class 1 when the left half is brighter
        ...     p = (x[..., :2].sum(axis=(1, 2, 3)) > x[..., 2:].sum(axis=(1, 2, 3))) * 0.8 + 0.1
        ...     return np.stack([1 - p, p], axis=1)
        >>> img = np.zeros((1, 4, 4)); img[0, 1, 1] = 1
        >>> per_shift_probability(brightness, img, 1, [-1, 0, 1, 2]).probabilities
        array([0.9, 0.9, 0.1, 0.1])
    """
    op = "per_shift_probability"
    mode = _check_mode(mode, op)
    image = np.asarray(image)
    if image.ndim < 2 or image.dtype.kind not in "fiu":
        raise ShapeError(f"{op}: image must be one real sample (C, *spatial); got shape "
                         f"{format_shape(image.shape)} and dtype {image.dtype}.")
    label = normalize_int(label, "label", op, minimum=0)
    ndim = image.ndim - 1
    rows = []
    for s in shifts:
        if isinstance(s, numbers.Integral) and not isinstance(s, bool):
            rows.append((int(s),) * ndim)
        else:
            t = tuple(s)
            if len(t) != ndim or not all(isinstance(v, numbers.Integral) for v in t):
                raise ShapeError(f"{op}: each shift must be an int or a tuple of {ndim} ints; got {s!r}.")
            rows.append(tuple(int(v) for v in t))
    if not rows:
        raise ShapeError(f"{op}: give at least one shift.")
    shift_arr = np.array(rows, dtype=np.int64)
    batch = shift_images(np.repeat(image[None], len(rows), axis=0), shift_arr, mode)
    probs = _predict(predict_fn, batch, 256, op)
    if label >= probs.shape[1]:
        raise ShapeError(f"{op}: label {label} is not a class of a model with {probs.shape[1]} outputs.")
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise DataError(f"{op}: predict_fn must return probabilities (non-negative rows summing to 1); "
                        f"got rows summing to {fmt_num(probs.sum(axis=1).min())} .. "
                        f"{fmt_num(probs.sum(axis=1).max())}. Apply softmax to the scores first.")
    return ShiftCurve(shift_arr, probs[:, label].astype(np.float64), probs.argmax(axis=1), label, mode)
