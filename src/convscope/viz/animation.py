"""The window sliding, frame by frame: convolution and max-pooling as an :class:`~convscope.viz.Animation`.

Frame ``i`` is the picture of window ``i`` (:func:`~convscope.viz.plot_conv1d`,
:func:`~convscope.viz.plot_conv2d` or :func:`~convscope.viz.plot_pool` with ``frame=i``): the
window highlighted, its dot product (or maximum) written, the outputs computed so far and
``?`` for the rest, as the notes build ``y`` up in 9.3. The numbers are those of one explain
trace, so every frame shows the same numbers as ``convscope explain conv`` prints.

Example:
    >>> anim = animate_conv([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1])
    >>> len(anim), anim.frames[0].title
    (8, '1-D convolution y = x * f, window by window (notes 9.1.4, Key Equation 15)')
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..explain import ConvTrace, PoolTrace, trace_conv, trace_pool
from .figure import Animation
from .notes_conv import plot_conv1d, plot_conv2d
from .notes_pool import plot_pool

__all__ = ["animate_conv", "animate_pool"]


def _limit(count: int, max_frames: int, op: str) -> None:
    if count > max_frames:
        raise ConfigError(f"{op}: {count} windows would make {count} frames; at most max_frames = {max_frames}. "
                          f"Use a smaller input or a larger max_frames.")


def animate_conv(x: Any, f: Any = None, *, max_frames: int = 64, interval_ms: int = 900, **kw: Any) -> Animation:
    """Animate a 1-D or 2-D convolution window by window.

    Args:
        x: a :class:`~convscope.explain.ConvTrace`, or the input (then ``f`` and ``kw`` go to
            :func:`~convscope.explain.trace_conv`).
        f: the filter.
        max_frames: refuse traces with more windows than this.
        interval_ms: time per frame when played.

    Returns:
        An :class:`~convscope.viz.Animation` (``.save("w.gif")`` or ``.save("w.html")``).
    """
    t = x if isinstance(x, ConvTrace) else trace_conv(x, f, **kw)
    _limit(len(t.steps), max_frames, "animate_conv")
    draw = plot_conv1d if t.y.ndim == 1 and not t.channels else plot_conv2d
    frames = [draw(t, frame=i) for i in range(len(t.steps))]
    return Animation(frames, f"{frames[0].title}: the window slides", interval_ms)


def animate_pool(x: Any, size: Any = None, *, max_frames: int = 64, interval_ms: int = 900, **kw: Any) -> Animation:
    """Animate a pooling receptive field by receptive field (first channel).

    Args:
        x: a :class:`~convscope.explain.PoolTrace`, or the input (then ``size`` and ``kw`` go to
            :func:`~convscope.explain.trace_pool`).
        size: the receptive field size.
        max_frames, interval_ms: as :func:`animate_conv`.
    """
    t = x if isinstance(x, PoolTrace) else trace_pool(x, size, **kw)
    count = len([s for s in t.steps if s.channel == 0])
    _limit(count, max_frames, "animate_pool")
    frames = [plot_pool(t, frame=i) for i in range(count)]
    return Animation(frames, f"{frames[0].title}: field by field", interval_ms)
