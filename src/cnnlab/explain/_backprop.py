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

from fractions import Fraction
from typing import Any

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._backprop_doc import _blocks
from cnnlab.explain._backprop_steps import (
    ActivationGrad,
    ConvGrad,
    FilterGradCell,
    InputGradCell,
    LossStep,
    PoolGrad,
    PoolRoute,
)
from cnnlab.explain._engine import _in_arithmetic, _op, explain
from cnnlab.explain._limits import cell_count, check_work, chosen
from cnnlab.explain._rendered import Rendered
from cnnlab.explain._solution import INPUT, PAD, ActivationStage, ConvStage, PoolStage, Solution
from cnnlab.explain._volume_backprop import volume_backprop
from cnnlab.functional import _naive
from cnnlab.functional._args import check_bool, check_choice
from cnnlab.functional._windows import dilate, flip, pad

OP = "backprop"
LOSSES = ("sum", "mse", "cross_entropy")
REDUCTIONS = ("mean", "sum")


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
    return PoolGrad(st, g, grad_in, routes, num.arithmetic_of(grad_in), left_out=st.left_out)


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


def _check_backward_work(n: int, st: Any, g: np.ndarray) -> None:
    """Refuse, before computing it, a backward step that exact fractions would make too slow."""
    if isinstance(st, ConvStage):
        exact = num.common_arithmetic(g, st.input, st.applied) == num.RATIONAL
        work = 2 * st.output.size * st.applied[0].size
    elif isinstance(st, PoolStage):
        arithmetic = num.common_arithmetic(g, st.input)
        exact = arithmetic == num.RATIONAL or (st.pool == "avg" and arithmetic == num.INTEGER)
        work = st.output.size * st.kernel[0] * st.kernel[1]
    else:
        return
    check_work(f"{OP} (step {n})", "the backward pass", work, exact)


def _conv_grad(st: ConvStage, g: np.ndarray, select: int | None = None) -> ConvGrad:
    arithmetic = num.common_arithmetic(g, st.input, st.applied)
    grad_in, grad_applied, grad_bias, grad_grid = (
        None if a is None else _simplify(a) for a in _conv_grads(st, g, arithmetic)
    )
    grad_filters = np.ascontiguousarray(flip(grad_applied, 2)) if st.mode == "convolve" else grad_applied
    (gs, grid, applied) = _in_arithmetic(arithmetic, g, st.grid, st.applied)
    kernel = st.applied.shape[2:]
    (s0, s1), (d0, d1) = st.stride, st.dilation
    filter_cells = []
    picked = chosen(st.applied.shape, select)
    for o, c, m, n in picked:
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
    if st.padding_mode == "zeros":  # the padding's gradient is dropped: only input cells
        (rlo, _), (clo, _) = st.pads
        places = [(c, r + rlo, q + clo) for c, r, q in chosen(st.input.shape, select)]
        total = st.input.size
    else:
        places, total = chosen(grid.shape, select), grid.size
    for c, r, q in places:
        rows = tuple(r + t * d0 for t in range(kernel[0]))
        cols = tuple(q + t * d1 for t in range(kernel[1]))
        window = padded[:, rows][:, :, cols]
        input_cells.append(InputGradCell((c, r, q), rows, cols, window, flipped[:, c],
                                         window * flipped[:, c], grad_grid[c, r, q]))
    return ConvGrad(st, g, grad_bias, grad_applied, grad_filters, dilated, padded, padded_roles, tail,
                    grad_grid, grad_in, filter_cells, input_cells, num.arithmetic_of(grad_in),
                    filter_left_out=st.applied.size - len(picked), input_left_out=total - len(places))


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
    label: str = "I", cells: int | None = None, volume: bool = False,
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
    cells : int, optional
        How many cells of each step to work out by hand (as for :func:`~cnnlab.explain.explain`:
        all of a small step, 4 representative ones of a large one by default).
    volume : bool, default False
        Read the input as a volume, as ``explain(..., volume=True)`` does; the result is then a
        ``VolumeBackprop`` (losses 'sum' and 'mse').

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
    if check_bool("backprop", "volume", volume):
        return volume_backprop(x, stages, loss=loss, target=target, reduction=reduction, label=label,
                               cells=cells)
    with np.errstate(all="ignore"):  # NaN and inf propagate as IEEE says, without warnings
        return _backprop(x, stages, loss, target, reduction, label, cells)


def _backprop(x: Any, stages: Any, loss: str, target: Any, reduction: str, label: str,
              cells: int | None) -> Backprop:
    sol = explain(x, stages, label=label, cells=cells)
    select = cell_count(OP, cells)
    step = _loss(sol, loss, target, reduction)
    g = step.grad
    steps: list = []
    for n, st in reversed(list(enumerate(sol.stages, start=1))):
        _check_backward_work(n, st, g)
        if isinstance(st, PoolStage):
            back = _pool_grad(st, g)
        elif isinstance(st, ActivationStage):
            back = _activation_grad(st, g)
        else:
            back = _conv_grad(st, g, select)
        steps.append(back)
        g = back.grad_in
    return Backprop(sol, step, steps)
