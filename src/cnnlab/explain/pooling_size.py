"""Pooling and size, explained with numbers that run.

- :func:`max_pool_relu`: max pooling written with ReLUs, ``max(a, b) = b + relu(a - b)`` folded
  over each window, checked against the library's max pooling;
- :func:`avg_pool_conv`: average pooling as a convolution with the constant kernel ``1/(kH*kW)``,
  checked against the library's average pooling;
- :func:`translation`: shift the input and see how far the map before pooling moves, and that
  the pooled map often does not move at all;
- :func:`receptive_field`: ``r_out = r_in + (k - 1)*d*j_in`` and ``j_out = j_in*s`` for a layer
  stack, checked by back-propagating one output cell through the library's conv backward;
- :func:`object_size`: what a fixed-size filter and pooling report for a small and a large
  object.

Every number comes from :mod:`cnnlab.functional` (or its loop references for exact fractions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

import cnnlab.functional as _functional
from cnnlab.explain import _numbers as num
from cnnlab.explain._document import _limit, _pair_text
from cnnlab.explain._engine import explain
from cnnlab.explain._expr import Call, Grid, Heading, Items, Math, Num, Op, Para, Paren, Row, Sym, joined
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._solution import PoolStage
from cnnlab.explain._spec import Conv, Pool
from cnnlab.functional import _naive
from cnnlab.functional._args import ntuple
from cnnlab.functional._windows import windows


def _op(module: str, name: str) -> Any:
    """The operator ``name`` of ``cnnlab.functional`` (arrays in, arrays out); ``module`` names its family."""
    return getattr(_functional, name)


def _matrix(op: str, x: Any) -> np.ndarray:
    a = num.as_values(op, "x", x)
    if a.ndim != 2:
        raise ValueError(f"{op}: x must be a 2-D matrix (H, W), got shape {a.shape}")
    return a


def _pool_args(op: str, x: np.ndarray, kernel_size: Any, stride: Any) -> tuple[tuple, tuple]:
    kernel = ntuple(op, "kernel_size", kernel_size, 2, minimum=1)
    step = kernel if stride is None else ntuple(op, "stride", stride, 2, minimum=1)
    for axis, size, k in zip(("rows", "cols"), x.shape, kernel, strict=True):
        if k > size:
            raise ValueError(f"{op}: kernel_size {k} is larger than the input along {axis} ({size})")
    return kernel, step


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        fa = num.to_float(a) if num.is_exact(a) else a
        fb = num.to_float(b) if num.is_exact(b) else b
        return bool(np.allclose(fa, fb, rtol=1e-12, atol=1e-12))
    return bool(np.all(a == b))


def _relu(a: np.ndarray) -> np.ndarray:
    return _naive.naive_relu(a) if num.is_exact(a) else _op("activation", "relu")(a)


# ---------------------------------------------------------------------------------------------
# max pooling with ReLUs


class MaxPoolAsReLU(Rendered):
    """Max pooling computed as ``m <- m + relu(v - m)`` over each window's cells.

    ``taps`` is ``(oH, oW, K)``: each window's cells in row-major order; ``running[t]`` the
    running maximum after ``t + 1`` cells; ``pooled`` the library's max pooling; ``verified``
    whether the last running maximum equals it.
    """

    def __init__(self, x, kernel, stride, taps, diffs, relus, running, pooled) -> None:
        self.x, self.kernel, self.stride = x, kernel, stride
        self.taps, self.diffs, self.relus, self.running = taps, diffs, relus, running
        self.pooled = pooled
        self.output = running[-1]
        self.verified = _same(self.output, pooled)

    def document_blocks(self, cells: int | None = None) -> list:
        blocks: list = [
            Heading("Max pooling written with ReLUs", 1),
            Para("max(a, b) = b + relu(a - b): when a > b the ReLU adds the difference a - b to b, otherwise it "
                 "adds 0. Folding it over a window, m = first cell, then m = m + relu(v - m) for each next cell "
                 "v, leaves the window's maximum in m."),
            Row([Grid("I", self.x)]),
            Para(f"Windows {self.kernel[0]}x{self.kernel[1]}, stride {_pair_text(self.stride)}:"),
        ]
        positions = list(np.ndindex(*self.output.shape))
        shown, hidden = _limit(positions, cells)
        for i, j in shown:
            taps = self.taps[i, j]
            blocks.append(Math([Sym(f"window [{i},{j}]"), Op("="), Call("max", tuple((Num(v),) for v in taps))]))
            blocks.append(Math([Sym("m"), Op("="), Num(taps[0])]))
            for t in range(1, len(taps)):
                m, r = Num(self.running[t - 1][i, j], True), Num(self.relus[t - 1][i, j], True)
                blocks.append(Math([Sym("m"), Op("="), m, Op("+"), Call("relu", ((Num(taps[t], True), Op("-"), m),)),
                                    Op("="), m, Op("+"), r, Op("="), Num(self.running[t][i, j])]))
        if hidden:
            blocks.append(Para(f"... {hidden} more window(s) not shown."))
        verdict = "the same: checked" if self.verified else "NOT the same"
        if self.x.dtype.kind == "f":
            verdict += " (up to rounding: in floating point m + (v - m) can differ from v in the last digit)"
        blocks += [Row([Grid("with ReLUs", self.output), Grid("max_pool2d(I)", self.pooled)]),
                   Para(f"The ReLU construction and the library's max pooling are {verdict}.")]
        return blocks


def max_pool_relu(x: Any, kernel_size: Any = 2, stride: Any = None) -> MaxPoolAsReLU:
    """Max pooling of a matrix computed with ReLUs only, checked against max pooling.

    Parameters
    ----------
    x : array_like
        A 2-D matrix of ints, floats or Fractions.
    kernel_size : int or (int, int), default 2
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.

    Returns
    -------
    MaxPoolAsReLU
        ``output`` (the ReLU construction), ``pooled`` (the library's) and ``verified``.

    Examples
    --------
    >>> ex = max_pool_relu([[1, 5, 2, 0], [3, -1, 4, 4]], 2)
    >>> ex.output.tolist(), ex.pooled.tolist(), ex.verified
    ([[5, 4]], [[5, 4]], True)
    """
    op = "max_pool_relu"
    a = _matrix(op, x)
    kernel, step = _pool_args(op, a, kernel_size, stride)
    view = windows(a, kernel, step, (1, 1))
    taps = np.ascontiguousarray(view).reshape(*view.shape[:2], -1)
    m = taps[..., 0]
    diffs, relus, running = [], [], [m]
    for t in range(1, taps.shape[-1]):
        diff = taps[..., t] - m
        r = _relu(diff)
        m = m + r
        diffs.append(diff)
        relus.append(r)
        running.append(m)
    if num.is_exact(a):
        pooled = _naive.naive_max_pool(a[None, None], kernel, step, ((0, 0), (0, 0)), (1, 1))[0, 0]
    else:
        pooled = _op("pool", "max_pool2d")(a[None], kernel, step)[0]
    return MaxPoolAsReLU(a, kernel, step, taps, diffs, relus, running, pooled)


# ---------------------------------------------------------------------------------------------
# average pooling as a convolution


class AvgPoolAsConv(Rendered):
    """Average pooling as a conv with the constant ``kernel`` (``output``), next to the library's
    average pooling (``pooled``); ``verified`` says whether they agree."""

    def __init__(self, x, kernel, stride, output, pooled) -> None:
        self.x, self.kernel, self.stride = x, kernel, stride
        self.output, self.pooled = output, pooled
        self.verified = _same(output, pooled)

    def document_blocks(self, cells: int | None = None) -> list:
        kh, kw = self.kernel.shape
        verdict = "the same: checked" if self.verified else "NOT the same"
        blocks: list = [
            Heading("Average pooling is a convolution", 1),
            Para(f"The average of a {kh}x{kw} window is the sum of its cells times 1/{kh * kw}: a conv with the "
                 f"constant kernel K (every cell 1/{kh * kw}) and the pooling's stride {_pair_text(self.stride)}."),
            Row([Grid("I", self.x), Grid("K", self.kernel)]),
        ]
        view = windows(self.x, (kh, kw), self.stride, (1, 1))
        shown, hidden = _limit(list(np.ndindex(*self.output.shape)), cells)
        for i, j in shown:
            terms = [[Num(v, True), Op("*"), Num(k, True)] for v, k in zip(view[i, j].ravel(), self.kernel.ravel(),
                                                                           strict=True)]
            blocks.append(Math([Sym(f"Conv(I)[{i},{j}]"), Op("="), *joined(terms), Op("="), Num(self.output[i, j])]))
        if hidden:
            blocks.append(Para(f"... {hidden} more cell(s) not shown."))
        blocks += [Row([Grid("Conv(I, K)", self.output), Grid("avg_pool2d(I)", self.pooled)]),
                   Para(f"The conv and the library's average pooling are {verdict}.")]
        return blocks


def avg_pool_conv(x: Any, kernel_size: Any = 2, stride: Any = None) -> AvgPoolAsConv:
    """Average pooling of a matrix computed as a conv with a constant kernel, checked.

    Integers and Fractions stay exact (the kernel is ``Fraction(1, kH*kW)``).

    Examples
    --------
    >>> ex = avg_pool_conv([[1, 2, 0, 0], [3, 4, 1, 0]], 2)
    >>> [[str(v) for v in row] for row in ex.output], ex.verified
    ([['5/2', '1/4']], True)
    """
    op = "avg_pool_conv"
    a = _matrix(op, x)
    kernel, step = _pool_args(op, a, kernel_size, stride)
    size = kernel[0] * kernel[1]
    pads = ((0, 0), (0, 0))
    if a.dtype.kind == "f":
        k = np.full(kernel, 1 / size)
        output = _op("conv", "conv")(a[None], k[None, None], None, step)[0]
        pooled = _op("pool", "avg_pool2d")(a[None], kernel, step)[0]
    else:
        a = a if num.is_exact(a) else num.to_exact(a)
        k = np.empty(kernel, dtype=object)
        k[...] = Fraction(1, size)
        output = _naive.naive_conv(a[None, None], k[None, None], None, step, pads, (1, 1), 1)[0, 0]
        pooled = _naive.naive_avg_pool(a[None, None], kernel, step, pads, (1, 1))[0, 0]
    return AvgPoolAsConv(a, k, step, output, pooled)


# ---------------------------------------------------------------------------------------------
# translation


def _shifted(a: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """``a`` moved by ``shift`` cells along ``axis`` (down or right), zeros coming in."""
    out = np.zeros_like(a)
    if shift == 0:
        return a.copy()
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    src[axis] = slice(0, a.shape[axis] - shift)
    dst[axis] = slice(shift, None)
    out[tuple(dst)] = a[tuple(src)]
    return out


def _argmax(a: np.ndarray) -> tuple[int, int]:
    """The first maximum's position (row-major), over all channels of ``(C, H, W)``."""
    flat = max(range(a.size), key=lambda k: (a.ravel()[k], -k))
    return tuple(int(v) for v in np.unravel_index(flat, a.shape)[1:])


@dataclass(eq=False)
class Shifted:
    """One shift: the maps before and after pooling, where their maximum is, and the checks."""

    shift: int
    input: np.ndarray
    before: np.ndarray
    after: np.ndarray
    before_max: tuple[int, int]
    after_max: tuple[int, int]
    moved_before: int
    moved_after: int
    equivariant: bool
    unchanged: bool


class Translation(Rendered):
    """How shifting the input moves the map before pooling and the pooled map (:func:`translation`).

    ``rows`` holds one :class:`Shifted` per shift, the first for shift 0 (the original input).
    """

    def __init__(self, axis: int, pool: PoolStage, before_label: str, rows: list[Shifted]) -> None:
        self.axis, self.pool, self.before_label, self.rows = axis, pool, before_label, rows

    def document_blocks(self, cells: int | None = None) -> list:
        way = "right" if self.axis == 1 else "down"
        unit = "column" if self.axis == 1 else "row"
        k, s = self.pool.kernel[self.axis], self.pool.stride[self.axis]
        blocks: list = [
            Heading("Translation before and after pooling", 1),
            Para(f"Each input is the first one moved {way} by the given number of {unit}s (zeros come in). A conv "
                 f"is translation equivariant: its map {self.before_label} moves by exactly as many cells. Max "
                 f"pooling ({k} wide, stride {s}) keeps only the largest value of each window, so a shift that "
                 "keeps the maximum inside its window leaves the pooled map where it was."),
        ]
        lines = []
        for r in self.rows:
            if r.shift == 0:
                lines.append(f"shift 0 (the original): the maximum is at {r.before_max} before pooling and at "
                             f"{r.after_max} after (row, column)")
                continue
            lines.append(
                f"shift {r.shift}: before pooling the maximum is at {r.before_max}, moved by {r.moved_before} "
                f"(the map moved by exactly {r.shift}: {'yes' if r.equivariant else 'no'}); after pooling it is "
                f"at {r.after_max}, moved by {r.moved_after} pooled cell(s) = {r.moved_after * s} input cells; "
                f"pooled map unchanged: {'yes' if r.unchanged else 'no'}")
        blocks.append(Items(lines))
        for r in self.rows:
            blocks += [Heading(f"Shift {r.shift}", 2),
                       Row([Grid("input", r.input[0] if r.input.shape[0] == 1 else r.input[0]),
                            Grid(self.before_label, r.before[0]), Grid("pooled", r.after[0])])]
        return blocks


def _default_translation() -> tuple[np.ndarray, list]:
    x = np.zeros((6, 9), dtype=np.int64)
    x[2:4, 2:4] = 1
    stages = [Conv(np.ones((2, 2), dtype=np.int64), bias=-3), "relu", Pool("max", 2)]
    return x, stages


def translation(x: Any = None, stages: Sequence[Any] | None = None, shifts: Sequence[int] = (1, 2),
                axis: int = 1) -> Translation:
    """Shift the input and compare how the map before pooling and the pooled map move.

    Parameters
    ----------
    x : array_like, optional
        The input (2-D or ``(C, H, W)``).  Default: a 6x9 image with a 2x2 square of ones.
    stages : sequence, optional
        A pipeline for :func:`cnnlab.explain.explain` with at least one :class:`Pool` stage;
        "before pooling" is the output of the stage before the first pool.  Default: a 2x2 filter
        of ones with bias -3 (it responds only where it covers the whole square), ReLU and a 2x2
        max-pool.
    shifts : sequence of int, default (1, 2)
        Cells to move the input by (zeros come in from the top or left).
    axis : {0, 1}, default 1
        0 moves the input down, 1 moves it right.

    Examples
    --------
    >>> t = translation()
    >>> [(r.shift, r.moved_before, r.moved_after, r.unchanged) for r in t.rows]
    [(0, 0, 0, True), (1, 1, 0, True), (2, 2, 1, False)]
    """
    op = "translation"
    if x is None and stages is None:
        x, stages = _default_translation()
    elif x is None or stages is None:
        raise ValueError(f"{op}: give both x and stages, or neither for the default example")
    if axis not in (0, 1) or isinstance(axis, bool):
        raise ValueError(f"{op}: axis must be 0 (rows) or 1 (cols), got {axis!r}")
    base = explain(x, stages)
    first = next((k for k, st in enumerate(base.stages) if isinstance(st, PoolStage)), None)
    if first is None:
        raise ValueError(f"{op}: the pipeline needs a Pool stage")
    size = base.input.shape[1 + axis]
    for s in shifts:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 < s < size:
            raise ValueError(f"{op}: shifts must be ints in [1, {size}), got {s!r}")
    pool = base.stages[first]
    before_label = pool.input_label

    def maps(sol):
        return sol.stages[first].input, sol.stages[-1].output

    before0, after0 = maps(base)
    rows = []
    for s in [0, *shifts]:
        xs = _shifted(base.input, int(s), axis + 1)
        sol = base if s == 0 else explain(xs, stages)
        before, after = maps(sol)
        bmax, amax = _argmax(before), _argmax(after)
        n = before.shape[1 + axis]
        keep = [slice(None)] * 3
        keep[1 + axis] = slice(s, n)
        old = [slice(None)] * 3
        old[1 + axis] = slice(0, n - s)
        rows.append(Shifted(int(s), xs, before, after, bmax, amax, bmax[axis] - _argmax(before0)[axis],
                            amax[axis] - _argmax(after0)[axis],
                            bool(np.all(before[tuple(keep)] == before0[tuple(old)])),
                            bool(after.shape == after0.shape and np.all(after == after0))))
    return Translation(axis, pool, before_label, rows)


# ---------------------------------------------------------------------------------------------
# receptive field


@dataclass(frozen=True)
class FieldRow:
    """One layer: kernel ``k``, stride ``s``, dilation ``d`` (per axis), the jump ``j`` (input
    cells between neighbouring outputs) and receptive field ``r`` before and after it."""

    name: str
    k: tuple[int, int]
    s: tuple[int, int]
    d: tuple[int, int]
    j_in: tuple[int, int]
    r_in: tuple[int, int]
    r_out: tuple[int, int]
    j_out: tuple[int, int]


class ReceptiveField(Rendered):
    """The receptive field of a layer stack, per layer; ``measured`` is the span of the input
    cells that reach output cell 0 through the library's conv backward (``verified``: equal)."""

    def __init__(self, rows: list[FieldRow], measured: tuple[int, int]) -> None:
        self.rows = rows
        self.field = rows[-1].r_out if rows else (1, 1)
        self.jump = rows[-1].j_out if rows else (1, 1)
        self.measured = measured
        self.verified = measured == self.field

    def document_blocks(self, cells: int | None = None) -> list:
        blocks: list = [
            Heading("Receptive field of the layer stack", 1),
            Para("r is how many input cells one output cell sees, j how many input cells apart neighbouring "
                 "output cells are. Start with r = 1, j = 1; a layer with kernel k, stride s and dilation d gives "
                 "r_out = r_in + (k - 1)*d*j_in and j_out = j_in*s."),
        ]
        square = all(len(set(pair)) == 1 for row in self.rows for pair in (row.k, row.s, row.d, row.j_in, row.r_in))
        for row in self.rows:
            for a, axis in enumerate(("rows", "cols")[:1 if square else 2]):
                where = "" if square else f" ({axis})"
                blocks.append(Math([
                    Sym(f"{row.name}{where}: r"), Op("="), Num(row.r_in[a]), Op("+"),
                    Paren((Num(row.k[a]), Op("-"), Num(1))), Op("*"), Num(row.d[a]), Op("*"), Num(row.j_in[a]),
                    Op("="), Num(row.r_out[a]), Op(","), Sym("j"), Op("="), Num(row.j_in[a]), Op("*"),
                    Num(row.s[a]), Op("="), Num(row.j_out[a])]))
        lines = [f"{r.name}: k {_pair_text(r.k)}, s {_pair_text(r.s)}, d {_pair_text(r.d)} | j_in "
                 f"{_pair_text(r.j_in)}, r_in {_pair_text(r.r_in)} -> r_out {_pair_text(r.r_out)}, j_out "
                 f"{_pair_text(r.j_out)}" for r in self.rows]
        verdict = "the same: checked" if self.verified else "NOT the same"
        blocks += [Items(lines), Para(
            f"One output cell sees {self.field[0]}x{self.field[1]} input cells. Back-propagating output cell 0 "
            f"through the stack (the library's conv backward, kernels of ones) reaches input cells spanning "
            f"{self.measured[0]}x{self.measured[1]}: {verdict}.")]
        return blocks


def _layer(op: str, i: int, layer: Any) -> tuple[str, tuple, tuple, tuple]:
    if isinstance(layer, Conv):
        k = np.shape(layer.filters)[-2:]
        return (f"conv {i}", tuple(int(v) for v in k), ntuple(op, "stride", layer.stride, 2, minimum=1),
                ntuple(op, "dilation", layer.dilation, 2, minimum=1))
    if isinstance(layer, Pool):
        k = ntuple(op, "kernel_size", layer.kernel_size, 2, minimum=1)
        s = k if layer.stride is None else ntuple(op, "stride", layer.stride, 2, minimum=1)
        return f"{layer.kind} pool {i}", k, s, ntuple(op, "dilation", layer.dilation, 2, minimum=1)
    if isinstance(layer, (tuple, list)) and len(layer) in (2, 3, 4) and isinstance(layer[0], str):
        name, k, *rest = layer
        s = rest[0] if rest else 1
        d = rest[1] if len(rest) > 1 else 1
        return (name, ntuple(op, "kernel", k, 2, minimum=1), ntuple(op, "stride", s, 2, minimum=1),
                ntuple(op, "dilation", d, 2, minimum=1))
    raise TypeError(f"{op}: layer {i} must be a Conv, a Pool or a tuple (name, kernel[, stride[, dilation]]), "
                    f"got {layer!r}")


def receptive_field(layers: Sequence[Any]) -> ReceptiveField:
    """The receptive field of a stack of conv and pooling layers, layer by layer, and checked.

    Parameters
    ----------
    layers : sequence
        :class:`Conv` and :class:`Pool` specs, or tuples ``(name, kernel[, stride[, dilation]])``
        (an activation does not change the field and is skipped when given as a string).

    Examples
    --------
    Two 3x3 convs and a 2x2 pool, then another 3x3 conv:

    >>> rf = receptive_field([("conv", 3), ("conv", 3), ("pool", 2, 2), ("conv", 3)])
    >>> [r.r_out[0] for r in rf.rows], rf.jump, rf.verified
    ([3, 5, 6, 10], (2, 2), True)
    """
    op = "receptive_field"
    specs = [_layer(op, i, layer) for i, layer in enumerate(layers, start=1) if not isinstance(layer, str)]
    rows, r, j = [], (1, 1), (1, 1)
    for name, k, s, d in specs:
        r_out = tuple(ri + (ki - 1) * di * ji for ri, ki, di, ji in zip(r, k, d, j, strict=True))
        j_out = tuple(ji * si for ji, si in zip(j, s, strict=True))
        rows.append(FieldRow(name, k, s, d, j, r, r_out, j_out))
        r, j = r_out, j_out
    # measure: input of r cells per axis, forward sizes, then the gradient of output cell 0
    backward = _op("conv", "conv_backward")
    inputs = [np.zeros((1, *r), dtype=np.int64)]
    for _, k, s, d in specs:
        size = inputs[-1].shape[1:]
        out = tuple((n - di * (ki - 1) - 1) // si + 1 for n, ki, si, di in zip(size, k, s, d, strict=True))
        inputs.append(np.zeros((1, *out), dtype=np.int64))
    g = np.zeros(inputs[-1].shape, dtype=np.int64)
    g[0, 0, 0] = 1
    for (_, k, s, d), x in zip(reversed(specs), reversed(inputs[:-1]), strict=True):
        g = backward(g, x, np.ones((1, 1, *k), dtype=np.int64), None, s, 0, d)[0]
    hit = np.nonzero(g[0])
    measured = tuple(int(a.max() - a.min() + 1) for a in hit)
    return ReceptiveField(rows, measured)


# ---------------------------------------------------------------------------------------------
# object size


@dataclass(eq=False)
class ObjectResponse:
    """One object: the image, the filter's map, the pooled map, and their statistics."""

    size: int
    image: np.ndarray
    response: np.ndarray
    pooled: np.ndarray
    peak: Any
    at_peak: int
    responding: int
    pooled_peak: Any
    pooled_at_peak: int


class ObjectSize(Rendered):
    """What a fixed filter and max pooling report for objects of several sizes (:func:`object_size`)."""

    def __init__(self, filter: np.ndarray, pool: int, objects: list[ObjectResponse]) -> None:  # noqa: A002
        self.filter, self.pool, self.objects = filter, pool, objects

    def document_blocks(self, cells: int | None = None) -> list:
        kh, kw = self.filter.shape
        blocks: list = [
            Heading("How object size matters", 1),
            Para(f"Each image holds one square object of ones. The same {kh}x{kw} filter F slides over each "
                 f"image (then a {self.pool}x{self.pool} max-pool): it only ever sees a {kh}x{kw} patch, so "
                 "objects larger than the filter cannot be told apart by the strength of the response, only "
                 "by how many cells respond."),
            Row([Grid("F", self.filter)]),
            Items([f"object {o.size}x{o.size}: strongest response {num.plain(o.peak)} at {o.at_peak} cell(s), "
                   f"{o.responding} cell(s) respond; pooled: strongest {num.plain(o.pooled_peak)} at "
                   f"{o.pooled_at_peak} cell(s)" for o in self.objects]),
        ]
        for o in self.objects:
            blocks += [Heading(f"Object {o.size}x{o.size}", 2),
                       Row([Grid("image", o.image), Grid("Conv(image)", o.response), Grid("pooled", o.pooled)])]
        return blocks


def object_size(sizes: Sequence[int] = (1, 2, 3, 6), canvas: int = 10, filter: Any = None,  # noqa: A002
                pool: int = 2) -> ObjectSize:
    """A small and a large object under the same filter and pooling, with numbers.

    Parameters
    ----------
    sizes : sequence of int, default (1, 2, 3, 6)
        Side lengths of the square objects (ones on a zero canvas, centred).
    canvas : int, default 10
        Side length of each image.
    filter : array_like, optional
        A 2-D filter; default the 3x3 filter of ones (its response counts the object cells it covers).
    pool : int, default 2
        The max-pool's window and stride.

    Examples
    --------
    The response of a 3x3 filter of ones stops growing once the object is 3x3:

    >>> ex = object_size()
    >>> [(o.size, o.peak, o.at_peak) for o in ex.objects]
    [(1, 1, 9), (2, 4, 4), (3, 9, 1), (6, 9, 16)]
    """
    op = "object_size"
    f = np.ones((3, 3), dtype=np.int64) if filter is None else num.as_values(op, "filter", filter)
    if f.ndim != 2:
        raise ValueError(f"{op}: filter must be a 2-D matrix, got shape {f.shape}")
    if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < max(f.shape):
        raise ValueError(f"{op}: canvas must be an int >= the filter size {max(f.shape)}, got {canvas!r}")
    objects = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= canvas:
            raise ValueError(f"{op}: sizes must be ints in [1, {canvas}], got {size!r}")
        image = np.zeros((canvas, canvas), dtype=np.int64)
        lo = (canvas - size) // 2
        image[lo:lo + size, lo:lo + size] = 1
        sol = explain(image, [Conv(f), Pool("max", pool)])
        response, pooled = sol.stages[0].output[0], sol.stages[1].output[0]
        peak, pooled_peak = response.max().item(), pooled.max().item()
        objects.append(ObjectResponse(size, image, response, pooled, peak, int((response == peak).sum()),
                                      int((response > 0).sum()), pooled_peak, int((pooled == pooled_peak).sum())))
    return ObjectSize(f, pool, objects)
