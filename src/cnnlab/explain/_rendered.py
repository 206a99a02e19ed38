"""The one home of rendering: every explanation object (a worked solution, a comparison, backprop by
hand, the matrix view, pooling and size, a problem set) describes itself as document blocks, and
:class:`Rendered` turns those into text, Markdown, LaTeX or HTML through the writers."""

from __future__ import annotations

from typing import Any

from cnnlab.explain._writers import HtmlWriter, LatexWriter, MarkdownWriter, TextWriter
from cnnlab.explain._writers import standalone as _standalone

FORMATS = ("text", "md", "latex", "html")


def make_writer(format: str, *, precision: int = 6, color: bool = False, math_only: bool = False) -> Any:
    """The writer of one format (see :func:`cnnlab.explain.render` for the options)."""
    if format == "text":
        return TextWriter(precision, color=color)
    if format == "md":
        return MarkdownWriter(precision)
    if format == "latex":
        return LatexWriter(precision, math_only=math_only)
    if format == "html":
        return HtmlWriter(precision)
    raise ValueError(f"render: format must be one of {list(FORMATS)}, got {format!r}")


def check_cells(cells: Any) -> None:
    """``cells`` is None or an int >= 0 (the number of worked cells shown per stage)."""
    if isinstance(cells, bool) or not (cells is None or isinstance(cells, int)):
        raise TypeError(f"render: cells must be an int or None, got {cells!r}")
    if cells is not None and cells < 0:
        raise ValueError(f"render: cells must be >= 0, got {cells}")


class Rendered:
    """Base of the explanation objects: they describe themselves as document blocks and render
    as ``'text'``, ``'md'`` (Markdown), ``'latex'`` or ``'html'``; ``str()`` gives the text form and
    Jupyter shows the HTML form."""

    def document_blocks(self, cells: int | None = None) -> list:
        """The blocks of the document; ``cells`` limits the worked cells per step."""
        raise NotImplementedError

    def render(self, format: str = "text", cells: int | None = None, color: bool = False, *,
               math_only: bool = False, precision: int = 6, standalone: bool = False) -> str:
        """The explanation as ``'text'``, ``'md'`` (Markdown), ``'latex'`` or ``'html'``.

        ``cells`` shows at most that many worked cells per stage (the matrices are always
        complete); ``color`` adds ANSI bold to the text form's highlighted windows; ``math_only``
        (LaTeX) gives one ``$$ ... $$`` block, as Jupyter's MathJax needs; ``standalone`` (LaTeX)
        a complete document for ``pdflatex`` (otherwise a fragment that compiles inside any
        document that loads amsmath).
        """
        check_cells(cells)
        writer = make_writer(format, precision=precision, color=color, math_only=math_only)
        text = writer.document(self.document_blocks(cells))
        if standalone:
            if format != "latex" or math_only:
                raise ValueError("render: standalone needs format 'latex' without math_only")
            text = _standalone(text)
        return text

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
        return self.render("latex", math_only=True)
