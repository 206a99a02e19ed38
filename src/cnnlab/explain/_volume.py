"""Worked solutions for volumes: a 3-D input ``(D, H, W)`` or ``(C, D, H, W)`` with filters that
have a depth axis, through conv -> activation -> pool.

The numbers come from the library (:func:`cnnlab.functional.conv3d`, ``max_pool3d``,
``avg_pool3d`` and the activations); the chosen cells are worked out from the padded volume with
their window's depths, rows and columns, each product and the sum (the tests check that the sum
is the library's value).  A volume is printed as its depth slices side by side, ``I[z=0]``,
``I[z=1]``, ...; a window as the slices it touches, the window highlighted in each.

Limits as everywhere in :mod:`cnnlab.explain`: the size of every volume and the multiply-adds of
every stage are checked (:mod:`cnnlab.explain._limits`) before any arithmetic.

>>> sol = explain_volume(np.arange(8).reshape(2, 2, 2), [Conv(np.ones((2, 2, 2), dtype=int))])
>>> sol.answer
28
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import cnnlab.functional as _functional
from cnnlab.explain import _numbers as num
from cnnlab.explain._document import _limit, _span_text, _terms
from cnnlab.explain._expr import Call, Frac, Grid, Heading, Items, Math, Num, Op, Para, Row, Sym, Txt
from cnnlab.explain._limits import SHOW_SIDE, cell_count, check_values, check_work, few
from cnnlab.explain._limits import chosen as chosen_cells
from cnnlab.explain._plans import check_fit, extent, plan_activation, shaped_filters
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._spec import (
    ACTIVATION_NAMES,
    CONV_MODES,
    POOL_KINDS,
    Activation,
    Conv,
    Pool,
)
from cnnlab.functional._args import (
    check_bool,
    check_choice,
    ntuple,
    out_sizes,
    padding_pairs,
    same_padding,
)

OP = "explain (volume)"
AXES = ("depth", "rows", "cols")
MAX_SLICES = 6
"""A volume with more depth slices than this is printed with its middle slices left out."""


@dataclass
class VolumeCell:
    """One worked output cell: ``index`` ``(o, z, i, j)``, the window's ``depths``, ``rows`` and
    ``cols`` in the padded volume, its values (``(C, kD, kH, kW)``), and for a conv the applied
    filter, the products and the bias; for a pool the terms that count and the divisor."""

    index: tuple[int, int, int, int]
    depths: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    value: Any
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    bias: Any = None
    terms: list = field(default_factory=list)
    divisor: int | None = None


@dataclass
class VolumeStage:
    """One stage of a volume pipeline: ``kind`` is 'conv', 'activation' or 'pool'."""

    kind: str
    label: str
    input_label: str
    input: np.ndarray  # (C, D, H, W)
    output: np.ndarray  # (O, oD, oH, oW)
    params: str
    grid: np.ndarray | None = None  # the padded input
    roles: np.ndarray | None = None  # True where the padded input is input, not padding
    dims: list = field(default_factory=list)  # (axis, size, k, s, d, lo, hi, out)
    filters: np.ndarray | None = None
    mode: str = "correlate"
    name: str = ""
    cells: list = field(default_factory=list)
    left_out: int = 0
    # a conv's filters as applied (flipped for a true convolution), bias, stride, pads, dilation
    applied: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple = ()
    pads: tuple = ()
    dilation: tuple = ()
    # a pool's window and options; an activation's parameters
    kernel: tuple = ()
    options: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# checks and plans


def _volume_input(x: Any) -> np.ndarray:
    v = num.as_values(OP, "input", x)
    check_values(OP, f"the input (shape {v.shape})", v.size)
    if v.ndim == 3:
        v = v[None]
    elif v.ndim != 4:
        raise ValueError(
            f"{OP}: a volume must be (D, H, W) or (C, D, H, W) with channels, got shape {v.shape}"
        )
    return _plain(v, "input")


def _plain(v: np.ndarray, name: str) -> np.ndarray:
    if num.is_exact(v):
        raise ValueError(
            f"{OP}: {name} holds fractions; volumes are worked out in integer or floating-point "
            f"arithmetic only (give ints or floats)"
        )
    return v


def _volume_filters(value: Any, channels: int) -> np.ndarray:
    return shaped_filters(OP, _plain(num.as_values(OP, "filters", value), "filters"), channels, 3, "a volume")


def _padded_count(channels: int, sizes, pads) -> tuple[int, str]:
    padded = [s + lo + hi for s, (lo, hi) in zip(sizes, pads, strict=True)]
    return channels * int(np.prod(padded)), extent(channels, sizes, pads)


def _conv_plan(op: str, spec: Conv, shape: tuple[int, ...]) -> dict:
    channels, *sizes = shape
    check_choice(op, "mode", spec.mode, CONV_MODES)
    if spec.padding_mode != "zeros":
        raise ValueError(
            f"{op}: volumes are padded with zeros only, got padding_mode {spec.padding_mode!r}"
        )
    filters = _volume_filters(spec.filters, channels)
    bias = None
    if spec.bias is not None:
        bias = _plain(num.as_values(op, "bias", spec.bias), "bias")
        bias = np.repeat(bias[None], filters.shape[0]) if bias.ndim == 0 else bias
        if bias.shape != (filters.shape[0],):
            raise ValueError(
                f"{op}: bias must be one number per filter ({filters.shape[0]}), got shape {bias.shape}"
            )
    kernel = filters.shape[2:]
    stride = ntuple(op, "stride", spec.stride, 3, minimum=1)
    dilation = ntuple(op, "dilation", spec.dilation, 3, minimum=1)
    padding = spec.padding
    if padding == "valid":
        pads = ((0, 0),) * 3
    elif padding == "same":
        pads = same_padding(sizes, kernel, stride, dilation)
    elif padding == "full":
        pads = tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation, strict=True))
    elif isinstance(padding, str):
        raise ValueError(
            f"{op}: padding must be an int, a tuple, (lo, hi) pairs, 'valid', 'same' or 'full', "
            f"got {padding!r}"
        )
    else:
        pads = padding_pairs(op, padding, 3)
    check_fit(op, "filter", sizes, kernel, dilation, pads, AXES)
    count, shown = _padded_count(channels, sizes, pads)
    check_values(op, f"the padded input ({shown})", count)
    out = out_sizes(op, sizes, kernel, stride, pads, dilation)
    check_values(op, "the output", filters.shape[0] * int(np.prod(out)))
    check_work(op, "the conv", filters.shape[0] * int(np.prod(out)) * filters[0].size, False)
    return {"spec": spec, "filters": filters, "bias": bias, "kernel": kernel, "stride": stride,
            "dilation": dilation, "pads": tuple(tuple(p) for p in pads), "out": out}


def _pool_plan(op: str, spec: Pool, shape: tuple[int, ...]) -> dict:
    channels, *sizes = shape
    kind = check_choice(op, "pool", spec.kind, POOL_KINDS)
    kernel = ntuple(op, "kernel_size", spec.kernel_size, 3, minimum=1)
    stride = kernel if spec.stride is None else ntuple(op, "stride", spec.stride, 3, minimum=1)
    pads = tuple(tuple(p) for p in padding_pairs(op, spec.padding, 3))
    dilation = ntuple(op, "dilation", spec.dilation, 3, minimum=1)
    if check_bool(op, "ceil_mode", spec.ceil_mode):
        raise ValueError(f"{op}: ceil_mode is not supported for volumes (floor rounding only)")
    count_include_pad = check_bool(op, "count_include_pad", spec.count_include_pad)
    divisor = spec.divisor_override
    if divisor is not None:
        divisor = ntuple(op, "divisor_override", divisor, 1, minimum=1)[0]
    check_fit(op, "pooling window", sizes, kernel, dilation, pads, AXES)
    count, shown = _padded_count(channels, sizes, pads)
    check_values(op, f"the padded input ({shown})", count)
    out = out_sizes(op, sizes, kernel, stride, pads, dilation)
    check_work(op, "the pooling", channels * int(np.prod(out)) * int(np.prod(kernel)), False)
    for axis, size, k, s, d, (lo, _), o in zip(AXES, sizes, kernel, stride, dilation, pads, out, strict=True):
        for p in range(o):
            if not any(0 <= p * s + t * d - lo < size for t in range(k)):
                raise ValueError(
                    f"{op}: pool padding {pads} leaves window {p} along {axis} with no input cell "
                    f"(input size {size}, kernel {k}, stride {s}); reduce the padding"
                )
    return {"spec": spec, "kind": kind, "kernel": kernel, "stride": stride, "pads": pads,
            "dilation": dilation, "count_include_pad": count_include_pad, "divisor": divisor, "out": out}


def _plans(shape: tuple[int, ...], stages: Any) -> list:
    if isinstance(stages, (Conv, Activation, Pool, str)):
        stages = [stages]
    plans = []
    for i, spec in enumerate(stages, start=1):
        if isinstance(spec, str):
            spec = Activation(spec)
        if isinstance(spec, Conv):
            plan = _conv_plan(f"{OP} (conv stage {i})", spec, shape)
            shape = (plan["filters"].shape[0], *plan["out"])
            plans.append(("conv", plan))
        elif isinstance(spec, Activation):
            act = plan_activation(f"{OP} (activation stage {i})", spec)
            plans.append(("activation", {"spec": spec, "name": act.name, "params": act.params}))
        elif isinstance(spec, Pool):
            plan = _pool_plan(f"{OP} (pool stage {i})", spec, shape)
            shape = (shape[0], *plan["out"])
            plans.append(("pool", plan))
        else:
            raise TypeError(
                f"{OP}: stage {i} must be a Conv, Activation or Pool (or an activation name), "
                f"got {type(spec).__name__}"
            )
    return plans


# ---------------------------------------------------------------------------------------------
# the stages


def _taps(p: int, s: int, k: int, d: int) -> tuple[int, ...]:
    return tuple(p * s + t * d for t in range(k))


def _dims(sizes, plan: dict) -> list:
    return [(axis, size, k, s, d, lo, hi, o) for axis, size, k, s, d, (lo, hi), o in zip(
        AXES, sizes, plan["kernel"], plan["stride"], plan["dilation"], plan["pads"], plan["out"], strict=True)]


def _conv_stage(x: np.ndarray, plan: dict, label: str, select: int | None) -> VolumeStage:
    filters, bias = plan["filters"], plan["bias"]
    if num.common_arithmetic(x, filters, *(() if bias is None else (bias,))) == num.FLOAT:
        x, filters = x.astype(np.float64), filters.astype(np.float64)
        bias = None if bias is None else bias.astype(np.float64)
    mode = plan["spec"].mode
    # a true convolution flips the filter along all three axes (depth, rows and columns)
    applied = np.ascontiguousarray(filters[..., ::-1, ::-1, ::-1]) if mode == "convolve" else filters
    output = _functional.conv3d(x, applied, bias, plan["stride"], plan["pads"], plan["dilation"])
    grid = np.pad(x, ((0, 0), *plan["pads"]))
    roles = np.pad(np.ones(x.shape[1:], dtype=bool), plan["pads"])
    cells = []
    picked = chosen_cells(output.shape, select)
    for o, z, i, j in picked:
        depths, rows, cols = (_taps(p, s, k, d) for p, s, k, d in zip(
            (z, i, j), plan["stride"], plan["kernel"], plan["dilation"], strict=True))
        window = grid[:, list(depths)][:, :, list(rows)][:, :, :, list(cols)]
        cells.append(VolumeCell((o, z, i, j), depths, rows, cols, window, output[o, z, i, j],
                                kernel=applied[o], products=window * applied[o],
                                bias=None if bias is None else bias[o]))
    params = (f"Stride {plan['stride']}, padding {plan['pads']}, dilation {plan['dilation']}"
              + ("" if bias is None else ", bias " + ", ".join(num.plain(b) for b in bias)) + ".")
    return VolumeStage("conv", label, "", x, output, params, grid, roles, _dims(x.shape[1:], plan),
                       filters, mode, cells=cells, left_out=output.size - len(picked), applied=applied,
                       bias=bias, stride=plan["stride"], pads=plan["pads"], dilation=plan["dilation"])


def _activation_stage(x: np.ndarray, plan: dict, label: str, select: int | None) -> VolumeStage:
    name = plan["name"]
    source = x if (name == "relu" and x.dtype.kind in "iu") else x.astype(np.float64)
    output = getattr(_functional, name)(source, **plan["params"])
    picked = chosen_cells(x.shape, select)
    cells = [VolumeCell(index, (), (), (), np.array(x[index]), output[index]) for index in picked]
    params = ", ".join(f"{k} {v}" for k, v in plan["params"].items())
    return VolumeStage("activation", label, "", x, output, params + "." if params else "",
                       name=name, cells=cells, left_out=output.size - len(picked),
                       options=dict(plan["params"]))


def _pool_stage(x: np.ndarray, plan: dict, label: str, select: int | None) -> VolumeStage:
    kind = plan["kind"]
    if kind == "max":
        output = _functional.max_pool3d(x, plan["kernel"], plan["stride"], plan["pads"], plan["dilation"])
    else:
        # an average is a float here (the terms shown keep the input's integers)
        output = _functional.avg_pool3d(x.astype(np.float64), plan["kernel"], plan["stride"], plan["pads"], False,
                                        plan["count_include_pad"], plan["divisor"], plan["dilation"])
    fill = -np.inf if kind == "max" else 0
    # max pooling pads with -inf (never chosen); integers stay integers beside it
    grid = np.pad(x.astype(object) if kind == "max" else x, ((0, 0), *plan["pads"]),
                  constant_values=fill)
    roles = np.pad(np.ones(x.shape[1:], dtype=bool), plan["pads"])
    cells = []
    picked = chosen_cells(output.shape, select)
    for c, z, i, j in picked:
        depths, rows, cols = (_taps(p, s, k, d) for p, s, k, d in zip(
            (z, i, j), plan["stride"], plan["kernel"], plan["dilation"], strict=True))
        window = grid[c][list(depths)][:, list(rows)][:, :, list(cols)][None]
        inside = roles[list(depths)][:, list(rows)][:, :, list(cols)]
        counted = inside | (kind == "avg" and plan["count_include_pad"])
        terms = list(window[0][counted])
        divisor = None if kind == "max" else (plan["divisor"] or len(terms))
        cells.append(VolumeCell((c, z, i, j), depths, rows, cols, window, output[c, z, i, j],
                                terms=terms, divisor=divisor))
    params = f"{kind} pooling, window {plan['kernel']}, stride {plan['stride']}, padding {plan['pads']}"
    if plan["dilation"] != (1, 1, 1):
        params += f", dilation {plan['dilation']}"
    if kind == "avg" and plan["divisor"]:
        params += f", divisor {plan['divisor']}"
    elif kind == "avg" and any(lo or hi for lo, hi in plan["pads"]):
        params += ", padding zeros " + ("counted" if plan["count_include_pad"] else "not counted")
    params += " (max pooling pads with -inf)." if kind == "max" and any(
        lo or hi for lo, hi in plan["pads"]) else "."
    return VolumeStage("pool", label, "", x, output, params, grid, roles, _dims(x.shape[1:], plan),
                       mode=kind, name=kind, cells=cells, left_out=output.size - len(picked),
                       stride=plan["stride"], pads=plan["pads"], dilation=plan["dilation"],
                       kernel=plan["kernel"], options={"count_include_pad": plan["count_include_pad"],
                                                       "divisor_override": plan["divisor"]})


# ---------------------------------------------------------------------------------------------
# the document


def _kept(depths: list[int]) -> tuple[list[int], list[int]]:
    """The depth slices printed (all, or the first and last three of more than
    :data:`MAX_SLICES`) and those left out."""
    if len(depths) <= MAX_SLICES:
        return depths, []
    return depths[:3] + depths[-3:], depths[3:-3]


def _slices(label: str, a: np.ndarray, depths=None, rows=None, cols=None, roles=None) -> list:
    """Blocks showing the depth slices of ``a`` ``(C, D, H, W)``, one grid per channel and depth:
    all of them, or the window's ``depths`` with its ``rows`` and ``cols`` highlighted (cropped
    with a margin of one cell when the slice is large); the middle slices of a deep volume are
    left out, and a line says which."""
    channels = a.shape[0]
    keep, left = _kept(list(range(a.shape[1])) if depths is None else list(depths))
    grids = []
    for c in range(channels):
        name = label if channels == 1 else f"{label}[{c}]"
        for z in keep:
            values = a[c, z]
            highlight = faded = None
            if rows is not None:
                highlight = np.zeros(values.shape, dtype=bool)
                highlight[np.ix_(rows, cols)] = True
            if roles is not None:
                faded = ~roles[z]
            crop = ""
            if rows is not None and max(values.shape) > SHOW_SIDE:
                r0, r1 = max(min(rows) - 1, 0), min(max(rows) + 2, values.shape[0])
                c0, c1 = max(min(cols) - 1, 0), min(max(cols) + 2, values.shape[1])
                values, highlight = values[r0:r1, c0:c1], highlight[r0:r1, c0:c1]
                faded = None if faded is None else faded[r0:r1, c0:c1]
                crop = f"rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
            grids.append(Grid(f"{name}[z={z}]", values, highlight, faded, crop))
    blocks: list = [Row(grids)]
    if left:
        blocks.append(Para(f"(the {len(left)} depth slices z={_span_text(left)} are not shown)"))
    return blocks


def _shape_volume(a: np.ndarray) -> str:
    c, d, h, w = a.shape
    return f"{d}x{h}x{w}" if c == 1 else f"{c} channels of {d}x{h}x{w}"


def _cell_name(label: str, index, channels: int) -> str:
    o, z, i, j = index
    return f"{label}[{z},{i},{j}]" if channels == 1 else f"{label}[{o}][{z},{i},{j}]"


def _size_lines(dims) -> list[str]:
    lines = []
    for axis, size, k, s, d, lo, hi, o in dims:
        lines.append(f"{axis}: floor(({size} + {lo} + {hi} - {d}*({k} - 1) - 1) / {s}) + 1 = {o}")
    return lines


def _stage_blocks(n: int, st: VolumeStage, limit: int | None) -> list:
    channels = st.output.shape[0]
    padded = st.grid is not None and not st.roles.all()
    source = f"pad({st.input_label})" if padded else st.input_label
    if st.kind == "conv":
        word = "a cross-correlation" if st.mode == "correlate" else "a true convolution"
        blocks: list = [Heading(f"Step {n}: {st.label}, {word} of the volume {st.input_label}", 2)]
        blocks.append(Para(
            "Each filter is a small volume (depth, rows, cols) that slides through the input in "
            "all three directions; each output cell is the sum of the element-wise products of "
            "the filter and the window under it, over every channel, depth, row and column."
            + (" A true convolution first flips the filter along all three axes." if st.mode == "convolve" else "")
        ))
        for o in range(st.filters.shape[0]):
            name = "F" if st.filters.shape[0] == 1 else f"F{o + 1}"
            blocks += _slices(name, st.filters[o])
            if st.mode == "convolve":
                blocks += _slices(f"flip({name})", st.filters[o][..., ::-1, ::-1, ::-1])
    elif st.kind == "pool":
        blocks = [Heading(f"Step {n}: {st.label}, {st.name} pooling of every depth, row and column", 2)]
    else:
        blocks = [Heading(f"Step {n}: {st.label}, {ACTIVATION_NAMES[st.name]} of every cell", 2)]
    if st.params:
        blocks.append(Para(st.params))
    if st.dims:
        blocks.append(Para("Output size along each axis, "
                           "floor((in + pad_lo + pad_hi - dilation*(k - 1) - 1) / stride) + 1:"))
        blocks.append(Items(_size_lines(st.dims)))
    if padded:
        blocks.append(Para(f"The input with its padding, slice by slice ({source}):"))
        blocks += _slices(source, st.grid, roles=st.roles)
    blocks.append(Heading("Cells", 3))
    shown, hidden = _limit(st.cells, limit, st.left_out)
    for cell in shown:
        label = _cell_name(st.label, cell.index, channels)
        if st.kind == "activation":
            blocks.append(Math([Sym(label), Op("="), Call(ACTIVATION_NAMES[st.name], ((Num(cell.window[()]),),)),
                                Op("="), Num(cell.value)]))
            continue
        blocks.append(Para(
            f"{label}: the window at depth {_span_text(cell.depths)}, rows {_span_text(cell.rows)}, "
            f"cols {_span_text(cell.cols)} of {source}"
        ))
        window_source = st.grid if st.kind == "conv" else st.grid[cell.index[0]][None]
        blocks += _slices(source, window_source, cell.depths, cell.rows, cell.cols)
        if st.kind == "conv":
            terms = [[Num(w, True), Op("*"), Num(k, True)]
                     for w, k in zip(cell.window.ravel(), cell.kernel.ravel(), strict=True)]
            products = [[Num(p, True)] for p in cell.products.ravel()]
            if cell.bias is not None:
                terms.append([Num(cell.bias, True)])
                products.append([Num(cell.bias, True)])
            items = [Sym(label), Op("="), *_terms(terms)]
            if len(products) > 1:
                items += [Op("="), *_terms(products)]
            blocks.append(Math([*items, Op("="), Num(cell.value)]))
        elif st.kind == "pool" and cell.divisor is None:
            terms = tuple((Op("..."),) if t is None else (Num(t),) for t in few(cell.terms)[0])
            blocks.append(Math([Sym(label), Op("="), Call("max", terms), Op("="), Num(cell.value)]))
        else:
            # the sum first (a line that can break at every +), then the division
            total = sum(cell.terms[1:], cell.terms[0])
            blocks.append(Math([Txt("sum"), Op("="), *_terms([[Num(t, True)] for t in cell.terms]),
                                Op("="), Num(total)]))
            blocks.append(Math([Sym(label), Op("="), Frac((Num(total),), (Num(cell.divisor),)),
                                Op("="), Num(cell.value)]))
    if hidden:
        blocks.append(Para(f"... {hidden} more cell(s) not shown; all values are in the result below."))
    blocks.append(Heading("Result", 3))
    blocks.append(Para(f"{st.label}: {_shape_volume(st.output)}, slice by slice:"))
    blocks += _slices(st.label, st.output)
    return blocks


class VolumeSolution(Rendered):
    """A worked solution of a volume pipeline (see :func:`explain_volume`)."""

    def __init__(self, input: np.ndarray, label: str, stages: list[VolumeStage]) -> None:
        self.input = input
        self.label = label
        self.stages = stages

    @property
    def output(self) -> np.ndarray:
        """The last stage's output ``(C, D, H, W)`` (the input when there are no stages)."""
        return self.stages[-1].output if self.stages else self.input

    @property
    def answer(self) -> Any:
        """The output as a number when it is one cell, else as an array without the channel
        axis when it has one channel."""
        out = self.output
        if out.size == 1:
            return out.reshape(()).item()
        return out[0] if out.shape[0] == 1 else out

    def document_blocks(self, cells: int | None = None) -> list:
        names = " -> ".join(st.label for st in self.stages) or "no stages"
        blocks: list = [Heading(f"Worked solution for the volume {self.label}: {names}", 1)]
        blocks.append(Para(
            f"{self.label} is a volume of {_shape_volume(self.input)} (depth x rows x cols), shown "
            f"as its depth slices {self.label}[z=0], {self.label}[z=1], ..."
        ))
        blocks += _slices(self.label, self.input)
        for n, st in enumerate(self.stages, start=1):
            blocks += _stage_blocks(n, st, cells)
        blocks.append(Heading("Answer", 2))
        out = self.output
        if out.size == 1:
            blocks.append(Math([Sym(self.stages[-1].label if self.stages else self.label), Op("="),
                                Num(out.reshape(()).item())]))
        else:
            blocks.append(Para(f"A volume of {_shape_volume(out)}:"))
            blocks += _slices(self.stages[-1].label if self.stages else self.label, out)
        return blocks


def explain_volume(x: Any, stages: Any, *, label: str = "I", cells: int | None = None) -> VolumeSolution:
    """Work a pipeline out by hand on a volume: every window's depths, rows and columns, every
    product and sum.

    Parameters
    ----------
    x : array_like
        One volume ``(D, H, W)`` or a volume with channels ``(C, D, H, W)``: ints or floats.
    stages : sequence of Conv, Activation, Pool or str
        Conv filters are ``(kD, kH, kW)`` (one) or ``(O, kD, kH, kW)`` (several) for one channel,
        ``(C, kD, kH, kW)`` or ``(O, C, kD, kH, kW)`` with channels; strides, dilations, pooling
        windows and padding take one int or three (depth, rows, cols), padding also three
        ``(lo, hi)`` pairs or 'valid', 'same', 'full'.
    label : str, default 'I'
    cells : int, optional
        How many output cells of each stage to work out (as in :func:`explain`).

    Returns
    -------
    VolumeSolution

    Notes
    -----
    Integers stay exact integers through conv and ReLU; any float makes the stage floating
    point, and so does average pooling and every other activation (volumes have no exact
    fractions, unlike 2-D inputs).

    Raises
    ------
    TypeError
        Non-numeric values, an unknown stage.
    ValueError
        A wrong number of dims, filters that do not fit, a window larger than the padded input,
        fractions (volumes are integer or floating point), padding modes other than zeros,
        ceil_mode; and, before any work, the size limits of :mod:`cnnlab.explain._limits`.

    Examples
    --------
    >>> from cnnlab.explain import Conv, Pool, explain
    >>> v = np.arange(27).reshape(3, 3, 3)
    >>> sol = explain(v, [Conv(np.ones((2, 2, 2), dtype=int)), "relu", Pool("max", 2)], volume=True)
    >>> sol.answer
    156
    """
    if not isinstance(label, str):
        raise TypeError(f"{OP}: label must be a str, got {type(label).__name__}")
    with np.errstate(all="ignore"):
        v = _volume_input(x)
        select = cell_count(OP, cells)
        plans = _plans(v.shape, stages)
        current, current_label, done = v, label, []
        for kind, plan in plans:
            if kind == "conv":
                st = _conv_stage(current, plan, f"Conv({current_label})", select)
            elif kind == "activation":
                name = ACTIVATION_NAMES[plan["name"]]
                st = _activation_stage(current, plan, f"{name}({current_label})", select)
            else:
                st = _pool_stage(current, plan, f"Pool({current_label})", select)
            st.input_label = current_label
            done.append(st)
            current, current_label = st.output, st.label
        return VolumeSolution(v, label, done)
