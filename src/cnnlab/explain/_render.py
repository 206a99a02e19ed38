"""Render a :class:`~cnnlab.explain.Solution`, :class:`~cnnlab.explain.Comparison` or any other
explanation object (see :mod:`cnnlab.explain._rendered`)."""

from __future__ import annotations

from typing import Any

from cnnlab.explain._rendered import FORMATS, Rendered, make_writer

__all__ = ["FORMATS", "Rendered", "make_writer", "render"]


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
        If ``obj`` is not an explanation object (Solution, Comparison, ...), or ``cells`` is not an int.
    ValueError
        For an unknown format or a negative ``cells``.
    """
    if not isinstance(obj, Rendered):
        raise TypeError(f"render: expected a Solution or Comparison, got {type(obj).__name__}")
    return obj.render(format, cells, color, math_only=math_only, precision=precision)
