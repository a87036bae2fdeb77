"""What convscope's picture functions return: a :class:`Figure` (and an :class:`Animation`).

A :class:`Figure` wraps one matplotlib figure. In Jupyter it shows itself inline (PNG, or SVG
after ``Figure.inline = "svg"``); ``fig.save("w.png")`` or ``fig.save("w.svg")`` writes it,
the format chosen by the suffix; ``fig.png()`` / ``fig.svg()`` give the bytes and text;
``fig.mpl`` is the matplotlib figure itself, for changes before saving. PNGs are rendered at
least :data:`MIN_WIDTH_PX` pixels wide (slide size) and cropped to what was drawn, so no title
or label is cut off.

An :class:`Animation` is a sequence of such frames (a window sliding, frame by frame):
``anim.save("w.gif")`` (Pillow) or ``anim.save("w.html")`` (one self-contained page with the
frames as SVG, a slider and a play button); in Jupyter it shows that player inline.

Files are written atomically: to a temporary file beside the target, then renamed.

Example:
    >>> from convscope.viz import plot_conv1d
    >>> fig = plot_conv1d([1, 1, -1, -1, -1, 1, -1, 1, 1, 1], [1, -1, 1])
    >>> fig.png()[:8], fig.width_px >= MIN_WIDTH_PX
    (b'\\x89PNG\\r\\n\\x1a\\n', True)
    >>> fig.svg().lstrip().startswith("<?xml")
    True
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._display import esc, short
from ..errors import ArgumentTypeError, ConfigError, MissingDependencyError

__all__ = ["Figure", "Animation", "HTMLPage", "MIN_WIDTH_PX", "write_file"]

#: Smallest width of a rendered PNG, in pixels (readable on a slide).
MIN_WIDTH_PX = 1600
_PAD_IN = 0.15            # white margin around what was drawn, in inches
_INLINE_DPI = 100         # resolution of the frames of an animation shown inline
_ids = itertools.count(1)


def write_file(path: Any, data: bytes | str, op: str) -> Path:
    """Write ``data`` to ``path`` with :func:`convscope.files.atomic_write` (a temporary file
    beside it, fsynced, then renamed); missing parent folders are created. Returns the path.

    Raises:
        ArgumentTypeError: ``path`` is not a file name.
        ConfigError / OSError: as :func:`~convscope.files.atomic_write` (a directory, a FIFO ...).
    """
    from ..files import atomic_write

    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{op}: path must be a file name (str or Path); got {path!r}.")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    Path(path).parent.mkdir(parents=True, exist_ok=True)          # pictures go where they are asked
    return atomic_write(path, lambda fh: fh.write(raw), op=op)


def _format_of(path: Any, allowed: Sequence[str], op: str) -> str:
    if not isinstance(path, (str, Path)) or not str(path):
        raise ArgumentTypeError(f"{op}: path must be a file name (str or Path); got {path!r}.")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in allowed:
        raise ConfigError(f"{op}: the file name must end in {' or '.join('.' + a for a in allowed)} "
                          f"(the suffix chooses the format); got {str(path)!r}.")
    return suffix


class Figure:
    """One picture: inline in Jupyter, ``.save(path)`` as PNG or SVG.

    Attributes:
        mpl: the matplotlib figure (Agg canvas).
        title: what the picture shows, in the notes' terms.
        inline: class attribute, "png" (default) or "svg": how Jupyter shows figures.
    """

    inline = "png"

    def __init__(self, mpl: Any, title: str) -> None:
        self.mpl = mpl
        self.title = str(title)
        self._png: bytes | None = None
        self._svg: str | None = None
        self._size: tuple[int, int] | None = None
        self._box: Any = None
        self._inline_png: bytes | None = None

    # ---------------------------------------------------------------- rendering
    def _bbox(self) -> Any:
        """What was drawn, in inches, with a white margin (computed once: one layout pass)."""
        if self._box is None:
            renderer = self.mpl.canvas.get_renderer()
            self._box = self.mpl.get_tightbbox(renderer).padded(_PAD_IN)
        return self._box

    def dpi(self) -> float:
        """The resolution the PNG is rendered at: enough for :data:`MIN_WIDTH_PX`, at least 100."""
        return max(100.0, math.ceil(MIN_WIDTH_PX / float(self._bbox().width)) + 1.0)

    def png(self, dpi: float | None = None) -> bytes:
        """The picture as PNG bytes (at least :data:`MIN_WIDTH_PX` wide unless ``dpi`` is given)."""
        if dpi is not None:
            return self._render("png", dpi)
        if self._png is None:
            self._png = self._render("png", self.dpi())
        return self._png

    def svg(self) -> str:
        """The picture as SVG text (vector: any size on a slide)."""
        if self._svg is None:
            self._svg = self._render("svg", 72).decode("utf-8")
        return self._svg

    def _render(self, fmt: str, dpi: float) -> bytes:
        buf = io.BytesIO()
        meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        self.mpl.savefig(buf, format=fmt, dpi=dpi, bbox_inches=self._bbox(), facecolor="white", metadata=meta)
        return buf.getvalue()

    @property
    def size_px(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG in pixels."""
        if self._size is None:
            data = self.png()
            self._size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
        return self._size

    @property
    def width_px(self) -> int:
        """Width of the PNG in pixels."""
        return self.size_px[0]

    # ---------------------------------------------------------------- files
    def save(self, path: Any) -> Path:
        """Write the picture to ``path``: ``.png`` or ``.svg`` (the suffix chooses). Returns the path.

        Raises:
            ConfigError: another suffix.  ArgumentTypeError: ``path`` is not a file name.
        """
        fmt = _format_of(path, ("png", "svg"), "Figure.save")
        return write_file(path, self.png() if fmt == "png" else self.svg(), "Figure.save")

    # ---------------------------------------------------------------- display
    def _repr_png_(self) -> bytes | None:
        # on screen a notebook shows the picture about 1000 px wide; .save() writes the full size
        if self.inline == "svg":
            return None
        if self._inline_png is None:
            self._inline_png = self.png(dpi=min(self.dpi(), max(60.0, 1100.0 / float(self._bbox().width))))
        return self._inline_png

    def _repr_svg_(self) -> str | None:
        return self.svg() if self.inline == "svg" else None

    def to_html(self, width: str = "100%") -> str:
        """An ``<img>`` with the PNG inline (for pages that embed the picture)."""
        data = base64.b64encode(self.png()).decode("ascii")
        return (f'<img alt="{esc(self.title)}" src="data:image/png;base64,{data}" '
                f'style="max-width:{width};height:auto">')

    def __repr__(self) -> str:
        return f"<convscope Figure: {short(self.title, 160)!r}; .save('picture.png' or 'picture.svg')>"


class Animation:
    """Frames of one picture, e.g. a window sliding along the input; GIF or an HTML player.

    Attributes:
        frames: the :class:`Figure` of every frame, in order.
        title: what the animation shows.
        interval_ms: time per frame when playing.
    """

    def __init__(self, frames: Sequence[Figure], title: str, interval_ms: int = 900) -> None:
        if not frames:
            raise ConfigError("Animation: give at least one frame.")
        self.frames = list(frames)
        self.title = str(title)
        self.interval_ms = int(interval_ms)

    def __len__(self) -> int:
        return len(self.frames)

    def save(self, path: Any) -> Path:
        """Write ``.gif`` (Pillow; every frame at the same size) or ``.html`` (SVG frames, a slider).

        Raises:
            ConfigError: another suffix.  MissingDependencyError: ``.gif`` without Pillow.
        """
        fmt = _format_of(path, ("gif", "html"), "Animation.save")
        if fmt == "html":
            page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + esc(self.title)
                    + "</title></head><body>" + self._player(lambda f: f.svg()) + "</body></html>")
            return write_file(path, page, "Animation.save")
        return write_file(path, self.gif(), "Animation.save")

    def gif(self) -> bytes:
        """The animation as GIF bytes (frames padded with white to one size)."""
        try:
            from PIL import Image
        except ImportError:
            raise MissingDependencyError("Animation.gif: writing a GIF needs Pillow; install it with "
                                         "pip install 'convscope[train]' (or save as .html).") from None
        dpi = min(f.dpi() for f in self.frames)
        images = [Image.open(io.BytesIO(f.png(dpi))).convert("RGB") for f in self.frames]
        width = max(im.width for im in images)
        height = max(im.height for im in images)
        padded = []
        for im in images:
            canvas = Image.new("RGB", (width, height), "white")
            canvas.paste(im, (0, 0))
            padded.append(canvas.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
        buf = io.BytesIO()
        padded[0].save(buf, format="GIF", save_all=True, append_images=padded[1:],
                       duration=self.interval_ms, loop=0, disposal=2)
        return buf.getvalue()

    def _player(self, render: Callable[[Figure], str]) -> str:
        uid = f"cs-anim-{next(_ids)}-{os.getpid()}"
        frames = []
        for i, frame in enumerate(self.frames):
            hidden = "" if i == 0 else " style='display:none'"
            frames.append(f"<div class='{uid}-frame'{hidden}>{render(frame)}</div>")
        n = len(self.frames)
        script = (
            "<script>(function(){var root=document.getElementById('" + uid + "');if(!root)return;"
            "var fr=root.getElementsByClassName('" + uid + "-frame'),s=root.querySelector('input'),"
            "lab=root.querySelector('.cs-frame-no'),t=null;"
            "function show(i){for(var j=0;j<fr.length;j++)fr[j].style.display=(j==i)?'':'none';"
            "s.value=i;lab.textContent='frame '+(+i+1)+' of " + str(n) + "';}"
            "s.addEventListener('input',function(){show(+s.value);});"
            "root.querySelector('.cs-prev').onclick=function(){show(Math.max(0,+s.value-1));};"
            "root.querySelector('.cs-next').onclick=function(){show(Math.min(" + str(n - 1)
            + ",+s.value+1));};"
            "root.querySelector('.cs-play').onclick=function(){if(t){clearInterval(t);t=null;return;}"
            "t=setInterval(function(){show((+s.value+1)%" + str(n) + ");}," + str(self.interval_ms)
            + ");};})();</script>"
        )
        controls = (f"<div style='margin:4px 0'><button class='cs-prev'>&#9664;</button> "
                    f"<button class='cs-play'>play / pause</button> <button class='cs-next'>&#9654;</button> "
                    f"<input type='range' min='0' max='{n - 1}' value='0' style='vertical-align:middle;"
                    f"width:40%'> <span class='cs-frame-no'>frame 1 of {n}</span></div>")
        return (f"<div id='{uid}' style='font-family:sans-serif;max-width:100%'>"
                f"<div style='font-weight:bold'>{esc(self.title)}</div>{controls}"
                + "".join(frames) + "</div>" + script)

    def _repr_html_(self) -> str:
        def png(frame: Figure) -> str:
            data = base64.b64encode(frame.png(_INLINE_DPI)).decode("ascii")
            return f"<img alt='{esc(frame.title)}' src='data:image/png;base64,{data}' style='max-width:100%'>"

        return self._player(png)

    def __repr__(self) -> str:
        return (f"<convscope Animation: {short(self.title, 160)!r}, {len(self.frames)} frames; "
                f".save('animation.gif' or 'animation.html')>")


class HTMLPage:
    """A self-contained HTML page (the explainer): inline in Jupyter (in a frame), ``.save(path)``.

    Attributes:
        html: the page's text.
        title: its title.
    """

    def __init__(self, html: str, title: str) -> None:
        self.html = html
        self.title = str(title)

    def save(self, path: Any) -> Path:
        """Write the page to ``path`` (``.html`` or ``.htm``)."""
        _format_of(path, ("html", "htm"), "HTMLPage.save")
        return write_file(path, self.html, "HTMLPage.save")

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{esc(self.html)}" style="width:100%;height:720px;border:1px solid #ccc" '
                f'title="{esc(self.title)}"></iframe>')

    def __repr__(self) -> str:
        return (f"<convscope HTMLPage: {short(self.title, 160)!r}, {len(self.html) / 1e6:.2f} MB; "
                f".save('report.html')>")
