"""Worked solutions checked as text against an independent model of what must be printed.

For seeded random pipelines (integer input, a conv with random filter, stride and zero padding,
optionally ReLU, then max pooling) the model below works every cell out again from the
definitions, in plain Python lists (no cnnlab code): each window's row and column range, the
cells it covers in the (padded) matrix, every product and partial sum, the total, and for max
pooling every window's values, its maximum and where it is (the first maximum in row-major
order).  The test then requires exactly those lines and highlighted cells in the rendering, in
all four formats, through the public :func:`cnnlab.explain.explain` and :func:`render`.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from cnnlab.explain import Conv, Pool, explain, render

FORMATS = ("text", "md", "latex", "html")
SEEDS = range(10)


# ---------------------------------------------------------------------------------------------
# The model: what the solution must say, from the definitions.
# ---------------------------------------------------------------------------------------------
def _pipeline(seed: int) -> dict:
    r = random.Random(seed)
    rows, cols = r.randint(3, 5), r.randint(3, 5)
    kh, kw = r.randint(2, 3), r.randint(2, 3)
    stride, pad = r.randint(1, 2), r.randint(0, 1)
    image = [[r.randint(-4, 6) for _ in range(cols)] for _ in range(rows)]
    filt = [[r.randint(-2, 3) for _ in range(kw)] for _ in range(kh)]
    relu = r.random() < 0.5
    pool_k, pool_s = 2, r.randint(1, 2)
    # keep the conv output at least pool_k x pool_k
    while (rows + 2 * pad - kh) // stride + 1 < pool_k or (cols + 2 * pad - kw) // stride + 1 < pool_k:
        rows, cols = rows + 1, cols + 1
        image = [[r.randint(-4, 6) for _ in range(cols)] for _ in range(rows)]
    return dict(image=image, filt=filt, stride=stride, pad=pad, relu=relu, pool_k=pool_k, pool_s=pool_s)


def _windows(n_rows: int, n_cols: int, kh: int, kw: int, stride: int):
    """Every window: its output cell, row range and column range (inclusive)."""
    out_r, out_c = (n_rows - kh) // stride + 1, (n_cols - kw) // stride + 1
    for i in range(out_r):
        for j in range(out_c):
            yield (i, j), (i * stride, i * stride + kh - 1), (j * stride, j * stride + kw - 1)


def _model(p: dict) -> dict:
    image, filt, s, pad = p["image"], p["filt"], p["stride"], p["pad"]
    kh, kw = len(filt), len(filt[0])
    width = len(image[0]) + 2 * pad
    padded = [[0] * width for _ in range(pad)] + [[0] * pad + row + [0] * pad for row in image] + \
        [[0] * width for _ in range(pad)]
    conv_cells = []
    out_rows: dict[int, dict[int, int]] = {}
    for (i, j), (r0, r1), (c0, c1) in _windows(len(padded), width, kh, kw, s):
        pairs = [(padded[r][c], filt[r - r0][c - c0]) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        total = sum(a * b for a, b in pairs)
        conv_cells.append(dict(at=(i, j), rows=(r0, r1), cols=(c0, c1), pairs=pairs, total=total))
        out_rows.setdefault(i, {})[j] = total
    conv_out = [[out_rows[i][j] for j in sorted(out_rows[i])] for i in sorted(out_rows)]
    src = [[max(v, 0) for v in row] for row in conv_out] if p["relu"] else conv_out
    k, ps = p["pool_k"], p["pool_s"]
    pool_cells = []
    for (i, j), (r0, r1), (c0, c1) in _windows(len(src), len(src[0]), k, k, ps):
        cells = [((r, c), src[r][c]) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        best = cells[0]
        for cell in cells[1:]:
            if cell[1] > best[1]:  # strictly greater: ties keep the first maximum
                best = cell
        pool_cells.append(dict(at=(i, j), rows=(r0, r1), cols=(c0, c1), values=[v for _, v in cells],
                               best=best))
    conv_name = "Conv(I)"
    pooled_name = "ReLU(Conv(I))" if p["relu"] else conv_name
    return dict(padded=padded, conv=conv_cells, conv_out=conv_out, pool_src=src, pool=pool_cells,
                conv_name=conv_name, pool_in=pooled_name, pool_name=f"Pool({pooled_name})")


# ---------------------------------------------------------------------------------------------
# How each format writes a number, a product and a line (the notation; the numbers come from
# the model).
# ---------------------------------------------------------------------------------------------
def _term(v: int, fmt: str) -> str:
    if v >= 0:
        return str(v)
    return rf"\left({v}\right)" if fmt == "latex" else f"({v})"


def _latex_name(name: str) -> str:
    return re.sub(r"(Conv|ReLU|Pool)\(", r"\\mathrm{\1}(", name)


def _math_line(body_plain: str, body_latex: str, fmt: str) -> str:
    if fmt == "text":
        return f"  {body_plain}"
    if fmt == "md":
        return f"`{body_plain}`"
    if fmt == "html":
        return f'<div class="cnnlab-math">{body_plain}</div>'
    return rf"\[ {body_latex} \]"


def _conv_line(name: str, cell: dict, fmt: str) -> str:
    i, j = cell["at"]
    mul = {"text": "*", "md": "*", "html": "&middot;", "latex": r" \cdot "}[fmt]
    products = " + ".join(f"{_term(a, fmt)}{mul}{_term(b, fmt)}" for a, b in cell["pairs"])
    terms = " + ".join(_term(a * b, fmt) for a, b in cell["pairs"])
    plain = f"{name}[{i},{j}] = {products} = {terms} = {cell['total']}"
    latex = f"{_latex_name(name)}[{i},{j}] = {products} = {terms} = {cell['total']}"
    return _math_line(plain, latex, fmt)


def _max_line(name: str, src: str, cell: dict, fmt: str) -> str:
    i, j = cell["at"]
    (r, c), v = cell["best"]
    values = ", ".join(str(x) for x in cell["values"])
    plain = f"{name}[{i},{j}] = max({values}) = {v} (the maximum is {src}[{r},{c}])"
    latex = (rf"{_latex_name(name)}[{i},{j}] = \max\left({values}\right) = {v} "
             rf"\quad\text{{(the maximum is {src}[{r},{c}])}}")
    return _math_line(plain, latex, fmt)


def _header(name: str, src: str, cell: dict, fmt: str) -> str:
    i, j = cell["at"]
    text = f"{name}[{i},{j}]: the window at rows {cell['rows'][0]}-{cell['rows'][1]}, " \
           f"cols {cell['cols'][0]}-{cell['cols'][1]} of {src}"
    return f"<p>{text}</p>" if fmt == "html" else text


# ---------------------------------------------------------------------------------------------
# Reading the highlighted matrix back out of a rendering.
# ---------------------------------------------------------------------------------------------
def _grid(chunk: str, fmt: str) -> list[list[tuple[int, bool]]]:
    """The matrix printed in ``chunk``: every cell's value and whether it is highlighted."""
    rows = []
    if fmt == "text":
        for line in chunk.splitlines():
            if line.count("|") >= 2:
                body = line[line.index("|") + 1 : line.rindex("|")]
                rows.append([(int(m[0] or m[1]), bool(m[0]))
                             for m in re.findall(r"\[\s*(-?\d+)\]|(-?\d+)", body)])
    elif fmt == "md":
        table = [line for line in chunk.splitlines() if line.startswith("|")][2:]
        for line in table:
            cells = [c.strip() for c in line.strip("|").split("|")][1:]
            rows.append([(int(c.strip("*")), c.startswith("**")) for c in cells])
    elif fmt == "latex":
        body = re.search(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", chunk, re.S).group(1)
        for line in body.split(r"\\"):
            rows.append([(int(re.search(r"-?\d+", c).group()), r"\boxed" in c) for c in line.split("&")])
    else:
        for tr in re.findall(r"<tr>(.*?)</tr>", chunk, re.S):
            rows.append([(int(v), "cnnlab-window" in (cls or ""))
                         for cls, v in re.findall(r'<td(?: class="([^"]*)")?>(-?\d+)</td>', tr)])
    return rows


def _plain_layout(document: str, fmt: str) -> str:
    """Undo LaTeX's line-breaking aids, which change where a line may break, not what it says:
    ``\\allowbreak{}`` between words, and a long equation set as a ``multline*`` of several lines
    (read back as the one ``\\[ ... \\]`` line it stands for)."""
    if fmt != "latex":
        return document
    document = document.replace(r"\allowbreak{}", "")

    def one_line(match: re.Match) -> str:
        parts = [part.strip().removesuffix(r"\\").strip() for part in match.group(1).splitlines()]
        return r"\[ " + " ".join(part for part in parts if part) + r" \]"

    return re.sub(r"\\begin\{multline\*\}\n(.*?)\n\\end\{multline\*\}", one_line, document, flags=re.S)


def _check_window(doc: list[str], header: str, equation: str, matrix, cell, fmt: str) -> None:
    assert header in doc, f"missing window line {header!r}"
    assert equation in doc, f"missing or wrong worked line {equation!r}"
    start = doc.index(header)
    stop = doc.index(equation, start)
    grid = _grid("\n".join(doc[start + 1 : stop]), fmt)
    assert [[v for v, _ in row] for row in grid] == matrix, f"{header}: wrong matrix"
    marked = {(r, c) for r, row in enumerate(grid) for c, (_, hit) in enumerate(row) if hit}
    expected = {(r, c) for r in range(cell["rows"][0], cell["rows"][1] + 1)
                for c in range(cell["cols"][0], cell["cols"][1] + 1)}
    assert marked == expected, f"{header}: highlighted cells {sorted(marked)}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_window_product_sum_and_maximum_is_printed(seed, fmt):
    p = _pipeline(seed)
    m = _model(p)
    stages = [Conv(p["filt"], stride=p["stride"], padding=p["pad"])]
    stages += ["relu"] if p["relu"] else []
    stages += [Pool("max", p["pool_k"], stride=p["pool_s"])]
    sol = explain(np.array(p["image"]), stages)
    doc = [line.rstrip() for line in _plain_layout(render(sol, fmt), fmt).splitlines()]
    assert sum("the window at rows" in line for line in doc) == len(m["conv"]) + len(m["pool"])
    conv_src = "the padded input" if p["pad"] else "I"
    for cell in m["conv"]:
        _check_window(doc, _header(m["conv_name"], conv_src, cell, fmt), _conv_line(m["conv_name"], cell, fmt),
                      m["padded"], cell, fmt)
    for cell in m["pool"]:
        _check_window(doc, _header(m["pool_name"], m["pool_in"], cell, fmt),
                      _max_line(m["pool_name"], m["pool_in"], cell, fmt), m["pool_src"], cell, fmt)
    # the summary's sizes, and the index ranges of the defining sum, from the model
    rows, cols = len(p["image"]), len(p["image"][0])
    oh, ow = len(m["conv_out"]), len(m["conv_out"][0])
    ph, pw = max(c["at"][0] for c in m["pool"]) + 1, max(c["at"][1] for c in m["pool"]) + 1
    text = "\n".join(doc)
    assert f"Input I: {rows}x{cols}" in text
    assert f"{rows}x{cols} in, {oh}x{ow} out" in text
    assert f"{oh}x{ow} in, {ph}x{pw} out" in text
    if fmt in ("text", "md"):
        kh, kw = len(p["filt"]), len(p["filt"][0])
        assert f"sum_{{m=0..{kh - 1}, n=0..{kw - 1}}}" in text
    assert sol.answer is not None


def test_model_on_the_lecture_example():
    """The model itself, on the lecture's example worked by hand (docs/lecture-example.md)."""
    p = dict(image=[[1, 0, 2], [3, 1, 0], [0, 0, 4]], filt=[[1, 0], [0, 1]], stride=1, pad=0, relu=True,
             pool_k=2, pool_s=1)
    m = _model(p)
    assert m["conv_out"] == [[2, 0], [3, 5]]
    assert [c["rows"] for c in m["conv"]] == [(0, 1), (0, 1), (1, 2), (1, 2)]
    assert m["pool"][0]["best"] == ((1, 1), 5)
    assert _header("Conv(I)", "I", m["conv"][3], "text") == "Conv(I)[1,1]: the window at rows 1-2, cols 1-2 of I"
    assert _conv_line("Conv(I)", m["conv"][0], "text") == "  Conv(I)[0,0] = 1*1 + 0*0 + 3*0 + 1*1 = 1 + 0 + 0 + 1 = 2"
