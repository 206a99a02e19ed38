"""Build a worked solution: validate the pipeline, run it, and record every cell's arithmetic.

The numbers come from the library, never from a second implementation of the math: the
matrices of integer and floating inputs from the vectorised operators in
:mod:`cnnlab.functional`, those of exact rationals from the loop references in
:mod:`cnnlab.functional._naive`.  The per-cell windows are read from the padded input with the
window machinery of :mod:`cnnlab.functional._windows`; their products are what the sum in each
output cell adds up (the tests check that it does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

import cnnlab.functional as _functional
from cnnlab.explain import _numbers as num
from cnnlab.explain._limits import DEFAULT_CELLS, FULL, cell_count, check_values
from cnnlab.explain._limits import chosen as chosen_cells
from cnnlab.explain._plans import _EXACT_ACTIVATIONS, AXES, OP, _ActivationPlan, _ConvPlan, _plan, _PoolPlan
from cnnlab.explain._solution import (
    INPUT,
    OUTSIDE,
    PAD,
    ActivationCell,
    ActivationStage,
    Comparison,
    ConvCell,
    ConvStage,
    DimShape,
    PoolCell,
    PoolStage,
    Solution,
)
from cnnlab.explain._spec import ACTIVATION_NAMES, Activation, Conv, Pool
from cnnlab.explain._volume import VolumeSolution, explain_volume
from cnnlab.functional import _naive
from cnnlab.functional._args import check_bool
from cnnlab.functional._windows import flip, pad, windows


def _op(module: str, name: str) -> Any:
    """The operator ``name`` of ``cnnlab.functional`` (arrays in, arrays out); ``module`` names its family."""
    return getattr(_functional, name)


# ---------------------------------------------------------------------------------------------
# the numbers, from the library's operators (or the loop references for exact rationals)


def _in_arithmetic(arithmetic: str, *arrays: np.ndarray | None) -> list:
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
        elif arithmetic == num.RATIONAL:
            out.append(a if num.is_exact(a) else num.to_exact(a))
        elif num.is_exact(a):
            out.append(num.to_float(a))
        else:
            out.append(a)
    return out


def _conv_output(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, plan: _ConvPlan) -> np.ndarray:
    if num.is_exact(x):
        b = None if bias is None else bias
        return _naive.naive_conv(
            x[None], w, b, plan.stride, plan.pads, plan.dilation, 1, plan.padding_mode
        )[0]
    return _op("conv", "conv")(x, w, bias, plan.stride, plan.pads, plan.dilation, 1, plan.padding_mode)


def _conv_operands(x: np.ndarray, plan: _ConvPlan, mode: str):
    arithmetic = num.common_arithmetic(x, plan.filters, *(() if plan.bias is None else (plan.bias,)))
    x, filters, bias = _in_arithmetic(arithmetic, x, plan.filters, plan.bias)
    applied = np.ascontiguousarray(flip(filters, 2)) if mode == "convolve" else filters
    return arithmetic, x, filters, applied, bias


def _activation_output(x: np.ndarray, plan: _ActivationPlan) -> tuple[np.ndarray, list[str]]:
    name = ACTIVATION_NAMES[plan.name]
    if num.is_exact(x):
        if plan.name in _EXACT_ACTIVATIONS:
            # ReLU and leaky ReLU of a rational are rational: each cell is x or slope*x, picked
            # by the sign of x.  NumPy's operators cannot hold Fractions, so this selection is
            # written here; the tests check it against cnnlab.functional on the float values.
            slope = Fraction(0)
            if plan.name == "leaky_relu":
                raw = plan.params["negative_slope"]
                slope = Fraction(str(raw)) if isinstance(raw, float) else Fraction(raw)
            y = np.empty(x.shape, dtype=object)
            for index, v in np.ndenumerate(x):
                y[index] = v if v > 0 else slope * v
            return y, []
        note = (
            f"{name} of a rational number is not rational in general: from here on the solution "
            f"computes in floating point."
        )
        x = num.to_float(x)
        return _op("activation", plan.name)(x, **plan.params), [note]
    return _op("activation", plan.name)(x, **plan.params), []


def _pool_output(x: np.ndarray, plan: _PoolPlan) -> tuple[np.ndarray, np.ndarray | None]:
    """The pooled matrix and, for max pooling, the flat input index of each chosen cell."""
    if plan.kind == "max":
        if num.is_exact(x):
            y, idx = _naive.naive_max_pool(x[None], plan.kernel, plan.stride, plan.pads,
                                           plan.dilation, plan.ceil_mode, True)
            return y[0], idx[0]
        return _op("pool", "max_pool2d")(x, plan.kernel, plan.stride, plan.pads, plan.dilation,
                                plan.ceil_mode, return_indices=True)
    if x.dtype.kind in "iub":
        return _average_of_integers(x, plan), None  # an exact rational, not a float
    if num.is_exact(x):
        y = _naive.naive_avg_pool(x[None], plan.kernel, plan.stride, plan.pads, plan.dilation,
                                  plan.ceil_mode, plan.count_include_pad, plan.divisor_override)
        return y[0], None
    y = _op("pool", "avg_pool2d")(x, plan.kernel, plan.stride, plan.pads, plan.ceil_mode,
                         plan.count_include_pad, plan.divisor_override, plan.dilation)
    return y, None


def _average_of_integers(x: np.ndarray, plan: _PoolPlan) -> np.ndarray:
    """Average pooling of integers in exact fractions: each window's integer sum (NumPy, exact in
    int64) over its count, made a :class:`~fractions.Fraction` only for the output cells.

    The counted cells are those of the grid of :func:`_pool_grid`: input cells, and padding cells
    when ``count_include_pad`` (never the cells past the padding that a ceil-mode window
    overhangs), as the loop reference ``naive_avg_pool`` counts them.
    """
    _, roles = _pool_grid(np.zeros((1, *x.shape[1:]), dtype=np.int8), plan)
    (rlo, _), (clo, _) = plan.pads
    grid = np.zeros((x.shape[0], *roles.shape), dtype=np.int64)
    grid[:, rlo:rlo + x.shape[1], clo:clo + x.shape[2]] = x
    sums = windows(grid, plan.kernel, plan.stride, plan.dilation).sum(axis=(-2, -1))
    role_view = windows(roles, plan.kernel, plan.stride, plan.dilation)
    counted = (role_view == INPUT) | ((role_view == PAD) if plan.count_include_pad else False)
    counts = counted.sum(axis=(-2, -1))
    sums = sums[:, : plan.out[0], : plan.out[1]]
    counts = np.broadcast_to(counts[: plan.out[0], : plan.out[1]], sums.shape)
    out = np.empty(sums.shape, dtype=object)
    for index in np.ndindex(*sums.shape):
        out[index] = Fraction(int(sums[index]), plan.divisor_override or int(counts[index]))
    return out


def _forward(x: np.ndarray, plans: list, switch: bool) -> np.ndarray:
    """Only the final matrix; ``switch`` swaps correlate and convolve in every conv stage."""
    for plan in plans:
        if isinstance(plan, _ConvPlan):
            mode = plan.mode
            if switch:
                mode = "convolve" if mode == "correlate" else "correlate"
            _, xs, _, applied, bias = _conv_operands(x, plan, mode)
            x = _conv_output(xs, applied, bias, plan)
        elif isinstance(plan, _ActivationPlan):
            x, _ = _activation_output(x, plan)
        else:
            x, _ = _pool_output(x, plan)
    return x


# ---------------------------------------------------------------------------------------------
# the stages with their cells


def _dims(sizes, kernel, stride, dilation, pads, ceil_mode, out) -> list[DimShape]:
    return [
        DimShape(axis, size, k, s, d, lo, hi, ceil_mode, o)
        for axis, size, k, s, d, (lo, hi), o in zip(
            AXES, sizes, kernel, stride, dilation, pads, out, strict=True
        )
    ]


def _scipy_same(x: np.ndarray, plan: _ConvPlan, applied: np.ndarray) -> dict | None:
    """SciPy's 'same' (odd padding first) where it differs from the 'same' used here."""
    if plan.spec.padding != "same" or plan.stride != (1, 1):
        return None
    eff = [d * (k - 1) + 1 for k, d in zip(plan.filters.shape[2:], plan.dilation, strict=True)]
    pads = tuple((e - 1 - (e - 1) // 2, (e - 1) // 2) for e in eff)
    if pads == tuple(plan.pads):
        return None
    output = None
    plain = plan.bias is None and plan.padding_mode == "zeros"  # what SciPy itself computes
    if plain and x.shape[0] == 1 and applied.shape[0] == 1:
        if num.is_exact(x):
            output = _naive.naive_correlate(x[0], applied[0, 0], "same", (1, 1), plan.dilation)
        else:
            output = _op("correlate", "correlate")(x[0], applied[0, 0], "same", 1, plan.dilation)
    return {"pads": pads, "output": output}


def _conv_stage(x: np.ndarray, plan: _ConvPlan, label: str, select: int | None = None) -> ConvStage:
    arithmetic, xs, filters, applied, bias = _conv_operands(x, plan, plan.mode)
    output = _conv_output(xs, applied, bias, plan)
    flipped = np.ascontiguousarray(flip(filters, 2))
    other = flipped if plan.mode == "correlate" else filters
    other_output = _conv_output(xs, other, bias, plan)
    grid = pad(xs, plan.pads, plan.padding_mode)
    roles = np.where(pad(np.ones(x.shape[1:], dtype=np.int8), plan.pads) == 1, INPUT, PAD)
    kernel = filters.shape[2:]
    view = windows(grid, kernel, plan.stride, plan.dilation)  # (C, oH, oW, kH, kW)
    cells = []
    picked = _picked(output.shape, select)
    for o, i, j in picked:
        window = view[:, i, j]
        rows = tuple(i * plan.stride[0] + t * plan.dilation[0] for t in range(kernel[0]))
        cols = tuple(j * plan.stride[1] + t * plan.dilation[1] for t in range(kernel[1]))
        cells.append(ConvCell(
            (o, i, j), rows, cols, np.array(window), applied[o], window * applied[o],
            None if bias is None else bias[o], output[o, i, j],
        ))
    count = filters.shape[0]
    names = [plan.spec.label] if count == 1 else [f"{plan.spec.label}{n + 1}" for n in range(count)]
    return ConvStage(
        spec=plan.spec, label=label, input_label="", filter_labels=names, mode=plan.mode,
        input=xs, filters=filters, applied=applied, flipped=flipped, bias=bias,
        stride=plan.stride, pads=plan.pads, dilation=plan.dilation, padding=plan.spec.padding,
        padding_mode=plan.padding_mode, grid=grid, roles=roles, output=output,
        other_output=other_output,
        shape=_dims(x.shape[1:], kernel, plan.stride, plan.dilation, plan.pads, False, plan.out),
        cells=cells, arithmetic=arithmetic, scipy_same=_scipy_same(xs, plan, applied),
        left_out=output.size - len(picked),
    )


def _explicit(select: Any) -> bool:
    """Whether ``select`` lists output positions (``at=``) rather than a number of cells."""
    return isinstance(select, tuple)


def _picked(shape: tuple[int, ...], select: Any) -> list[tuple[int, ...]]:
    """The output cells of a stage to work out: the listed positions that lie in it, else a count."""
    if _explicit(select):
        return [p for p in select if len(p) == len(shape) and all(0 <= v < n for v, n in zip(p, shape, strict=True))]
    return chosen_cells(shape, select)


def _positions(at: Any) -> tuple[tuple[int, ...], ...]:
    """``at`` checked: a sequence of output positions ``(channel, row, col)``."""
    if isinstance(at, (str, bytes)) or not isinstance(at, Sequence) or len(at) == 0:
        raise TypeError(f"{OP}: at must be a non-empty list of (channel, row, col) positions, got {at!r}")
    out = []
    for p in at:
        if (isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or len(p) != 3
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in p)):
            raise TypeError(f"{OP}: each position in at must be (channel, row, col) ints, got {p!r}")
        out.append(tuple(int(v) for v in p))
    return tuple(out)


def _activation_stage(x: np.ndarray, plan: _ActivationPlan, label: str,
                      select: int | None = None) -> ActivationStage:
    output, notes = _activation_output(x, plan)
    if _explicit(select):
        indices, total = _picked(x.shape, select), x.size
    elif plan.name in _EXACT_ACTIVATIONS:
        # only the negative cells change: work out (a few of) those
        negative = np.argwhere(np.array([num.is_negative(v) for v in x.ravel()]).reshape(x.shape)
                               if num.is_exact(x) else x < 0)
        if select is None and len(negative) <= FULL:
            keep = list(range(len(negative)))
        else:
            keep = [k for (k,) in chosen_cells((len(negative),), DEFAULT_CELLS if select is None else select)]
        indices = [tuple(int(v) for v in negative[k]) for k in keep]
        total = len(negative)
    else:
        indices, total = chosen_cells(x.shape, select), x.size
    cells = [ActivationCell(index, x[index], output[index]) for index in indices]
    return ActivationStage(
        spec=plan.spec, label=label, input_label="", name=plan.name, input=x, output=output,
        cells=cells, arithmetic=num.arithmetic_of(output), notes=notes, left_out=total - len(cells),
    )


def _pool_grid(x: np.ndarray, plan: _PoolPlan) -> tuple[np.ndarray, np.ndarray]:
    """The input with its padding and any ceil-mode overhang, as shown in the solution."""
    channels, *sizes = x.shape
    extent = []
    for size, k, s, d, (lo, hi), o in zip(
        sizes, plan.kernel, plan.stride, plan.dilation, plan.pads, plan.out, strict=True
    ):
        extent.append(max(size + lo + hi, (o - 1) * s + d * (k - 1) + 1))
    roles = np.full(extent, OUTSIDE, dtype=np.int8)
    (rlo, rhi), (clo, chi) = plan.pads
    roles[: rlo + sizes[0] + rhi, : clo + sizes[1] + chi] = PAD
    roles[rlo : rlo + sizes[0], clo : clo + sizes[1]] = INPUT
    grid = np.empty((channels, *extent), dtype=object)
    grid[:, roles == PAD] = float("-inf") if plan.kind == "max" else 0
    grid[:, rlo : rlo + sizes[0], clo : clo + sizes[1]] = x
    return grid, roles


def _pool_stage(x: np.ndarray, plan: _PoolPlan, label: str, select: int | None = None) -> PoolStage:
    output, indices = _pool_output(x, plan)
    grid, roles = _pool_grid(x, plan)
    view = windows(grid, plan.kernel, plan.stride, plan.dilation)
    role_view = windows(roles, plan.kernel, plan.stride, plan.dilation)
    (rlo, _), (clo, _) = plan.pads
    width = x.shape[2]
    cells = []
    picked = _picked(output.shape, select)
    for c, i, j in picked:
        window, window_roles = np.array(view[c, i, j]), np.array(role_view[i, j])
        rows = tuple(i * plan.stride[0] + t * plan.dilation[0] for t in range(plan.kernel[0]))
        cols = tuple(j * plan.stride[1] + t * plan.dilation[1] for t in range(plan.kernel[1]))
        counted = window_roles == INPUT
        if plan.kind == "avg" and plan.count_include_pad:
            counted = counted | (window_roles == PAD)
        terms = list(window[counted])
        chosen = divisor = None
        if plan.kind == "max":
            flat = int(indices[c, i, j])
            chosen = (flat // width + rlo, flat % width + clo)
        else:
            divisor = plan.divisor_override or len(terms)
        cells.append(PoolCell((c, i, j), rows, cols, window, window_roles, terms, chosen,
                              divisor, output[c, i, j]))
    return PoolStage(
        spec=plan.spec, label=label, input_label="", pool=plan.kind, kernel=plan.kernel,
        stride=plan.stride, pads=plan.pads, dilation=plan.dilation, ceil_mode=plan.ceil_mode,
        count_include_pad=plan.count_include_pad, divisor_override=plan.divisor_override,
        input=x, grid=grid, roles=roles, output=output,
        shape=_dims(x.shape[1:], plan.kernel, plan.stride, plan.dilation, plan.pads,
                    plan.ceil_mode, plan.out),
        cells=cells, arithmetic=num.arithmetic_of(output), left_out=output.size - len(picked),
    )


# ---------------------------------------------------------------------------------------------
# public entry points


def _input(x: Any) -> tuple[np.ndarray, bool, bool]:
    """``(x as (C, H, W), planar, signal)``: a 2-D matrix is one channel (planar), a 1-D signal
    of length L is one channel of one row, ``(1, 1, L)``."""
    x = num.as_values(OP, "input", x)
    check_values(OP, f"the input (shape {x.shape})", x.size)
    if x.ndim == 1:
        return x[None, None], True, True
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{OP}: input must be a 1-D signal (L,), a 2-D matrix (H, W) or a stack of channels "
            f"(C, H, W), got shape {x.shape}"
        )
    return ((x[None], True) if x.ndim == 2 else (x, False)) + (False,)


def _row_pair(value: Any, fill: Any) -> Any:
    """A 1-D option (``3``, ``(3,)``, ``(lo, hi)`` for padding) as the 2-D option of a 1xL row:
    ``fill`` along the row axis, the value along the signal."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return (fill, value)


def _as_rows(stages: Sequence[Any]) -> list:
    """The stages of a 1-D pipeline as stages over a 1xL row: filters ``(k,)`` or ``(O, k)``
    become ``(1, k)`` / ``(O, 1, 1, k)``; strides, dilations and pooling windows act along the
    signal only, padding only pads its two ends."""
    if isinstance(stages, (Conv, Activation, Pool, str)):
        stages = [stages]
    out = []
    for spec in stages:
        if isinstance(spec, Conv):
            w = num.as_values(OP, "filters", spec.filters)
            if w.ndim == 1:
                w = w[None]
            elif w.ndim == 2:
                w = w[:, None, None, :]
            else:
                raise ValueError(
                    f"{OP}: filters for a 1-D signal must be (k,) for one filter or (O, k) for "
                    f"several, got shape {w.shape}"
                )
            pads = spec.padding
            if not isinstance(pads, str):
                pads = _row_pair(pads, 0)
                if isinstance(pads[1], (tuple, list)):
                    pads = ((0, 0), tuple(pads[1]))
            spec = dataclasses.replace(spec, filters=w, stride=_row_pair(spec.stride, 1),
                                       dilation=_row_pair(spec.dilation, 1), padding=pads)
        elif isinstance(spec, Pool):
            pads = _row_pair(spec.padding, 0)
            if isinstance(pads[1], (tuple, list)):
                pads = ((0, 0), tuple(pads[1]))
            spec = dataclasses.replace(spec, kernel_size=_row_pair(spec.kernel_size, 1),
                                       stride=_row_pair(spec.stride, 1), padding=pads,
                                       dilation=_row_pair(spec.dilation, 1))
        out.append(spec)
    return out


def explain(x: Any, stages: Sequence[Any], *, label: str = "I", cells: int | None = None,
            volume: bool = False, at: Sequence[Sequence[int]] | None = None) -> Solution | VolumeSolution:
    """Work a CNN pipeline out by hand: every matrix, every window, every product and sum.

    Parameters
    ----------
    x : array_like
        A 2-D matrix ``(H, W)`` or a stack of channels ``(C, H, W)``: ints, floats or
        :class:`fractions.Fraction` values (nested lists or a NumPy array).
    stages : sequence of Conv, Activation, Pool or str
        The pipeline, applied in order; a string names an activation (``'relu'``).
    label : str, default 'I'
        The input's name in the solution.
    cells : int, optional
        How many output cells of each stage to work out by hand, spread evenly from the first
        to the last.  By default every cell of a stage with at most 64 output cells, and 4
        representative ones of a larger stage.  Every output value is computed either way.
    at : list of (channel, row, col), optional
        Work out exactly these output positions of every stage (positions outside a stage's output
        are skipped) instead of a number of cells; what a viewer asks when a cell is clicked.
    volume : bool, default False
        Read a 3-D input ``(D, H, W)`` as one volume (not a stack of channels), a 4-D input as a
        volume with channels ``(C, D, H, W)``, and the filters with a depth axis; see
        :func:`cnnlab.explain._volume.explain_volume`.

    Returns
    -------
    Solution
        (a :class:`~cnnlab.explain._volume.VolumeSolution` with ``volume=True``)
        Render it with ``str()``, :meth:`Solution.render` or in Jupyter.

    Raises
    ------
    TypeError
        Non-numeric input or filters, an unknown stage, a wrong argument type.
    ValueError
        Ragged or empty matrices, a wrong number of dims, filters that do not fit the input's
        channels, a kernel larger than the padded input, bad strides, padding or names; and,
        before any work, a matrix of more than ``MAX_VALUES`` (1,000,000) values or a stage of
        more multiply-adds than ``MAX_WORK`` (``MAX_EXACT_WORK`` in exact fractions), see
        :mod:`cnnlab.explain._limits`.

    Notes
    -----
    Integers stay exact integers (average pooling turns them into exact
    :class:`~fractions.Fraction` values); any Fraction input makes the whole computation exact
    rational arithmetic; any float input makes it floating point (as in Python, a float wins).

    Examples
    --------
    The lecture's example: a 3x3 image, a 2x2 filter, ReLU and a 2x2 max-pool, all stride 1.

    >>> from cnnlab.explain import Conv, Pool, explain
    >>> I = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
    >>> F = [[1, 0], [0, 1]]
    >>> sol = explain(I, [Conv(F), "relu", Pool("max", 2, stride=1)])
    >>> sol.stages[0].output[0].tolist()
    [[2, 0], [3, 5]]
    >>> sol.answer
    5
    """
    if check_bool(OP, "volume", volume):
        return explain_volume(x, stages, label=label, cells=cells)
    with np.errstate(all="ignore"):  # NaN and inf propagate as IEEE says, without warnings
        return _explain(x, stages, label, cells if at is None else _positions(at))


def _explain(x: Any, stages: Sequence[Any], label: str, cells: Any) -> Solution:
    x3, planar, signal = _input(x)
    if not isinstance(label, str):
        raise TypeError(f"{OP}: label must be a str, got {type(label).__name__}")
    select = cells if _explicit(cells) else cell_count(OP, cells)
    if signal:
        stages = _as_rows(stages)
    plans = _plan(x3.shape, stages, num.arithmetic_of(x3))
    current, current_label = x3, label
    done = []
    for plan in plans:
        if isinstance(plan, _ConvPlan):
            stage = _conv_stage(current, plan, f"Conv({current_label})", select)
        elif isinstance(plan, _ActivationPlan):
            name = ACTIVATION_NAMES[plan.name]
            stage = _activation_stage(current, plan, f"{name}({current_label})", select)
        else:
            stage = _pool_stage(current, plan, f"Pool({current_label})", select)
        stage.input_label = current_label
        done.append(stage)
        current, current_label = stage.output, stage.label
    alternative = None
    if any(isinstance(p, _ConvPlan) for p in plans):
        alternative = _forward(x3, plans, switch=True)
    return Solution(x3, label, planar, done, alternative, signal=signal)


def compare(x: Any, stages: Sequence[Any], *, label: str = "I", cells: int | None = None) -> Comparison:
    """The same pipeline worked out twice: with cross-correlation and with true convolution.

    Every :class:`Conv` stage is run once with ``mode='correlate'`` (what CNN libraries call
    convolution) and once with ``mode='convolve'`` (the filter flipped by 180 degrees).
    Arguments as for :func:`explain`.

    Examples
    --------
    >>> from cnnlab.explain import Conv, compare
    >>> both = compare([[1, 2], [3, 4]], [Conv([[1, 0], [0, 0]])])
    >>> both.correlation.answer, both.convolution.answer
    (1, 4)
    """
    if isinstance(stages, (Conv, Activation, Pool, str)):
        stages = [stages]
    stages = list(stages)
    correlation = [dataclasses.replace(s, mode="correlate") if isinstance(s, Conv) else s
                   for s in stages]
    convolution = [dataclasses.replace(s, mode="convolve") if isinstance(s, Conv) else s
                   for s in stages]
    return Comparison(explain(x, correlation, label=label, cells=cells),
                      explain(x, convolution, label=label, cells=cells))
