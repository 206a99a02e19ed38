"""Writers: one per output format, each turning the blocks of a document into a string.

A writer knows how its format shows a number, an operator, a fraction, a floor, a matrix with a
highlighted window and a heading; what the document says is decided in
:mod:`cnnlab.explain._document`.
"""

from __future__ import annotations

import html
import re
import textwrap

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._expr import (
    Call,
    Ceil,
    Floor,
    Frac,
    Grid,
    Heading,
    Idx,
    Items,
    Math,
    Num,
    Op,
    Para,
    Paren,
    Row,
    Sum,
    Sym,
    Txt,
    tex_name,
)
from cnnlab.explain._limits import Gap, elide

BOLD, RESET = "\x1b[1m", "\x1b[0m"


def _elided(g: Grid, **sides: int) -> Grid:
    """``g`` with the middle of a large matrix elided (see :func:`cnnlab.explain._limits.elide`)."""
    values = np.asarray(g.values, dtype=object)
    if values.ndim != 2:
        values = values.reshape(1, -1) if values.ndim < 2 else values.reshape(-1, values.shape[-1])
    shown, (highlight, faded) = elide(values, g.highlight, g.faded, **sides)
    return Grid(g.label, shown, highlight, faded, g.caption)


class Writer:
    """Shared walk over blocks and tokens; subclasses supply the format's pieces."""

    ops = {"*": "*", "->": "->"}

    def __init__(self, precision: int = 6) -> None:
        self.precision = precision

    # tokens ---------------------------------------------------------------------------------
    def number(self, value, factor: bool) -> str:
        text = num.plain(value, self.precision)
        if factor and (num.is_negative(value) or num.is_fraction(value)):
            return f"({text})"
        return text

    glue = ("*",)  # operators written without spaces around them

    def expr(self, items) -> str:
        parts: list[str] = []
        attach = False
        for item in items:
            text = self.token(item)
            if isinstance(item, Op) and item.op == "," and parts:
                parts[-1] += text
            elif isinstance(item, Op) and item.op in self.glue and parts:
                parts[-1] += text
                attach = True
                continue
            elif attach:
                parts[-1] += text
            else:
                parts.append(text)
            attach = False
        return " ".join(parts)

    def token(self, item) -> str:
        if isinstance(item, Num):
            return self.number(item.value, item.factor)
        if isinstance(item, Sym):
            return self.sym(item.text)
        if isinstance(item, Txt):
            return self.txt(item.text)
        if isinstance(item, Op):
            return self.ops.get(item.op, item.op)
        if isinstance(item, Idx):
            return self.idx(item.name, item.indices)
        if isinstance(item, Call):
            return self.call(item.name, [self.expr(a) for a in item.args])
        if isinstance(item, Frac):
            return self.frac(item.num, item.den)
        if isinstance(item, Floor):
            return self.floor(self.expr(item.body), "floor")
        if isinstance(item, Ceil):
            return self.floor(self.expr(item.body), "ceil")
        if isinstance(item, Paren):
            return self.paren(self.expr(item.body))
        if isinstance(item, Sum):
            return self.sum(item.ranges, self.expr(item.body))
        raise TypeError(f"writer: unknown token {item!r}")

    def sym(self, text: str) -> str:
        return text

    def txt(self, text: str) -> str:
        return text

    def idx(self, name: str, indices) -> str:
        return f"{name}[{', '.join(indices)}]"

    def call(self, name: str, args: list[str]) -> str:
        return f"{name}({', '.join(args)})"

    def _side(self, items) -> str:
        text = self.expr(items)
        return f"({text})" if len(items) > 1 else text

    def frac(self, numerator, denominator) -> str:
        return f"{self._side(numerator)} / {self._side(denominator)}"

    def floor(self, body: str, kind: str) -> str:
        return f"{kind}({body})"

    def paren(self, body: str) -> str:
        return f"({body})"

    def sum(self, ranges, body: str) -> str:
        bounds = ", ".join(f"{v}={lo}..{hi}" for v, lo, hi in ranges)
        return f"sum_{{{bounds}}} {body}"

    def cell(self, value) -> str:
        if isinstance(value, Gap):
            return self.gap(value.kind)
        return "." if value is None else self.number(value, False)

    def gap(self, kind: str) -> str:
        """The mark of an elided run of rows or columns in a matrix."""
        return "..."

    # blocks ---------------------------------------------------------------------------------
    def block(self, b) -> str:
        if isinstance(b, Heading):
            return self.heading(b.text, b.level)
        if isinstance(b, Para):
            return self.para(b.text)
        if isinstance(b, Items):
            return self.items(b.lines)
        if isinstance(b, Grid):
            return self.row([_elided(b)])
        if isinstance(b, Row):
            return self.row([_elided(g) for g in b.grids])
        if isinstance(b, Math):
            return self.math(self.expr(b.items))
        raise TypeError(f"writer: unknown block {b!r}")

    def document(self, blocks) -> str:
        return "\n\n".join(self.block(b) for b in blocks) + "\n"


# ---------------------------------------------------------------------------------------------
# plain text


class TextWriter(Writer):
    """Plain text for a terminal: the window in brackets (and bold with ``color=True``)."""

    width = 100

    def __init__(self, precision: int = 6, color: bool = False) -> None:
        super().__init__(precision)
        self.color = color

    def document(self, blocks) -> str:
        out = []
        for i, b in enumerate(blocks):
            if i:
                together = isinstance(b, Math) and isinstance(blocks[i - 1], Math)
                out.append("\n" if together else "\n\n")
            out.append(self.block(b))
        return "".join(out) + "\n"

    def heading(self, text: str, level: int) -> str:
        if level == 1:
            return f"{text}\n{'=' * len(text)}"
        if level == 2:
            return f"{text}\n{'-' * len(text)}"
        return text if text.endswith("?") else f"{text}:"

    def para(self, text: str) -> str:
        return text

    def items(self, lines) -> str:
        return "\n".join(f"  {line}" for line in lines)

    def math(self, text: str) -> str:
        return f"  {text}"

    def grid_lines(self, g: Grid) -> list[str]:
        values = np.asarray(g.values, dtype=object)
        texts = [[self.cell(v) for v in row] for row in values]
        width = max(len(t) for row in texts for t in row)
        lines = []
        if g.highlight is None or not np.any(g.highlight):
            for row in texts:
                lines.append("| " + "  ".join(f"{t:>{width}}" for t in row) + " |")
        for r, row in enumerate(texts if not lines else []):
            cells = []
            for c, t in enumerate(row):
                if g.highlight is not None and g.highlight[r, c]:
                    piece = f"[{t:>{width}}]"
                    if self.color:
                        piece = f"{BOLD}{piece}{RESET}"
                else:
                    piece = f" {t:>{width}} "
                cells.append(piece)
            lines.append("| " + " ".join(cells) + " |")
        prefix = f"{g.label} = " if g.label else ""
        middle = (len(lines) - 1) // 2
        out = [(prefix if r == middle else " " * len(prefix)) + line for r, line in enumerate(lines)]
        if g.caption:
            out.insert(0, g.caption)
        return out

    def row(self, grids) -> str:
        """Matrices side by side, wrapped onto more lines when wider than ``self.width``."""
        blocks = [self.grid_lines(g) for g in grids]
        widths = [max(_visible_len(line) for line in b) for b in blocks]
        chunks: list[list[int]] = [[]]
        used = 0
        for i, w in enumerate(widths):
            if chunks[-1] and used + 4 + w > self.width:
                chunks.append([])
                used = 0
            chunks[-1].append(i)
            used += w + 4
        out = []
        for chunk in chunks:
            height = max(len(blocks[i]) for i in chunk)
            lines = []
            for r in range(height):
                parts = []
                for i in chunk:
                    line = blocks[i][r] if r < len(blocks[i]) else ""
                    parts.append(line + " " * (widths[i] - _visible_len(line)))
                lines.append(("  " + "    ".join(parts)).rstrip())
            out.append("\n".join(lines))
        return "\n\n".join(out)


def _visible_len(line: str) -> int:
    return len(line.replace(BOLD, "").replace(RESET, ""))


# ---------------------------------------------------------------------------------------------
# Markdown


def md_escape(text: str) -> str:
    for ch in "\\`*<|":
        text = text.replace(ch, "\\" + ch)
    return text


class MarkdownWriter(Writer):
    """Markdown: matrices as tables with the window in bold, equations as code spans."""

    def heading(self, text: str, level: int) -> str:
        return f"{'#' * (level + 1)} {md_escape(text)}"

    def para(self, text: str) -> str:
        return md_escape(text)

    def items(self, lines) -> str:
        return "\n".join(f"- {md_escape(line)}" for line in lines)

    def math(self, text: str) -> str:
        return f"`{text}`"

    def table(self, g: Grid) -> str:
        values = np.asarray(g.values, dtype=object)
        head = [md_escape(g.label) if g.label else " "] + [str(c) for c in range(values.shape[1])]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r, row in enumerate(values):
            cells = []
            for c, v in enumerate(row):
                t = md_escape(self.cell(v))
                if g.highlight is not None and g.highlight[r, c]:
                    t = f"**{t}**"
                elif g.faded is not None and g.faded[r, c]:
                    t = f"*{t}*"
                cells.append(t)
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        caption = f"*{md_escape(g.caption)}*\n\n" if g.caption else ""
        return caption + "\n".join(lines)

    def row(self, grids) -> str:
        return "\n\n".join(self.table(g) for g in grids)


# ---------------------------------------------------------------------------------------------
# LaTeX


def tex_escape(text: str) -> str:
    out = []
    text = text.replace("->", "\x00")
    for ch in text:
        if ch == "\\":
            out.append("\\textbackslash{}")
        elif ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "~":
            out.append("\\textasciitilde{}")
        elif ch == "^":
            out.append("\\textasciicircum{}")
        elif ch == "<":
            out.append("\\textless{}")
        elif ch == ">":
            out.append("\\textgreater{}")
        elif ch == "\x00":
            out.append("$\\to$")
        elif ch in "(/[":
            out.append(ch + "\\allowbreak{}")  # long names such as Pool(ReLU(Conv(I))) may break
        else:
            out.append(ch)
    return "".join(out)


PREAMBLE = r"""\documentclass{article}
\usepackage{amsmath}
\setcounter{MaxMatrixCols}{40}
\allowdisplaybreaks
\sloppy
\begin{document}
"""


def standalone(latex: str) -> str:
    r"""A LaTeX fragment of :class:`LatexWriter` as a complete document that ``pdflatex`` compiles.

    >>> standalone(r"\[ x = 1 \]").splitlines()[1]
    '\\usepackage{amsmath}'
    """
    return PREAMBLE + latex.rstrip("\n") + "\n\\end{document}\n"


class LatexWriter(Writer):
    """LaTeX with amsmath: ``bmatrix`` matrices with the window ``\\boxed``.

    ``math_only`` puts everything into one ``array`` inside ``$$ ... $$`` (for Jupyter's
    MathJax, which only typesets math).
    """

    ops = {"*": " \\cdot ", "->": "\\to", ",": ",", "...": "\\cdots"}
    calls = {"max": "\\max", "min": "\\min"}

    def __init__(self, precision: int = 6, math_only: bool = False) -> None:
        super().__init__(precision)
        self.math_only = math_only

    def number(self, value, factor: bool) -> str:
        text = num.latex(value, self.precision)
        if factor and num.is_negative(value):
            return f"\\left({text}\\right)"
        return text

    def cell(self, value) -> str:
        if isinstance(value, Gap):
            return self.gap(value.kind)
        return "\\cdot" if value is None else self.number(value, False)

    def gap(self, kind: str) -> str:
        return {"row": "\\vdots", "col": "\\cdots", "both": "\\ddots"}[kind]

    def sym(self, text: str) -> str:
        return tex_name(text)

    def txt(self, text: str) -> str:
        return f"\\quad\\text{{{tex_escape(text)}}}"

    def idx(self, name: str, indices) -> str:
        return f"{tex_name(name)}_{{{','.join(indices)}}}"

    def call(self, name: str, args: list[str]) -> str:
        head = self.calls.get(name, tex_name(name))
        return f"{head}\\left({', '.join(args)}\\right)"

    def frac(self, numerator, denominator) -> str:
        return f"\\frac{{{self.expr(numerator)}}}{{{self.expr(denominator)}}}"

    def floor(self, body: str, kind: str) -> str:
        return f"\\left\\l{kind} {body} \\right\\r{kind}"

    def paren(self, body: str) -> str:
        return f"\\left({body}\\right)"

    def sum(self, ranges, body: str) -> str:
        return "".join(f"\\sum_{{{v}={lo}}}^{{{hi}}}" for v, lo, hi in ranges) + " " + body

    # the width of a line: an article's text is about 345pt wide, about 55 characters of math
    line = 55

    @staticmethod
    def visible(tex: str) -> int:
        """About how many characters wide ``tex`` is typeset (a command counts as one)."""
        text = re.sub(r"\\(left|right|quad|qquad|text|mathrm|boxed|begin|end)\b|[{}_^]", "", tex)
        text = re.sub(r"\\[A-Za-z]+", "x", text)
        return len(text) + 2 * sum(text.count(op) for op in "+=-")

    def grid_width(self, g: Grid) -> int:
        values = np.asarray(g.values, dtype=object)
        widths = [max(self.visible(self.cell(v)) for v in values[:, c]) + 2 for c in range(values.shape[1])]
        return sum(widths) + self.visible(tex_name(g.label)) + 3

    def fitted(self, g: Grid) -> Grid:
        """``g`` with as many columns elided as it takes to fit a line (at most 9 columns, so that
        ``bmatrix`` compiles without raising MaxMatrixCols)."""
        shown = _elided(g, side=9, edge=4)
        for edge in (3, 2, 1):
            if self.grid_width(shown) <= self.line:
                break
            shown = _elided(g, side=9, edge=4, col_side=2 * edge + 1, col_edge=edge)
        return shown

    def matrix(self, g: Grid) -> str:
        values = np.asarray(g.values, dtype=object)
        rows = []
        for r, row in enumerate(values):
            cells = []
            for c, v in enumerate(row):
                t = self.cell(v)
                if g.highlight is not None and g.highlight[r, c]:
                    t = f"\\boxed{{{t}}}"
                cells.append(t)
            rows.append(" & ".join(cells))
        body = " \\\\ ".join(rows)
        label = f"{tex_name(g.label)} = " if g.label else ""
        caption = f"\\underset{{\\text{{{tex_escape(g.caption)}}}}}" if g.caption else ""
        return f"{label}{caption}{{\\begin{{bmatrix}} {body} \\end{{bmatrix}}}}"

    def heading(self, text: str, level: int) -> str:
        if self.math_only:
            return f"\\textbf{{{tex_escape(text)}}}"
        command = {1: "section*", 2: "subsection*"}.get(level, "paragraph")
        return f"\\{command}{{{tex_escape(text)}}}"

    def para(self, text: str) -> str:
        if not self.math_only:
            return tex_escape(text)
        # math only: \text does not wrap, so break the words into lines of the page's width
        lines = textwrap.wrap(text, self.line + 5) or [""]
        return " \\\\ ".join(f"\\text{{{tex_escape(line)}}}" for line in lines)

    def items(self, lines) -> str:
        if self.math_only:
            return " \\\\ ".join(self.para(line) for line in lines)
        body = "\n".join(f"  \\item {tex_escape(line)}" for line in lines)
        return f"\\begin{{itemize}}\n{body}\n\\end{{itemize}}"

    def math(self, text: str) -> str:
        return text if self.math_only else f"\\[ {text} \\]"

    def row(self, grids) -> str:
        grids = [self.fitted(g) for g in grids]
        width = sum(self.grid_width(g) + 4 for g in grids)
        if len(grids) == 1 or width <= self.line:
            return self.math(" \\qquad ".join(self.matrix(g) for g in grids))
        if self.math_only:
            return " \\\\ ".join(self.matrix(g) for g in grids)
        # too wide for one line: one matrix per line
        body = " \\\\\n".join(self.matrix(g) for g in grids)
        return f"\\begin{{gather*}}\n{body}\n\\end{{gather*}}"

    def block(self, b) -> str:
        if isinstance(b, Math):
            return self.equation(b.items)
        return super().block(b)

    def equation(self, items) -> str:
        """A displayed equation, broken before ``=`` or ``+`` into lines that fit the page."""
        pieces: list[list] = [[]]
        for item in items:
            if ((isinstance(item, Op) and item.op in ("=", "+", "-", "...")) or isinstance(item, Txt)) and pieces[-1]:
                pieces.append([])
            pieces[-1].append(item)
        lines: list[str] = []
        for piece in pieces:
            text = self.expr(piece)
            if lines and self.visible(lines[-1] + text) <= self.line:
                lines[-1] += " " + text
            else:
                lines.append(text)
        if len(lines) == 1:
            return self.math(lines[0])
        if self.math_only:
            return " \\\\ \\qquad ".join(lines)
        body = " \\\\\n".join(lines)
        return f"\\begin{{multline*}}\n{body}\n\\end{{multline*}}"

    def document(self, blocks) -> str:
        if not self.math_only:
            # a group with \sloppy: long lines of words break inside the page in any document
            return "{\\sloppy\n" + super().document(blocks) + "\\par}\n"
        lines = " \\\\[6pt]\n".join(self.block(b) for b in blocks)
        return f"$$\\begin{{array}}{{l}}\n{lines}\n\\end{{array}}$$"


# ---------------------------------------------------------------------------------------------
# HTML

_STYLE = """<style>
.cnnlab-solution table.cnnlab-matrix { border-collapse: collapse; margin: 2px; }
.cnnlab-solution table.cnnlab-matrix td { padding: 2px 8px; text-align: right;
  border: 1px solid #bbb; font-family: monospace; }
.cnnlab-solution td.cnnlab-window { background: #ffe08a; font-weight: bold; }
.cnnlab-solution td.cnnlab-pad { color: #999; }
.cnnlab-solution .cnnlab-math { font-family: monospace; margin: .3em 0; }
.cnnlab-solution .cnnlab-row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: center; }
.cnnlab-solution .cnnlab-grid { display: inline-flex; align-items: center; gap: .4em; }
</style>"""


class HtmlWriter(Writer):
    """HTML with one small style sheet; the current window's cells have class ``cnnlab-window``."""

    ops = {"*": "&middot;", "->": "&rarr;", "...": "&hellip;"}

    def gap(self, kind: str) -> str:
        return {"row": "&vellip;", "col": "&hellip;", "both": "&dtdot;"}[kind]

    def number(self, value, factor: bool) -> str:
        return html.escape(super().number(value, factor))

    def sym(self, text: str) -> str:
        return html.escape(text)

    def txt(self, text: str) -> str:
        return html.escape(text)

    def idx(self, name: str, indices) -> str:
        return html.escape(f"{name}[{', '.join(indices)}]")

    def call(self, name: str, args: list[str]) -> str:
        return f"{html.escape(name)}({', '.join(args)})"

    def floor(self, body: str, kind: str) -> str:
        return f"&l{kind};{body}&r{kind};"

    def sum(self, ranges, body: str) -> str:
        bounds = ", ".join(f"{v}={lo}..{hi}" for v, lo, hi in ranges)
        return f"&sum;<sub>{html.escape(bounds)}</sub> {body}"

    def table(self, g: Grid) -> str:
        values = np.asarray(g.values, dtype=object)
        rows = []
        for r, row in enumerate(values):
            cells = []
            for c, v in enumerate(row):
                if g.highlight is not None and g.highlight[r, c]:
                    cells.append(f'<td class="cnnlab-window">{self.cell(v)}</td>')
                elif g.faded is not None and g.faded[r, c]:
                    cells.append(f'<td class="cnnlab-pad">{self.cell(v)}</td>')
                else:
                    cells.append(f"<td>{self.cell(v)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        table = '<table class="cnnlab-matrix">' + "".join(rows) + "</table>"
        caption = f'<div style="font-size:smaller">{html.escape(g.caption)}</div>' if g.caption else ""
        label = f"<span>{html.escape(g.label)} =</span>" if g.label else ""
        return f'<div class="cnnlab-grid">{label}<div>{caption}{table}</div></div>'

    def row(self, grids) -> str:
        inner = "".join(self.table(g) for g in grids)
        return f'<div class="cnnlab-row">{inner}</div>'

    def heading(self, text: str, level: int) -> str:
        tag = f"h{min(level + 1, 6)}"
        return f"<{tag}>{html.escape(text)}</{tag}>"

    def para(self, text: str) -> str:
        return f"<p>{html.escape(text)}</p>"

    def items(self, lines) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"

    def math(self, text: str) -> str:
        return f'<div class="cnnlab-math">{text}</div>'

    def document(self, blocks) -> str:
        body = "\n".join(self.block(b) for b in blocks)
        return f'<div class="cnnlab-solution">\n{_STYLE}\n{body}\n</div>\n'
