"""A tiny document model for exercises: prose, matrices and worked traces in text, HTML or LaTeX.

An exercise's question and solution are lists of blocks; :func:`render` writes them in one of
three formats so a question prints in a terminal, shows in a browser and compiles in a LaTeX
sheet from the same numbers. Matrices use the notes' layout (rows as printed by
``convscope explain``); a worked trace is kept verbatim, so the solution shows exactly the
text the explainer prints.

Example:
    >>> blocks = [Para("Compute y."), Matrix("x", "x", np.array([[1., -2.], [3., 4.]]))]
    >>> print(render(blocks, "text"))
    Compute y.
    x =
      [[1, -2],
       [3,  4]]
    >>> print(render(blocks, "latex"))
    Compute y.
    <BLANKLINE>
    <BLANKLINE>
    \\[ x = \\begin{bmatrix} 1 & -2 \\\\ 3 & 4 \\end{bmatrix} \\]
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ._text import fmt_grid, fmt_num

__all__ = ["Para", "Matrix", "Pre", "Block", "render", "FORMATS", "html_page", "latex_document",
           "latex_escape"]

FORMATS = ("text", "html", "latex")


@dataclass(frozen=True)
class Para:
    """A sentence or paragraph of plain text (escaped for HTML and LaTeX)."""

    text: str


@dataclass(frozen=True, eq=False)
class Matrix:
    """A named array: ``name`` in text and HTML, ``tex`` (math mode) in LaTeX.

    1-D arrays print as a row vector; 2-D as a grid; 3-D as one grid per leading index
    (a channel).
    """

    name: str
    tex: str
    values: np.ndarray


@dataclass(frozen=True)
class Pre:
    """Preformatted text kept as it is (a worked trace from :mod:`convscope.explain`)."""

    text: str


Block = Para | Matrix | Pre


def latex_escape(text: str) -> str:
    """Plain text made safe for LaTeX.

    >>> latex_escape("dL/dW_{1,2} & 50% of #3")
    'dL/dW\\\\_\\\\{1,2\\\\} \\\\& 50\\\\% of \\\\#3'
    """
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(table.get(c, c) for c in text)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _tex_grid(a: np.ndarray) -> str:
    rows = a[None] if a.ndim == 1 else a
    body = r" \\ ".join(" & ".join(fmt_num(v) for v in row) for row in rows)
    return r"\begin{bmatrix} " + body + r" \end{bmatrix}"


def _html_grid(a: np.ndarray) -> str:
    rows = a[None] if a.ndim == 1 else a
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt_num(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f'<table class="m">{body}</table>'


def _render_one(block: Block, fmt: str) -> str:
    if isinstance(block, Para):
        if fmt == "html":
            return f"<p>{html.escape(block.text)}</p>"
        if fmt == "latex":
            return latex_escape(_ascii(block.text)) + "\n"
        return block.text
    if isinstance(block, Pre):
        if fmt == "html":
            return f"<pre>{html.escape(block.text)}</pre>"
        if fmt == "latex":
            return "\\begin{verbatim}\n" + _ascii(block.text) + "\n\\end{verbatim}"
        return block.text
    a = np.asarray(block.values, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    planes = list(a) if a.ndim == 3 else [a]
    if fmt == "html":
        tables = "".join(
            (f'<figure><figcaption>channel {c + 1}</figcaption>{_html_grid(p)}</figure>' if a.ndim == 3
             else _html_grid(p)) for c, p in enumerate(planes))
        return (f'<div class="mat"><span class="name">{html.escape(block.name)} =</span>'
                f'{tables}</div>')
    if fmt == "latex":
        if a.ndim == 3:
            parts = [f"{block.tex}^{{({c + 1})}} = {_tex_grid(p)}" for c, p in enumerate(planes)]
            return r"\[ " + r",\quad ".join(parts) + r" \]"
        return rf"\[ {block.tex} = {_tex_grid(a)} \]"
    if a.ndim == 3:
        lines = [f"{block.name} ({a.shape[0]} channels):"]
        for c, p in enumerate(planes):
            lines += [f"  channel {c + 1}:", fmt_grid(p, "    ")]
        return "\n".join(lines)
    return f"{block.name} =\n{fmt_grid(a)}"


def render(blocks: Sequence[Block], fmt: str) -> str:
    """The blocks as one string in ``fmt`` ("text", "html" or "latex").

    Raises:
        ConfigError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"exercise: format must be one of {', '.join(FORMATS)}; got {fmt!r}.")
    sep = "\n" if fmt == "text" else "\n\n" if fmt == "latex" else "\n"
    return sep.join(_render_one(b, fmt) for b in blocks)


_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 960px; margin: 24px auto; padding: 0 16px;
       color: #1b1f24; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-top: 1px solid #d7dce1;
       padding-top: 12px; }
.mat { display: flex; align-items: center; gap: 8px; margin: 6px 0; flex-wrap: wrap; }
.mat .name { font-family: ui-monospace, monospace; }
.mat figure { margin: 0 8px 0 0; font-size: 11px; color: #5b6570; }
table.m { border-collapse: collapse; font: 13px ui-monospace, Menlo, monospace; }
table.m td { border: 1px solid #c9ced4; padding: 3px 7px; text-align: right; min-width: 2.2em; }
pre { background: #f3f5f7; padding: 8px 10px; border-radius: 6px; overflow-x: auto; font-size: 12px; }
.check { color: #5b6570; font-size: 13px; }
@media print { h2 { break-before: auto; } pre { white-space: pre-wrap; } }
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline style sheet, no network) around ``body``."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title><style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
            "</body></html>\n")


def latex_document(title: str, body: str) -> str:
    """A complete LaTeX document (article class, amsmath) around ``body``."""
    return ("\\documentclass[11pt]{article}\n\\usepackage{amsmath}\n\\usepackage[margin=2cm]{geometry}\n"
            "\\setcounter{MaxMatrixCols}{20}\n"
            f"\\title{{{latex_escape(_ascii(title))}}}\n\\date{{}}\n\\begin{{document}}\n\\maketitle\n"
            f"{body}\n\\end{{document}}\n")
