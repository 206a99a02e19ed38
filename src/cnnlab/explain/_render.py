"""Render a :class:`~cnnlab.explain.Solution` or :class:`~cnnlab.explain.Comparison`."""

from __future__ import annotations

from typing import Any

from cnnlab.explain._document import comparison_blocks, solution_blocks
from cnnlab.explain._solution import Comparison, Solution
from cnnlab.explain._writers import HtmlWriter, LatexWriter, MarkdownWriter, TextWriter

FORMATS = ("text", "md", "latex", "html")


def render(
    obj: Any, format: str = "text", *, cells: int | None = None, color: bool = False,
    math_only: bool = False, precision: int = 6,
) -> str:
    """A worked solution (or a comparison) as text, Markdown, LaTeX or HTML.

    Parameters
    ----------
    obj : Solution or Comparison
    format : {'text', 'md', 'latex', 'html'}, default 'text'
    cells : int, optional
        Show at most this many worked cells per stage (every matrix is still complete).
    color : bool, default False
        Text only: ANSI bold for the highlighted window (for a terminal).
    math_only : bool, default False
        LaTeX only: one ``$$ ... $$`` block, as Jupyter's MathJax needs.
    precision : int, default 6
        Significant digits of floating-point numbers.

    Raises
    ------
    TypeError
        If ``obj`` is not a Solution or Comparison, or ``cells`` is not an int.
    ValueError
        For an unknown format or a negative ``cells``.
    """
    if isinstance(cells, bool) or not (cells is None or isinstance(cells, int)):
        raise TypeError(f"render: cells must be an int or None, got {cells!r}")
    if cells is not None and cells < 0:
        raise ValueError(f"render: cells must be >= 0, got {cells}")
    writer = make_writer(format, precision=precision, color=color, math_only=math_only)
    if isinstance(obj, Solution):
        blocks = solution_blocks(obj, cells)
    elif isinstance(obj, Comparison):
        blocks = comparison_blocks(obj, cells)
    elif isinstance(obj, Rendered):
        blocks = obj.document_blocks(cells)
    else:
        raise TypeError(f"render: expected a Solution or Comparison, got {type(obj).__name__}")
    return writer.document(blocks)


def make_writer(format: str, *, precision: int = 6, color: bool = False, math_only: bool = False) -> Any:
    """The writer of one format (see :func:`render` for the options)."""
    if format == "text":
        return TextWriter(precision, color=color)
    if format == "md":
        return MarkdownWriter(precision)
    if format == "latex":
        return LatexWriter(precision, math_only=math_only)
    if format == "html":
        return HtmlWriter(precision)
    raise ValueError(f"render: format must be one of {list(FORMATS)}, got {format!r}")


class Rendered:
    """Base of the explanation objects that describe themselves as document blocks (backprop by
    hand, the matrix view, pooling and size, problem sets): they render like a Solution."""

    def document_blocks(self, cells: int | None = None) -> list:
        """The blocks of the document; ``cells`` limits the worked cells per step."""
        raise NotImplementedError

    def render(self, format: str = "text", cells: int | None = None, color: bool = False) -> str:
        """As ``'text'``, ``'md'`` (Markdown), ``'latex'`` or ``'html'``; options as for
        :meth:`cnnlab.explain.Solution.render`."""
        return render(self, format, cells=cells, color=color)

    def to_text(self, cells: int | None = None, color: bool = False) -> str:
        return self.render("text", cells, color)

    def to_markdown(self, cells: int | None = None) -> str:
        return self.render("md", cells)

    def to_latex(self, cells: int | None = None) -> str:
        return self.render("latex", cells)

    def to_html(self, cells: int | None = None) -> str:
        return self.render("html", cells)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_latex_(self) -> str:
        return render(self, "latex", math_only=True)
