"""What a worked solution says, as a list of blocks any writer can render.

Summary first (the pipeline and the answer), then the input, then one section per stage: its
parameters, the output-size arithmetic with the actual numbers, every output cell's window and
arithmetic (at most ``cells`` per stage), the resulting matrix, and for conv stages the
cross-correlation vs convolution note with the flipped filter.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

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
    joined,
)
from cnnlab.explain._limits import SHOW_SIDE, few
from cnnlab.explain._spec import ACTIVATION_NAMES
from cnnlab.explain._stages import (
    INPUT,
    ActivationStage,
    ConvStage,
    PoolStage,
)

if TYPE_CHECKING:  # annotations only: the solution objects render through this module
    from cnnlab.explain._solution import Comparison, Solution

ARITHMETIC = {
    num.INTEGER: "exact integer arithmetic",
    num.RATIONAL: "exact rational arithmetic (fractions)",
    num.FLOAT: "floating-point arithmetic",
}
UNIT = {"rows": "row", "cols": "column"}


def _size(a: np.ndarray) -> str:
    c, h, w = a.shape
    return f"{h}x{w}" if c == 1 else f"{c} channels of {h}x{w}"


def _grids(label: str, a: np.ndarray, highlight=None, faded=None) -> list[Grid]:
    """One grid per channel of ``a`` ``(C, H, W)``."""
    if a.shape[0] == 1:
        return [Grid(label, a[0], highlight, faded)]
    return [Grid(f"{label}[{c}]", a[c], highlight, faded) for c in range(a.shape[0])]


def _cell_label(label: str, index: tuple[int, int, int], channels: int) -> str:
    c, i, j = index
    return f"{label}[{i},{j}]" if channels == 1 else f"{label}[{c}][{i},{j}]"


def _pads_text(pads) -> str:
    (rlo, rhi), (clo, chi) = pads
    if rlo == rhi == clo == chi:
        return str(rlo)
    return f"rows ({rlo}, {rhi}), cols ({clo}, {chi})"


def _pair_text(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _span_text(positions) -> str:
    positions = list(positions)
    steps = {b - a for a, b in zip(positions[:-1], positions[1:], strict=True)}
    if len(positions) > 1 and steps == {1}:
        return f"{positions[0]}-{positions[-1]}"
    return ", ".join(str(p) for p in positions)


def _limit(cells: list, limit: int | None, left_out: int = 0) -> tuple[list, int]:
    """The cells to show (at most ``limit``) and how many are not shown, counting the ``left_out``
    cells that were never worked out (a large stage works out only a few)."""
    if limit is None or limit >= len(cells):
        return cells, left_out
    return cells[:limit], len(cells) - limit + left_out


def _terms(parts: list[list]) -> list:
    """``parts`` joined by ``+``; a long sum shows its first and last terms around ``...``."""
    kept, _ = few(parts)
    return joined([[Op("...")] if p is None else p for p in kept])


# ---------------------------------------------------------------------------------------------
# output size


def _shape_blocks(dims, pool: bool) -> list:
    rule = "out = floor((in + pad_lo + pad_hi - dilation*(k - 1) - 1) / stride) + 1"
    if pool and dims[0].ceil_mode:
        rule += " (ceil_mode=True: ceil instead of floor)"
    blocks: list = [Heading("Output size", 3), Para(f"Along each axis, {rule}:")]
    for d in dims:
        rounding = Ceil if d.ceil_mode else Floor
        numerator = (
            Num(d.size), Op("+"), Num(d.lo), Op("+"), Num(d.hi), Op("-"), Num(d.dilation),
            Op("*"), Paren((Num(d.kernel), Op("-"), Num(1))), Op("-"), Num(1),
        )
        items = [
            Sym(f"{d.axis}: out"), Op("="), rounding((Frac(numerator, (Num(d.stride),)),)),
            Op("+"), Num(1), Op("="), rounding((Frac((Num(d.span),), (Num(d.stride),)),)),
            Op("+"), Num(1),
        ]
        if d.dropped:
            items += [Op("-"), Num(1)]
        items += [Op("="), Num(d.out)]
        blocks.append(Math(items))
    for d in dims:
        unit = UNIT[d.axis]
        if not d.ceil_mode and d.remainder:
            extra = " (ceil_mode=True would add a partial window there)" if pool else ""
            blocks.append(Para(
                f"Along {d.axis}, {d.span} / {d.stride} leaves a remainder of {d.remainder}: "
                f"floor drops it, so the last {d.remainder} {unit}(s) of the padded input are "
                f"never covered by a window{extra}."
            ))
        elif d.ceil_mode and d.remainder:
            start = d.rounded * d.stride
            if d.dropped:
                blocks.append(Para(
                    f"Along {d.axis}, ceil would add a window starting at {unit} {start} of the "
                    f"padded input, past the input and its left padding; PyTorch's rule drops it."
                ))
            else:
                blocks.append(Para(
                    f"Along {d.axis}, ceil keeps a last window starting at {unit} {start} of the "
                    f"padded input that runs past its end; the cells past the end are ignored."
                ))
    return blocks


def _same_blocks(st: ConvStage) -> list:
    blocks: list = []
    if st.padding == "full":
        blocks.append(Para(
            "padding='full' pads dilation*(k - 1) cells on every side: every position where the "
            "filter overlaps the input counts (SciPy's mode='full')."
        ))
    if st.padding != "same":
        return blocks
    for d in st.shape:
        total = d.lo + d.hi
        odd = (
            "; the odd cell goes at the end (the TensorFlow/ONNX SAME_UPPER rule, which for "
            "stride 1 is PyTorch's padding='same')" if total % 2 else ""
        )
        blocks.append(Para(
            f"padding='same' along {d.axis}: out = ceil({d.size} / {d.stride}) = {d.out}, which "
            f"needs max(({d.out} - 1)*{d.stride} + {d.dilation}*({d.kernel} - 1) + 1 - {d.size}, "
            f"0) = {total} padding cell(s): {d.lo} before and {d.hi} after{odd}."
        ))
    if st.scipy_same is not None:
        fn = "correlate" if st.mode == "correlate" else "convolve"
        (rlo, rhi), (clo, chi) = st.scipy_same["pads"]
        output = st.scipy_same["output"]
        blocks.append(Para(
            f"SciPy's scipy.signal.{fn}(..., mode='same') centres the other way: it pads rows "
            f"({rlo}, {rhi}) and cols ({clo}, {chi}), the odd cell first, so its result is "
            f"shifted by one cell" + (":" if output is not None else ".")
        ))
        if output is not None:
            blocks.append(Row([Grid(f"scipy {fn} same", output)]))
    return blocks


# ---------------------------------------------------------------------------------------------
# stages


def _window_grids(label: str, grid: np.ndarray, roles: np.ndarray, rows, cols) -> Row:
    mask = np.zeros(roles.shape, dtype=bool)
    mask[np.ix_(rows, cols)] = True
    if max(roles.shape) <= SHOW_SIDE:
        return Row(_grids(label, grid, mask, roles != INPUT))
    # a large grid: show the window with a margin of one cell, and say where it is
    r0, r1 = max(min(rows) - 1, 0), min(max(rows) + 2, roles.shape[0])
    c0, c1 = max(min(cols) - 1, 0), min(max(cols) + 2, roles.shape[1])
    crop = (slice(r0, r1), slice(c0, c1))
    part = f"{label}[rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}]"
    return Row(_grids(part, grid[(slice(None), *crop)], mask[crop], (roles != INPUT)[crop]))


def _conv_blocks(n: int, st: ConvStage, limit: int | None) -> list:
    word = "a cross-correlation" if st.mode == "correlate" else "a true convolution"
    names = ", ".join(st.filter_labels)
    channels = st.input.shape[0]
    blocks: list = [Heading(f"Step {n}: {st.label}, {word} of {st.input_label} with {names}", 2)]
    if st.mode == "correlate":
        blocks.append(Para(
            "The filter slides over the input as it is, without flipping: this is what a CNN's "
            "conv layer (PyTorch's conv2d) computes. Each output cell is the sum of the "
            "element-wise products of the filter and the window under it."
        ))
    else:
        blocks.append(Para(
            "A true convolution first flips the filter by 180 degrees (rows and columns "
            "reversed), then slides it over the input: each output cell is the sum of the "
            "element-wise products of the flipped filter and the window under it."
        ))
    filter_grids = []
    for o, name in enumerate(st.filter_labels):
        filter_grids += _grids(name, st.filters[o])
        if st.mode == "convolve":
            filter_grids += _grids(f"flip({name})", st.flipped[o])
    blocks.append(Row(filter_grids))
    params = (
        f"Stride {_pair_text(st.stride)}, padding {_pads_text(st.pads)}"
        + (f" ({st.padding!r})" if isinstance(st.padding, str) else "")
        + f", dilation {_pair_text(st.dilation)}"
    )
    if st.padding_mode != "zeros" and any(lo or hi for lo, hi in st.pads):
        params += f", padding_mode '{st.padding_mode}'"
    if st.bias is not None:
        params += ", bias " + ", ".join(num.plain(b) for b in st.bias)
    blocks.append(Para(params + "."))
    blocks += _shape_blocks(st.shape, pool=False)
    blocks += _same_blocks(st)
    padded = any(lo or hi for lo, hi in st.pads)
    source = f"pad({st.input_label})" if padded else st.input_label
    if padded:
        fill = "zeros" if st.padding_mode == "zeros" else f"{st.padding_mode} copies of the edge"
        blocks.append(Para(f"The input with its padding ({fill}):"))
        blocks.append(Row(_grids(source, st.grid, None, st.roles != INPUT)))
    blocks.append(Heading("Windows", 3))
    shown, hidden = _limit(st.cells, limit, st.left_out)
    for cell in shown:
        label = _cell_label(st.label, cell.index, st.output.shape[0])
        where = "of the padded input" if padded else f"of {st.input_label}"
        who = "" if len(st.filter_labels) == 1 else f" with {st.filter_labels[cell.index[0]]}"
        blocks.append(Para(
            f"{label}: the window at rows {_span_text(cell.rows)}, cols {_span_text(cell.cols)} "
            f"{where}{who}"
        ))
        blocks.append(_window_grids(source, st.grid, st.roles, cell.rows, cell.cols))
        terms = [[Num(w, True), Op("*"), Num(k, True)]
                 for w, k in zip(cell.window.ravel(), cell.kernel.ravel(), strict=True)]
        products = [[Num(p, True)] for p in cell.products.ravel()]
        if cell.bias is not None:
            terms.append([Num(cell.bias, True)])
            products.append([Num(cell.bias, True)])
        items = [Sym(label), Op("="), *_terms(terms)]
        if len(products) > 1:
            items += [Op("="), *_terms(products)]
        items += [Op("="), Num(cell.value)]
        blocks.append(Math(items))
    if hidden:
        blocks.append(Para(f"... {hidden} more cell(s) not shown; all values are in the matrix below."))
    blocks.append(Heading("Result", 3))
    blocks.append(Row(_grids(st.label, st.output)))
    blocks += _flip_blocks(st, source, channels)
    return blocks


def _index(out: str, stride: int, tap: str, dilation: int) -> str:
    a = out if stride == 1 else f"{stride}{out}"
    b = tap if dilation == 1 else f"{dilation}{tap}"
    return f"{a}+{b}"


def _flip_blocks(st: ConvStage, source: str, channels: int) -> list:
    kh, kw = st.filters.shape[2:]
    name = st.spec.label
    rows = _index("i", st.stride[0], "m", st.dilation[0])
    cols = _index("j", st.stride[1], "n", st.dilation[1])
    ranges = (("m", "0", str(kh - 1)), ("n", "0", str(kw - 1)))
    lead: tuple = ()
    if channels > 1:
        ranges = (("c", "0", str(channels - 1)), *ranges)
        lead = ("c",)
    window = Idx(source, (*lead, rows, cols))
    corr = f"corr({st.input_label}, {name})"
    conv = f"convolve({st.input_label}, {name})"
    blocks: list = [
        Heading("Cross-correlation or convolution?", 3),
        Para("A CNN's conv layer computes a cross-correlation: the filter is used as it is,"),
        Math([Idx(corr, ("i", "j")), Op("="),
              Sum(ranges, (window, Op("*"), Idx(name, (*lead, "m", "n"))))]),
        Para("while a true convolution flips the filter by 180 degrees (rows and columns "
             "reversed) before sliding it:"),
        Math([Idx(conv, ("i", "j")), Op("="),
              Sum(ranges, (window, Op("*"), Idx(name, (*lead, f"{kh - 1}-m", f"{kw - 1}-n")))),
              Op("="), Idx(f"corr({st.input_label}, flip({name}))", ("i", "j"))]),
        Row([g for o, label in enumerate(st.filter_labels)
             for g in _grids(f"flip({label})", st.flipped[o])]),
    ]
    same = bool(np.all(st.output == st.other_output))
    if st.mode == "correlate":
        if st.symmetric:
            text = (f"Here flip({name}) = {name}: the filter is symmetric under a 180-degree "
                    "rotation, so a true convolution gives the same numbers here:")
        else:
            text = (f"Here flip({name}) differs from {name}, so a true convolution gives "
                    + ("the same numbers only by coincidence:" if same else "different numbers:"))
        blocks += [Para(text), Row(_grids(conv, st.other_output))]
    else:
        text = "This stage computed the true convolution. The CNN layer (the filter not flipped)"
        text += (" gives the same numbers, because the filter is symmetric under a 180-degree "
                 "rotation:" if st.symmetric else " would give:")
        blocks += [Para(text), Row(_grids(corr, st.other_output))]
    return blocks


_DEFINITIONS = {
    "relu": "ReLU(x) = max(x, 0): negative cells become 0, the others stay.",
    "leaky_relu": "LeakyReLU(x) = x for x > 0, and negative_slope*x otherwise",
    "elu": "ELU(x) = x for x > 0, and alpha*(exp(x) - 1) otherwise",
    "gelu": "GELU(x) = x*Phi(x), with Phi the standard normal distribution function",
    "sigmoid": "Sigmoid(x) = 1 / (1 + exp(-x)).",
    "tanh": "Tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)).",
}


def _activation_blocks(n: int, st: ActivationStage, limit: int | None) -> list:
    fn = ACTIVATION_NAMES[st.name]
    spec = st.spec
    definition = _DEFINITIONS[st.name]
    if st.name == "leaky_relu":
        definition += f" (negative_slope = {spec.negative_slope})."
    elif st.name == "elu":
        definition += f" (alpha = {spec.alpha})."
    elif st.name == "gelu":
        definition += (
            " (approximate='tanh': 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))))."
            if spec.approximate == "tanh" else "."
        )
    blocks: list = [Heading(f"Step {n}: {st.label}, {fn} applied to every cell", 2),
                    Para(definition)]
    blocks += [Para(note) for note in st.notes]
    cells = st.cells
    if st.name in ("relu", "leaky_relu"):
        cells = [c for c in cells if num.is_negative(c.arg)]
        if not cells and not st.left_out:
            blocks.append(Para(
                f"No cell of {st.input_label} is negative, so {st.label} = {st.input_label}."
            ))
        else:
            blocks.append(Para(f"The negative cells of {st.input_label} change:"))
    shown, hidden = _limit(cells, limit, st.left_out)
    channels = st.output.shape[0]
    for cell in shown:
        blocks.append(Math([Sym(_cell_label(st.label, cell.index, channels)), Op("="),
                            Call(fn, ((Num(cell.arg),),)), Op("="), Num(cell.value)]))
    if hidden:
        blocks.append(Para(f"... {hidden} more cell(s) not shown; all values are in the matrix below."))
    blocks.append(Heading("Result", 3))
    blocks.append(Row(_grids(st.label, st.output)))
    return blocks


def _pool_blocks(n: int, st: PoolStage, limit: int | None) -> list:
    kh, kw = st.kernel
    word = "max" if st.pool == "max" else "average"
    blocks: list = [Heading(f"Step {n}: {st.label}, {word} pooling of {st.input_label}", 2)]
    params = (f"A {kh}x{kw} window, stride {_pair_text(st.stride)}, padding {_pads_text(st.pads)}, "
              f"dilation {_pair_text(st.dilation)}" + (", ceil_mode" if st.ceil_mode else ""))
    if st.pool == "max":
        text = (f"{params}. Each window is replaced by its largest value (on ties the first "
                "maximum in row-major order, the cell that receives the gradient in backprop).")
    else:
        text = f"{params}. Each window is replaced by the average of its cells, sum / count"
        if st.divisor_override is not None:
            text += f"; here every sum is divided by {st.divisor_override} (divisor_override)"
        elif any(lo or hi for lo, hi in st.pads):
            text += ("; padding zeros count in the divisor (count_include_pad=True)"
                     if st.count_include_pad else
                     "; only input cells count in the divisor (count_include_pad=False)")
        text += "."
    blocks.append(Para(text))
    blocks += _shape_blocks(st.shape, pool=True)
    shown_grid = bool((st.roles != INPUT).any())
    source = f"pad({st.input_label})" if shown_grid else st.input_label
    if shown_grid:
        fill = "-inf, never the maximum" if st.pool == "max" else "zeros"
        text = f"The input with its padding ({fill})"
        if (st.roles == 2).any():
            text += ("; '.' marks cells past the padding that a ceil-mode window overhangs "
                     "(they are ignored)")
        blocks += [Para(text + ":"), Row(_grids(source, st.grid, None, st.roles != INPUT))]
    blocks.append(Heading("Windows", 3))
    shown, hidden = _limit(st.cells, limit, st.left_out)
    channels = st.output.shape[0]
    (rlo, _), (clo, _) = st.pads
    for cell in shown:
        label = _cell_label(st.label, cell.index, channels)
        where = "of the padded input" if shown_grid else f"of {st.input_label}"
        blocks.append(Para(
            f"{label}: the window at rows {_span_text(cell.rows)}, cols {_span_text(cell.cols)} "
            f"{where}"
        ))
        c = cell.index[0]
        blocks.append(_window_grids(source, st.grid[c:c + 1], st.roles, cell.rows, cell.cols))
        if st.pool == "max":
            r, col = cell.chosen[0] - rlo, cell.chosen[1] - clo
            at = f"{st.input_label}[{r},{col}]" if channels == 1 else (
                f"{st.input_label}[{c}][{r},{col}]")
            blocks.append(Math([Sym(label), Op("="), Call("max", tuple((Op("..."),) if t is None else (Num(t),)
                                                     for t in few(cell.terms)[0])),
                                Op("="), Num(cell.value), Txt(f"(the maximum is {at})")]))
        else:
            total = sum(cell.terms[1:], cell.terms[0]) if cell.terms else 0
            items = [Sym(label), Op("="),
                     Frac(tuple(_terms([[Num(t, True)] for t in cell.terms])), (Num(cell.divisor),))]
            reduced = (isinstance(total, (int, np.integer))
                       and Fraction(int(total), cell.divisor).denominator == cell.divisor)
            if len(cell.terms) > 1 and not reduced:
                items += [Op("="), Frac((Num(total),), (Num(cell.divisor),))]
            items += [Op("="), Num(cell.value)]
            blocks.append(Math(items))
    if hidden:
        blocks.append(Para(f"... {hidden} more cell(s) not shown; all values are in the matrix below."))
    blocks.append(Heading("Result", 3))
    blocks.append(Row(_grids(st.label, st.output)))
    return blocks


# ---------------------------------------------------------------------------------------------
# whole solutions


def _stage_summary(st) -> str:
    if isinstance(st, ConvStage):
        word = "cross-correlation" if st.mode == "correlate" else "true convolution"
        kh, kw = st.filters.shape[2:]
        what = (f"{word} with {', '.join(st.filter_labels)} ({kh}x{kw}), stride "
                f"{_pair_text(st.stride)}, padding {_pads_text(st.pads)}")
        if st.dilation != (1, 1):
            what += f", dilation {_pair_text(st.dilation)}"
    elif isinstance(st, ActivationStage):
        what = f"{ACTIVATION_NAMES[st.name]} applied to every cell"
    else:
        word = "max" if st.pool == "max" else "average"
        what = (f"{word} pooling {st.kernel[0]}x{st.kernel[1]}, stride {_pair_text(st.stride)}, "
                f"padding {_pads_text(st.pads)}" + (", ceil_mode" if st.ceil_mode else ""))
    return f"{st.label}: {what}; {_size(st.input)} in, {_size(st.output)} out"


def _final(sol: Solution) -> np.ndarray:
    """The final matrix with its channel axis."""
    return sol.stages[-1].output if sol.stages else sol.input


def _answer_items(sol: Solution) -> list:
    answer = sol.answer
    if isinstance(answer, np.ndarray):
        return [Row(_grids(sol.final_label, _final(sol)))]
    return [Math([Sym(sol.final_label), Op("="), Num(answer)])]


def solution_blocks(sol: Solution, limit: int | None = None, title: str | None = None) -> list:
    arithmetic = [ARITHMETIC[num.arithmetic_of(sol.input)]]
    arithmetic += [ARITHMETIC[st.arithmetic] for st in sol.stages]
    seen = list(dict.fromkeys(arithmetic))
    lines = [f"Input {sol.label}: {_size(sol.input)}; " + ", then ".join(seen)]
    lines += [f"Step {n}, {_stage_summary(st)}" for n, st in enumerate(sol.stages, start=1)]
    answer = sol.answer
    if isinstance(answer, np.ndarray):
        lines.append(f"Answer: {sol.final_label}, the {_size(_final(sol))} matrix at the end")
    else:
        lines.append(f"Answer: {sol.final_label} = {num.plain(answer)}")
    blocks: list = [
        Heading(title or f"Worked solution: {sol.final_label}", 1),
        Heading("Summary", 2),
        Items(lines),
        Heading("Input", 2),
        Row(_grids(sol.label, sol.input)),
    ]
    for n, st in enumerate(sol.stages, start=1):
        if isinstance(st, ConvStage):
            blocks += _conv_blocks(n, st, limit)
        elif isinstance(st, ActivationStage):
            blocks += _activation_blocks(n, st, limit)
        elif isinstance(st, PoolStage):
            blocks += _pool_blocks(n, st, limit)
    blocks.append(Heading("Answer", 2))
    blocks += _answer_items(sol)
    if sol.alternative is not None:
        convs = [st for st in sol.stages if isinstance(st, ConvStage)]
        other = "a true convolution" if convs[0].mode == "correlate" else "a cross-correlation"
        alt = sol._squeeze(sol.alternative)
        final = sol.stages[-1].output
        same = alt.shape == sol._squeeze(final).shape and bool(np.all(alt == sol._squeeze(final)))
        reason = ""
        if same:
            reason = (" (the same, because every filter is symmetric under a 180-degree rotation)"
                      if all(st.symmetric for st in convs) else " (the same)")
        if alt.size == 1:
            blocks.append(Para(
                f"With {other} in every conv stage instead, the answer would be "
                f"{num.plain(alt.ravel()[0])}{reason}."
            ))
        else:
            blocks.append(Para(f"With {other} in every conv stage instead, the result would be{reason}:"))
            blocks.append(Row(_grids(sol.final_label, sol.alternative)))
    return blocks


def comparison_blocks(cmp: Comparison, limit: int | None = None) -> list:
    a, b = cmp.correlation, cmp.convolution
    blocks: list = [
        Heading(f"Cross-correlation vs convolution: {a.final_label}", 1),
        Para("The same pipeline twice, side by side: first with every conv stage a "
             "cross-correlation (the CNN layer: the filter as given), then a true convolution "
             "(the filter flipped by 180 degrees)."),
    ]
    for sa, sb in zip(a.stages, b.stages, strict=True):
        if isinstance(sa, ConvStage):
            grids = []
            for o, name in enumerate(sa.filter_labels):
                grids += _grids(name, sa.filters[o]) + _grids(f"flip({name})", sa.flipped[o])
            blocks.append(Row(grids))
        blocks.append(Row(_grids(f"corr: {sa.label}", sa.output)
                          + _grids(f"convolve: {sb.label}", sb.output)))
    blocks.append(Heading("Answers", 2))
    if a.output.size == 1:
        blocks.append(Math([Txt("cross-correlation:"), Sym(a.final_label), Op("="),
                            Num(a.answer), Op(","), Txt("convolution:"), Sym(b.final_label),
                            Op("="), Num(b.answer)]))
    blocks += solution_blocks(a, limit, f"Worked solution with cross-correlation: {a.final_label}")
    blocks += solution_blocks(b, limit, f"Worked solution with convolution: {b.final_label}")
    return blocks
