"""Curves as PNG files (matplotlib, Agg): training history and shift consistency.

* :func:`plot_curves` - loss and accuracy per epoch from a training History (what
  :func:`convscope.train.fit` returns).
* :func:`plot_shift_curve` - the correct-class probability of one image against its shift
  (Concept 59; Zhang 2019's Figure 1), from :func:`convscope.explain.per_shift_probability`,
  for one model or several side by side.
* :func:`save_shift_curve` - the same picture from plain arrays (e.g. a curve averaged over
  many images), as ``convscope explain shift`` draws it.

Each writes a PNG to ``path`` (parent folders are created) and returns the path.

Example:
    >>> import tempfile, pathlib
    >>> from convscope.train import History
    >>> h = History([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.4}])
    >>> plot_curves(h, pathlib.Path(tempfile.mkdtemp()) / "curves.png").suffix
    '.png'
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, DataError, ShapeError
from ._mpl import figure as _figure
from ._mpl import out_path as _out_path
from ._mpl import save as _save

__all__ = ["plot_curves", "plot_shift_curve", "save_shift_curve"]


def _history_columns(history: Any, op: str) -> dict[str, list[Any]]:
    """``{metric: [per epoch]}`` from a History, its ``to_dict()``, a list of records or columns."""
    records = None
    if hasattr(history, "records") and isinstance(history.records, list):
        records = history.records
    elif isinstance(history, Mapping) and isinstance(history.get("epochs"), list):
        records = history["epochs"]
    elif isinstance(history, (list, tuple)) and all(isinstance(r, Mapping) for r in history):
        records = list(history)
    elif isinstance(history, Mapping) and all(isinstance(v, (list, tuple)) for v in history.values()):
        lengths = {len(v) for v in history.values()}
        if len(lengths) != 1:
            raise DataError(f"{op}: every column of history must have one entry per epoch; got "
                            f"lengths {sorted(lengths)}.")
        return {k: list(v) for k, v in history.items()}
    if records is None:
        raise ArgumentTypeError(
            f"{op}: history must be a convscope.train.History, its to_dict(), a list of per-epoch "
            f"dicts or a dict of per-epoch lists; got {type(history).__name__}."
        )
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in records] for k in keys}


def plot_curves(history: Any, path: Any = None, test: Mapping[str, float] | None = None) -> Any:
    """Draw loss and accuracy per epoch (training and validation) from a training history.

    Args:
        history: a :class:`convscope.train.History` (what ``fit`` returns), its
            ``to_dict()``, a list of per-epoch dicts, or a dict of per-epoch lists. Keys
            used: ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``.
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        test: optional ``{"loss": ..., "accuracy": ...}`` drawn as dashed lines.

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        DataError: the history has no loss column or no epochs.
        MissingDependencyError: matplotlib is not installed.
    """
    from matplotlib.ticker import MaxNLocator

    op = "plot_curves"
    cols = _history_columns(history, op)
    losses: list[str] = [k for k in ("train_loss", "val_loss", "loss") if k in cols]
    if not losses or not cols[losses[0]]:
        raise DataError(f"{op}: the history needs at least one epoch with train_loss (or val_loss); "
                        f"it has keys {sorted(cols)}.")
    n = len(cols[losses[0]])
    epochs = cols.get("epoch") or list(range(1, n + 1))
    accs: list[str] = [k for k in ("train_accuracy", "val_accuracy", "accuracy") if k in cols]
    p = _out_path(path, op)
    fig = _figure(10.0 if accs else 6.0, 4.0)
    axes = [fig.add_subplot(1, 2 if accs else 1, 1)]
    if accs:
        axes.append(fig.add_subplot(1, 2, 2))
    label = {"train_loss": "train", "val_loss": "validation", "loss": "loss",
             "train_accuracy": "train", "val_accuracy": "validation", "accuracy": "accuracy"}
    groups: list[list[str]] = [losses, accs]
    for ax, keys, what in zip(axes, groups, ["loss", "accuracy"]):
        if n == 1:
            # one epoch: a line of one point is a dot, so show the values as labelled bars
            values = [np.nan if cols[k][0] is None else float(cols[k][0]) for k in keys]
            bars = ax.bar([label[k] for k in keys], values, color=["tab:blue", "tab:orange", "tab:green"][:len(keys)],
                          width=0.5)
            for bar, v in zip(bars, values):
                ax.annotate(f"{v:.4g}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=10, xytext=(0, 3), textcoords="offset points")
            if test and what in test:
                ax.axhline(float(test[what]), color="gray", linestyle="--", label=f"test {float(test[what]):.4g}")
                ax.legend()
            ax.set_ylabel(what)
            ax.set_title(f"{what} after epoch {epochs[0]} (one epoch: values, not a curve)")
            ax.margins(y=0.15)
            ax.grid(True, axis="y", alpha=0.3)
            continue
        for k in keys:
            ys = [np.nan if v is None else float(v) for v in cols[k]]
            ax.plot(epochs, ys, marker="o", label=label[k])
            last = next((v for v in reversed(ys) if not np.isnan(v)), None)
            if last is not None:
                ax.annotate(f"{last:.4g}", (epochs[len(ys) - 1], last), fontsize=8, xytext=(4, 0),
                            textcoords="offset points", va="center")
        if test and what in test:
            ax.axhline(float(test[what]), color="gray", linestyle="--", label=f"test {float(test[what]):.4g}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(what)
        ax.set_title(f"{what} per epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, p, "training curves: loss and accuracy per epoch")


def _draw_shift_axes(ax, series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
                     ticks: Any, label: Any, title: str) -> None:
    """Draw ``(name, xs, probabilities, wrong mask or None)`` curves on ``ax``."""
    for name, xs, probs, wrong in series:
        ax.plot(xs, probs, marker="o", label=name or None)
        if wrong is not None and wrong.any():
            ax.plot(xs[wrong], probs[wrong], "x", color="black", markersize=8)
    if ticks is not None:
        ax.set_xticks(ticks[0], ticks[1], rotation=60, fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("shift (pixels on every axis)" if ticks is None else "shift")
    ax.set_ylabel("probability of the correct class" + (f" ({label})" if label is not None else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if any(name for name, *_ in series):
        ax.legend()


def plot_shift_curve(curves: Any, path: Any = None, title: str | None = None) -> Any:
    """Draw the correct-class probability against the input shift (Concept 59).

    Args:
        curves: a :class:`convscope.explain.ShiftCurve` (from ``per_shift_probability``), or a
            dict ``{label: ShiftCurve}`` to compare models (e.g. MaxPool versus BlurPool).
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        title: the figure title (default names the shift mode).

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        ArgumentTypeError: not ShiftCurve(s).  MissingDependencyError: no matplotlib.

    Notes:
        A shift that is the same on every axis (diagonal, as in Zhang 2019's Figure 1) is
        plotted at that value; other shifts are numbered in order and labelled below the axis.
        Shifts where the top-1 class is wrong are marked with a cross.
    """
    from ..explain import ShiftCurve

    op = "plot_shift_curve"
    items = {"": curves} if isinstance(curves, ShiftCurve) else curves
    if (not isinstance(items, Mapping) or not items
            or not all(isinstance(c, ShiftCurve) for c in items.values())):
        raise ArgumentTypeError(f"{op}: curves must be a ShiftCurve or a dict of them; got "
                                f"{type(curves).__name__}.")
    p = _out_path(path, op)
    ticks, series = None, []
    for name, c in items.items():
        shifts = np.asarray(c.shifts)
        if shifts.shape[1] == 1 or np.all(shifts == shifts[:, :1]):
            xs = shifts[:, 0].astype(float)
        else:
            xs = np.arange(len(shifts), dtype=float)
            ticks = (xs, [str(tuple(int(v) for v in s)) for s in shifts])
        series.append((str(name), xs, np.asarray(c.probabilities, dtype=np.float64),
                       np.asarray(c.predicted) != c.label))
    first = next(iter(items.values()))
    fig = _figure(8.0, 4.5)
    _draw_shift_axes(fig.add_subplot(1, 1, 1), series, ticks, f"class {first.label}",
                     title or f"Correct-class probability per shift ({first.mode} shifts); x = wrong top-1")
    fig.tight_layout()
    return _save(fig, p, "correct-class probability per shift (Concept 59)")


def save_shift_curve(path: Any, shifts: Sequence[Any], curves: Mapping[str, Any],
                     title: str | None = None) -> Any:
    """Draw per-shift probability curves given as arrays, e.g. means over many test images.

    Args:
        path: the file to write (PNG; SVG for a ``.svg`` name), or None to get the picture back.
        shifts: one shift per point: ints (diagonal shifts) or tuples (one value per axis).
        curves: ``{label: probabilities}``, one value per shift each (a ShiftCurve is
            accepted too and gives its probabilities).
        title: the figure title.

    Returns:
        ``path`` as a Path when given; otherwise a :class:`~convscope.viz.Figure` (shows inline in
        Jupyter, ``.save("x.png")`` / ``.save("x.svg")``).

    Raises:
        ShapeError: a curve with another number of points than ``shifts``.
        ArgumentTypeError: ``curves`` is not a non-empty dict.
    """
    op = "save_shift_curve"
    if not isinstance(curves, Mapping) or not curves:
        raise ArgumentTypeError(f"{op}: curves must be a non-empty dict {{label: probabilities}}; got "
                                f"{type(curves).__name__}.")
    rows = [tuple(s) if not isinstance(s, numbers.Integral) else (int(s),) for s in shifts]
    if not rows:
        raise ShapeError(f"{op}: give at least one shift.")
    diagonal = all(len(set(r)) == 1 for r in rows)
    xs = np.array([r[0] for r in rows], dtype=float) if diagonal else np.arange(len(rows), dtype=float)
    ticks = None if diagonal else (xs, [str(r) for r in rows])
    series = []
    for name, values in curves.items():
        probs = np.asarray(getattr(values, "probabilities", values), dtype=np.float64).ravel()
        if probs.shape != xs.shape:
            raise ShapeError(f"{op}: curve {name!r} has {probs.size} points but there are {len(rows)} "
                             f"shifts; give one probability per shift.")
        series.append((str(name), xs, probs, None))
    p = _out_path(path, op)
    fig = _figure(8.0, 4.5)
    _draw_shift_axes(fig.add_subplot(1, 1, 1), series, ticks, None,
                     title or "Correct-class probability per shift")
    fig.tight_layout()
    return _save(fig, p, title or "correct-class probability per shift")
