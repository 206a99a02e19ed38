"""Rendering of a worked backward pass (:class:`cnnlab.explain._backprop.Backprop`) as document
blocks, which the text, Markdown, LaTeX and HTML writers turn into output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._backprop_steps import ActivationGrad, ConvGrad, LossStep, PoolGrad
from cnnlab.explain._document import (
    ARITHMETIC,
    _cell_label,
    _grids,
    _limit,
    _span_text,
    _stage_summary,
    _terms,
    _window_grids,
)
from cnnlab.explain._expr import Heading, Items, Math, Num, Op, Para, Row, Sum, Sym, Txt, joined
from cnnlab.explain._limits import DEFAULT_CELLS, FULL, MAX_TERMS, chosen, few, representative
from cnnlab.explain._solution import INPUT
from cnnlab.functional._windows import flip

if TYPE_CHECKING:
    from cnnlab.explain._backprop import Backprop

def _d(label: str) -> str:
    return f"dL/d{label}"


def _more(hidden: int) -> list:
    return [Para(f"... {hidden} more cell(s) not shown; all values are in the matrix below.")] if hidden else []


def _marked(label: str, a: np.ndarray, roles: np.ndarray, rows, cols) -> Row:
    """``a`` (C, H, W) with the cells at ``rows`` x ``cols`` highlighted and non-input cells faded
    (only the part around them when ``a`` is large)."""
    return _window_grids(label, a, roles, rows, cols)


def _picked(indices: list, limit: int | None) -> tuple[list, int]:
    """A few representative ``indices`` of a large step (all of a small one), then at most
    ``limit`` of those, and how many are not shown."""
    keep = [indices[k] for (k,) in chosen((len(indices),), limit)] if indices else []
    return keep, len(indices) - len(keep)


def _few_cells(a: np.ndarray) -> list:
    """The cells of ``a`` in row-major order; of a large ``a`` only the ends an elided sum shows,
    with ``MAX_TERMS + 1`` cells in all so that the sum is still elided (the middle is never listed)."""
    flat = a.ravel()
    if flat.size <= MAX_TERMS:
        return list(flat)
    return [*flat[:4], *flat[4:4 + MAX_TERMS - 7], *flat[-4:]]


def _products(a: np.ndarray, b: np.ndarray) -> list:
    if a.size > MAX_TERMS:  # only the ends are shown: do not list the middle
        a = np.concatenate([a.ravel()[:4], a.ravel()[-4:]])
        b = np.concatenate([b.ravel()[:4], b.ravel()[-4:]])
        pairs: list = [*zip(a[:4], b[:4], strict=True), None, *zip(a[4:], b[4:], strict=True)]
        return joined([[Op("...")] if p is None else [Num(p[0], True), Op("*"), Num(p[1], True)] for p in pairs])
    pairs = list(zip(a.ravel(), b.ravel(), strict=True))
    kept, _ = few(pairs)
    return joined([[Op("...")] if p is None else [Num(p[0], True), Op("*"), Num(p[1], True)] for p in kept])


def _loss_blocks(step: LossStep, limit: int | None) -> list:
    y, label = step.output, step.label
    channels = y.shape[0]
    blocks: list = [Heading(f"The loss and {_d(label)}", 2)]
    if step.name == "sum":
        blocks += [Para(f"L is the sum of the cells of {label}, so every cell has dL/d(cell) = 1."),
                   Math([Sym("L"), Op("="), *_terms([[Num(v, True)] for v in _few_cells(y)]), Op("="),
                         Num(step.value)])]
    elif step.name == "mse":
        n = y.size
        mean = step.reduction == "mean"
        blocks += [Para(f"L is the squared error to the target T, {'averaged over' if mean else 'added up over'} "
                        f"the {n} cells: L = {'(1/' + str(n) + ') ' if mean else ''}sum (Y - T)^2, so "
                        f"dL/dY = 2 (Y - T){' / ' + str(n) if mean else ''}."),
                   Row(_grids("T", step.target)), Math([Sym("L"), Op("="), Num(step.value)])]
        indices = representative(y.shape, None if y.size <= FULL else DEFAULT_CELLS)
        shown, hidden = _picked(indices, limit)
        hidden += y.size - len(indices)
        for index in shown:
            items = [Sym(_cell_label(_d(label), index, channels)), Op("="), Num(2), Op("*"),
                     Txt(f"({num.plain(y[index])} - {num.plain(step.target[index])})")]
            if mean:
                items += [Op("/"), Num(n)]
            blocks.append(Math(items + [Op("="), Num(step.grad[index])]))
        blocks += _more(hidden)
    else:
        blocks += [Para(f"Cross-entropy: the {y.size} cells of {label}, read row by row, are class scores z; "
                        f"p = softmax(z), L = -log p[{step.target}], and dL/dz = p - onehot({step.target})."),
                   Row(_grids("p", step.probabilities)),
                   Math([Sym("L"), Op("="), Txt(f"-log({num.plain(step.probabilities.ravel()[step.target])})"),
                         Op("="), Num(step.value)])]
    blocks.append(Row(_grids(_d(label), step.grad)))
    return blocks


def _pool_back_blocks(n: int, step: PoolGrad, limit: int | None) -> list:
    st = step.stage
    src, out = st.input_label, st.label
    channels = st.output.shape[0]
    blocks: list = [Heading(f"Back through step {n}: {out}", 2)]
    if st.pool == "max":
        blocks.append(Para(
            f"Only the maximum of each window affected {out}, so each cell of {_d(out)} goes to the "
            f"cell of {src} that held its window's maximum; the other cells of the window get 0. On ties "
            "the first maximum in row-major order gets it (cnnlab's max_pool_backward and PyTorch choose "
            "the same cell). Cells chosen by several windows add up their gradients."))
    else:
        blocks.append(Para(
            f"Every cell of a window counts 1/count in its average, so each cell of {_d(out)} is divided "
            f"by the window's count and added to every {src} cell of the window (padding takes its share "
            "away). Cells in several windows add up their shares."))
    blocks.append(Row(_grids(_d(out), step.grad_out)))
    shown, hidden = _limit(step.routes, limit, step.left_out)
    for route in shown:
        c = route.index[0]
        where = ", ".join(_cell_label(src, (c, r, q), channels) for r, q in route.targets)
        items = [Sym(_cell_label(_d(out), route.index, channels)), Op("="), Num(route.grad)]
        if st.pool == "max":
            note = f"goes to {where}, the maximum"
            if route.tied > 1:
                note += f" (the first of {route.tied} tied cells)"
        else:
            items += [Op("/"), Num(route.divisor), Op("="), Num(route.share)]
            note = f"added to {where}"
        blocks.append(Math(items + [Txt(note)]))
    blocks += _more(hidden)
    blocks += [Heading("Result", 3), Row(_grids(_d(src), step.grad_in))]
    return blocks


_DERIVATIVES = {
    "relu": "ReLU'(x) = 1 for x > 0 and 0 for x <= 0 (at the kink x = 0 the subgradient 0 is used, as in "
            "PyTorch): the gradient passes where the input was positive and stops elsewhere.",
    "leaky_relu": "LeakyReLU'(x) = 1 for x > 0 and negative_slope for x <= 0.",
    "elu": "ELU'(x) = 1 for x > 0 and alpha*exp(x) for x <= 0.",
    "gelu": "GELU'(x) = Phi(x) + x*phi(x) (Phi, phi: the standard normal distribution and density).",
    "sigmoid": "Sigmoid'(x) = s(x)*(1 - s(x)).",
    "tanh": "Tanh'(x) = 1 - tanh(x)^2.",
}


def _activation_back_blocks(n: int, step: ActivationGrad, limit: int | None) -> list:
    st = step.stage
    src, out = st.input_label, st.label
    channels = st.output.shape[0]
    blocks: list = [Heading(f"Back through step {n}: {out}", 2),
                    Para(f"{_DERIVATIVES[st.name]} Cell by cell, {_d(src)} = {_d(out)} * f'({src}):"),
                    Row(_grids(src, st.input) + _grids(f"f'({src})", step.derivative)
                        + _grids(_d(out), step.grad_out))]
    if st.name == "relu":
        stopped = (np.array([not num.is_negative(-v) for v in st.input.ravel()], dtype=bool)
                   .reshape(st.input.shape)) if num.is_exact(st.input) else st.input <= 0
        flat = np.flatnonzero(stopped)
        keep = [int(flat[k]) for (k,) in chosen((len(flat),), limit)] if len(flat) else []
        shown = [tuple(int(v) for v in np.unravel_index(f, st.input.shape)) for f in keep]
        hidden = len(flat) - len(shown)
        blocks.append(Para(f"The cells where {src} <= 0 stop the gradient:" if len(flat)
                           else f"No cell of {src} is <= 0: the gradient passes unchanged."))
    else:
        indices = representative(st.input.shape, None if st.input.size <= FULL else DEFAULT_CELLS)
        shown, hidden = _picked(indices, limit)
        hidden += st.input.size - len(indices)
    for index in shown:
        blocks.append(Math([Sym(_cell_label(_d(src), index, channels)), Op("="), Num(step.grad_out[index], True),
                            Op("*"), Num(step.derivative[index], True), Op("="), Num(step.grad_in[index]),
                            Txt(f"({src} = {num.plain(st.input[index])})")]))
    blocks += _more(hidden)
    blocks += [Heading("Result", 3), Row(_grids(_d(src), step.grad_in))]
    return blocks


def _conv_back_blocks(n: int, step: ConvGrad, limit: int | None) -> list:
    st = step.stage
    src, out = st.input_label, st.label
    kh, kw = st.applied.shape[2:]
    padded = any(lo or hi for lo, hi in st.pads)
    grid_label = f"pad({src})" if padded else src
    g = _d(out)
    blocks: list = [Heading(f"Back through step {n}: {out}", 2), Row(_grids(g, step.grad_out))]
    if step.grad_bias is not None:
        blocks.append(Para(f"Each bias is added to every cell of its output channel, so dL/db is the sum of {g}:"))
        for o, name in enumerate(st.filter_labels):
            cells = [[Num(v, True)] for v in _few_cells(step.grad_out[o])]
            blocks.append(Math([Sym(f"dL/db[{name}]"), Op("="), *_terms(cells), Op("="), Num(step.grad_bias[o])]))
    applied = "flip(F)" if st.mode == "convolve" else "F"
    (s0, s1), (d0, d1) = st.stride, st.dilation
    rows = f"{'' if s0 == 1 else s0}i+{'' if d0 == 1 else d0}m"
    cols = f"{'' if s1 == 1 else s1}j+{'' if d1 == 1 else d1}n"
    blocks += [Heading(f"The filter gradient d{'L/d' + applied}", 3),
               Para(f"Filter cell [m, n] multiplied the {grid_label} cell [{rows}, {cols}] into {out}[i, j], so its "
                    f"gradient is the sum of those cells times {g}: a cross-correlation of {grid_label} with {g}"
                    + (" (its taps spaced by the stride)." if st.stride != (1, 1) else ".")),
               Math([Sym(f"dL/d{applied}[m, n]"), Op("="),
                     Sum((("i", "0", str(step.grad_out.shape[1] - 1)), ("j", "0", str(step.grad_out.shape[2] - 1))),
                         (Sym(f"{g}[i, j]"), Op("*"), Sym(f"{grid_label}[{rows}, {cols}]")))])]
    shown, hidden = _limit(step.filter_cells, limit, step.filter_left_out)
    for cell in shown:
        o, c, m, k = cell.index
        name = st.filter_labels[o] + ("" if st.input.shape[0] == 1 else f"[{c}]")
        where = f"rows {_span_text(cell.rows)}, cols {_span_text(cell.cols)}"
        blocks.append(Para(f"d{name}[{m},{k}]: the cells at {where}"))
        blocks.append(_marked(grid_label, st.grid[c:c + 1], st.roles, cell.rows, cell.cols))
        blocks.append(Math([Sym(f"dL/d{name}[{m},{k}]"), Op("="), *_products(cell.window, cell.grads),
                            Op("="), Num(cell.value)]))
    blocks += _more(hidden)
    grads = [gr for o, name in enumerate(st.filter_labels) for gr in _grids(f"dL/d{name}", step.grad_filters[o])]
    if st.mode == "convolve":
        blocks.append(Para("This stage applied the flipped filter, so dL/dF is that gradient flipped back "
                           "by 180 degrees:"))
    blocks.append(Row(grads))
    # the input gradient
    blocks += [Heading(f"The input gradient {_d(src)}", 3),
               Para(f"{_d(src)} is a full convolution of {g} with the filter: pad {g} by dilation*(k - 1) cells "
                    f"on each side ({d0 * (kh - 1)} row(s), {d1 * (kw - 1)} column(s)) and slide the flipped filter "
                    "over it (the transposed convolution).")]
    if st.stride != (1, 1):
        blocks += [Para(f"With stride {st.stride[0]}x{st.stride[1]}, first spread {g} out: stride - 1 zeros "
                        "between neighbouring cells (the dilated upstream gradient)."),
                   Row(_grids(f"dilate({g})", step.dilated))]
    if any(step.tail):
        blocks.append(Para(f"The last {step.tail[0]} row(s) and {step.tail[1]} column(s) of {grid_label} were never "
                           "reached by a window: one more zero row/column each is padded after, so they get 0."))
    flips = [gr for o, name in enumerate(st.filter_labels) for gr in _grids(f"flip({name})", flip(st.applied[o], 2))]
    blocks.append(Row(_grids(f"P = pad({g})", step.padded, None, step.padded_roles != INPUT) + flips))
    shown, hidden = _limit(step.input_cells, limit, step.input_left_out)
    for cell in shown:
        label = _cell_label(f"dL/d{grid_label}", cell.index, st.input.shape[0])
        blocks.append(_marked("P", step.padded, step.padded_roles, cell.rows, cell.cols))
        blocks.append(Math([Sym(label), Op("="), *_products(cell.window, cell.kernel), Op("="), Num(cell.value)]))
    blocks += _more(hidden)
    if padded:
        text = ("The padding cells were zeros added around the input: their gradient is dropped."
                if st.padding_mode == "zeros" else
                f"Padding mode '{st.padding_mode}' copied input cells into the border, so each border cell's "
                "gradient is added back to the cell it was copied from.")
        blocks += [Para(text), Row(_grids(f"dL/d{grid_label}", step.grad_grid, None, st.roles != INPUT))]
    blocks += [Heading("Result", 3), Row(_grids(_d(src), step.grad_in))]
    return blocks


def _blocks(bp: Backprop, limit: int | None) -> list:
    sol, loss = bp.forward, bp.loss
    wrt = [_d(sol.label)] + [f"dL/d{name}" for s in bp.conv_steps for name in s.stage.filter_labels]
    kinds = [ARITHMETIC[s.arithmetic] for s in bp.steps]
    lines = [f"Step {k}, {_stage_summary(st)}" for k, st in enumerate(sol.stages, start=1)]
    how = f" ({loss.reduction} of the squared errors)" if loss.name == "mse" else ""
    lines += [f"Loss: {loss.name}{how} of {loss.label}, L = {num.plain(loss.value)}",
              "Backward: " + ", then ".join(dict.fromkeys([ARITHMETIC[loss.arithmetic], *kinds])),
              "Answer: " + ", ".join(wrt) + " (at the end)"]
    blocks: list = [Heading(f"Backprop by hand: {', '.join(wrt)}", 1), Heading("Summary", 2), Items(lines),
                    Heading("The forward pass", 2),
                    Para("(cnnlab explain works out each of these matrices cell by cell.)"),
                    Row(_grids(sol.label, sol.input) + [g for st in sol.stages for g in _grids(st.label, st.output)])]
    blocks += _loss_blocks(loss, limit)
    for k, step in zip(range(len(sol.stages), 0, -1), bp.steps, strict=True):
        if isinstance(step, PoolGrad):
            blocks += _pool_back_blocks(k, step, limit)
        elif isinstance(step, ActivationGrad):
            blocks += _activation_back_blocks(k, step, limit)
        else:
            blocks += _conv_back_blocks(k, step, limit)
    answer: list = _grids(_d(sol.label), bp.steps[-1].grad_in if bp.steps else loss.grad)
    for s in bp.conv_steps:
        answer += [g for o, name in enumerate(s.stage.filter_labels) for g in _grids(f"dL/d{name}", s.grad_filters[o])]
    blocks += [Heading("Answer", 2), Row(answer)]
    for s in bp.conv_steps:
        if s.grad_bias is not None:
            blocks.append(Math([Txt("dL/db ="), *joined([[Num(v)] for v in s.grad_bias], ",")]))
    return blocks
