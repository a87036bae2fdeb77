"""What the training loop shows while it runs: a tqdm bar, plain lines, or nothing.

``progress=True`` gives a tqdm bar per epoch with the running loss, accuracy and images
per second; when tqdm is not installed (it comes with ``pip install "convscope[train]"``)
the same numbers are printed as plain lines, about ten per epoch. ``progress="plain"``
asks for the plain lines, ``progress="epochs"`` for one line per epoch (for logs), and
``progress=False`` shows nothing. Every line also gives the ETA of the whole run
(``ETA 1m05s``: the rest of this epoch at its pace so far, plus the epochs still to come
at this epoch's pace), and the end-of-epoch line adds the validation numbers when there
is a validation split. Everything goes to standard error, so standard output stays free
for results.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> bar = EpochProgress("plain", epoch=2, epochs=2, total=4, stream=out)
    >>> for _ in range(4):
    ...     bar.update(32, loss=0.5, accuracy=0.75, images_per_second=1000.0)
    >>> bar.close("val_loss 0.4000")
    >>> print(out.getvalue().splitlines()[-1])
    epoch 2/2 [4/4] loss 0.5000 acc 0.7500 1000 img/s val_loss 0.4000
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["EpochProgress", "format_metrics", "format_eta"]


def format_eta(seconds: float) -> str:
    """``ETA 42s``, ``ETA 3m05s``, ``ETA 1h02m``.

    >>> format_eta(185.2)
    'ETA 3m05s'
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"ETA {s}s"
    if s < 3600:
        return f"ETA {s // 60}m{s % 60:02d}s"
    return f"ETA {s // 3600}h{s % 3600 // 60:02d}m"


def format_metrics(loss: float | None, accuracy: float | None, images_per_second: float | None) -> str:
    """``loss 0.1234 acc 0.9650 3456 img/s`` (parts that are None are left out).

    >>> format_metrics(0.25, None, 12.4)
    'loss 0.2500 12 img/s'
    """
    parts = []
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if accuracy is not None:
        parts.append(f"acc {accuracy:.4f}")
    if images_per_second is not None:
        parts.append(f"{images_per_second:.0f} img/s")
    return " ".join(parts)


class EpochProgress:
    """Progress of one epoch.

    Args:
        mode: True (tqdm if installed, else plain), ``"plain"``, ``"tqdm"``, ``"epochs"``
            (only the line at the end of the epoch) or False.
        epoch: 1-based epoch number; ``epochs``: the total.
        total: batches in the epoch.
        stream: where to write (default ``sys.stderr``).
    """

    def __init__(self, mode: Any, epoch: int, epochs: int, total: int, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.prefix = f"epoch {epoch}/{epochs}"
        self.epochs_after = max(0, int(epochs) - int(epoch))
        self.start = time.perf_counter()
        self.total = int(total)
        self.done = 0
        self.text = ""
        self._bar = None
        self._plain = False
        self._epoch_line_only = mode == "epochs"
        self._next_line = 0
        if mode is True or mode == "tqdm":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if mode == "tqdm":
                    from ..errors import MissingDependencyError

                    raise MissingDependencyError(
                        'progress="tqdm" needs tqdm; install it with pip install "convscope[train]" '
                        "or pass progress=\"plain\"."
                    ) from None
                self._plain = True
            else:
                self._bar = tqdm(
                    total=self.total, desc=self.prefix, unit="batch", leave=True,
                    file=self.stream, dynamic_ncols=True, mininterval=0.2,
                )
        elif mode in ("plain", "epochs"):
            self._plain = True
        elif mode not in (False, None):
            from ..errors import ConfigError

            raise ConfigError(f"progress must be True, False, 'plain', 'epochs' or 'tqdm'; got {mode!r}.")

    def eta(self) -> str:
        """The ETA of the whole run from this epoch's pace ("" before the first batch)."""
        if not self.done or not self.total:
            return ""
        per_batch = (time.perf_counter() - self.start) / self.done
        return format_eta(per_batch * (max(0, self.total - self.done) + self.epochs_after * self.total))

    def update(self, images: int, loss: float | None, accuracy: float | None,
               images_per_second: float | None) -> None:
        """One batch done; show the running numbers."""
        self.done += 1
        if self._bar is None and not self._plain:
            return
        self.text = format_metrics(loss, accuracy, images_per_second)
        if self._bar is not None:
            run_eta = f" run {self.eta()}" if self.epochs_after else ""
            self._bar.set_postfix_str(self.text + run_eta, refresh=False)
            self._bar.update(1)
        elif not self._epoch_line_only and self._next_line <= self.done < self.total:
            # about ten lines per epoch
            self._next_line = self.done + max(1, self.total // 10)
            print(f"{self.prefix} [{self.done}/{self.total}] {self.text} {self.eta()}".rstrip(),
                  file=self.stream, flush=True)

    def close(self, extra: str = "") -> None:
        """End the epoch; ``extra`` (validation numbers, time) is appended to the last line."""
        text = f"{self.text} {extra}".strip()
        if self.epochs_after:
            text = f"{text} {self.eta()}".strip()
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
        elif self._plain:
            print(f"{self.prefix} [{self.done}/{self.total}] {text}", file=self.stream, flush=True)
