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
    if format == "text":
        writer = TextWriter(precision, color=color)
    elif format == "md":
        writer = MarkdownWriter(precision)
    elif format == "latex":
        writer = LatexWriter(precision, math_only=math_only)
    elif format == "html":
        writer = HtmlWriter(precision)
    else:
        raise ValueError(f"render: format must be one of {list(FORMATS)}, got {format!r}")
    if isinstance(obj, Solution):
        blocks = solution_blocks(obj, cells)
    elif isinstance(obj, Comparison):
        blocks = comparison_blocks(obj, cells)
    else:
        raise TypeError(f"render: expected a Solution or Comparison, got {type(obj).__name__}")
    return writer.document(blocks)
