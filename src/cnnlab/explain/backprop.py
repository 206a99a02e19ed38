"""Backprop by hand: the gradient of a loss with respect to a pipeline's input, filters and biases.

:func:`backprop` runs the pipeline forward with :func:`cnnlab.explain.explain`, picks a loss, and
walks back through every stage with the chain rule, recording what each step does to the
upstream gradient ``dL/dY``:

- max pooling sends each window's gradient to the cell that held its maximum (the first maximum
  in row-major order on ties, as :func:`cnnlab.functional.max_pool_backward` and PyTorch do);
  average pooling spreads it evenly, ``dL/dY / count`` to every cell of the window;
- ReLU lets it through where its input was positive and stops it elsewhere (``relu'(0) = 0``);
- a conv layer gives ``dL/dF``, a cross-correlation of its (padded) input with ``dL/dY``,
  ``dL/db``, the sum of ``dL/dY``, and ``dL/dX``, a full convolution of ``dL/dY`` (dilated by
  the stride) with the flipped filter.

The matrices come from the library's backward functions (:mod:`cnnlab.functional`), or from the
loop references in :mod:`cnnlab.functional._naive` for exact rationals; the products and sums
shown for each cell are what those numbers add up to (the tests check that they do).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._document import ARITHMETIC, _cell_label, _grids, _limit, _span_text, _stage_summary
from cnnlab.explain._engine import _in_arithmetic, _op, explain
from cnnlab.explain._expr import Heading, Items, Math, Num, Op, Para, Row, Sum, Sym, Txt, joined
from cnnlab.explain._render import Rendered
from cnnlab.explain._solution import INPUT, PAD, ActivationStage, ConvStage, PoolStage, Solution
from cnnlab.functional import _naive
from cnnlab.functional._args import check_choice
from cnnlab.functional._windows import dilate, flip, pad

OP = "backprop"
LOSSES = ("sum", "mse", "cross_entropy")
REDUCTIONS = ("mean", "sum")


# ---------------------------------------------------------------------------------------------
# the steps of the backward pass


@dataclass(eq=False)
class LossStep:
    """The loss ``L`` of the pipeline's output ``Y`` and its gradient ``dL/dY``.

    ``target`` is the target matrix for ``'mse'`` and the class index for ``'cross_entropy'``
    (whose scores are ``Y`` flattened in row-major order; ``probabilities`` is their softmax,
    in ``Y``'s shape).
    """

    name: str
    label: str
    output: np.ndarray
    target: Any
    reduction: str
    value: Any
    grad: np.ndarray
    probabilities: np.ndarray | None
    arithmetic: str


@dataclass(eq=False)
class PoolRoute:
    """Where the gradient of one pooled cell goes: ``share`` to each input cell in ``targets``.

    ``index`` is ``(channel, row, col)`` of the pooled output; ``targets`` are input positions
    ``(row, col)``; ``tied`` counts the input cells of the window that hold the maximum.
    """

    index: tuple[int, int, int]
    grad: Any
    targets: list[tuple[int, int]]
    divisor: int | None
    share: Any
    tied: int


@dataclass(eq=False)
class PoolGrad:
    """Back through a pooling stage: ``grad_in`` collects every route's share."""

    kind = "pool"
    stage: PoolStage
    grad_out: np.ndarray
    grad_in: np.ndarray
    routes: list[PoolRoute]
    arithmetic: str


@dataclass(eq=False)
class ActivationGrad:
    """Back through an activation: ``grad_in = grad_out * derivative`` cell by cell, with
    ``derivative = f'(input)``."""

    kind = "activation"
    stage: ActivationStage
    grad_out: np.ndarray
    derivative: np.ndarray
    grad_in: np.ndarray
    arithmetic: str


@dataclass(eq=False)
class FilterGradCell:
    """``dL/dF[o, c, m, n] = sum(products)``: ``window`` holds the padded-input cells that filter
    cell multiplied (at grid ``rows`` x ``cols``), ``grads`` the upstream gradient ``dL/dY[o]``."""

    index: tuple[int, int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    grads: np.ndarray
    products: np.ndarray
    value: Any


@dataclass(eq=False)
class InputGradCell:
    """``dL/dX[c, r, q] = sum(products)`` for the padded-input cell at grid ``(r, q)``: the window
    ``(O, kH, kW)`` of the padded, dilated upstream gradient times the flipped filters."""

    index: tuple[int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    value: Any


@dataclass(eq=False)
class ConvGrad:
    """Back through a conv stage.

    ``grad_applied`` is the gradient of the filters as applied (flipped for a true convolution),
    ``grad_filters`` that of the filters as given.  ``dilated`` is ``grad_out`` with
    ``stride - 1`` zeros between cells, ``padded`` that padded by ``dilation*(k - 1)`` (plus the
    rows/cols the forward never reached); correlating ``padded`` with the flipped filters gives
    ``grad_grid``, the gradient of the padded input, and folding the padding away gives
    ``grad_in``.
    """

    kind = "conv"
    stage: ConvStage
    grad_out: np.ndarray
    grad_bias: np.ndarray | None
    grad_applied: np.ndarray
    grad_filters: np.ndarray
    dilated: np.ndarray
    padded: np.ndarray
    padded_roles: np.ndarray
    tail: tuple[int, int]
    grad_grid: np.ndarray
    grad_in: np.ndarray
    filter_cells: list[FilterGradCell]
    input_cells: list[InputGradCell]
    arithmetic: str


# ---------------------------------------------------------------------------------------------
# arithmetic


def _simplify(a: np.ndarray) -> np.ndarray:
    """An exact gradient whose every value is an integer becomes ``int64`` again."""
    if num.is_exact(a) and all(Fraction(v).denominator == 1 for v in a.ravel()):
        return np.array([int(v) for v in a.ravel()], dtype=np.int64).reshape(a.shape)
    return a


def _ones(a: np.ndarray) -> np.ndarray:
    if num.is_exact(a):
        out = np.empty(a.shape, dtype=object)
        out[...] = 1
        return out
    return np.ones(a.shape, dtype=np.float64 if a.dtype.kind == "f" else np.int64)


# ---------------------------------------------------------------------------------------------
# the loss


def _loss(sol: Solution, name: str, target: Any, reduction: str) -> LossStep:
    check_choice(OP, "loss", name, LOSSES)
    y = sol.stages[-1].output if sol.stages else sol.input
    probabilities = None
    if name == "sum":
        if target is not None:
            raise ValueError(f"{OP}: loss 'sum' takes no target, got {target!r}")
        value = sum(y.ravel().tolist(), 0) if num.is_exact(y) else y.sum().item()
        return LossStep(name, sol.final_label, y, None, "sum", value, _ones(y), None,
                        num.arithmetic_of(y))
    if name == "mse":
        check_choice(OP, "reduction", reduction, REDUCTIONS)
        if target is None:
            raise ValueError(f"{OP}: loss 'mse' needs a target of the output's shape {sol.output.shape}")
        t = num.as_values(OP, "target", target)
        if t.shape == sol.output.shape:
            t = t.reshape(y.shape)
        if t.shape != y.shape:
            raise ValueError(f"{OP}: target must have the output's shape {sol.output.shape}, got {t.shape}")
        arithmetic = num.common_arithmetic(y, t)
        if arithmetic == num.FLOAT:
            ys, ts = _in_arithmetic(arithmetic, y, t)
            value = _op("loss", "mse_loss")(ys, ts, reduction).item()
            grad = _op("loss", "mse_loss_backward")(1.0, ys, ts, reduction)[0]
        else:
            ys, ts = num.to_exact(y), num.to_exact(t)
            value = _naive.naive_mse_loss(ys, ts, reduction)
            grad = _simplify(_naive.naive_mse_loss_backward(1, ys, ts, reduction))
            value = int(value) if Fraction(value).denominator == 1 else value
        return LossStep(name, sol.final_label, y, t, reduction, value, grad, None,
                        num.arithmetic_of(grad))
    # cross-entropy over the output's cells, flattened
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"{OP}: loss 'cross_entropy' needs a class index (int) as target, got {target!r}")
    if not 0 <= int(target) < y.size:
        raise ValueError(f"{OP}: class index must be in [0, {y.size}) (the output has {y.size} cells), got {target}")
    scores = (num.to_float(y) if num.is_exact(y) else y.astype(np.float64)).reshape(1, -1)
    classes = np.array([int(target)])
    value = _op("loss", "cross_entropy")(scores, classes).item()
    grad = _op("loss", "cross_entropy_backward")(1.0, scores, classes).reshape(y.shape)
    probabilities = _op("softmax", "softmax")(scores, 1).reshape(y.shape)
    return LossStep(name, sol.final_label, y, int(target), "mean", value, grad, probabilities, num.FLOAT)


# ---------------------------------------------------------------------------------------------
# back through each stage


def _pool_grad(st: PoolStage, g: np.ndarray) -> PoolGrad:
    arithmetic = num.common_arithmetic(g, st.input)
    if st.pool == "avg" and arithmetic == num.INTEGER:
        arithmetic = num.RATIONAL  # the share g / count of an integer is an exact fraction
    gs, xs = _in_arithmetic(arithmetic, g, st.input)
    if st.pool == "max":
        if arithmetic == num.RATIONAL:
            grad_in = _naive.naive_max_pool_backward(gs[None], xs[None], st.kernel, st.stride, st.pads,
                                                     st.dilation, st.ceil_mode)[0]
        else:
            grad_in = _op("pool", "max_pool_backward")(gs, xs, st.kernel, st.stride, st.pads, st.dilation,
                                                       st.ceil_mode)
    elif arithmetic == num.RATIONAL:
        grad_in = _naive.naive_avg_pool_backward(gs[None], xs[None], st.kernel, st.stride, st.pads,
                                                 st.dilation, st.ceil_mode, st.count_include_pad,
                                                 st.divisor_override)[0]
    else:
        grad_in = _op("pool", "avg_pool_backward")(gs, xs, st.kernel, st.stride, st.pads, st.ceil_mode,
                                                   st.count_include_pad, st.divisor_override, st.dilation)
    (rlo, _), (clo, _) = st.pads
    routes = []
    for cell in st.cells:
        value = gs[cell.index]
        value = value.item() if isinstance(value, np.generic) else value
        if st.pool == "max":
            inside = [v for v, r in zip(cell.window.ravel(), cell.roles.ravel(), strict=True) if r == INPUT]
            targets = [(cell.chosen[0] - rlo, cell.chosen[1] - clo)]
            routes.append(PoolRoute(cell.index, value, targets, None, value,
                                    sum(1 for v in inside if v == cell.value)))
        else:
            targets = [(r - rlo, c - clo) for a, r in enumerate(cell.rows) for b, c in enumerate(cell.cols)
                       if cell.roles[a, b] == INPUT]
            share = Fraction(value) / cell.divisor if arithmetic == num.RATIONAL else value / cell.divisor
            routes.append(PoolRoute(cell.index, value, targets, cell.divisor, share, 0))
    grad_in = _simplify(grad_in)
    return PoolGrad(st, g, grad_in, routes, num.arithmetic_of(grad_in))


_EXACT_ACTIVATIONS = ("relu", "leaky_relu")


def _slope(st: ActivationStage) -> Fraction:
    raw = st.spec.negative_slope
    return Fraction(str(raw)) if isinstance(raw, float) else Fraction(raw)


def _activation_grad(st: ActivationStage, g: np.ndarray) -> ActivationGrad:
    arithmetic = num.common_arithmetic(g, st.input)
    if st.name not in _EXACT_ACTIVATIONS:
        arithmetic = num.FLOAT
    gs, xs = _in_arithmetic(arithmetic, g, st.input)
    if arithmetic == num.RATIONAL:
        if st.name == "relu":
            derivative = _naive.naive_relu_backward(_ones(xs), xs)
            grad_in = _naive.naive_relu_backward(gs, xs)
        else:
            derivative = _naive.naive_leaky_relu_backward(_ones(xs), xs, _slope(st))
            grad_in = _naive.naive_leaky_relu_backward(gs, xs, _slope(st))
        derivative, grad_in = _simplify(derivative), _simplify(grad_in)
    else:
        params: dict = {}
        if st.name == "leaky_relu":
            params["negative_slope"] = st.spec.negative_slope
        elif st.name == "elu":
            params["alpha"] = st.spec.alpha
        elif st.name == "gelu":
            params["approximate"] = st.spec.approximate
        backward = _op("activation", f"{st.name}_backward")
        derivative = backward(np.ones(xs.shape, dtype=gs.dtype), xs, **params)
        grad_in = backward(gs, xs, **params)
    return ActivationGrad(st, g, derivative, grad_in, num.arithmetic_of(grad_in))


def _conv_grads(st: ConvStage, g: np.ndarray, arithmetic: str):
    """``(grad_in, grad_applied, grad_bias, grad_grid)`` from the library's conv backward."""
    gs, xs, ws, grid = _in_arithmetic(arithmetic, g, st.input, st.applied, st.grid)
    bias = None if st.bias is None else np.zeros(st.applied.shape[0], dtype=np.int64)
    if arithmetic == num.RATIONAL:
        gx, gw, gb = _naive.naive_conv_backward(gs[None], xs[None], ws, st.stride, st.pads, st.dilation, 1,
                                                st.padding_mode)
        grad_grid = _naive.naive_conv_backward(gs[None], grid[None], ws, st.stride, ((0, 0), (0, 0)),
                                               st.dilation)[0][0]
        return gx[0], gw, (None if bias is None else gb), grad_grid
    backward = _op("conv", "conv_backward")
    gx, gw, gb = backward(gs, xs, ws, bias, st.stride, st.pads, st.dilation, 1, st.padding_mode)
    grad_grid = backward(gs, grid, ws, None, st.stride, 0, st.dilation)[0]
    return gx, gw, gb, grad_grid


def _conv_grad(st: ConvStage, g: np.ndarray) -> ConvGrad:
    arithmetic = num.common_arithmetic(g, st.input, st.applied)
    grad_in, grad_applied, grad_bias, grad_grid = (
        None if a is None else _simplify(a) for a in _conv_grads(st, g, arithmetic)
    )
    grad_filters = np.ascontiguousarray(flip(grad_applied, 2)) if st.mode == "convolve" else grad_applied
    (gs, grid, applied) = _in_arithmetic(arithmetic, g, st.grid, st.applied)
    kernel = st.applied.shape[2:]
    (s0, s1), (d0, d1) = st.stride, st.dilation
    filter_cells = []
    for o, c, m, n in np.ndindex(*st.applied.shape):
        rows = tuple(i * s0 + m * d0 for i in range(g.shape[1]))
        cols = tuple(j * s1 + n * d1 for j in range(g.shape[2]))
        window = grid[c][np.ix_(rows, cols)]
        filter_cells.append(FilterGradCell((o, c, m, n), rows, cols, window, gs[o], window * gs[o],
                                           grad_applied[o, c, m, n]))
    # dL/dX as a full correlation of the dilated, padded dL/dY with the flipped filters
    dilated = dilate(gs, st.stride)
    tail = tuple(size - ((o - 1) * s + d * (k - 1) + 1)
                 for size, o, s, d, k in zip(grid.shape[1:], g.shape[1:], st.stride, st.dilation, kernel, strict=True))
    pads = tuple((d * (k - 1), d * (k - 1) + t) for d, k, t in zip(st.dilation, kernel, tail, strict=True))
    padded = pad(dilated, pads)
    marks = pad(dilate(np.ones(g.shape[1:], dtype=np.int8), st.stride), pads)
    padded_roles = np.where(marks == 1, INPUT, PAD)
    flipped = flip(applied, 2)
    input_cells = []
    for c, r, q in np.ndindex(*grid.shape):
        if st.roles[r, q] != INPUT and st.padding_mode == "zeros":
            continue
        rows = tuple(r + t * d0 for t in range(kernel[0]))
        cols = tuple(q + t * d1 for t in range(kernel[1]))
        window = padded[:, rows][:, :, cols]
        input_cells.append(InputGradCell((c, r, q), rows, cols, window, flipped[:, c],
                                         window * flipped[:, c], grad_grid[c, r, q]))
    return ConvGrad(st, g, grad_bias, grad_applied, grad_filters, dilated, padded, padded_roles, tail,
                    grad_grid, grad_in, filter_cells, input_cells, num.arithmetic_of(grad_in))


# ---------------------------------------------------------------------------------------------
# the result


class Backprop(Rendered):
    """A worked backward pass: the loss, then one step per stage from the last to the first.

    Build one with :func:`backprop`; render it like a :class:`~cnnlab.explain.Solution`.

    Attributes
    ----------
    forward : Solution
        The forward pass.
    loss : LossStep
    steps : list
        :class:`PoolGrad`, :class:`ActivationGrad` and :class:`ConvGrad` objects, in backward
        order (the last stage first).
    """

    def __init__(self, forward: Solution, loss: LossStep, steps: list) -> None:
        self.forward = forward
        self.loss = loss
        self.steps = steps

    @property
    def grad_input(self) -> np.ndarray:
        """``dL/dI`` in the input's shape."""
        grad = self.steps[-1].grad_in if self.steps else self.loss.grad
        return self.forward._squeeze(grad)

    @property
    def conv_steps(self) -> list[ConvGrad]:
        """The :class:`ConvGrad` steps in forward order."""
        return [s for s in reversed(self.steps) if isinstance(s, ConvGrad)]

    @property
    def grad_filters(self) -> list[np.ndarray]:
        """``dL/dF`` of each conv stage (forward order), in the shape its filters were given."""
        return [s.grad_filters.reshape(np.shape(s.stage.spec.filters)) for s in self.conv_steps]

    @property
    def grad_biases(self) -> list[np.ndarray | None]:
        """``dL/db`` of each conv stage (forward order); ``None`` for a stage without bias."""
        return [s.grad_bias for s in self.conv_steps]

    def document_blocks(self, cells: int | None = None) -> list:
        return _blocks(self, cells)

    def __repr__(self) -> str:
        return f"<Backprop {self.loss.name} of {self.loss.label}>"


def backprop(
    x: Any, stages: Any, *, loss: str = "sum", target: Any = None, reduction: str = "mean",
    label: str = "I",
) -> Backprop:
    """Work the gradients of a CNN pipeline out by hand, step by step.

    Parameters
    ----------
    x, stages, label
        The input and the pipeline, as for :func:`cnnlab.explain.explain`.
    loss : {'sum', 'mse', 'cross_entropy'}, default 'sum'
        ``'sum'`` adds up every output cell (so ``dL/dY = 1``); ``'mse'`` is the squared error
        to ``target`` (a matrix of the output's shape); ``'cross_entropy'`` treats the output's
        cells, flattened in row-major order, as class scores and ``target`` as the class index.
    target : array_like or int, optional
        See ``loss``.
    reduction : {'mean', 'sum'}, default 'mean'
        For ``'mse'``: average or add up the squared errors.

    Returns
    -------
    Backprop
        ``grad_input`` (``dL/dI``), ``grad_filters`` and ``grad_biases`` per conv stage, and every
        step; render it with ``str()`` or :meth:`Backprop.render`.

    Raises
    ------
    TypeError, ValueError
        As :func:`cnnlab.explain.explain` does, and for a bad loss, target or reduction.

    Notes
    -----
    Integers stay integers and Fractions stay exact (average pooling and a mean squared error
    make exact fractions); cross-entropy and the transcendental activations are floating point.

    Examples
    --------
    The lecture's pipeline with the sum of the output as the loss: only the window's maximum,
    ``Conv(I)[1, 1] = 5``, gets a gradient, so ``dL/dF`` is the window that made it.

    >>> from cnnlab.explain import Conv, Pool
    >>> bp = backprop([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 0], [0, 1]]), "relu", Pool("max", 2, stride=1)])
    >>> bp.grad_filters[0].tolist()
    [[1, 0], [0, 4]]
    >>> bp.grad_input.tolist()
    [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    sol = explain(x, stages, label=label)
    step = _loss(sol, loss, target, reduction)
    g = step.grad
    steps: list = []
    for st in reversed(sol.stages):
        if isinstance(st, PoolStage):
            back = _pool_grad(st, g)
        elif isinstance(st, ActivationStage):
            back = _activation_grad(st, g)
        else:
            back = _conv_grad(st, g)
        steps.append(back)
        g = back.grad_in
    return Backprop(sol, step, steps)


# ---------------------------------------------------------------------------------------------
# the document


def _d(label: str) -> str:
    return f"dL/d{label}"


def _more(hidden: int) -> list:
    return [Para(f"... {hidden} more cell(s) not shown; all values are in the matrix below.")] if hidden else []


def _marked(label: str, a: np.ndarray, roles: np.ndarray, rows, cols) -> Row:
    """``a`` (C, H, W) with the cells at ``rows`` x ``cols`` highlighted and non-input cells faded."""
    mask = np.zeros(roles.shape, dtype=bool)
    mask[np.ix_(rows, cols)] = True
    return Row(_grids(label, a, mask, roles != INPUT))


def _products(a: np.ndarray, b: np.ndarray) -> list:
    return joined([[Num(u, True), Op("*"), Num(v, True)] for u, v in zip(a.ravel(), b.ravel(), strict=True)])


def _loss_blocks(step: LossStep, limit: int | None) -> list:
    y, label = step.output, step.label
    channels = y.shape[0]
    blocks: list = [Heading(f"The loss and {_d(label)}", 2)]
    if step.name == "sum":
        blocks += [Para(f"L is the sum of the cells of {label}, so every cell has dL/d(cell) = 1."),
                   Math([Sym("L"), Op("="), *joined([[Num(v, True)] for v in y.ravel()]), Op("="),
                         Num(step.value)])]
    elif step.name == "mse":
        n = y.size
        mean = step.reduction == "mean"
        blocks += [Para(f"L is the squared error to the target T, {'averaged over' if mean else 'added up over'} "
                        f"the {n} cells: L = {'(1/' + str(n) + ') ' if mean else ''}sum (Y - T)^2, so "
                        f"dL/dY = 2 (Y - T){' / ' + str(n) if mean else ''}."),
                   Row(_grids("T", step.target)), Math([Sym("L"), Op("="), Num(step.value)])]
        shown, hidden = _limit(list(np.ndindex(*y.shape)), limit)
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
    shown, hidden = _limit(step.routes, limit)
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
    indices = list(np.ndindex(*st.input.shape))
    if st.name == "relu":
        indices = [i for i in indices if not num.is_negative(-st.input[i])]
        blocks.append(Para(f"The cells where {src} <= 0 stop the gradient:" if indices
                           else f"No cell of {src} is <= 0: the gradient passes unchanged."))
    shown, hidden = _limit(indices, limit)
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
            cells = [[Num(v, True)] for v in step.grad_out[o].ravel()]
            blocks.append(Math([Sym(f"dL/db[{name}]"), Op("="), *joined(cells), Op("="), Num(step.grad_bias[o])]))
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
    shown, hidden = _limit(step.filter_cells, limit)
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
    shown, hidden = _limit(step.input_cells, limit)
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
