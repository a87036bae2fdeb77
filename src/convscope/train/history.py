"""History: one record per epoch of a training run, JSON in and out.

Each record is a flat dict of plain numbers::

    {"epoch": 3, "train_loss": 0.081, "train_accuracy": 0.975, "val_loss": 0.094,
     "val_accuracy": 0.969, "lr": 0.0021, "seconds": 1.84, "train_seconds": 1.71,
     "images_per_second": 840.3}

(``train_accuracy`` / ``val_*`` only when they exist: no accuracy for a regression, no
validation without ``val=``.) As in Keras, ``history["val_loss"]`` gives one column as a
list (also ``history.history["val_loss"]``); ``history[-1]`` is the last epoch's record.

Example:
    >>> h = History()
    >>> h.append({"epoch": 1, "train_loss": 0.5})
    >>> h.append({"epoch": 2, "train_loss": 0.25})
    >>> h["train_loss"], len(h), h.last["epoch"], h[-1]["train_loss"]
    ([0.5, 0.25], 2, 2, 0.25)
    >>> History.from_json(h.to_json())["train_loss"]
    [0.5, 0.25]
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import check_readable, write_json

__all__ = ["History"]


class History:
    """Per-epoch metrics of a run (see the module docstring).

    Attributes:
        records: list of per-epoch dicts, oldest first.
        info: run-level facts (``stopped_early``, ``stop_reason``, ``resumed_from`` ...).
    """

    def __init__(self, records: list[dict[str, Any]] | None = None, info: dict[str, Any] | None = None) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in (records or [])]
        self.info: dict[str, Any] = dict(info or {})

    def append(self, record: dict[str, Any]) -> None:
        """Add one epoch's record (numbers are stored as Python floats / ints)."""
        clean: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, bool) or value is None or isinstance(value, str):
                clean[key] = value
            elif isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
                clean[key] = int(value)
            else:
                clean[key] = float(value)
        self.records.append(clean)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str | int | slice) -> Any:
        """The column ``key`` over all epochs (None where an epoch lacks it), as Keras's
        ``history.history[key]``; with an int, that epoch's record (``history[-1]``: the
        last epoch), with a slice, a list of records.

        Raises:
            KeyError: no epoch has ``key``; the message lists the keys there are.
            IndexError: no record at that position.
        """
        if isinstance(key, slice):
            return [dict(r) for r in self.records[key]]
        if not isinstance(key, str):
            if isinstance(key, bool) or not hasattr(key, "__index__"):
                raise KeyError(f"History takes a metric name, an epoch position or a slice; got {key!r}.")
            index = operator.index(key)
            if not -len(self.records) <= index < len(self.records):
                raise IndexError(
                    f"History has {len(self.records)} epoch records (0 to {len(self.records) - 1}, or -1 "
                    f"for the last); got {index}."
                )
            return dict(self.records[index])
        if not any(key in r for r in self.records):
            raise KeyError(f"History has no {key!r}; it has {self.keys()}.")
        return [r.get(key) for r in self.records]

    @property
    def history(self) -> dict[str, list[Any]]:
        """Every column by name, as Keras's ``History.history`` dict."""
        return {key: self[key] for key in self.keys()}

    def keys(self) -> list[str]:
        """Every metric name recorded, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    @property
    def last(self) -> dict[str, Any]:
        """The newest record ({} before the first epoch)."""
        return dict(self.records[-1]) if self.records else {}

    def best(self, key: str, mode: str = "min") -> dict[str, Any]:
        """The record with the smallest (``mode="min"``) or largest ``key``.

        >>> History([{"epoch": 1, "val_loss": 0.3}, {"epoch": 2, "val_loss": 0.2}]).best("val_loss")["epoch"]
        2
        """
        if mode not in ("min", "max"):
            raise ConfigError(f"History.best: mode must be 'min' or 'max'; got {mode!r}.")
        rows = [r for r in self.records if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        if not rows:
            raise KeyError(f"History has no numeric {key!r}; it has {self.keys()}.")
        pick = min if mode == "min" else max
        return dict(pick(rows, key=lambda r: r[key]))

    def to_dict(self) -> dict[str, Any]:
        """``{"epochs": [records...], "info": {...}}``, JSON-safe."""
        return {"epochs": [dict(r) for r in self.records], "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: not a dict with a list of dicts under ``"epochs"``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("epochs"), list) or not all(
            isinstance(r, dict) for r in data["epochs"]
        ):
            raise ConfigError(
                "History.from_dict expects {'epochs': [dict, ...], 'info': {...}} as written by "
                f"to_dict(); got {type(data).__name__}."
            )
        return cls(data["epochs"], data.get("info") or {})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` with :func:`convscope.files.write_json`
        (atomic; a link is written through; anything but a regular file is refused)."""
        return write_json(path, self.to_dict(), op="History.save")

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a file written by :meth:`save`.

        Raises:
            DataError: the path does not exist or is not a regular file (a FIFO is refused
                without being opened).
        """
        p = check_readable(path, "history file", op="History.load")
        return cls.from_json(p.read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        return f"History({len(self)} epoch{'' if len(self) == 1 else 's'}, keys={self.keys()})"
