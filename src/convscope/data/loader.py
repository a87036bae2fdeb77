"""Mini-batches in a seeded order, with augmentation, and a state that resumes exactly.

One ``numpy.random.Generator`` drives everything random in a :class:`DataLoader`: the
shuffle order of each epoch and the randomness of the transform (the loader passes its
generator to ``transform(x, rng)``). So one seed fixes the whole stream of batches,
and saving the generator's state saves the stream's position.

The state (:attr:`DataLoader.state`, restored with :meth:`DataLoader.load_state`) is a
JSON-serialisable dict::

    {"version": 1,
     "epoch": 3,            # epochs completed before the current one
     "batch": 17,           # batches of the current epoch already handed out
     "epoch_rng": {...},    # generator state at the start of the current epoch
     "rng": {...} | None,   # generator state now; None at an epoch boundary
     "num_samples": N, "batch_size": B, "shuffle": true, "drop_last": false}

Restoring it into a loader built over the same data with the same settings, then
iterating, yields exactly the batches the original would have yielded next, including
part-way through an epoch (the epoch's order is re-drawn from ``epoch_rng`` and the
first ``batch`` batches are skipped without being built). The generator states hold
Python ints of up to 128 bits; Python's ``json`` writes and reads them exactly.

Epoch rules: every ``iter(loader)`` starts a new epoch, except the first one after
``load_state`` of a state taken part-way through an epoch, which finishes that epoch.
An epoch left unfinished (``break``) counts as done when the next one starts. Iterate
one epoch at a time: two live iterators over one loader share its generator.

Example:
    >>> import json
    >>> x, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    >>> loader = DataLoader((x, y), batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [b[1].tolist() for b in loader]
    (3, [[4, 6, 2, 7], [3, 5, 9, 0], [8, 1]])
    >>> saved = json.dumps(loader.state)
    >>> nxt = [b[1].tolist() for b in loader]
    >>> again = DataLoader((x, y), batch_size=4, shuffle=True, seed=123)
    >>> again.load_state(json.loads(saved))
    >>> [b[1].tolist() for b in again] == nxt
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, ConfigError, ShapeError
from ..files import to_jsonable

__all__ = ["DataLoader"]

_STATE_VERSION = 1


class DataLoader:
    """Iterate a dataset in mini-batches ``(x, y)``.

    Args:
        data: a :class:`~convscope.data.Dataset` (anything with ``len()`` and
            ``batch(indices) -> (x, y)``) or a pair of arrays ``(x, y)`` with the same
            first axis (batches are ``x[idx], y[idx]``, dtypes kept).
        batch_size: images per batch (positive int).
        shuffle: draw a new random order each epoch (else the stored order).
        drop_last: drop the last, smaller batch (else it is yielded).
        seed: seed of a fresh ``numpy.random.default_rng``; give ``seed`` or ``rng``,
            not both. Neither: an unseeded generator (not repeatable).
        rng: a ``numpy.random.Generator`` to use (and advance) instead.
        transform: a callable ``transform(x, rng) -> x`` applied to each batch's images,
            e.g. :class:`~convscope.data.transforms.Compose`; it receives this loader's
            generator, so augmentation is part of the seeded stream.

    Attributes:
        rng: the generator.
        epoch: epochs completed.

    Raises:
        ArgumentTypeError: data of the wrong kind, non-int batch_size, rng not a
            Generator.
        ConfigError: batch_size < 1, both seed and rng.
        ShapeError: arrays of different lengths.

    Example:
        >>> x, y = np.zeros((5, 1, 2, 2), np.float32), np.arange(5)
        >>> [b[0].shape for b in DataLoader((x, y), batch_size=2)]
        [(2, 1, 2, 2), (2, 1, 2, 2), (1, 1, 2, 2)]
        >>> len(DataLoader((x, y), batch_size=2, drop_last=True))
        2
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        *,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        if hasattr(data, "batch") and hasattr(data, "__len__"):
            self._fetch = data.batch
            self._n = len(data)
        elif isinstance(data, (tuple, list)) and len(data) == 2:
            try:
                x, y = (np.asarray(a) for a in data)
            except (TypeError, ValueError) as exc:
                raise ArgumentTypeError(
                    f"DataLoader: data must be a Dataset or a pair of arrays (x, y); NumPy cannot "
                    f"make arrays of the pair given ({exc})."
                ) from None
            if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
                raise ShapeError(
                    f"DataLoader: x and y must have the same first axis (one row per sample); "
                    f"got x of shape {x.shape} and y of shape {y.shape}."
                )
            self._fetch = lambda idx: (x[idx], y[idx])
            self._n = int(x.shape[0])
        else:
            raise ArgumentTypeError(
                f"DataLoader: data must be a Dataset or a pair of arrays (x, y); got "
                f"{type(data).__name__}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise ArgumentTypeError(f"DataLoader: batch_size must be an int; got {batch_size!r}.")
        if batch_size < 1:
            raise ConfigError(f"DataLoader: batch_size must be >= 1; got {batch_size}.")
        if seed is not None and rng is not None:
            raise ConfigError("DataLoader: give seed or rng, not both.")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ArgumentTypeError(f"DataLoader: {name} must be True or False; got {flag!r}.")
        if seed is not None and (
            isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ConfigError(f"DataLoader: seed must be a non-negative int or None; got {seed!r}.")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ArgumentTypeError(
                f"DataLoader: rng must be a numpy.random.Generator; got {type(rng).__name__}. "
                f"Use seed= for an int."
            )
        if transform is not None and not callable(transform):
            raise ArgumentTypeError(f"DataLoader: transform must be callable; got {type(transform).__name__}.")
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self._epoch = 0
        self._batch = 0
        self._in_epoch = False
        self._epoch_rng: Mapping[str, Any] | None = None
        self._resume: dict | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self._n // self.batch_size
        return -(-self._n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return self._n

    @property
    def epoch(self) -> int:
        """Epochs completed (the index of the epoch in progress, if any)."""
        return self._epoch

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        bitgen = self.rng.bit_generator
        if self._resume is not None:
            resume, self._resume = self._resume, None
            bitgen.state = resume["epoch_rng"]
            order = self.rng.permutation(self._n) if self.shuffle else np.arange(self._n)
            bitgen.state = resume["rng"]
            start = self._batch
        else:
            if self._in_epoch:  # the previous epoch was left part-way: it counts as done
                self._epoch += 1
            self._epoch_rng = bitgen.state
            order = self.rng.permutation(self._n) if self.shuffle else np.arange(self._n)
            start = 0
        self._batch = start
        self._in_epoch = True
        return self._batches(order, start)

    def _batches(self, order: np.ndarray, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x, y = self._fetch(idx)
            if self.transform is not None:
                x = self.transform(x, self.rng)
                if not isinstance(x, np.ndarray) or x.ndim == 0 or x.shape[0] != len(idx):
                    raise ArgumentTypeError(
                        f"DataLoader: transform must return the batch as an array with "
                        f"{len(idx)} rows; it returned {type(x).__name__}"
                        + (f" of shape {x.shape}." if isinstance(x, np.ndarray) else ".")
                    )
            self._batch = b + 1
            yield x, y
        self._epoch += 1
        self._batch = 0
        self._in_epoch = False
        self._epoch_rng = None

    @property
    def state(self) -> dict:
        """The position in the batch stream as a JSON-serialisable dict (see the module doc)."""
        now = to_jsonable(self.rng.bit_generator.state, arrays=True, where="generator state")
        if self._resume is not None:  # restored part-way, not iterated yet
            batch, epoch_rng, rng = self._batch, self._resume["epoch_rng"], self._resume["rng"]
        elif self._in_epoch:
            epoch_rng = to_jsonable(self._epoch_rng, arrays=True, where="generator state")
            batch, rng = self._batch, now
        else:
            batch, epoch_rng, rng = 0, now, None
        return {
            "version": _STATE_VERSION,
            "epoch": self._epoch,
            "batch": batch,
            "epoch_rng": epoch_rng,
            "rng": rng,
            "num_samples": self._n,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state(self, state: dict) -> None:
        """Continue from ``state`` (from :attr:`state` of a loader over the same data).

        Raises:
            ConfigError: not a loader state, another version, a different number of
                samples, batch size, shuffle or drop_last, or a generator of another kind.
        """
        if not isinstance(state, dict):
            raise ConfigError(f"DataLoader.load_state expects the dict from .state; got {type(state).__name__}.")
        needed = {"version", "epoch", "batch", "epoch_rng", "rng", "num_samples", "batch_size", "shuffle", "drop_last"}
        missing = sorted(needed - set(state))
        if missing:
            raise ConfigError(f"DataLoader.load_state: the state lacks {missing}; expected the dict from .state.")
        if state["version"] != _STATE_VERSION:
            raise ConfigError(
                f"DataLoader.load_state: expected state version {_STATE_VERSION}; got {state['version']!r}."
            )
        mine = {"num_samples": self._n, "batch_size": self.batch_size, "shuffle": self.shuffle,
                "drop_last": self.drop_last}
        differ = [f"{k}: state {state[k]!r}, loader {v!r}" for k, v in mine.items() if state[k] != v]
        if differ:
            raise ConfigError(
                "DataLoader.load_state: the state comes from a loader with other settings ("
                + "; ".join(differ) + "); resuming would give a different batch stream."
            )
        epoch, batch = state["epoch"], state["batch"]
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(batch, int) or not 0 <= batch <= len(self):
            raise ConfigError(
                f"DataLoader.load_state: expected epoch >= 0 and 0 <= batch <= {len(self)}; got "
                f"epoch={epoch!r}, batch={batch!r}."
            )
        bitgen = self.rng.bit_generator
        kind = type(bitgen).__name__
        for key in ("epoch_rng", "rng"):
            value = state[key]
            if value is None:
                continue
            if not isinstance(value, dict) or value.get("bit_generator") != kind:
                got = value.get("bit_generator") if isinstance(value, dict) else value
                raise ConfigError(
                    f"DataLoader.load_state: {key} is a state of {got!r}, but this loader's "
                    f"generator is {kind}; build the loader with the same kind of generator."
                )
        saved = bitgen.state
        try:
            bitgen.state = state["epoch_rng"]
            if state["rng"] is not None:
                bitgen.state = state["rng"]
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            bitgen.state = saved
            raise ConfigError(f"DataLoader.load_state: malformed generator state ({exc}).") from None
        self._epoch = epoch
        self._batch, self._in_epoch, self._epoch_rng, self._resume = 0, False, None, None
        if state["rng"] is not None and batch == len(self):
            # Every batch of that epoch was handed out: resume at the next epoch.
            self._epoch = epoch + 1
        elif state["rng"] is not None:
            self._batch, self._in_epoch = batch, False
            self._epoch_rng = state["epoch_rng"]
            self._resume = {"epoch_rng": state["epoch_rng"], "rng": state["rng"]}

    def __repr__(self) -> str:
        return (
            f"DataLoader(n={self._n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, batches={len(self)}, epoch={self._epoch})"
        )
