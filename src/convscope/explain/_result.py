"""The shared face of explain's result objects: ``str()`` is the text, Jupyter shows HTML.

Each result class names the function of :mod:`convscope.explain._html` that draws it (and,
for results whose HTML is their text under a heading, the heading); this base does the rest.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Result"]


class Result:
    """Base of explain's results: ``__str__`` calls :meth:`text`, ``_repr_html_`` the named renderer.

    Attributes:
        _html: the name of the function in :mod:`convscope.explain._html` that takes the result
            (and the heading, where ``_html_title`` is set) and returns its HTML fragment.
        _html_title: the heading passed to that function, or ``None`` to pass the result alone.
    """

    _html: ClassVar[str]
    _html_title: ClassVar[str | None] = None

    def text(self) -> str:
        """The result as plain text; every result class defines it."""
        raise NotImplementedError(f"{type(self).__name__} defines no text()")

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from . import _html

        render = getattr(_html, self._html)
        if self._html_title is None:
            return str(render(self))
        return str(render(self, self._html_title))
